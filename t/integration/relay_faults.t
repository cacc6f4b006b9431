#!/usr/bin/perl
# relay_faults.t - delivery faults through the real gateway to real
# downstream servers on loopback.
#
# Checks:
#  - 4xx for RCPT: deferred (file in deferred/, queue-list shows the
#    reason), retried by `mailgw flush` while still failing (still
#    deferred), delivered by `mailgw flush` once the server recovers;
#  - 5xx for RCPT: a failure report to the sender reaches the sender's
#    server, parsed with Python's email package as multipart/report with
#    message/delivery-status: Action failed, Status 5.1.1, Final-Recipient,
#    Reporting-MTA; qmgr logs "sender non-delivery notification"; no
#    report about the report; RET=HDRS returns headers only, ENVID and
#    ORCPT come back;
#  - NOTIFY=SUCCESS to a server without DSN: a "relayed" report;
#  - a dead port: deferred with unreachable=1; the next message for it is
#    deferred from the unreachable cache without an attempt ("(cached)",
#    counted as mta_outgoing_connections_failed_through_cache); after the
#    server comes up, queue-deliver (mailgwq -i) of the second one tries
#    past the cache and delivers it, `mailgw flush` delivers both;
#  - a 4xx on one destination never holds up another.
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Temp qw(tempfile);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

for my $need (MailgwTest::bin('mailgw'), map { MailgwTest::libexec($_) } qw(master qmgr smtpd smtp)) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => 'swaks or aiosmtpd missing'
    unless -x '/usr/bin/swaks' && system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0;

my ($pa, $pdead) = map { MailgwTest::free_port() } 1 .. 2;
my $gw = MailgwTest->new(
    daemons => 'qmgr,smtpd,smtp',
    'forward.ForwardRoute' => ["*\@dead.example.test [127.0.0.1:$pdead]", "* [127.0.0.1:$pa]"],
    'timeouts.SendingInitialTimeout' => 10,
);
my $d = $gw->dir;
start_py_sink($pa, "$d/sinkA");
$gw->start or BAIL_OUT('mailgw did not start');

sub control {
    my ($text) = @_;
    open my $fh, '>', "$d/sinkA/control" or die $!;
    print $fh $text;
    close $fh;
}

sub delivered {
    my ($token) = @_;
    return grep { $_->{data} =~ /\Q$token\E/ } sink_messages("$d/sinkA");
}

# Python's email package on a received report: prints key=value lines.
sub parse_report {
    my ($data) = @_;
    my ($fh, $file) = tempfile(DIR => $d);
    binmode $fh;
    print $fh $data;
    close $fh;
    my $py = <<'PY';
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
print("type=%s" % m.get_content_type())
print("report_type=%s" % m.get_param('report-type'))
parts = m.get_payload()
print("nparts=%d" % len(parts))
for p in parts:
    print("part=%s" % p.get_content_type())
    if p.get_content_type() == 'message/delivery-status':
        blocks = p.get_payload()
        for k in ('Reporting-MTA', 'Original-Envelope-Id'):
            if blocks[0].get(k): print("%s=%s" % (k, blocks[0].get(k)))
        for b in blocks[1:]:
            for k in ('Final-Recipient', 'Original-Recipient', 'Action', 'Status', 'Diagnostic-Code'):
                if b.get(k): print("%s=%s" % (k, " ".join(b.get(k).split())))
PY
    open my $out, '-|', '/usr/bin/python3', '-c', $py, $file or die;
    my %r;
    while (<$out>) {
        chomp;
        my ($k, $v) = split /=/, $_, 2;
        $r{$k} //= $v;
        push @{ $r{"all_$k"} }, $v;
    }
    return \%r;
}

