#!/usr/bin/perl
# smtp_mx.t - MX routing of the smtp daemon with a real DNS server (nsd via
# t/lib/TestDNS.pm) and Postfix's smtp-sink on loopback addresses:
# preference order with a dead first MX, A fallback without MX, null MX
# (RFC 7505) -> bounced 5.1.10, a domain that does not exist -> bounced
# 5.1.2, an MX host without address -> bounced 5.4.4, DNS timeouts ->
# deferred 4.4.3, and a domain whose every MX is dead -> deferred with
# unreachable=1.  The daemon runs standalone with the unix listener on fd 4;
# t/helpers/smtp_deliver plays qmgr.  Nexthops use "domain:port" (MX lookup,
# then that port) because tests cannot bind port 25.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use TestDNS;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use POSIX qw(dup2 WNOHANG);
use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC F_GETFL F_SETFL O_NONBLOCK);
use Time::HiRes qw(sleep);

my $root = "$FindBin::Bin/../..";
my $B = $ENV{MAILGW_BUILD} || "$root/build";
my $smtp = "$B/libexec/smtp";
my $deliver = "$B/t/helpers/smtp_deliver";
my $sinkbin = '/usr/sbin/smtp-sink';
plan skip_all => "nsd or dig missing" unless TestDNS::available();
plan skip_all => "$smtp or $deliver not built" unless -x $smtp && -x $deliver;
plan skip_all => "smtp-sink missing" unless -x $sinkbin;

my $is_root = $> == 0;
my $dns = TestDNS->new(zones => { 'route.test' => <<'EOF' });
@        MX 10 mx1
@        MX 20 mx2
mx1      A  127.0.0.21
mx2      A  127.0.0.22
nomx     A  127.0.0.23
nullmx   MX 0 .
noaddr   MX 10 missing
dead     MX 10 mx1
dead     MX 20 mx1b
mx1b     A  127.0.0.24
EOF

my $tmp = tempdir('smtpmxXXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MAILGW_KEEP});
chmod 0755, $tmp;

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
                                  Proto => 'tcp') or die "free_port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

my $port = free_port();
my @sinks;
sub sink {
    my ($addr) = @_;
    my $dump = "$tmp/dump-$addr";
    mkdir $dump; chmod 0777, $dump;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', '/dev/null'; open STDERR, '>', '/dev/null';
        exec $sinkbin, ($is_root ? ('-u', 'nobody') : ()), '-d', "$dump/%M.", "$addr:$port", 50;
        exit 127;
    }
    push @sinks, $pid;
    for (1 .. 100) {
        my $c = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port, Timeout => 1);
        if ($c) { close $c; last }
        sleep 0.05;
    }
    return $dump;
}

sub daemon {
    my ($name, $nameserver) = @_;
    my $dir = "$tmp/$name";
    mkdir $dir; mkdir "$dir/queue"; mkdir "$dir/queue/private";   # smtp's chroot as root
    open my $c, '>', "$dir/mailgw.conf" or die;
    print $c "[mailgw.network]\nHostname=gw.test.example\nPostmaster=postmaster\@example.test\n"
        . "ProtectedDomains=example.test\n[mailgw.path]\nQueuePath=$dir/queue\n"
        . "[mailgw.resolve]\nNameserver=$nameserver\nIONetworkTimeout=1\n"
        . "[mailgw.timeouts]\nSendingInitialTimeout=3\nSendingHelloTimeout=3\n"
        . ($is_root ? "[mailgw.options]\nUser=nobody\n" : '');
    close $c;
    my $l = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => "$dir/smtp.sock", Listen => 64)
        or die "listen: $!";
    chmod 0777, "$dir/smtp.sock" if $is_root;
    fcntl($l, F_SETFL, fcntl($l, F_GETFL, 0) | O_NONBLOCK);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDERR, '>>', "$dir/smtp.log";
        my $fd = fileno($l);
        dup2($fd, 4) if $fd != 4;
        fcntl($l, F_SETFD, 0) if $fd == 4;
        exec $smtp, '-c', "$dir/mailgw.conf", '-f', '-L', '1';
        exit 127;
    }
    close $l;
    return { pid => $pid, dir => $dir, sock => "$dir/smtp.sock" };
}

