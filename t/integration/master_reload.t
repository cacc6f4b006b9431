#!/usr/bin/perl
# master reload: a changed valid config brings a new generation (new
# pids, rebound listeners, no connection refused meanwhile); a broken
# config is refused by `mailgw reload` (exit 1 with the diagnostic) and,
# sent by SIGHUP, logged while the old configuration keeps running.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(:sys_wait_h);
use MailgwTest;

plan skip_all => 'build first'
    unless -x MailgwTest::bin('mailgw') && -x MailgwTest::libexec('master')
    && -x MailgwTest::helper('testd');

sub wait_for {
    my ($cond, $seconds) = @_;
    my $deadline = time + $seconds;
    while (time <= $deadline) {
        my $v = $cond->();
        return $v if $v;
        select(undef, undef, undef, 0.2);
    }
    return;
}

sub banner {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 3)
        or return '';
    my $line = '';
    IO::Select->new($s)->can_read(5) and sysread($s, $line, 200);
    return $line;
}

my @D = qw(qmgr smtpd smtp);

# --- valid reload: new generation, new listener, old port closed
{
    my $gw = MailgwTest->new(testd => [@D], env => { TESTD_STOP_DELAY => 2 });
    ok($gw->start, 'started');
    my $st = $gw->status;
    my $port2 = MailgwTest::free_port();
    $gw->set('mailgw.network.ListenOn' => ["127.0.0.1:" . $gw->port, "127.0.0.1:$port2"]);
    $gw->write_config;

    # A client keeps connecting during the reload: nobody is refused.
    my $kid = fork // die;
    if ($kid == 0) {
        my $fail = 0;
        for (1 .. 25) {
            $fail++ unless banner($gw->port) =~ /^220/;
            select(undef, undef, undef, 0.1);
        }
        POSIX::_exit($fail > 99 ? 99 : $fail);
    }
    select(undef, undef, undef, 0.3);
    my ($rc, $out) = $gw->mailgw('reload');
    is($rc, 0, 'mailgw reload exits 0') or diag $out;
    like($out, qr/configuration reloaded/, '... and says so');
    waitpid($kid, 0);
    is($? >> 8, 0, 'no connection refused or unanswered during the reload');
    ok($gw->wait_log(qr/reload: configuration reloaded/, 5), 'master logged the reload');
    my $new = wait_for(sub {
        my $s = $gw->status;
        return unless $s;
        for my $d (@D) {
            return unless $s->{$d} && $s->{$d}{pid} && $s->{$d}{state} eq 'running'
                && $s->{$d}{pid} != $st->{$d}{pid};
        }
        return $s;
    }, 15);
    ok($new, 'every daemon has a new pid');
    like(banner($port2), qr/^220 testd smtpd/, 'the new ListenOn address answers');
    like(banner($gw->port), qr/^220 testd smtpd/, 'the kept address still answers');
    ok($gw->wait_log(qr/daemon smtpd pid $st->{smtpd}{pid} exited with status 0 \(previous generation\)/, 10),
        'old smtpd finished and exited');

    # Drop the second address again.
    $gw->set('mailgw.network.ListenOn' => "127.0.0.1:" . $gw->port);
    $gw->write_config;
    ($rc, $out) = $gw->mailgw('reload');
    is($rc, 0, 'second reload exits 0') or diag $out;
    ok(wait_for(sub { banner($port2) eq '' }, 10), 'the removed address is closed');

    # --- broken config: refused by the CLI, and by master on SIGHUP
    my $before = $gw->status;
    my $good = $gw->config_text;
    $gw->write_config($good . "[mailgw.limits]\nMaximalIncomingRcptsPerMessage=0\n");
    ($rc, $out) = $gw->mailgw('reload');
    is($rc, 1, 'reload of a broken config exits 1');
    like($out, qr/MaximalIncomingRcptsPerMessage/, '... printing the diagnostic');
    like($out, qr/not reloaded/, '... and saying nothing was reloaded');
    my $mpid = $gw->master_pid;
    my $loglen = length $gw->log_text;
    ok(kill('HUP', $mpid), 'SIGHUP to master with the broken config');
    ok($gw->wait_log(qr/reload: configuration has errors; keeping the running one/, 10),
        'master refuses it');
    like(substr($gw->log_text, $loglen), qr/error: reload: .*MaximalIncomingRcptsPerMessage/,
        'every diagnostic is logged');
    # mailgw status refuses a broken config file; ask master directly.
    my $reply = $gw->control_request('status');
    my (%pid, $cur);
    for (@{ $reply // [] }) {
        $cur = $_->[1] if $_->[0] eq 'daemon';
        $pid{$cur} = $_->[1] if $_->[0] eq 'pid' && defined $cur;
    }
    is($pid{$_}, $before->{$_}{pid}, "$_ kept running on the old config") for @D;
    ($rc, $out) = $gw->mailgw('status');
    is($rc, 1, 'mailgw status with a broken config file exits 1');
    like($out, qr/has errors/, '... saying why');
    like(banner($gw->port), qr/^220/, 'still answering');

    # --- a change that needs a restart
    $gw->set('mailgw.path.QueuePath' => $gw->dir . '/queue2');
    $gw->write_config;
    ($rc, $out) = $gw->mailgw('reload');
    # the CLI finds the control socket in the new QueuePath: not running there
    isnt($rc, 0, 'QueuePath change is not reloaded');
    $gw->set('mailgw.path.QueuePath' => $gw->dir . '/queue');
    $gw->write_config($good);
    ($rc, $out) = $gw->mailgw('reload');
    is($rc, 0, 'the good config reloads again') or diag $out;
    $gw->stop;
}

# --- QueuePath change via SIGHUP is refused by master
{
    my $gw = MailgwTest->new(testd => [@D]);
    ok($gw->start, 'started');
    $gw->set('mailgw.path.QueuePath' => $gw->dir . '/other');
    $gw->write_config;
    kill 'HUP', $gw->master_pid;
    ok($gw->wait_log(qr/reload: QueuePath: cannot change on reload; use mailgw restart/, 10),
        'QueuePath change refused with a reason');
    $gw->set('mailgw.path.QueuePath' => $gw->dir . '/queue');
    $gw->write_config;
    $gw->stop;
}

done_testing;
