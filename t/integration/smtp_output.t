#!/usr/bin/perl
# smtp_output.t - smtp writes its own output (smtp_session.c,
# session_flush_cb): commands and content go out at the end of the loop
# round, and only what the socket does not take waits for the write
# event.  A 16 MB message with dot-lines to a slow Python sink (the socket
# fills again and again) arrives byte for byte; 60 small messages over a
# cached connection cost smtp fewer than 4 epoll_ctl calls each (arming
# the write event per command cost 6), counted with strace on the real
# smtp.
use strict;
use warnings;
use Test::More;
use FindBin;
use Digest::SHA qw(sha256_hex);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

relay_needs([qw(master qmgr smtpd smtp)], [qw(swaks aiosmtpd)]);

my $sink = MailgwTest::free_port();
my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp',
                         'limits.MaximalIncomingMessageSize' => '40 MB',
                         'limits.MaximalIncomingSessionSize' => '80 MB',
                         'forward.ForwardRoute' => ["* [127.0.0.1:$sink]"]);
my $d = $gw->dir;
start_py_sink($sink, "$d/sink");
$gw->start or BAIL_OUT('mailgw did not start');

# ---- a big message: the socket fills, the write event takes the rest ----
my $body = '';
for my $i (1 .. 160_000) {        # dot-lines, stuffed on the wire
    $body .= ($i % 7 == 0 ? '.' : '') . "line $i " . ('x' x 90) . "\r\n";
    $body .= ".\r\n" if $i % 1000 == 500;   # (swaks takes a final one as its end)
}
my $file = "$d/big.eml";
open my $fh, '>', $file or die "$file: $!";
print $fh "From: <big\@example.org>\r\nTo: <big\@example.test>\r\nSubject: big\r\n\r\n$body";
close $fh;
my $out = `swaks --server 127.0.0.1:@{[ $gw->port ]} --from big\@example.org --to big\@example.test --data \@$file --suppress-data --timeout 120 2>&1`;
my ($id) = $out =~ /<-\s+250 .*queued as (\S+)/;
ok($id, 'a ' . int(length($body) / 1048576) . ' MB message accepted') or diag substr($out, -2000);
ok($id && $gw->wait_log(qr/\Q$id\E: to=<big\@example\.test>.*status=sent/, 120), 'delivered');
my ($m) = grep { $_->{rcpts}[0] eq 'big@example.test' } sink_messages("$d/sink");
my $got = $m ? $m->{data} : '';
$got =~ s/\A.*?\r\n\r\n//s;     # our Received: and the headers
s/(?:\r\n)+\z// for $got, $body;   # swaks ends the data its own way
is(length($got), length($body), 'the sink got every byte')
    or diag 'tail: ' . join(' ', map { sprintf '%02x', ord } split //, substr($got, -24));
is(sha256_hex($got), sha256_hex($body), 'byte for byte, dot-lines unstuffed again');

# ---- small messages over a cached connection: no write event per command ----
SKIP: {
    skip 'strace or smtp-source missing, or not root', 2
        unless -x '/usr/bin/strace' && -x '/usr/sbin/smtp-source' && $> == 0;
    my $st = $gw->status;
    my $smtp = $st && $st->{smtp} ? $st->{smtp}{pid} : 0;
    my $trace = "$d/smtp.strace";
    my $tpid = start_strace($smtp, $trace, '-c');
    my $n = 60;
    my $before = () = $gw->log_text =~ /status=sent/g;
    system('/usr/sbin/smtp-source', '-s', 1, '-m', $n, '-l', 2000, '-f', 'src@example.org',
           '-t', 'small@example.test', "127.0.0.1:" . $gw->port);
    ok(wait_for(sub { (() = $gw->log_text =~ /status=sent/g) >= $before + $n }, 120),
       "$n small messages delivered");
    stop_strace($tpid);
    open my $th, '<', $trace or die "$trace: $!";
    my ($ctl) = map { /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?epoll_ctl$/ ? $1 : () } <$th>;
    close $th;
    ok(defined $ctl && $ctl / $n < 4,
       sprintf('smtp: %s epoll_ctl calls for %d messages (%.1f each)', $ctl // '?', $n,
               ($ctl // 0) / $n));
}
$gw->stop;
done_testing;
