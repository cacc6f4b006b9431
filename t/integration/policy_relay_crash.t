#!/usr/bin/perl
# policy_relay_crash.t - qmgr killed (SIGKILL) right after scand's verdict
# for messages split over two groups (one recipient's group rewrites with
# a placeholder, the other's blocks and notifies), in a bounded loop:
# master restarts qmgr, which scans what it finds in incoming/ again.
# Nothing is lost: every ph recipient gets its rewritten copy, every
# blocked recipient its notice, never the infected original, and the
# queue ends empty (duplicates are allowed: at least once).
use strict;
use warnings;
use Test::More;
use FindBin;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

my $EICAR = 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
my $N = 4;     # master throttles a daemon after 5 crashes in 60 s

my ($gw, $store) = scanning_gateway();
my $d = $gw->dir;
$gw->set('policy.QuarantinePath' => "$store/quarantine", 'policy.SaveInQB' => 'infected');
my $sink = start_scanning_gateway($gw, "[mailgw.group:ph]\nRecipients = *\@ph.test\n"
    . "ActionInfected = placeholder\nBlockMessage = none\n");

sub msgs_to {
    my ($rcpt, $re) = @_;
    return grep { (grep { $_ eq $rcpt } @{ $_->{rcpts} }) && $_->{data} =~ $re } sink_messages($sink);
}
sub notice_kind { my ($m) = @_; return $m->{data} =~ /^X-Mailgw-Notification: (\w+)\r?$/m ? $1 : '' }
sub qmgr_pids { my @p = $gw->log_text =~ /daemon qmgr started: pid (\d+)/g; return @p }

# Spin on the log file (1 ms steps, bounded) until re matches.
sub spin_log {
    my ($re, $secs) = @_;
    open my $fh, '<', $gw->log_path or return 0;
    my ($text, $deadline) = ('', time + $secs);
    while (time < $deadline) {
        my $n = sysread($fh, my $chunk, 1 << 20);
        $text .= $chunk if $n;
        return 1 if $text =~ $re;
        sleep 0.001 unless $n;
    }
    return 0;
}

my $b64 = encode_base64($EICAR, "\r\n");
my @ids;
for my $i (1 .. $N) {
    my $f = "$d/m$i.eml";
    open my $fh, '>', $f or die;
    print $fh "From: <s\@example.org>\r\nSubject: crash tok-c$i\r\nMIME-Version: 1.0\r\n"
        . "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
        . "body tok-c$i\r\n--B\r\nContent-Type: application/octet-stream; name=\"v.com\"\r\n"
        . "Content-Transfer-Encoding: base64\r\n\r\n$b64--B--\r\n";
    close $fh;
    my @before = qmgr_pids();
    my $id = send_mail($gw->port, to => "a$i\@ph.test,b$i\@example.test", extra => ['--data', "\@$f"]);
    ok($id, "message $i accepted");
    push @ids, $id;
    next unless $id;
    # the verdict is on its way to qmgr: kill it now, a little later
    # each round so the kill lands between different steps
    if (spin_log(qr/\Q$id\E: av-scanned group=\w+ .*\n(?s:.*)\Q$id\E: av-scanned group=/, 20)) {
        sleep(($i - 1) * 0.002);
        kill 'KILL', $before[-1];
        ok(wait_for(sub { my @p = qmgr_pids(); @p > @before }, 60), "qmgr $i restarted by master");
    }
}

for my $i (1 .. $N) {
    ok(wait_for(sub { grep { notice_kind($_) eq '' && $_->{data} =~ /^X-Anti-Virus:/m } msgs_to("a$i\@ph.test", qr/tok-c$i/) }, 60),
       "a$i gets the rewritten message");
    ok(wait_for(sub { grep { notice_kind($_) eq 'recipient' } msgs_to("b$i\@example.test", qr/tok-c$i/) }, 60),
       "b$i gets the notice");
    is(scalar(grep { notice_kind($_) eq '' } msgs_to("b$i\@example.test", qr/tok-c$i/)), 0,
       "b$i never gets the infected message");
    ok(!grep({ notice_kind($_) eq '' && $_->{data} =~ /EICAR-STANDARD/ } msgs_to("a$i\@ph.test", qr/./)),
       "a$i never gets the virus");
}
my $q = $gw->queue_dir;
ok(wait_for(sub { !queue_files($gw, 'incoming') && !queue_files($gw, 'active')
                  && !queue_files($gw, 'deferred') }, 60), 'the queue ends empty');
my @left = grep { !/^\./ } do { opendir my $dh, "$q/tmp"; readdir $dh };
is(scalar @left, 0, 'no rewrite file left in tmp/');
unlike($gw->log_text, qr/malformed queue file|moved to corrupt/, 'no corrupt queue file');

diag($gw->log_text) if !Test::More->builder->is_passing || $ENV{VERDICT_DEBUG};
$gw->stop;
done_testing();
