#!/usr/bin/perl
# lib/dns against a real nsd serving the standard test zones (t/lib/TestDNS.pm):
# every record type, CNAME, NXDOMAIN/no data, null MX, FCrDNS, DNSBL result
# codes (127.255.255.x and non-127 answers are not listings), the cache and
# its counters, timeouts through a silent server, failover to the next
# server, REFUSED, and many queries at once on one loop.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use TestDNS;

use MailgwTest;

my $dnsq = MailgwTest::helper('dnsq');
plan skip_all => "nsd or dig missing" unless TestDNS::available();
plan skip_all => "$dnsq not built" unless -x $dnsq;

my $dns = TestDNS->new;
my $S = $dns->server;

sub dq {
    my (@args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec $dnsq, @args;
        exit 127;
    }
    my @lines = <$fh>;
    close $fh;
    chomp @lines;
    return wantarray ? @lines : $lines[0];
}

is(dq('-s', $S, 'A', 'host.example.test'), 'A host.example.test OK | 127.0.0.5', 'A record');
is(dq('-s', $S, 'A', 'HOST.Example.TEST.'), 'A HOST.Example.TEST. OK | 127.0.0.5',
   'case-insensitive, trailing dot');
is(dq('-s', $S, 'A', 'multi.example.test'), 'A multi.example.test OK | 127.0.0.11 | 127.0.0.12',
   'two A records');
is(dq('-s', $S, 'AAAA', 'v6.example.test'), 'AAAA v6.example.test OK | ::1', 'AAAA record');
is(dq('-s', $S, 'MX', 'example.test'),
   'MX example.test OK | 10:mail.example.test | 20:mx2.example.test', 'MX sorted by preference');
is(dq('-s', $S, 'PTR', '5.0.0.127.in-addr.arpa'), 'PTR 5.0.0.127.in-addr.arpa OK | host.example.test',
   'PTR record');
like(dq('-s', $S, 'TXT', 'txt.example.test'), qr/^TXT txt.example.test OK( \| (v=spf1 -all|part onepart two)){2}$/,
     'TXT records, strings of one record joined');
is(dq('-s', $S, 'A', 'alias.example.test'), 'A alias.example.test OK | 127.0.0.5', 'CNAME followed');
is(dq('-s', $S, 'A', 'nosuch.example.test'), 'A nosuch.example.test NXDOMAIN NXDOMAIN', 'NXDOMAIN');
is(dq('-s', $S, 'A', 'noaddr.example.test'), 'A noaddr.example.test NXDOMAIN no data',
   'a name without A is NXDOMAIN (no data)');
like(dq('-s', $S, 'MX', 'nullmx.example.test'), qr/^MX nullmx.example.test NXDOMAIN null MX/,
     'null MX is no MX');
is(dq('-s', $S, 'A', 'bad name.example.test'), 'A bad name.example.test NXDOMAIN invalid name',
   'an invalid name is never sent');
is(dq('-s', $S, 'A', 'elsewhere.invalid'), 'A elsewhere.invalid TEMPFAIL REFUSED',
   'REFUSED is a temporary failure');

is(dq('-s', $S, 'rev', '192.0.2.1'), 'rev 192.0.2.1 1.2.0.192.in-addr.arpa', 'reverse name IPv4');
is(dq('-s', $S, 'rev', '2001:db8::1'),
   'rev 2001:db8::1 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
   'reverse name IPv6');

is(dq('-s', $S, 'fcrdns', '127.0.0.5'), 'fcrdns 127.0.0.5 OK | host.example.test', 'FCrDNS confirmed');
is(dq('-s', $S, 'fcrdns', '::ffff:127.0.0.5'), 'fcrdns ::ffff:127.0.0.5 OK | host.example.test',
   'FCrDNS of an IPv4-mapped address');
is(dq('-s', $S, 'fcrdns', '127.0.0.8'), 'fcrdns 127.0.0.8 NXDOMAIN not confirmed',
   'PTR name whose A does not contain the IP is not a name');
is(dq('-s', $S, 'fcrdns', '127.0.0.1'), 'fcrdns 127.0.0.1 NXDOMAIN NXDOMAIN', 'no PTR');

my @bl = dq('-s', $S, 'dnsbl', '127.0.0.2', 'bl.test', 'dnsbl', '127.0.0.3', 'bl.test',
           'dnsbl', '127.0.0.4', 'bl.test=127.0.0.2', 'dnsbl', '127.0.0.4', 'bl.test=127.0.0.2, 127.0.0.4',
           'dnsbl', '127.0.0.10', 'bl.test', 'dnsbl', '127.0.0.1', 'bl.test');
my @got = grep { /^dnsbl/ } @bl;
is($got[0], 'dnsbl 127.0.0.2 OK | 127.0.0.2', 'DNSBL listing');
is($got[1], 'dnsbl 127.0.0.3 NXDOMAIN not listed', '127.255.255.254 is an error code, not a listing');
ok((grep { /warning: .*127\.255\.255\.254: not a listing/ } @bl), 'error code logged');
is($got[2], 'dnsbl 127.0.0.4 NXDOMAIN not listed', 'answer outside the explicit codes is no listing');
is($got[3], 'dnsbl 127.0.0.4 OK | 127.0.0.4', 'answer among the explicit codes is a listing');
is($got[4], 'dnsbl 127.0.0.10 NXDOMAIN not listed', 'answer outside 127/8 is no listing');
is($got[5], 'dnsbl 127.0.0.1 NXDOMAIN NXDOMAIN', 'not listed');

# Cache: the second and third lookups of a name do not reach the server.
my @c = dq('-s', $S, 'A', 'host.example.test', 'A', 'host.example.test', 'A', 'nosuch.example.test',
          'A', 'nosuch.example.test', 'counters');
is($c[-1], 'total=4 cache=2 failed=0', 'positive and negative answers cached (counters)');
@c = dq('-s', $S, '-n', '0', 'A', 'nosuch.example.test', 'A', 'nosuch.example.test', 'counters');
is($c[-1], 'total=2 cache=0 failed=0', 'UnresolvedTTL 0: NXDOMAIN not cached');

# Timeouts: a server that never answers gives TEMPFAIL, never NXDOMAIN.
my $silent = $dns->silent;
@c = dq('-s', $silent, '-t', '1', 'A', 'host.example.test', 'A', 'host.example.test', 'counters');
is($c[0], 'A host.example.test TEMPFAIL timeout', 'silent server: timeout is TEMPFAIL');
is($c[2], 'total=2 cache=0 failed=2', 'TEMPFAIL not cached, counted as failed');
@c = dq('-s', "$silent,$S", '-t', '1', 'A', 'host.example.test');
is($c[0], 'A host.example.test OK | 127.0.0.5', 'retry on the next server after a timeout');

# Many queries at once on one loop.
my @args;
push @args, 'A', "host.example.test", 'A', 'mail.example.test', 'MX', 'example.test',
    'A', "n$_.example.test" for 1 .. 20;
my @par = dq('-p', '-s', $S, @args);
is(scalar(@par), 80, 'parallel: one line per query');
is(scalar(grep { /^A n\d+\.example\.test NXDOMAIN/ } @par), 20, 'parallel: NXDOMAIN answers');
is(scalar(grep { $_ eq 'A mail.example.test OK | 127.0.0.6' } @par), 20, 'parallel: A answers');

done_testing;
