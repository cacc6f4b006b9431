#!/usr/bin/perl
# qmgr_list.t - queue-list and the queue state that outlives a pass:
#   - 1,500 queued messages: queue-list is paged (more=1, after=<last
#     ID>) so no frame exceeds the protocol's attribute limit; mailgwq -j
#     and -p show all 1,500 (one page alone could not hold them);
#   - the last deferral reason of a recipient is kept in the queue file:
#     after a restart of the whole gateway queue-list still gives it
#     (q_reason) and mailgwq -p prints it;
#   - queue-requeue of a deferred message: it is picked up from
#     incoming/ and gets a fresh attempt, before and after a restart.
# Messages are seeded with t/helpers/qmgr_inject (qmgr's own commit
# protocol).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

my $inject = MailgwTest::helper('qmgr_inject');
my $mailgwq = MailgwTest::bin('mailgwq');
for my $need (MailgwTest::bin('mailgw'), $mailgwq, $inject, map { MailgwTest::libexec($_) } qw(master qmgr smtp)) {
    plan skip_all => "$need not built" unless -x $need;
}

sub mq {
    my ($gw, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>', '/dev/null');
        delete $ENV{MAILGW_CONF};
        exec($mailgwq, '-C', $gw->conf_path, @args) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

sub inject {
    my ($gw, $n, @rcpts) = @_;
    my $out = `$inject -n $n @{[ $gw->queue_dir ]}/private/qmgr 0 sender\@example.org 0 @rcpts 2>&1`;
    my @ids = $out =~ /^ok (\w+)$/mg;
    diag $out unless @ids == $n;
    return @ids;
}

# ---- 1,500 messages: paging ----
{
    # no smtp: every message waits in incoming/
    my $gw = MailgwTest->new(daemons => 'qmgr');
    $gw->start(wait => 'status') or BAIL_OUT('mailgw did not start');
    ok(wait_for(sub { -S $gw->queue_dir . '/private/qmgr' }, 20), 'qmgr listens');
    my @ids = inject($gw, 1500, 'a@example.test', 'b@example.test');
    is(scalar @ids, 1500, '1,500 messages queued');

    my $first = ctl_request($gw, op => 'queue-list');
    is(ctl_get($first, 'status'), 'ok', 'queue-list answers (no "no answer")');
    my @page = grep { $_->[0] eq 'q_id' } @{ $first // [] };
    ok(@page > 0 && @page < 1500, 'first page: part of the queue (' . scalar(@page) . ' messages)');
    ok(scalar(@{ $first // [] }) <= 4096, 'first page within PROTO_MAX_ATTRS');
    is(ctl_get($first, 'more'), 1, 'more=1: more pages follow');
    is_deeply([map { $_->[1] } @page], [@ids[0 .. $#page]], 'first page: the oldest, in arrival order');

    my $next = ctl_request($gw, op => 'queue-list', after => @page ? $page[-1][1] : '');
    my @page2 = grep { $_->[0] eq 'q_id' } @{ $next // [] };
    is($page2[0] && $page2[0][1], $ids[scalar @page], 'after=<last ID>: the next page starts after it');

    my ($rc, $out) = mq($gw, '-j');
    is($rc, 0, 'mailgwq -j exits 0');
    my @lines = split /\n/, $out;
    is(scalar @lines, 1500, 'mailgwq -j: 1,500 messages');
    my @jids = map { /"queue_id":\s*"(\w+)"/ ? $1 : () } @lines;
    is_deeply(\@jids, \@ids, '... each once, in arrival order');
    ($rc, $out) = mq($gw, '-p');
    is($rc, 0, 'mailgwq -p exits 0');
    like($out, qr/-- \d+ Kbytes in 1500 Requests\.\n\z/, 'mailgwq -p: 1500 Requests');
    is(scalar(() = $out =~ /^ {41}b\@example\.test$/mg), 1500, '... every recipient listed');
    $gw->stop;
}

# ---- reasons kept in the queue file; requeue picks up ----
{
    # smtp delivers to the harness's sink port, where nothing listens
    my $gw = MailgwTest->new(daemons => 'qmgr,smtp', 'resolve.UnreachableTTL' => 0);
    $gw->start(wait => 'status') or BAIL_OUT('mailgw did not start');
    ok(wait_for(sub { -S $gw->queue_dir . '/private/qmgr' }, 20), 'qmgr listens');
    my ($id) = inject($gw, 1, 'r1@example.test', 'r2@example.test');
    ok($id, 'message queued');
    ok($gw->wait_log(qr/\Q$id\E: to=<r2\@example\.test>.*status=deferred/, 30), 'deferred (nothing listens)');
    ok(wait_for(sub { -f $gw->queue_dir . "/deferred/$id" }, 10), 'in deferred/');
    my $reason = sub {
        my $l = ctl_request($gw, op => 'queue-list');
        return join '|', map { $_->[1] } grep { $_->[0] eq 'q_reason' } @{ $l // [] };
    };
    like($reason->(), qr/refused.*\|.*refused/i, 'queue-list: both reasons');

    $gw->stop;
    $gw->start(wait => 'status') or BAIL_OUT('mailgw did not restart');
    ok(wait_for(sub { -S $gw->queue_dir . '/private/qmgr' }, 20), 'restarted');
    like($reason->(), qr/^[^|]*refused[^|]*\|[^|]*refused/i,
         'after a restart: queue-list still gives the reasons (kept in the queue file)');
    my ($rc, $out) = mq($gw, '-p');
    like($out, qr/^ +\([^\n]*[Rr]efused[^\n]*\)\n {41}r1\@example\.test$/m, 'mailgwq -p prints the reason');

    # requeue after the restart: picked up from incoming/ at once
    my $tries = () = $gw->log_text =~ /\Q$id\E: to=<r1\@example\.test>.*status=deferred/g;
    my $r = ctl_request($gw, op => 'queue-requeue', id => $id);
    is(ctl_get($r, 'status') . ' ' . ctl_get($r, 'count'), 'ok 1', 'queue-requeue');
    ok(wait_for(sub { (() = $gw->log_text =~ /\Q$id\E: to=<r1\@example\.test>.*status=deferred/g) > $tries }, 20),
       'the requeued message gets a fresh attempt (not stuck in incoming/)')
        or diag $gw->log_text;
    ok(wait_for(sub { -f $gw->queue_dir . "/deferred/$id" }, 10), 'and is deferred again');
    ok(!-e $gw->queue_dir . "/incoming/$id", 'nothing left in incoming/');
    $gw->stop;
}
done_testing();
