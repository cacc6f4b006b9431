#!/usr/bin/perl
# relay_queue.t - queue life cycle through the real gateway: lifetime
# expiry, delay reports, hold/release, delete, requeue, send-off/send-on,
# queue-list (queue-* ops on master's control socket, relayed to qmgr).
#
# Old messages are made with t/helpers/qmgr_inject, which commits a queue
# file with an ARRIVAL in the past through qmgr's ordinary commit
# protocol (no test-only switch in qmgr).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

my $inject = MailgwTest::helper('qmgr_inject');
for my $need (MailgwTest::bin('mailgw'), $inject, map { MailgwTest::libexec($_) } qw(master qmgr smtpd smtp)) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => 'swaks or aiosmtpd missing'
    unless -x '/usr/bin/swaks' && system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0;

my $pa = MailgwTest::free_port();
my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp',
                         'forward.ForwardRoute' => "* [127.0.0.1:$pa]");
my $d = $gw->dir;
start_py_sink($pa, "$d/sinkA");
$gw->start or BAIL_OUT('mailgw did not start');
my $q = $gw->queue_dir;

sub control {
    open my $fh, '>', "$d/sinkA/control" or die $!;
    print $fh @_;
    close $fh;
}
sub delivered {
    my ($re) = @_;
    return grep { $_->{data} =~ $re } sink_messages("$d/sinkA");
}
sub inject {
    my ($age, $sender, $notify, @rcpts) = @_;
    my $out = `$inject $q/private/qmgr $age '$sender' $notify @rcpts 2>&1`;
    my ($id) = $out =~ /^ok (\w+)/;
    diag $out unless $id;
    return $id;
}
sub ctl {
    my (@a) = @_;
    my $r = ctl_request($gw, @a);
    return ($r, ctl_get($r, 'status') // 'none', ctl_get($r, 'count'));
}

# ---- lifetime expiry ----
control("rcpt ^soft 451 4.2.0 try again later\n");
my $old = inject(6 * 86400, 'old@example.org', 0, 'soft@example.test');
ok($old, "message six days old injected ($old)");
ok($gw->wait_log(qr/\Q$old\E: to=<soft\@example\.test>, relay=none, .*dsn=4\.4\.7, status=expired, returned to sender/, 20),
   'past MaximalQueueLifetime: expired, returned to sender');
ok(wait_for(sub { delivered(qr/Status: [45]\.4\.7/) }, 20), 'failure report about the expiry delivered');
my ($rep) = delivered(qr/Status: [45]\.4\.7/);
like($rep ? $rep->{data} : '', qr/^Action: failed\r?\nStatus: 4\.4\.7\r?$/m,
     'Status 4.4.7 with Action failed, as Postfix reports an expiry');
is_deeply($rep && $rep->{rcpts}, ['old@example.org'], 'to the sender');
like($rep ? $rep->{data} : '', qr/Action: failed/, 'Action: failed');
like($rep ? $rep->{data} : '', qr/message expired/, 'says the message expired');
ok($gw->wait_log(qr/\Q$old\E: removed/, 10), 'expired message removed');

# ---- delay report, once ----
my $late = inject(5 * 3600, 'late@example.org', 0, 'soft2@example.test');
ok($gw->wait_log(qr/\Q$late\E: sender delay notification: \w+/, 20),
   'after DelayWarningTime: delay notification');
ok(wait_for(sub { delivered(qr/Action: delayed/) }, 20), 'delay report delivered');
ok(wait_for(sub { -f "$q/deferred/$late" }, 10), 'message deferred');
is((stat("$q/deferred/$late"))[2] & 0100, 0100, 'delay report remembered in the file mode');
$gw->mailgw('flush');
ok($gw->wait_log(qr/(?s)flush: .*\Q$late\E: to=<soft2\@example\.test>[^\n]*status=deferred/, 20),
   'retried by flush');
ok(wait_for(sub { -f "$q/deferred/$late" }, 10), 'deferred again');
is(scalar(() = $gw->log_text =~ /\Q$late\E: sender delay notification/g), 1, 'no second delay report');

# ---- queue-list ----
my ($r, $st, $n) = ctl(op => 'queue-list');
SKIP: {
    skip "master does not relay queue-* ops ($st)", 24 unless $st eq 'ok';
    my %ids = map { $_->[1] => 1 } grep { $_->[0] eq 'q_id' } @$r;
    ok($ids{$late}, 'queue-list lists the deferred message');
    my @l = @$r;
    shift @l while @l && !($l[0][0] eq 'q_id' && $l[0][1] eq $late);
    my %e;
    for (@l[0 .. 6]) { $e{ $_->[0] } //= $_->[1] if $_ }
    is($e{q_state}, 'deferred', 'q_state');
    is($e{q_sender}, 'late@example.org', 'q_sender');
    is($e{q_rcpt}, 'soft2@example.test', 'q_rcpt');
    like($e{q_reason} // '', qr/451 4\.2\.0/, 'q_reason');
    ok(($e{q_arrival} // 0) < time - 4 * 3600, 'q_arrival');
    ok(($e{q_size} // 0) > 0, 'q_size');

    # ---- requeue ----
    my $tries = sub { scalar(() = $gw->log_text =~ /\Q$late\E: to=<soft2\@example\.test>[^\n]*status=deferred/g) };
    my $before = $tries->();
    ($r, $st, $n) = ctl(op => 'queue-requeue', id => $late);
    is("$st $n", 'ok 1', 'queue-requeue');
    ok(wait_for(sub { $tries->() > $before }, 20), 'requeued message gets a fresh attempt');
    ok(wait_for(sub { -f "$q/deferred/$late" }, 10), 'and is deferred again');
    control('');
    ($r, $st, $n) = ctl(op => 'queue-requeue', id => $late);
    ok(wait_for(sub { delivered(qr/token-inject-18000/) }, 20), 'delivered after the requeue');

    # ---- send-off: nothing goes out; hold; delete; release; send-on ----
    my ($rc, $out) = $gw->mailgw('send-off');
    is($rc, 0, 'mailgw send-off') or diag $out;
    my $h = send_mail($gw->port, to => 'held@example.test', body => 'token-held');
    my $x = send_mail($gw->port, to => 'gone@example.test', body => 'token-gone');
    my $p = send_mail($gw->port, to => 'paused@example.test', body => 'token-paused');
    ok($h && $x && $p, 'three messages accepted while sending is off');
    ($r, $st, $n) = ctl(op => 'queue-hold', id => $h);
    is("$st $n", 'ok 1', 'queue-hold');
    ok($gw->wait_log(qr/\Q$h\E: placed on hold/, 10), 'logged');
    ok(wait_for(sub { -f "$q/hold/$h" }, 10), 'file in hold/');
    ($r, $st, $n) = ctl(op => 'queue-delete', id => $x);
    is("$st $n", 'ok 1', 'queue-delete');
    ok($gw->wait_log(qr/\Q$x\E: removed/, 10), 'deleted message removed');
    ($r, $st, $n) = ctl(op => 'queue-delete', id => 'NoSuchId12345');
    is($st, 'error', 'queue-delete of an unknown ID is an error');
    ok(!delivered(qr/token-paused/), 'nothing delivered while sending is off');
    ($rc, $out) = $gw->mailgw('send-on');
    ok(wait_for(sub { delivered(qr/token-paused/) }, 20), 'send-on: the paused message goes out');
    ok(!delivered(qr/token-held/), 'the held message does not');
    ok(!delivered(qr/token-gone/), 'the deleted message never does');
    ok(-f "$q/hold/$h", 'still in hold/');
    ($r, $st, $n) = ctl(op => 'queue-release', id => $h);
    is("$st $n", 'ok 1', 'queue-release');
    ok(wait_for(sub { delivered(qr/token-held/) }, 20), 'released message delivered');
    ok($gw->wait_log(qr/\Q$h\E: removed/, 10), 'and removed');
}

$gw->stop;
done_testing();
