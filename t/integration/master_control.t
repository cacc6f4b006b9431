#!/usr/bin/perl
# master signals and control commands: SIGUSR1 reopens the log files
# (master's and the daemons'), SIGTERM/SIGINT stop gracefully, relayed
# commands reach the right daemon, unknown requests get a clear answer.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(:sys_wait_h);
use MailgwTest;

plan skip_all => 'build first'
    unless -x MailgwTest::bin('mailgw') && -x MailgwTest::libexec('master')
    && -x MailgwTest::helper('testd');

sub slurp { open(my $fh, '<', $_[0]) or return ''; local $/; return <$fh> // '' }

sub wait_file {
    my ($path, $re, $seconds) = @_;
    my $deadline = time + $seconds;
    while (time <= $deadline) {
        return 1 if slurp($path) =~ $re;
        select(undef, undef, undef, 0.1);
    }
    return 0;
}

# --- SIGUSR1: rename the log, new lines go to a new file
{
    my $gw = MailgwTest->new(testd => [qw(qmgr smtpd smtp)]);
    ok($gw->start(foreground => 0), 'started as a daemon (log file)');
    my $log = $gw->log_path;
    ok(rename($log, "$log.1"), 'log renamed');
    my $mpid = $gw->master_pid;
    ok(kill('USR1', $mpid), 'SIGUSR1 to master');
    ok(wait_file($log, qr/mailgw\/master\[$mpid\]: log files reopened/, 10),
        'master writes to a new file');
    my ($rc, $out) = $gw->mailgw('recv-off');
    is($rc, 0, 'recv-off exits 0') or diag $out;
    ok(wait_file($log, qr/mailgw\/smtpd\[\d+\]: testd smtpd: command recv-off/, 10),
        'smtpd writes to the new file too');
    unlike(slurp("$log.1"), qr/command recv-off/, 'nothing new in the renamed file');
    like(slurp("$log.1"), qr/starting mailgw/, 'the renamed file kept the old lines');

    # --- relayed commands
    like($out, qr/^smtpd: ok$/m, 'recv-off: smtpd answered ok');
    ($rc, $out) = $gw->mailgw('send-off');
    is($rc, 0, 'send-off exits 0');
    like($out, qr/^qmgr: ok$/m, 'send-off went to qmgr');
    ($rc, $out) = $gw->mailgw('flush');
    like($out, qr/^qmgr: ok$/m, 'flush went to qmgr');
    ($rc, $out) = $gw->mailgw('stats');
    is($rc, 0, 'stats exits 0');
    like($out, qr/^master: pid=$mpid/m, 'stats: master line');
    like($out, qr/^$_: testd_commands=\d+$/m, "stats: $_ counters") for qw(qmgr smtpd smtp);
    ($rc, $out) = $gw->mailgw('avir-off');
    is($rc, 1, 'avir-off without scand exits 1');
    like($out, qr/scand: not running/, '... saying scand is not running');

    my $reply = $gw->control_request('frobnicate');
    is(MailgwTest::reply_get($reply, 'status'), 'error', 'unknown request: error');
    like(MailgwTest::reply_get($reply, 'reason'), qr/frobnicate: not supported by this version/,
        '... "not supported by this version"');
    $reply = $gw->control_request('status');
    is(MailgwTest::reply_get($reply, 'status'), 'ok', 'raw status request answers');

    ok(kill('TERM', $mpid), 'SIGTERM to master');
    ok($gw->wait_log(qr/mailgw\/master\[$mpid\]: stopped/, 20), 'master stopped');
    my $deadline = time + 10;
    select(undef, undef, undef, 0.1) while MailgwTest::alive($mpid) && time < $deadline;
    ok(!MailgwTest::alive($mpid), 'master exited');
    ok(!-e $gw->pid_path, 'pid file removed');
    $gw->{started} = 0;
}

# --- a daemon that does not know a command says so
{
    my $gw = MailgwTest->new(testd => [qw(smtpd scand)]);
    ok($gw->start, 'started with a scand that knows no anti-virus commands');
    my ($rc, $out) = $gw->mailgw('avir-off');
    is($rc, 1, 'avir-off exits 1');
    like($out, qr/scand: error: unknown command/, "scand's answer is shown");
    ($rc, $out) = $gw->mailgw('send-off');
    is($rc, 1, 'send-off without qmgr exits 1');
    like($out, qr/qmgr: not running/, '... qmgr not running');

    # SIGINT in the foreground: graceful stop, exit 0
    my $fg = $gw->{fg_pid};
    my $mpid = $gw->master_pid;
    ok(kill('INT', $mpid), 'SIGINT to the foreground master');
    my $deadline = time + 20;
    my $done = 0;
    while (time < $deadline) {
        if (waitpid($fg, WNOHANG) == $fg) { $done = 1; last }
        select(undef, undef, undef, 0.1);
    }
    ok($done, 'foreground mailgw exited');
    is($? >> 8, 0, '... with status 0');
    like($gw->log_text, qr/daemon scand pid \d+ exited with status 0/, 'daemons stopped first');
    delete $gw->{fg_pid};
    $gw->{started} = 0;
}

# --- a missing daemon binary is a warning, the rest runs
{
    my $gw = MailgwTest->new(testd => [qw(smtpd)], daemons => 'qmgr,smtpd');
    ok($gw->start, 'started with qmgr missing from libexec');
    ok($gw->wait_log(qr/warning: daemon qmgr: .*qmgr: No such file or directory: not started/, 5),
        'missing qmgr logged');
    my $st = $gw->status;
    is($st->{smtpd}{state}, 'running', 'smtpd runs');
    $gw->stop;
}

# --- who may use the control socket (needs root to switch users)
SKIP: {
    skip 'needs root and the user "daemon"', 6
        unless $> == 0 && getpwnam('daemon') && -x '/usr/sbin/runuser';
    my $as_daemon = sub {
        my ($gw, @args) = @_;
        my $cmd = join(' ', map { "'$_'" } ('/usr/sbin/runuser', '-u', 'daemon', '--',
            MailgwTest::bin('mailgw'), '-c', $gw->conf_path, @args));
        my $out = `$cmd 2>&1`;
        return ($? >> 8, $out);
    };
    my $gw = MailgwTest->new(testd => [qw(smtpd)]);
    ok($gw->start, 'started (no AdminGroup)');
    my ($rc, $out) = $as_daemon->($gw, 'status');
    is($rc, 1, 'another user cannot use the control socket');
    like($out, qr/refused this user|cannot talk|Permission denied/i, '... and is told so');
    $gw->stop;

    my $group = getgrgid((getpwnam('daemon'))[3]);
    $gw = MailgwTest->new(testd => [qw(smtpd)], 'mailgw.options.AdminGroup' => $group);
    ok($gw->start, "started with AdminGroup=$group");
    ($rc, $out) = $as_daemon->($gw, 'status');
    is($rc, 0, 'a member of AdminGroup may') or diag $out;
    like($out, qr/mailgw is running/, '... and sees the status');
    $gw->stop;
}

done_testing;
