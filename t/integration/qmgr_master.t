#!/usr/bin/perl
# qmgr_master.t - qmgr under master with the real smtpd: a message sent
# with SMTP is committed durably (file in incoming/, valid, with the
# Postfix-shaped "from=<...>, size=N, nrcpt=N (queue active)" log line
# carrying the ID smtpd announced), and a restart of the gateway keeps
# incoming/ and leaves tmp/ empty.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MailgwTest;

my $client = MailgwTest::helper('qmgr_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('qmgr'), MailgwTest::libexec('smtpd'), $client) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => 'swaks not installed' unless -x '/usr/bin/swaks';

my $gw = MailgwTest->new(daemons => 'qmgr,smtpd', 'options.LogLevel' => 9);
$gw->start or BAIL_OUT('mailgw did not start');
my $queue = $gw->queue_dir;

sub files_in {
    my ($d) = @_;
    opendir my $dh, "$queue/$d" or return ();
    return sort grep { !/^\./ } readdir $dh;
}

my $out = `swaks --server 127.0.0.1:@{[ $gw->port ]} --from sender\@example.org --to user\@example.test,other\@example.test --body 'hello queue' --timeout 20 2>&1`;
my ($id) = $out =~ /<-\s+250\b[^\n]*\b([0-9A-Za-z]{12,20})\b[^\n]*\n[^\n]*QUIT/;
like($out, qr/<-\s+250.*\n.*QUIT/s, 'message accepted with 250 after DATA') or diag $out;
ok($gw->wait_log(qr/: from=<sender\@example\.org>, size=\d+, nrcpt=2 \(queue active\)/, 10),
   'qmgr logs the commit in Postfix shape');
my ($logged) = $gw->log_text =~ /(\w+): from=<sender\@example\.org>, size=\d+, nrcpt=2 \(queue active\)/;
ok($logged && -f "$queue/incoming/$logged", 'the committed file is in incoming/');
is($id, $logged, 'smtpd reported the same queue ID') if $id;
my ($check) = `$client $queue/private/qmgr check $queue/incoming/$logged` if $logged;
like($check // '', qr/^check ok nrcpt=2 size=\d+/, 'the queue file is valid');
my ($rc, $stats) = $gw->mailgw('stats');
my ($out_now) = ($stats // '') =~ /^qmgr: in_progress=(\d+)$/m;
my @tmp = files_in('tmp');
ok(defined $out_now && @tmp == $out_now && @tmp <= 8,
   'tmp/ holds only the files qmgr handed out (smtpd fetches a few ahead)')
    or diag "tmp/: @tmp; in_progress=" . ($out_now // '?');
like($stats // '', qr/qmgr: incoming=1\b/, 'mailgw stats shows the queue counts from qmgr')
    or diag "rc=$rc: $stats";

$gw->stop;
ok(-f "$queue/incoming/$logged", 'incoming/ file survives a stop') if $logged;
$gw->start or BAIL_OUT('mailgw did not restart');
ok($gw->wait_log(qr/queue \S+: removed 0 unfinished tmp files; incoming 1,/, 10),
   'restart: qmgr rebuilt its counts from incoming/');
$gw->stop;
done_testing();
