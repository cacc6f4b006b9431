#!/usr/bin/perl
# smtp_master.t - the smtp daemon under master (t/lib/MailgwTest.pm): master
# binds private/smtp and starts smtp; a delivery request through that socket
# (t/helpers/smtp_deliver playing qmgr) reaches Postfix's smtp-sink, the
# Postfix-shaped log line lands in LogFilename, master's "stats" shows the
# smtp counters, and a stop is graceful.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

my $deliver = MailgwTest::helper('smtp_deliver');
my $sinkbin = '/usr/sbin/smtp-sink';
plan skip_all => 'smtp or smtp_deliver not built'
    unless -x MailgwTest::libexec('smtp') && -x $deliver && -x MailgwTest::libexec('master');
plan skip_all => 'smtp-sink missing' unless -x $sinkbin;

my $gw = MailgwTest->new(daemons => 'smtp');
my $port = MailgwTest::free_port();
my $spid = fork // die "fork: $!";
if (!$spid) {
    open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
    exec $sinkbin, ($> == 0 ? ('-u', 'nobody') : ()), "127.0.0.1:$port", 50;
    exit 127;
}
for (1 .. 100) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
    if ($c) { close $c; last }
    sleep 0.05;
}
ok($gw->start, 'mailgw started with smtp') or diag($gw->log_text);
my $sock = $gw->queue_dir . '/private/smtp';
for (1 .. 100) { last if -S $sock; sleep 0.05 }
ok(-S $sock, 'master bound private/smtp');

open my $m, '>', $gw->dir . '/msg' or die;
print $m "Subject: via master\r\n\r\nhello\r\n";
close $m;
my $out = `$deliver -s $sock -n '[127.0.0.1]:$port' -i MASTER0001 -m @{[$gw->dir]}/msg -t 30 a\@example.test b\@example.test 2>&1`;
like($out, qr/^rcpt=0 status=sent dsn=2\.0\.0/m, 'first recipient sent');
like($out, qr/^rcpt=1 status=sent dsn=2\.0\.0/m, 'second recipient sent');
like($out, qr/^relay=127\.0\.0\.1\[127\.0\.0\.1\]:$port$/m, 'relay');
ok($gw->wait_log(qr/mailgw\/smtp\[\d+\]: MASTER0001: to=<b\@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$port, delay=[\d.]+, delays=[\d.\/]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok/, 10),
   'Postfix-shaped line in the gateway log');

my ($rc, $stats) = $gw->mailgw('stats');
like($stats, qr/mta_outgoing_connections_total=1\b/, 'stats: mta_outgoing_connections_total')
    or diag($stats);

$out = `$deliver -s $sock -n '[127.0.0.1]:@{[MailgwTest::free_port()]}' -t 30 c\@example.test 2>&1`;
like($out, qr/^unreachable=1$/m, 'dead port: unreachable=1 through master');

$gw->stop;
unlike($gw->log_text, qr/smtp.*(?:fatal|panic|killed|signal)/i, 'smtp stopped cleanly');
kill 'KILL', $spid;
waitpid($spid, 0);
done_testing();
