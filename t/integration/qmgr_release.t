#!/usr/bin/perl
# qmgr_release.t - a message released from quarantine is never scanned
# again, a resent one is; through the real gateway with scand (libclamav,
# the EICAR base from conf/bases) and the quarantine daemon.
#
# The stored message carries the EICAR test string, so a scan would block
# it: the release (commit with noscan=1) is delivered anyway, qmgr logs
# "ID: scanning skipped (released from quarantine)" and scand never sees
# it, also after a restart of the whole gateway while the message waits in
# incoming/ (the flag is in the queue file); a resend (no noscan) is
# scanned and blocked.
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Copy qw(copy);
use File::Path qw(make_path);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

my $client = MailgwTest::helper('quarantine_client');
for my $need (MailgwTest::bin('mailgw'), $client,
              map { MailgwTest::libexec($_) } qw(master qmgr smtp scand quarantine)) {
    plan skip_all => "$need not built" unless -x $need;
}
my $ndb = MailgwTest::root() . '/conf/bases/mailgw-eicar.ndb';
plan skip_all => 'aiosmtpd or the EICAR base missing'
    unless -f $ndb && system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0;

my $eicar = 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

# first without smtp: the released message waits in incoming/
my $gw = MailgwTest->new(daemons => 'qmgr,scand,quarantine');
my $d = $gw->dir;
make_path("$d/bases", "$d/store");
copy($ndb, "$d/bases/mailgw-eicar.ndb") or die "copy: $!";
chmod 0755, "$d/bases";
chmod 0644, "$d/bases/mailgw-eicar.ndb";
chown((getpwnam('nobody'))[2, 3], "$d/store") if $> == 0;
$gw->set('policy.QuarantinePath' => "$d/store/quarantine", 'policy.BackupPath' => "$d/store/backup");
$gw->{raw} = "[path]\nBasesPath=$d/bases\n";
$gw->write_config;
start_py_sink($gw->sink_port, "$d/sink");
$gw->start(wait => 'status') or BAIL_OUT('mailgw did not start');
my $q = $gw->queue_dir;
ok(wait_for(sub { -S "$q/private/quarantine" && -S "$q/private/scand" }, 20), 'scand and quarantine run');
ok($gw->wait_log(qr/scanning enabled/, 20), 'qmgr: scanning enabled');

open my $fh, '>', "$d/msg.eml" or die;
print $fh "From: <bad\@example.org>\r\nTo: <u1\@example.test>\r\nSubject: infected\r\n"
    . "Message-ID: <rel-eicar\@example.org>\r\n\r\ntoken-release\r\n$eicar\r\n";
close $fh;
chmod 0644, "$d/msg.eml";
my $out = `$client $q/private/quarantine store quarantine infected EICAR-Test-File bad\@example.org u1\@example.test $d/msg.eml 2>&1`;
my ($sid) = $out =~ /^store ok (\S+)/;
ok($sid, 'an infected message is in the quarantine') or diag $out;

my ($rc, $text) = $gw->mailgw('quarantine', 'release', $sid);
is($rc, 0, 'release: exit 0') or diag $text;
my ($rel) = $text =~ /released as ([0-9A-Za-z]+)/;
ok($rel, "released as $rel");
$rel //= 'none';
ok($gw->wait_log(qr/\Q$rel\E: scanning skipped \(released from quarantine\)/, 20),
   'qmgr: "scanning skipped (released from quarantine)"') or diag $gw->log_text;
ok(-f "$q/incoming/$rel", 'waits in incoming/ (no smtp yet)');

# restart with smtp: the flag comes from the queue file
$gw->stop;
$gw->{env}{MAILGW_DAEMONS} = 'qmgr,smtp,scand,quarantine';
$gw->start(wait => 'status') or BAIL_OUT('mailgw did not restart');
ok(wait_for(sub { grep { $_->{data} =~ /token-release/ } sink_messages("$d/sink") }, 60),
   'after a restart the released message is delivered, infected content and all')
    or diag $gw->log_text;
my $skips = () = $gw->log_text =~ /\Q$rel\E: scanning skipped \(released from quarantine\)/g;
is($skips, 2, 'skipped again after the restart (the flag is durable)');
unlike($gw->log_text, qr/\Q$rel\E: (av-scanned|scan deferred|to=<[^>]*>, status=blocked)/,
       'scand never saw the released message');

# resend: scanned like any message, so blocked
($rc, $text) = $gw->mailgw('quarantine', 'resend', $sid);
is($rc, 0, 'resend: exit 0') or diag $text;
my ($res) = $text =~ /resent as ([0-9A-Za-z]+)/;
ok($res, "resent as $res");
$res //= 'none';
ok($gw->wait_log(qr/\Q$res\E: to=<u1\@example\.test>, status=blocked \((?:group=\S+ )?av status=infected/, 60),
   'the resent message is scanned and blocked') or diag $gw->log_text;
unlike($gw->log_text, qr/\Q$res\E: scanning skipped/, 'no skip for a resend');
is(scalar(grep { $_->{data} =~ /token-release/ } sink_messages("$d/sink")), 1,
   'only the release reached the sink');
$gw->stop;
done_testing();
