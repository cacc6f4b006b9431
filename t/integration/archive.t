#!/usr/bin/perl
# archive.t - incoming/outgoing archives and blind copies through the
# whole gateway (master, smtpd, qmgr, scand, smtp, quarantine daemon):
# with IncomingArchivePath every received message is stored in area
# archive-in before it is scanned, with OutgoingArchivePath every message
# delivered to at least one recipient is stored in archive-out, and with
# [mailgw.options] BlindCopyTo a copy (same sender and content) goes to
# those addresses, once (the copy itself is neither archived nor copied
# again).  With the quarantine daemon stopped, received mail waits in
# incoming/ ("scan deferred") and is not delivered without its archive
# copy; it goes on once the daemon is back.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

my ($gw, $store) = scanning_gateway();
my $d = $gw->dir;
$gw->set('policy.QuarantinePath' => "$store/quarantine", 'policy.BackupPath' => "$store/backup",
         'path.IncomingArchivePath' => "$store/in", 'path.OutgoingArchivePath' => "$store/out",
         'options.BlindCopyTo' => 'bcc@example.test, audit@example.test');
my $sink = start_scanning_gateway($gw, "");

sub msgs_to {
    my ($rcpt, $re) = @_;
    return grep { (grep { $_ eq $rcpt } @{ $_->{rcpts} }) && $_->{data} =~ $re } sink_messages($sink);
}
sub list_area {
    my ($area) = @_;
    my ($rc, $out) = $gw->mailgw('quarantine', 'list', '--json', '--area', $area);
    return $out // '';
}

my $id = send_mail($gw->port, to => 'user@example.test', body => 'token-arch');
ok($id, 'message accepted');
ok(wait_for(sub { msgs_to('user@example.test', qr/token-arch/) }, 30), 'delivered to its recipient');
ok(wait_for(sub { msgs_to('bcc@example.test', qr/token-arch/) }, 30), 'the blind copy is delivered');
my ($bcc) = msgs_to('bcc@example.test', qr/token-arch/);
is($bcc->{from}, 'sender@example.org', 'the copy keeps the envelope sender') if $bcc;
is_deeply([ sort @{ $bcc->{rcpts} // [] } ], [ 'audit@example.test', 'bcc@example.test' ],
          'one copy to every BlindCopyTo address') if $bcc;
my ($newid) = $gw->log_text =~ /\Q$id\E: blind copy newid=(\w+) nrcpt=2/;
ok($newid, 'blind copy logged with its new ID');
like(list_area('archive-in'), qr/"queue_id":"\Q$id\E"/, 'the received message is in archive-in');
ok(wait_for(sub { list_area('archive-out') =~ /"queue_id":"\Q$id\E"/ }, 20),
   'the delivered message is in archive-out');
unlike(list_area('archive-in'), qr/"queue_id":"\Q$newid\E"/, 'the blind copy is not archived as received')
    if $newid;
unlike($gw->log_text, qr/\Q$newid\E: blind copy/, 'the blind copy is not copied again') if $newid;
my @c = msgs_to('bcc@example.test', qr/token-arch/);
is(scalar @c, 1, 'exactly one blind copy');

# ---- the quarantine daemon unreachable: received mail waits ----
# Its socket is renamed away and the daemon killed (so qmgr's kept
# connection ends); master restarts it on the same listener, which
# qmgr cannot reach until the name is back.
my $qs = $gw->queue_dir . '/private/quarantine';
my ($qpid) = $gw->log_text =~ /.*daemon quarantine started: pid (\d+)/s;
ok($qpid && rename($qs, "$qs.off"), 'quarantine socket renamed away');
kill 'KILL', $qpid if $qpid;
$id = send_mail($gw->port, to => 'late@example.test', body => 'token-late');
ok($gw->wait_log(qr/\Q$id\E: scan deferred: quarantine daemon not running/, 20),
   'without the daemon the message is deferred');
ok(!msgs_to('late@example.test', qr/token-late/), 'and not delivered without its archive copy');
ok(-f $gw->queue_dir . "/incoming/$id", 'it waits in incoming/');
rename("$qs.off", $qs);
ok(wait_for(sub { msgs_to('late@example.test', qr/token-late/) }, 90),
   'delivered once the daemon is back');
like(list_area('archive-in'), qr/"queue_id":"\Q$id\E"/, 'with its archive copy');

diag($gw->log_text) unless Test::More->builder->is_passing;
$gw->stop;
done_testing();
