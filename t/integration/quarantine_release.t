#!/usr/bin/perl
# quarantine_release.t - the whole gateway (master, qmgr, smtp and the
# quarantine daemon): a quarantined message is released (commit with
# noscan=1) and resent (scanned again) with `mailgw quarantine`; each
# time qmgr commits a new queue file ("from=<...> ... (queue active)"),
# the daemon logs "ID: released as QUEUEID" / "resent as QUEUEID", and
# the message reaches the downstream sink with its original envelope and
# content.  The entry stays in the store until it is deleted.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib 't/lib';
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

my $client = MailgwTest::helper('quarantine_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('qmgr'), MailgwTest::libexec('smtp'),
              MailgwTest::libexec('quarantine'), $client) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => 'python3-aiosmtpd not installed'
    unless system('/usr/bin/python3', '-c', 'import aiosmtpd') == 0;

my $gw = MailgwTest->new(daemons => 'qmgr,smtp,quarantine', 'options.LogLevel' => 9);
# The store areas live in a directory the daemon's user owns (as root
# master leaves QueuePath itself to root).
my $store = $gw->dir . '/store';
mkdir $store or die "mkdir $store: $!";
chown((getpwnam('nobody'))[2, 3], $store) if $> == 0;
$gw->set('policy.QuarantinePath' => "$store/quarantine", 'policy.BackupPath' => "$store/backup");
$gw->write_config;
start_py_sink($gw->sink_port, $gw->dir . '/sink');
$gw->start or BAIL_OUT('mailgw did not start');
my $q = $gw->queue_dir;
ok(wait_for(sub { -S "$q/private/quarantine" && $gw->log_text !~ /quarantine.*fatal/ }, 10),
   'the quarantine daemon runs under master');

my $content = $gw->dir . '/msg.eml';
open my $fh, '>', $content or die;
print $fh "From: <bad\@example.org>\r\nTo: <u1\@example.test>\r\nSubject: released %SUBJECT%\r\n"
    . "Message-ID: <rel-1\@example.org>\r\n\r\nquarantined body\r\n";
close $fh;
chmod 0644, $content;

my $out = `$client $q/private/quarantine store quarantine infected EICAR-Test-File bad\@example.org u1\@example.test,u2\@example.test $content 2>&1`;
my ($sid) = $out =~ /^store ok (\S+)/;
ok($sid, 'a message is stored in the quarantine') or diag $out;

my ($rc, $text) = $gw->mailgw('quarantine', 'release', $sid);
is($rc, 0, 'release: exit 0') or diag $text;
my ($newid) = $text =~ /released as ([0-9A-Za-z]+)/;
ok($newid, 'release prints the new queue ID');
ok($gw->wait_log(qr/\Q$sid\E: released as \Q$newid\E/, 10), 'the daemon logs "ID: released as QUEUEID"')
    if $newid;
ok($gw->wait_log(qr/\Q$newid\E: from=<bad\@example\.org>, size=\d+, nrcpt=2 \(queue active\)/, 10),
   'qmgr committed the released message with its original envelope') if $newid;
ok(wait_for(sub { grep { ($_->{data} // '') =~ /Message-ID: <rel-1\@example\.org>/ } sink_messages($gw->dir . '/sink') }, 30),
   'the released message reaches the next hop');
my ($m) = grep { ($_->{data} // '') =~ /rel-1/ } sink_messages($gw->dir . '/sink');
is($m->{from}, 'bad@example.org', 'original sender') if $m;
is_deeply([ sort @{ $m->{rcpts} // [] } ], [ 'u1@example.test', 'u2@example.test' ], 'original recipients')
    if $m;
like($m->{data} // '', qr/Subject: released %SUBJECT%/, 'original content') if $m;

($rc, $text) = $gw->mailgw('quarantine', 'resend', $sid);
is($rc, 0, 'resend: exit 0') or diag $text;
my ($resent) = $text =~ /resent as ([0-9A-Za-z]+)/;
ok($resent && $gw->wait_log(qr/\Q$sid\E: resent as \Q$resent\E/, 10), 'the daemon logs "ID: resent as QUEUEID"');
ok($resent && $gw->wait_log(qr/\Q$resent\E: from=<bad\@example\.org>, size=\d+, nrcpt=2/, 10),
   'qmgr committed the resent message');

($rc, $text) = $gw->mailgw('quarantine', 'list');
like($text, qr/^\Q$sid\E INF /m, 'the entry stays in the store after release');
($rc, $text) = $gw->mailgw('quarantine', 'delete', $sid);
is($rc, 0, 'delete after release');
($rc, $text) = $gw->mailgw('quarantine', 'release', $sid);
is($rc, 4, 'release of a deleted entry: exit 4');

$gw->stop;
done_testing();