sub deliver {
    my ($d, $nexthop, @rcpts) = @_;
    open my $m, '>', "$d->{dir}/msg" or die;
    print $m "Subject: mx test\r\n\r\nhello\r\n";
    close $m;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        exec $deliver, '-s', $d->{sock}, '-n', $nexthop, '-m', "$d->{dir}/msg", '-t', 60, @rcpts;
        exit 127;
    }
    my %r = (rcpts => []);
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /^rcpt=\d+ status=(\S+) dsn=(\S*) dsn_passed=\S+ reply=(.*)$/) {
            push @{ $r{rcpts} }, { status => $1, dsn => $2, reply => $3 };
        } elsif ($line =~ /^(\w+)=(.*)$/) {
            $r{$1} = $2;
        }
    }
    close $fh;
    return \%r;
}

sub dumps {
    my ($dir) = @_;
    opendir my $dh, $dir or return ();
    return grep { !/^\./ } readdir $dh;
}

my $d2 = sink('127.0.0.22');
my $d3 = sink('127.0.0.23');
my $gw = daemon('main', $dns->server);

my $r = deliver($gw, "route.test:$port", 'a@route.test');
is($r->{rcpts}[0]{status}, 'sent', 'MX: first MX dead, second takes it');
is($r->{relay}, "mx2.route.test[127.0.0.22]:$port", 'MX: relay is the second MX');
is(scalar dumps($d2), 1, 'MX: the second MX got the message');

$r = deliver($gw, "nomx.route.test:$port", 'b@nomx.route.test');
is($r->{rcpts}[0]{status}, 'sent', 'no MX: A record fallback');
is($r->{relay}, "nomx.route.test[127.0.0.23]:$port", 'no MX: relay is the A host');

$r = deliver($gw, "nullmx.route.test:$port", 'c@nullmx.route.test');
is($r->{rcpts}[0]{status}, 'bounced', 'null MX: bounced');
is($r->{rcpts}[0]{dsn}, '5.1.10', 'null MX: 5.1.10');
like($r->{rcpts}[0]{reply}, qr/nullMX/, 'null MX: reason says nullMX');

$r = deliver($gw, "nosuch.route.test:$port", 'd@nosuch.route.test');
is($r->{rcpts}[0]{status}, 'bounced', 'no such domain: bounced');
is($r->{rcpts}[0]{dsn}, '5.1.2', 'no such domain: 5.1.2');

$r = deliver($gw, "noaddr.route.test:$port", 'e@noaddr.route.test');
is($r->{rcpts}[0]{status}, 'bounced', 'MX host without address: bounced');
is($r->{rcpts}[0]{dsn}, '5.4.4', 'MX host without address: 5.4.4');

$r = deliver($gw, "dead.route.test:$port", 'f@dead.route.test', 'g@dead.route.test');
is_deeply([map { $_->{status} } @{ $r->{rcpts} }], ['deferred', 'deferred'],
          'every MX dead: deferred');
is($r->{unreachable}, '1', 'every MX dead: unreachable=1');
like($r->{rcpts}[0]{reply}, qr/connect to mx1b\.route\.test\[127\.0\.0\.24\]:$port: Connection refused/,
     'every MX dead: the last connect error');

$r = deliver($gw, "[mx2.route.test]:$port", 'h@example.test');
is($r->{rcpts}[0]{status}, 'sent', '[host]:port: A lookup, no MX');

my $gw2 = daemon('silent', $dns->silent);
$r = deliver($gw2, "route.test:$port", 'i@route.test');
is($r->{rcpts}[0]{status}, 'deferred', 'DNS timeout: deferred');
is($r->{rcpts}[0]{dsn}, '4.4.3', 'DNS timeout: 4.4.3');
like($r->{rcpts}[0]{reply}, qr/try again/, 'DNS timeout: reason');

for my $d ($gw, $gw2) {
    ok(waitpid($d->{pid}, WNOHANG) == 0, 'daemon alive');
    kill 'TERM', $d->{pid};
    waitpid($d->{pid}, 0);
}
open my $lf, '<', "$gw->{dir}/smtp.log";
my $log = do { local $/; <$lf> };
like($log, qr/TESTID0001: to=<a\@route\.test>, relay=mx2\.route\.test\[127\.0\.0\.22\]:$port, delay=[\d.]+, delays=[\d.]+\/[\d.]+\/[\d.]+\/[\d.]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok/,
     'log line in Postfix shape');
kill 'KILL', @sinks;
waitpid($_, 0) for @sinks;
done_testing();