# ---- 4xx: deferred, retried, delivered when the server recovers ----
control("rcpt ^soft\@ 451 4.2.0 try again later\n");
my $id = send_mail($gw->port, to => 'soft@example.test', body => 'token-soft');
ok($id, 'accepted');
ok($gw->wait_log(qr/\Q$id\E: to=<soft\@example\.test>, relay=\S+, delay=\S+, delays=\S+, dsn=4\.2\.0, status=deferred \(.*451 4\.2\.0/, 20),
   '4xx logged as deferred');
ok(wait_for(sub { grep { $_ eq $id } queue_files($gw, 'deferred') }, 10), 'file moved to deferred/');
my $mtime = (stat($gw->queue_dir . "/deferred/$id"))[9] // 0;
ok($mtime > time + 30, 'deferred file mtime is the next retry time (MinimalBackoffTime ahead)');
my $list = ctl_request($gw, op => 'queue-list');
SKIP: {
    skip 'master does not relay queue-list yet', 2
        unless defined ctl_get($list, 'status') && ctl_get($list, 'status') eq 'ok';
    is(ctl_get($list, 'q_id'), $id, 'queue-list shows the message');
    like(ctl_get($list, 'q_reason') // '', qr/451 4\.2\.0 try again later/, 'with the deferral reason');
}
my ($rc, $out) = $gw->mailgw('flush');
is($rc, 0, 'mailgw flush') or diag $out;
ok($gw->wait_log(qr/(?s)flush: .*\Q$id\E: to=<soft\@example\.test>[^\n]*status=deferred/, 20),
   'flush retried it (still failing: deferred again)');
ok(wait_for(sub { grep { $_ eq $id } queue_files($gw, 'deferred') }, 10), 'back in deferred/');
control('');
($rc, $out) = $gw->mailgw('flush');
ok(wait_for(sub { delivered('token-soft') }, 20), 'delivered after the server recovered');
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'and removed');

# ---- 5xx: failure report to the sender ----
control("rcpt ^hard\@ 550 5.1.1 no such user here\n");
$id = send_mail($gw->port, to => 'hard@example.test,good@example.test', body => 'token-hard',
                header => 'Subject: hard bounce test');
ok($id, 'accepted');
ok($gw->wait_log(qr/\Q$id\E: sender non-delivery notification: (\w+)/, 20),
   'qmgr queued a non-delivery notification');
my ($bid) = $gw->log_text =~ /\Q$id\E: sender non-delivery notification: (\w+)/;
ok(wait_for(sub { grep { $_->{from} eq '' && $_->{data} =~ /\Q$id\E/ } sink_messages("$d/sinkA") }, 20),
   'the report reached the sender\'s server from <>');
my ($rep) = grep { $_->{from} eq '' && $_->{data} =~ /\Q$id\E/ } sink_messages("$d/sinkA");
is_deeply($rep && $rep->{rcpts}, ['sender@example.org'], 'addressed to the envelope sender');
my $r = parse_report($rep ? $rep->{data} : '');
is($r->{type}, 'multipart/report', 'multipart/report');
is($r->{report_type}, 'delivery-status', 'report-type=delivery-status');
is($r->{all_part}[1] // '', 'message/delivery-status', 'second part message/delivery-status');
like($r->{'Reporting-MTA'} // '', qr/^dns; ?gw\.example\.test$/, 'Reporting-MTA');
is($r->{Action}, 'failed', 'Action: failed');
is($r->{Status}, '5.1.1', 'Status: 5.1.1');
like($r->{'Final-Recipient'} // '', qr/^rfc822; ?hard\@example\.test$/i, 'Final-Recipient');
like($r->{'Diagnostic-Code'} // '', qr/^smtp; ?550 5\.1\.1 no such user here/, 'Diagnostic-Code');
is(scalar @{ $r->{all_Action} // [] }, 1, 'only the failed recipient is reported');
ok(delivered('token-hard'), 'the good recipient got the message');
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'original removed');
ok($gw->wait_log(qr/\Q$bid\E: removed/, 10), 'report delivered and removed') if $bid;

# a report waiting for a retry carries "no scan" in its file (it is ours:
# not scanned after a restart either)
$id = send_mail($gw->port, from => 'someone@dead.example.test', to => 'hard@example.test',
                body => 'token-hard-dead');
ok($gw->wait_log(qr/\Q$id\E: sender non-delivery notification: (\w+)/, 20),
   'a report to a sender behind a dead host');
($bid) = $gw->log_text =~ /\Q$id\E: sender non-delivery notification: (\w+)/;
ok($bid && wait_for(sub { -f "$d/queue/deferred/$bid" }, 30), 'the report waits in deferred/');
my $dump = $bid ? `@{[ MailgwTest::helper('smtpd_qdump') ]} $d/queue/deferred/$bid` : '';
like($dump, qr/^sender=\n|^sender=\(none\)$/m, 'from <>');
my ($flags) = $dump =~ /^flags=(\d+)$/m;
ok(defined $flags && ($flags & 1), 'its FLAGS record says QUEUE_FLAG_NOSCAN')
    or diag "flags=" . ($flags // '?');

# a report that bounces is not reported again
control("rcpt ^sender\@ 550 5.1.1 sender mailbox gone\nrcpt ^hard\@ 550 5.1.1 no such user\n");
$id = send_mail($gw->port, to => 'hard@example.test', body => 'token-double');
ok($gw->wait_log(qr/\Q$id\E: sender non-delivery notification: (\w+)/, 20), 'first report queued');
($bid) = $gw->log_text =~ /\Q$id\E: sender non-delivery notification: (\w+)/;
ok($gw->wait_log(qr/\Q$bid\E: to=<sender\@example\.org>.*status=bounced/, 20), 'the report bounces')
    if $bid;
ok($gw->wait_log(qr/\Q$bid\E: (no bounce to <>|removed)/, 20), 'and is dropped, not reported') if $bid;
unlike($gw->log_text, qr/\Q$bid\E: sender non-delivery notification/, 'no report about a report')
    if $bid;
control('');

# ---- RET=HDRS, ENVID, ORCPT, NOTIFY=SUCCESS with Python's smtplib ----
my $py = <<'PY';
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30)
s.ehlo('client.example.org')
s.mail('dsn@example.org', ['RET=HDRS', 'ENVID=env-42'])
for r, o in (('hard2@example.test', ['NOTIFY=FAILURE', 'ORCPT=rfc822;orig+2Dhard@example.test']),
             ('ok2@example.test', ['NOTIFY=SUCCESS'])):
    code, msg = s.rcpt(r, o)
    if code != 250: print("rcpt", code, msg); sys.exit(1)
code, msg = s.data(b"Subject: dsn test\r\n\r\ntoken-dsn-body\r\n")
print(code, msg.decode())
s.quit()
PY
control("rcpt ^hard2\@ 554 5.7.1 rejected for policy\n");
my $res = do {
    open my $ph, '-|', '/usr/bin/python3', '-c', $py, $gw->port or die;
    local $/;
    <$ph> // '';
};
like($res, qr/^250 /, 'smtplib: message with DSN parameters accepted') or diag $res;
ok(wait_for(sub { grep { $_->{from} eq '' && $_->{rcpts}[0] eq 'dsn@example.org' && $_->{data} =~ /Action: failed/i } sink_messages("$d/sinkA") }, 20),
   'failure report for NOTIFY=FAILURE');
($rep) = grep { $_->{from} eq '' && $_->{rcpts}[0] eq 'dsn@example.org' && $_->{data} =~ /Action: failed/i } sink_messages("$d/sinkA");
$r = parse_report($rep ? $rep->{data} : '');
is($r->{'Original-Envelope-Id'}, 'env-42', 'ENVID returned');
like($r->{'Original-Recipient'} // '', qr/^rfc822; ?orig(\+2D|-)hard\@example\.test$/i, 'ORCPT returned');
is($r->{Status}, '5.7.1', 'Status 5.7.1');
is($r->{all_part}[2] // '', 'text/rfc822-headers', 'RET=HDRS: headers only');
unlike($rep ? $rep->{data} : '', qr/token-dsn-body/, 'and no body');
ok(wait_for(sub { grep { $_->{from} eq '' && $_->{rcpts}[0] eq 'dsn@example.org' && $_->{data} =~ /Action: relayed/i } sink_messages("$d/sinkA") }, 20),
   'NOTIFY=SUCCESS to a server without DSN: "relayed" report');
($rep) = grep { $_->{from} eq '' && $_->{data} =~ /Action: relayed/i } sink_messages("$d/sinkA");
$r = parse_report($rep ? $rep->{data} : '');
like($r->{'Final-Recipient'} // '', qr/ok2\@example\.test/, 'for the right recipient');
like($gw->log_text, qr/sender delivery status notification: \w+/, 'logged');
control('');

# ---- dead port: unreachable cache, retries, delivery after recovery ----
my $id1 = send_mail($gw->port, to => 'u1@dead.example.test', body => 'token-dead-1');
ok($gw->wait_log(qr/\Q$id1\E: to=<u1\@dead\.example\.test>, relay=none, .*status=deferred/, 30),
   'dead port: deferred');
my $id2 = send_mail($gw->port, to => 'u2@dead.example.test', body => 'token-dead-2');
ok($gw->wait_log(qr/\Q$id2\E: to=<u2\@dead\.example\.test>, relay=none, delay=\S+, delays=\S+, dsn=4\.4\.1, status=deferred \(host \[127\.0\.0\.1\]:$pdead unreachable \(cached\)/, 20),
   'second message deferred from the unreachable cache, no attempt');
# another destination is not held up meanwhile
my $id3 = send_mail($gw->port, to => 'alive@example.test', body => 'token-alive');
ok(wait_for(sub { delivered('token-alive') }, 20), 'other destinations still delivered');
($rc, $out) = $gw->mailgw('stats');
like($out, qr/mta_outgoing_connections_failed_through_cache[=:\s]+[1-9]/, 'counted as failed through cache')
    or diag $out;
start_py_sink($pdead, "$d/sinkDead");
# mailgwq -i: that message tries at once, past the unreachable cache
my $dr = ctl_request($gw, op => 'queue-deliver', id => $id2);
is(ctl_get($dr, 'status') // '', 'ok', 'queue-deliver of a message for the cached host');
ok(wait_for(sub { grep { $_->{data} =~ /token-dead-2/ } sink_messages("$d/sinkDead") }, 20),
   '... delivered: deliver-now skips the unreachable cache for that message')
    or diag $gw->log_text;
$gw->mailgw('flush');
ok(wait_for(sub { 2 == grep { $_->{data} =~ /token-dead-\d/ } sink_messages("$d/sinkDead") }, 30),
   'after recovery and flush both are delivered');
ok($gw->wait_log(qr/\Q$id2\E: removed/, 10), 'and removed');

$gw->stop;
done_testing();
