#!/usr/bin/perl
# master supervision: a child killed with -9 is restarted and logged; a
# child in a crash loop is throttled while the others keep running; a
# hung child (no heartbeats) is killed and restarted.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
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

# --- kill -9 of a child
{
    my $gw = MailgwTest->new(testd => [qw(qmgr smtpd smtp)]);
    ok($gw->start, 'started');
    my $st = $gw->status;
    my $old = $st->{smtpd}{pid};
    ok(kill('KILL', $old), "kill -9 smtpd ($old)");
    ok($gw->wait_log(qr/daemon smtpd pid $old killed by signal 9 \(SIGKILL\)/, 10),
        'log names the daemon, its pid and the signal');
    my $new = wait_for(sub {
        my $s = $gw->status;
        $s && $s->{smtpd}{pid} && $s->{smtpd}{pid} != $old && $s->{smtpd}{state} eq 'running'
            ? $s->{smtpd}{pid} : 0;
    }, 15);
    ok($new, "smtpd restarted with a new pid ($new)");
    is($gw->status->{smtpd}{restarts}, 1, 'status counts the restart');
    ok($gw->_wait_smtp(10), 'the new smtpd answers on the same port');
    is($gw->status->{qmgr}{pid}, $st->{qmgr}{pid}, 'qmgr untouched');

    # A daemon that exits 0 (max-use recycling) is restarted at once.
    my $qold = $st->{qmgr}{pid};
    ok(kill('TERM', $qold), 'SIGTERM qmgr: it stops gracefully, exit 0');
    ok($gw->wait_log(qr/daemon qmgr pid $qold exited with status 0/, 10), 'exit 0 logged');
    ok(wait_for(sub { my $s = $gw->status; $s && $s->{qmgr}{pid} && $s->{qmgr}{pid} != $qold }, 10),
        'qmgr restarted');
    $gw->stop;
}

# --- crash loop: throttled, the other daemons unaffected
{
    my $gw = MailgwTest->new(testd => { qmgr => 'run', smtpd => 'run', smtp => 'exit' });
    ok($gw->start, 'started with an smtp that exits at once');
    my $st = $gw->status;
    ok($gw->wait_log(qr/daemon smtp pid \d+ exited with status 1; restarting in 1 s/, 10),
        'first exit logged with the back-off');
    ok($gw->wait_log(qr/restarting in 2 s/, 15), 'back-off doubles');
    ok($gw->wait_log(qr/daemon smtp: throttling: 5 crashes in 60 s/, 45), 'throttling logged');
    my $s = $gw->status;
    is($s->{smtp}{state}, 'throttled', 'status says throttled');
    is($s->{smtpd}{pid}, $st->{smtpd}{pid}, 'smtpd kept running, same pid');
    is($s->{qmgr}{pid}, $st->{qmgr}{pid}, 'qmgr kept running, same pid');
    is($s->{smtpd}{state}, 'running', 'smtpd running');
    ok($gw->_wait_smtp(5), 'SMTP still answers');
    $gw->stop;
}

# --- hung child: no heartbeat for HeartbeatTimeout -> SIGKILL, restart
{
    my $gw = MailgwTest->new(testd => { qmgr => 'hang', smtpd => 'run' },
                             'mailgw.options.HeartbeatTimeout' => '7s');
    ok($gw->start, 'started with a qmgr that hangs');
    my $st = $gw->status;
    my $hung = $st->{qmgr}{pid};
    ok($gw->wait_log(qr/daemon qmgr pid $hung hung: no heartbeat for \d+ s: killing it/, 30),
        'hung qmgr detected');
    ok($gw->wait_log(qr/daemon qmgr pid $hung killed by signal 9/, 10), 'and killed');
    ok(wait_for(sub { my $s = $gw->status; $s && $s->{qmgr}{pid} && $s->{qmgr}{pid} != $hung }, 15),
        'qmgr restarted');
    is($gw->status->{smtpd}{pid}, $st->{smtpd}{pid}, 'smtpd kept running');
    unlike($gw->log_text, qr/daemon smtpd pid \d+ hung/, 'healthy smtpd never called hung');
    sleep 1;    # the new qmgr hangs again
    my $qpid = $gw->status->{qmgr}{pid};
    $gw->stop;
    like($gw->log_text, qr/daemon qmgr pid $qpid did not stop in time: killing it/,
        'stop: a daemon ignoring "stop" is killed after the timeout');
    like($gw->log_text, qr/mailgw\/master\[\d+\]: stopped/, 'master still stopped cleanly');
}

done_testing;
