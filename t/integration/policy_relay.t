#!/usr/bin/perl
# policy_relay.t - qmgr acting on scand's per-group verdicts through the
# whole gateway (master, smtpd, qmgr, scand with the EICAR base, smtp,
# the quarantine daemon) and a Python sink downstream.
#
# Checks: EICAR with the default policy is blocked ("status=blocked
# (group=policy av status=infected names=...)"), the recipient and the
# admin get notices (the admin's with the original attached), nothing
# reaches the recipient, the original is in the quarantine (SaveInQB);
# a group with ActionInfected=placeholder gets the message with the part
# replaced and X-Anti-Virus; a message whose recipients are in both
# groups is split ("ID: split group=ph nrcpt=1 newid=...") and each
# recipient gets its group's result; a clean message to several
# recipients of one group is delivered once, rewritten (X-Anti-Virus);
# with more groups (9) than rewrite files (7) a second scan happens.
use strict;
use warnings;
use Test::More;
use FindBin;
use MIME::Base64 qw(encode_base64);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

my $EICAR = 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

my ($gw, $store) = scanning_gateway();
my $d = $gw->dir;
$gw->set('policy.QuarantinePath' => "$store/quarantine", 'policy.BackupPath' => "$store/backup",
         'policy.SaveInQB' => 'infected', 'policy.AttachOriginalToAdmin' => 'yes');
# group ph first: tried in file order
my $sink = start_scanning_gateway($gw, "[mailgw.group:ph]\nRecipients = *\@ph.test\nActionInfected = placeholder\n"
    . "BlockMessage = none\nNotifyAdmin = none\n"
    . join('', map { "[mailgw.group:g$_]\nRecipients = *\@g$_.test\n" } 3 .. 9));

sub eml {
    my ($token, $virus) = @_;
    my $m = "From: <sender\@example.org>\r\nTo: <someone\@example.test>\r\n"
        . "Subject: test $token\r\nMessage-ID: <$token\@example.org>\r\nMIME-Version: 1.0\r\n"
        . "Content-Type: multipart/mixed; boundary=\"BND\"\r\n\r\n"
        . "--BND\r\nContent-Type: text/plain\r\n\r\nbody $token\r\n";
    if ($virus) {
        my $b64 = encode_base64($EICAR, "\r\n");
        $m .= "--BND\r\nContent-Type: application/octet-stream; name=\"v.com\"\r\n"
            . "Content-Disposition: attachment; filename=\"v.com\"\r\n"
            . "Content-Transfer-Encoding: base64\r\n\r\n$b64";
    }
    return $m . "--BND--\r\n";
}

my $nfile = 0;
sub send_eml {
    my ($to, $token, $virus) = @_;
    my $f = "$d/msg" . ++$nfile . '.eml';
    open my $fh, '>', $f or die "$f: $!";
    print $fh eml($token, $virus);
    close $fh;
    return send_mail($gw->port, to => $to, extra => ['--data', "\@$f"]);
}

sub msgs_to {
    my ($rcpt, $re) = @_;
    return grep { (grep { $_ eq $rcpt } @{ $_->{rcpts} }) && $_->{data} =~ $re } sink_messages($sink);
}
sub notice_kind { my ($m) = @_; return $m->{data} =~ /^X-Mailgw-Notification: (\w+)\r?$/m ? $1 : '' }

# ---- the default policy: blocked, notices, quarantine ----
my $id = send_eml('victim@example.test', 'tok-block', 1);
ok($id, 'infected message accepted');
ok($gw->wait_log(qr/\Q$id\E: to=<victim\@example\.test>, status=blocked \(group=policy av status=infected names=\S*EICAR/, 30),
   'blocked recipient logged with group, status and virus name');
ok($gw->wait_log(qr/\Q$id\E: notification recipient to=<victim\@example\.test> newid=\w+/, 10),
   'recipient notice queued');
ok($gw->wait_log(qr/\Q$id\E: notification admin to=<postmaster\@example\.test> newid=\w+/, 10),
   'admin notice queued');
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'original removed');
ok(wait_for(sub { grep { notice_kind($_) eq 'recipient' } msgs_to('victim@example.test', qr/tok-block/) }, 30),
   'the recipient gets a notice');
ok(wait_for(sub { grep { notice_kind($_) eq 'admin' && $_->{data} =~ m{message/rfc822} && $_->{data} =~ /body tok-block/ }
                   msgs_to('postmaster@example.test', qr/./) }, 30),
   'the admin gets a notice with the original attached');
