#!/usr/bin/perl
# master: start in the foreground and daemonized, pid file, status, stop,
# refusing a second master, a stale pid file, config errors at start.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MailgwTest;

plan skip_all => 'build first (no ' . MailgwTest::bin('mailgw') . ')'
    unless -x MailgwTest::bin('mailgw') && -x MailgwTest::libexec('master')
    && -x MailgwTest::helper('testd');

my @DAEMONS = qw(qmgr smtpd smtp);

# --- foreground
{
    my $gw = MailgwTest->new(testd => [@DAEMONS]);
    ok($gw->start, 'mailgw start -f: SMTP port answers');
    my $st = $gw->status;
    ok($st, 'status answers');
    for my $d (@DAEMONS) {
        ok($st->{$d} && $st->{$d}{pid} > 0, "status lists $d with a pid");
        is($st->{$d}{state}, 'running', "$d is running");
        ok(MailgwTest::alive($st->{$d}{pid}), "$d pid is alive");
    }
    my ($rc, $out) = $gw->mailgw('status');
    is($rc, 0, 'status exits 0');
    like($out, qr/mailgw is running: master pid \d+/, 'status names the master pid');
    my $pid = $gw->master_pid;
    ok($pid > 0 && MailgwTest::alive($pid), 'pid file holds the live master');
    is($st->{master}, $pid, 'status and pid file agree');

    ($rc, $out) = $gw->mailgw('start');
    is($rc, 1, 'a second start is refused');
    like($out, qr/already running \(pid $pid/, '... saying which master runs');

    ($rc, $out) = $gw->mailgw('stop');
    is($rc, 0, 'mailgw stop exits 0') or diag $out;
    ok(!-e $gw->pid_path, 'pid file removed');
    ok(!MailgwTest::alive($st->{$_}{pid}), "$_ is gone") for @DAEMONS;
    ok(!-e $gw->queue_dir . '/public/control', 'control socket removed');
    ($rc, $out) = $gw->mailgw('status');
    is($rc, 3, 'status of a stopped mailgw exits 3');
    like($out, qr/not running/, '... and says so');
    ($rc, $out) = $gw->mailgw('stop');
    is($rc, 1, 'stop when not running exits 1');
    like($out, qr/^mailgw: stop: mailgw is not running$/m, '... saying so');
    for my $cmd (qw(reload stats flush recv-off recv-on send-off send-on avir-off avir-on
                    reload-bases)) {
        ($rc, $out) = $gw->mailgw($cmd);
        is($rc, 1, "$cmd when not running exits 1");
        like($out, qr/^mailgw: \Q$cmd\E: mailgw is not running$/m, '... saying so');
    }
    like($gw->log_text, qr/mailgw\/master\[\d+\]: stopped/, 'master logged its stop');
    for my $dir (qw(tmp incoming active deferred hold corrupt private)) {
        my $mode = (stat($gw->queue_dir . "/$dir"))[2];
        is($mode & 07777, 0700, "queue dir $dir is 0700");
    }
    is((stat($gw->queue_dir . '/public'))[2] & 07777, 0710, 'public is 0710');
}

# --- daemonized
{
    my $gw = MailgwTest->new(testd => [@DAEMONS]);
    ok($gw->start(foreground => 0), 'mailgw start (daemon): SMTP port answers');
    my $pid = $gw->master_pid;
    ok($pid > 0 && MailgwTest::alive($pid), 'daemonized master runs with a pid file');
    isnt($pid, $$, 'not us');
    my $st = $gw->status;
    is($st->{smtpd}{state}, 'running', 'smtpd running under the daemonized master');
    like($gw->log_text, qr/mailgw\/master\[$pid\]: starting mailgw/,
        'daemonized master logs to LogFilename');

    my ($rc, $out) = $gw->mailgw('restart');
    is($rc, 0, 'restart exits 0') or diag $out;
    my $pid2 = $gw->master_pid;
    ok($pid2 > 0 && $pid2 != $pid && MailgwTest::alive($pid2), 'restart: a new master runs');
    ok(!MailgwTest::alive($pid), 'restart: the old master is gone');
    ok($gw->_wait_status(10), 'restart: status answers');

    ($rc, $out) = $gw->mailgw('stop');
    is($rc, 0, 'stop exits 0') or diag $out;
    ok(!MailgwTest::alive($pid2), 'daemonized master gone');
    ok(!-e $gw->pid_path, 'pid file removed');

    # A stale pid file (a master killed with -9) does not block a start.
    open(my $fh, '>', $gw->pid_path) or die $!;
    print $fh "$pid2\n";
    close $fh;
    ok($gw->start(foreground => 0), 'start over a stale pid file');
    like($gw->log_text, qr/removed stale pid file .*\(pid $pid2\)/, 'stale pid file logged');
    $gw->stop;
}

# --- master killed with -9: the daemons notice and exit; a new start works
{
    my $gw = MailgwTest->new(testd => [@DAEMONS]);
    ok($gw->start(foreground => 0), 'started');
    my $st = $gw->status;
    my $mpid = $gw->master_pid;
    ok(kill('KILL', $mpid), 'kill -9 master');
    my $deadline = time + 15;
    sleep 1 while time < $deadline && grep { MailgwTest::alive($st->{$_}{pid}) } @DAEMONS;
    ok(!MailgwTest::alive($st->{$_}{pid}), "$_ exited without its master") for @DAEMONS;
    like($gw->log_text, qr/master went away/, 'the daemons logged why');
    ok($gw->start(foreground => 0), 'a new start over the dead master works');
    isnt($gw->master_pid, $mpid, 'new master pid');
    $gw->stop;
}

# --- configuration errors at start
{
    my $gw = MailgwTest->new(testd => [@DAEMONS],
                             'mailgw.network.ListenOn' => 'not-an-address');
    my ($rc, $out) = $gw->mailgw('start');
    is($rc, 1, 'start with a broken config exits 1');
    like($out, qr/ListenOn/, '... and names the parameter');
    ok(!-e $gw->pid_path, 'no pid file left');

    $gw = MailgwTest->new(testd => [@DAEMONS]);
    my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $gw->port,
                                     Listen => 1, ReuseAddr => 0) or die "listen: $!";
    ($rc, $out) = $gw->mailgw('start');
    is($rc, 1, 'start when the SMTP port is taken exits 1');
    like($out, qr/ListenOn 127\.0\.0\.1:\d+: cannot listen/, '... with the reason');
    close $busy;
}

done_testing;
