#!/usr/bin/perl
# relay_scan.t - qmgr's scan hand-off with the real scand (libclamav and
# the EICAR base from conf/bases) between smtpd and smtp.
#
# Checks: with scand running qmgr says "scanning enabled"; a clean
# message is scanned and delivered; an infected one is not delivered, its
# recipients are logged "status=blocked (av status=infected names=...)"
# and nothing is bounced; while scand cannot give a verdict (no bases
# yet) messages stay in incoming/ with "scan deferred" and are never
# delivered unscanned; without scand qmgr logs "scanning disabled: no
# scand" and delivers directly.
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Copy qw(copy);
use File::Path qw(make_path);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

for my $need (MailgwTest::bin('mailgw'), map { MailgwTest::libexec($_) } qw(master qmgr smtpd smtp scand)) {
    plan skip_all => "$need not built" unless -x $need;
}
my $ndb = MailgwTest::root() . '/conf/bases/mailgw-eicar.ndb';
plan skip_all => 'swaks, aiosmtpd or the EICAR base missing'
    unless -x '/usr/bin/swaks' && -f $ndb
    && system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0;

my $eicar = 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

# ---- no bases: scand answers tempfail; nothing leaves unscanned ----
my $pa = MailgwTest::free_port();
my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp,scand',
                         'forward.ForwardRoute' => "* [127.0.0.1:$pa]");
my $d = $gw->dir;
make_path("$d/bases");
chmod 0755, "$d/bases";
$gw->{raw} = "[path]\nBasesPath=$d/bases\n";
$gw->write_config;
start_py_sink($pa, "$d/sinkA");
$gw->start or BAIL_OUT('mailgw did not start');
ok($gw->wait_log(qr/scanning enabled/, 10), 'qmgr: scanning enabled (private/scand exists)');
my $id = send_mail($gw->port, to => 'early@example.test', body => 'token-early');
ok($gw->wait_log(qr/\Q$id\E: scan deferred: /, 20), 'no verdict: "scan deferred"');
ok(-f $gw->queue_dir . "/incoming/$id", 'message stays in incoming/');
ok(!grep({ $_->{data} =~ /token-early/ } sink_messages("$d/sinkA")), 'and is not delivered unscanned');

# ---- bases in place: verdicts (the deferred message survives a restart) ----
$gw->stop;
copy($ndb, "$d/bases/mailgw-eicar.ndb") or die "copy: $!";
chmod 0644, "$d/bases/mailgw-eicar.ndb";
$gw->start or BAIL_OUT('mailgw did not restart');
ok(wait_for(sub { grep { $_->{data} =~ /token-early/ } sink_messages("$d/sinkA") }, 60),
   'with bases the deferred message is scanned and delivered');
$id = send_mail($gw->port, to => 'clean@example.test', body => 'token-clean');
ok(wait_for(sub { grep { $_->{data} =~ /token-clean/ } sink_messages("$d/sinkA") }, 30),
   'clean message delivered');
like($gw->log_text, qr/\Q$id\E: av-scanned status=clean/, 'after scand scanned it');
$id = send_mail($gw->port, to => 'victim@example.test,other@example.test',
                body => "token-virus\n$eicar");
ok($gw->wait_log(qr/\Q$id\E: to=<victim\@example\.test>, status=blocked \((?:group=\S+ )?av status=infected names=\S+/, 30),
   'infected: recipient logged as blocked with the virus name');
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'message removed');
ok(!grep({ $_->{data} =~ /token-virus/ } sink_messages("$d/sinkA")), 'infected message not delivered');
unlike($gw->log_text, qr/\Q$id\E: sender non-delivery notification/, 'nothing bounced for a virus');
$gw->stop;

# ---- without scand ----
my $gw2 = MailgwTest->new(daemons => 'qmgr,smtpd,smtp',
                          'forward.ForwardRoute' => "* [127.0.0.1:$pa]");
$gw2->start or BAIL_OUT('mailgw did not start');
ok($gw2->wait_log(qr/scanning disabled: no scand/, 10), 'without scand: "scanning disabled: no scand"');
$id = send_mail($gw2->port, to => 'direct@example.test', body => 'token-direct');
ok(wait_for(sub { grep { $_->{data} =~ /token-direct/ } sink_messages("$d/sinkA") }, 30),
   'delivered directly');
$gw2->stop;
done_testing();