my @leak = grep { notice_kind($_) eq '' } msgs_to('victim@example.test', qr/tok-block/);
is(scalar @leak, 0, 'the infected message itself is not delivered');
my ($rc, $list) = $gw->mailgw('quarantine', 'list', '--json', '--area', 'quarantine');
like($list, qr/"queue_id":"\Q$id\E"/, 'the original is in the quarantine');
like($list, qr/"status":"infected"/, 'with its status');
ok($gw->wait_log(qr/\Q$id\E: stored area=quarantine/, 5), 'the daemon logged the store');
unlike($gw->log_text, qr/\Q$id\E: sender non-delivery/, 'nothing bounced');

# ---- group ph: placeholder, delivered rewritten ----
$id = send_eml('x@ph.test', 'tok-ph', 1);
ok(wait_for(sub { grep { notice_kind($_) eq '' } msgs_to('x@ph.test', qr/tok-ph/) }, 30),
   'placeholder group: the message is delivered');
my ($ph) = grep { notice_kind($_) eq '' } msgs_to('x@ph.test', qr/tok-ph/);
like($ph->{data} // '', qr/^X-Anti-Virus: mailgw .*check: \d+ infected/m, 'with X-Anti-Virus');
unlike($ph->{data} // '', qr/EICAR-STANDARD|WDVPIVAlQEFQ/, 'without the virus');
like($ph->{data} // '', qr/body tok-ph/, 'the clean part is kept');
ok($gw->wait_log(qr/\Q$id\E: content rewritten by the scanner/, 5), 'single group: the original was replaced');

# ---- one message, two groups: split ----
$id = send_eml('a@ph.test,b@example.test', 'tok-split', 1);
ok($gw->wait_log(qr/\Q$id\E: split group=ph nrcpt=1 newid=(\w+)/, 30), 'split log line with the new ID');
ok($gw->wait_log(qr/\Q$id\E: to=<b\@example\.test>, status=blocked \(group=policy /, 10),
   'the default group recipient is blocked');
ok(wait_for(sub { grep { notice_kind($_) eq '' && $_->{data} =~ /^X-Anti-Virus:/m } msgs_to('a@ph.test', qr/tok-split/) }, 30),
   'the ph recipient gets the rewritten message');
ok(wait_for(sub { grep { notice_kind($_) eq 'recipient' } msgs_to('b@example.test', qr/tok-split/) }, 30),
   'the blocked recipient gets a notice');
is(scalar(grep { notice_kind($_) eq '' } msgs_to('b@example.test', qr/tok-split/)), 0,
   'and not the message');
my @a = grep { notice_kind($_) eq '' } msgs_to('a@ph.test', qr/tok-split/);
is_deeply($a[0]{rcpts}, ['a@ph.test'], 'the split copy is for the ph recipient only') if @a;
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'the original is removed when every recipient is done');

# ---- clean, several recipients of one group ----
$id = send_eml('c1@example.test,c2@example.test', 'tok-clean', 0);
ok(wait_for(sub { msgs_to('c1@example.test', qr/tok-clean/) && msgs_to('c2@example.test', qr/tok-clean/) }, 30),
   'clean message delivered to both');
my ($cl) = msgs_to('c1@example.test', qr/tok-clean/);
like($cl->{data} // '', qr/^X-Anti-Virus: mailgw .* clean/m, 'clean: X-Anti-Virus added');
unlike($gw->log_text, qr/\Q$id\E: split/, 'one group: no split');

# ---- nine groups, seven rewrite files: a second scan for the rest ----
my @nine = ('p@ph.test', (map { "q$_\@g$_.test" } 3 .. 9), 's@example.test');
$id = send_eml(join(',', @nine), 'tok-nine', 0);
for my $r (@nine) {
    ok(wait_for(sub { grep { $_->{data} =~ /^X-Anti-Virus:/m } msgs_to($r, qr/tok-nine/) }, 30),
       "nine groups: $r gets its copy");
}
ok($gw->wait_log(qr/\Q$id\E: scanning again for 2 recipients/, 5),
   'the groups beyond the seven files are scanned again');
my $splits = () = $gw->log_text =~ /\Q$id\E: split group=\w+ nrcpt=1 newid=/g;
is($splits, 9, 'nine split lines (seven from the first scan, two from the second)');
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'the original is removed at the end');

diag($gw->log_text) unless Test::More->builder->is_passing;
$gw->stop;
done_testing();
