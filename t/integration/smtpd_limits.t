#!/usr/bin/perl
# smtpd limits through the real master and qmgr: recipients and messages
# per session, message size (SIZE= and during DATA), hops, errors per
# session, command line length, sessions per IP and in total, command
# timeout; each over-limit log line names its counter.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use lib 't/lib';
use MailgwTest;

plan skip_all => 'smtpd not built' unless -x MailgwTest::libexec('smtpd');
$SIG{PIPE} = 'IGNORE';

my $gw = MailgwTest->new(daemons => 'qmgr,smtpd',
    'mailgw.limits.MaximalIncomingRcptsPerMessage'    => 2,
    'mailgw.limits.MaximalIncomingMessagesPerSession' => 2,
    'mailgw.limits.MaximalIncomingMessageSize'        => 64,     # KB
    'mailgw.limits.MaximalIncomingHops'               => 2,
    'mailgw.limits.MaximalErrorsPerSession'           => 6,
    'mailgw.limits.MaximalCommandLineLength'          => 512,
    'mailgw.limits.MaximalIncomingSessionsPerIP'      => 2,
    'mailgw.timeouts.ReceivingCommandTimeout'         => 2);
$gw->start or BAIL_OUT("mailgw did not start:\n" . $gw->log_text);
my $port = $gw->port;

sub conn {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10)
        or die "connect: $!";
    my $c = { s => $s, buf => '' };
    $c->{greeting} = reply($c);
    return $c;
}
sub reply {
    my ($c, $timeout) = @_;
    my $sel = IO::Select->new($c->{s});
    my $deadline = time + ($timeout // 10);
    while (1) {
        if ($c->{buf} =~ /\A((?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n)/) {
            substr($c->{buf}, 0, length $1) = '';
            return $1;
        }
        my $left = $deadline - time;
        return '' if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($c->{s}, my $chunk, 65536);
        return '' unless $n;
        $c->{buf} .= $chunk;
    }
}
sub cmd { my ($c, $l) = @_; syswrite($c->{s}, "$l\r\n"); return reply($c) }
sub closed { my ($c) = @_; return reply($c, 8) eq '' }
sub start_txn {
    my ($c, @rcpts) = @_;
    cmd($c, 'MAIL FROM:<a@b.test>');
    cmd($c, "RCPT TO:<$_>") for @rcpts;
}

# recipients per message
my $c = conn();
cmd($c, 'EHLO client.test');
start_txn($c, 'r1@example.test', 'r2@example.test');
like(cmd($c, 'RCPT TO:<r3@example.test>'), qr/^452 4\.5\.3/, 'third recipient: 452 4.5.3');
ok($gw->wait_log(qr/reject: RCPT from unknown\[127\.0\.0\.1\]: 452 4\.5\.3 .*limit=MaximalIncomingRcptsPerMessage/, 5),
   'log names MaximalIncomingRcptsPerMessage');
cmd($c, 'DATA');
like(cmd($c, "Subject: 1\r\n\r\nx\r\n."), qr/^250 2\.0\.0 Ok: queued/, 'message 1 with two recipients');

# size: SIZE= and during DATA
like(cmd($c, 'MAIL FROM:<a@b.test> SIZE=100000'), qr/^552 5\.3\.4/, 'SIZE over the limit: 552 5.3.4');
start_txn($c, 'r1@example.test');
cmd($c, 'DATA');
syswrite($c->{s}, "Subject: big\r\n\r\n" . (("x" x 998) . "\r\n") x 70 . ".\r\n");
like(reply($c), qr/^552 5\.3\.4/, 'message over MaximalIncomingMessageSize: 552 5.3.4');
ok($gw->wait_log(qr/counter=mta_receivings_refused_for_message_size_limit/, 5), 'size counter named');

# hops
start_txn($c, 'r1@example.test');
cmd($c, 'DATA');
like(cmd($c, "Received: from a\r\nReceived: from b\r\nSubject: loop\r\n\r\nx\r\n."), qr/^554 5\.4\.6/,
     'MaximalIncomingHops reached: 554 5.4.6');
ok($gw->wait_log(qr/counter=mta_receivings_refused_for_hops_limit/, 5), 'hops counter named');

# messages per session
start_txn($c, 'r1@example.test');
cmd($c, 'DATA');
like(cmd($c, "Received: from a\r\nSubject: 2\r\n\r\nx\r\n."), qr/^250 2\.0\.0 Ok: queued/, 'message 2 (one hop is fine)');
like(cmd($c, 'MAIL FROM:<a@b.test>'), qr/^452 /, 'third message in the session refused');
ok($gw->wait_log(qr/counter=mta_receivings_refused_for_messages_per_session_limit/, 5),
   'messages-per-session counter named');
cmd($c, 'QUIT');

# command line length and the error cap
$c = conn();
cmd($c, 'EHLO client.test');
like(cmd($c, 'NOOP ' . ('y' x 600)), qr/^500 5\.5\.2 Error: line too long/, 'line over 512: 500 5.5.2');
cmd($c, "BOGUS$_") for 1 .. 4;
my $r = cmd($c, 'BOGUS5');
like($r . reply($c, 3), qr/^421 4\.7\.0 .*too many errors/m, 'MaximalErrorsPerSession: 421 4.7.0');
ok(closed($c), 'closed after too many errors');
ok($gw->wait_log(qr/too many errors after UNKNOWN from unknown\[127\.0\.0\.1\]/, 5), 'log: too many errors');

# sessions per IP
my @keep = (conn(), conn());
like($keep[0]{greeting} . $keep[1]{greeting}, qr/^220.*\n220/s, 'two sessions from one IP');
my $third = conn();
like($third->{greeting}, qr/^421 4\.7\.0 .*too many connections/, 'third session from the IP: 421 4.7.0');
ok($gw->wait_log(qr/MaximalIncomingSessionsPerIP/, 5), 'log names MaximalIncomingSessionsPerIP');

# command timeout
like(reply($keep[0], 8), qr/^421 4\.4\.2 .*timeout/, 'idle session: 421 4.4.2 after ReceivingCommandTimeout');
ok($gw->wait_log(qr/timeout after CONNECT from unknown\[127\.0\.0\.1\]/, 5), 'log: timeout after CONNECT');
$gw->stop;

# IncomingSessions (total)
$gw = MailgwTest->new(daemons => 'qmgr,smtpd', 'mailgw.limits.IncomingSessions' => 1);
$gw->start or BAIL_OUT("mailgw did not start:\n" . $gw->log_text);
$port = $gw->port;
my $one;
for (1 .. 30) {     # the harness's own probe session may still be ending
    $one = conn();
    last if $one->{greeting} =~ /^220/;
    select(undef, undef, undef, 0.2);
}
like($one->{greeting}, qr/^220/, 'first session');
like(conn()->{greeting}, qr/^421 4\.7\.0 .*too many connections/, 'IncomingSessions=1: second session 421');
ok($gw->wait_log(qr/IncomingSessions\), refusing/, 5), 'log names IncomingSessions');
$gw->stop;
done_testing();
