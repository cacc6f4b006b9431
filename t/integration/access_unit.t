#!/usr/bin/perl
# smtpd's access decisions (smtpd/smtpd_access.c) driven through
# t/helpers/accessq against a real nsd (t/lib/TestDNS.pm): AllowClients /
# DenyClients, DenyUnresolvedConnect, ConnectRule (has_name/no_name,
# in_dnsbl/out_dnsbl with result codes), HeloRule, MailfromRule,
# DenyUnresolvedMailfrom, RelayRule first match and ProtectedDomains, and
# DNS timeouts that must give 4xx, never 5xx.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/../lib";
use TestDNS;

use MailgwTest;

my $accessq = MailgwTest::helper('accessq');
plan skip_all => "nsd or dig missing" unless TestDNS::available();
plan skip_all => "accessq not built" unless -x $accessq;

my $dns = TestDNS->new;
my $dir = tempdir('access-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $n = 0;

# Run accessq with a config of these [mailgw.access] lines.
sub run_access {
    my ($access, $ip, @steps) = @_;
    my %o = ref $access ? %$access : (access => $access);
    my $ns = $o{nameserver} // $dns->server;
    my $conf = "$dir/c" . ++$n . ".conf";
    open my $fh, '>', $conf or die "$conf: $!";
    print $fh <<"EOF";
[mailgw.network]
Hostname=gw.example.test
Postmaster=postmaster\@example.test
ProtectedDomains=example.test
[mailgw.path]
QueuePath=$dir/queue
[mailgw.resolve]
Nameserver=$ns
IONetworkTimeout=1
[mailgw.access]
$o{access}
EOF
    close $fh;
    my $err = "$dir/e$n.log";
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>', $err;
        exec $accessq, '-c', $conf, $ip, @steps;
        exit 127;
    }
    my %r;
    while (my $l = <$out>) {
        chomp $l;
        my ($k, $v) = split / /, $l, 2;
        $r{$k} = $v;
    }
    close $out;
    # accessq's log (stderr): under the key "_log".
    $r{_log} = '';
    if (open my $fh, '<', $err) {
        local $/;
        $r{_log} = <$fh> // '';
    }
    return \%r;
}

# Relay: first match wins; no match = ProtectedDomains only.
my $relay = "RelayRule=deny from 127.0.0.7 to *\nRelayRule=allow from 10.0.0.0/8 to *\n"
          . "RelayRule=allow from 127.0.0.0/255.255.255.0 to *\@partner.test";
my $r = run_access($relay, '127.0.0.1', 'connect', 'rcpt', 'bob@other.test',
                   'rcpt', 'bob@example.test');
is($r->{rcpt}, 'ALLOW', 'protected domain accepted without a matching rule');
$r = run_access($relay, '127.0.0.1', 'rcpt', 'bob@other.test');
is($r->{rcpt}, 'DENY RelayRule: 554 5.7.1 <bob@other.test>: Relay access denied',
   'open relay refused: non-protected domain from a non-allowed client');
$r = run_access($relay, '10.1.2.3', 'rcpt', 'bob@other.test');
is($r->{rcpt}, 'ALLOW', 'relay allowed from an allowed network');
$r = run_access($relay, '127.0.0.1', 'rcpt', 'bob@PARTNER.test');
is($r->{rcpt}, 'ALLOW', 'relay allowed to a recipient mask (dotted netmask, case)');
$r = run_access($relay, '127.0.0.7', 'rcpt', 'bob@example.test');
like($r->{rcpt}, qr/^DENY RelayRule: 554 5\.7\.1/, 'an explicit deny wins over ProtectedDomains');
$r = run_access('', '192.0.2.1', 'rcpt', 'bob@other.test');
like($r->{rcpt}, qr/^DENY RelayRule/, 'no rules at all: not an open relay');
$r = run_access('', '192.0.2.1', 'rcpt', 'bob@example.test');
is($r->{rcpt}, 'ALLOW', 'no rules at all: protected domain accepted');

# Masks (lib/addr) and file: lists in rules.
{
    open my $fh, '>', "$dir/clients" or die "$dir/clients: $!";
    print $fh "# partners\n192.0.2.0/24\n\n2001:db8::/32\n";
    close $fh;
    open $fh, '>', "$dir/rcpts" or die "$dir/rcpts: $!";
    print $fh "*\@partner.test\n\@friend.test\n";
    close $fh;
}
my $files = "RelayRule=allow from file:$dir/clients to file:$dir/rcpts";
$r = run_access($files, '192.0.2.77', 'rcpt', 'x@partner.test', 'rcpt', 'x@FRIEND.test');
is($r->{rcpt}, 'ALLOW', 'file: lists: client in a listed network, "@domain" recipient mask');
$r = run_access($files, '2001:db8::5', 'rcpt', 'x@partner.test');
is($r->{rcpt}, 'ALLOW', 'file: list: IPv6 network');
$r = run_access($files, '198.51.100.1', 'rcpt', 'x@partner.test');
like($r->{rcpt}, qr/^DENY RelayRule/, 'file: list: client outside every listed network');
$r = run_access($files, '192.0.2.77', 'rcpt', 'x@other.test');
like($r->{rcpt}, qr/^DENY RelayRule/, 'file: list: recipient matching no mask');
$r = run_access("RelayRule=allow from any to *\@*", '198.51.100.1', 'rcpt', 'x@other.test');
is($r->{rcpt}, 'ALLOW', 'old spelling "*@*" recipient');
$r = run_access("RelayRule=allow from ::ffff:10.0.0.0/104 to any", '10.9.8.7', 'rcpt', 'x@other.test');
is($r->{rcpt}, 'ALLOW', 'IPv4-mapped IPv6 mask matches an IPv4 client');
$r = run_access("RelayRule=allow from any to us?r\@*.partner.test", '198.51.100.1',
                'rcpt', 'user@mx.partner.test', 'rcpt', 'user@partner.test');
like($r->{rcpt}, qr/^DENY RelayRule/, '"*." needs a subdomain');
$r = run_access("RelayRule=allow from any to us?r\@*.partner.test", '198.51.100.1',
                'rcpt', 'uSer@mx.partner.test');
is($r->{rcpt}, 'ALLOW', '"?" and "*" in a recipient mask, case-insensitive');

# Client lists.
$r = run_access("DenyClients=127.0.0.0/24\nAllowClients=127.0.0.5", '127.0.0.1', 'connect');
like($r->{connect}, qr/^DENY DenyClients: 554 5\.7\.1 <unknown\[127\.0\.0\.1\]>: Client host rejected/,
     'DenyClients refuses at connect');
$r = run_access("DenyClients=127.0.0.0/24\nAllowClients=127.0.0.5", '127.0.0.5', 'connect');
is($r->{connect}, 'ALLOW', 'AllowClients checked before DenyClients');
is($r->{name}, 'host.example.test', 'client name is the forward-confirmed PTR');

# rDNS.
$r = run_access("DenyUnresolvedConnect=yes", '127.0.0.1', 'connect');
is($r->{connect}, 'DENY DenyUnresolvedConnect: 554 5.7.1 Client host rejected: cannot find your hostname, [127.0.0.1]',
   'DenyUnresolvedConnect without PTR');
$r = run_access("DenyUnresolvedConnect=yes", '127.0.0.8', 'connect');
like($r->{connect}, qr/^DENY/, 'DenyUnresolvedConnect: unconfirmed PTR is no name');
is($r->{name}, 'unknown', 'unconfirmed PTR name not used');
$r = run_access("DenyUnresolvedConnect=yes", '127.0.0.5', 'connect');
is($r->{connect}, 'ALLOW', 'DenyUnresolvedConnect: confirmed name passes');
my $cr = "ConnectRule=deny from no_name to *\@example.test";
$r = run_access($cr, '127.0.0.1', 'connect', 'rcpt', 'a@example.test', 'rcpt', 'a@other.test');
is($r->{connect}, 'ALLOW', 'ConnectRule is not checked at connect');
is($r->{'rcpt'}, 'DENY RelayRule: 554 5.7.1 <a@other.test>: Relay access denied',
   'ConnectRule only for its recipient mask (other recipient: relay decides)');
$r = run_access($cr, '127.0.0.1', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'DENY ConnectRule: 550 5.7.1 Client host rejected: cannot find your hostname, [127.0.0.1]',
   'ConnectRule no_name denies per recipient');
$r = run_access("ConnectRule=allow from has_name to *\nConnectRule=deny from any to *",
                '127.0.0.5', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'ConnectRule has_name allow (first match)');

# DNSBL.
my $bl = "DNSBlackList=bl.test\nConnectRule=deny from in_dnsbl to *";
$r = run_access($bl, '127.0.0.2', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'DENY ConnectRule: 554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.test',
   'DNSBL listed client refused');
$r = run_access($bl, '127.0.0.3', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', '127.255.255.254 error answer is not a listing');
$r = run_access($bl, '127.0.0.10', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'answer outside 127/8 is not a listing');
$r = run_access($bl, '127.0.0.1', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'unlisted client accepted');
$r = run_access("DNSBlackList=bl.test=127.0.0.2\nConnectRule=deny from in_dnsbl to *",
                '127.0.0.4', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'answer not among the zone\'s codes is not a listing');
$r = run_access("DNSBlackList=bl.test=127.0.0.2,127.0.0.4\nConnectRule=deny from in_dnsbl to *",
                '127.0.0.4', 'connect', 'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^DENY ConnectRule: 554 .* blocked using bl\.test$/, 'explicit code listed');
$r = run_access("DNSBlackList=bl.test\nConnectRule=allow from out_dnsbl to *\nConnectRule=deny from any to *",
                '127.0.0.2', 'connect', 'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^DENY ConnectRule: 554 5\.7\.1 <unknown\[127\.0\.0\.2\]>: Client host rejected: Access denied/,
     'out_dnsbl does not match a listed client');
$r = run_access("DNSBlackList=bl.test\nConnectRule=deny from in_dnsbl to *\nAllowClients=127.0.0.2",
                '127.0.0.2', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'AllowClients skip ConnectRule');

# HELO.
my $hr = "HeloRule=deny from no_ip to *\nHeloRule=deny from diff_ip to *\@example.test";
$r = run_access($hr, '127.0.0.1', 'helo', 'nosuch.example.test', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'DENY HeloRule: 550 5.7.1 <nosuch.example.test>: Helo command rejected: Host not found',
   'HeloRule no_ip');
is($r->{helo}, 'ALLOW', 'HELO itself answered normally');
$r = run_access($hr, '127.0.0.1', 'helo', 'host.example.test', 'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^DENY HeloRule: 550 5\.7\.1 <host\.example\.test>: Helo command rejected: Host address/,
     'HeloRule diff_ip');
$r = run_access($hr, '127.0.0.5', 'helo', 'host.example.test', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'HELO name resolving to the client address passes');
$r = run_access($hr, '127.0.0.5', 'helo', '[127.0.0.5]', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'address literal equal to the client');
$r = run_access("HeloRule=deny from same_ip to *", '127.0.0.5', 'helo', '[127.0.0.5]',
                'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^DENY HeloRule: 554 5\.7\.1 <\[127\.0\.0\.5\]>: Helo command rejected: Access denied/,
     'HeloRule same_ip');

# MAIL FROM.
my $mr = "MailfromRule=deny from no_mx to *";
$r = run_access($mr, '127.0.0.1', 'mail', 'x@nomx.example.test', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'DENY MailfromRule: 550 5.1.8 <x@nomx.example.test>: Sender address rejected: Domain not found',
   'MailfromRule no_mx');
is($r->{mail}, 'ALLOW', 'MailfromRule is per recipient, not at MAIL');
$r = run_access($mr, '127.0.0.1', 'mail', 'x@example.test', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'sender domain with MX passes');
$r = run_access($mr, '127.0.0.1', 'mail', 'x@nullmx.example.test', 'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^DENY MailfromRule/, 'null MX counts as no MX');
$r = run_access($mr, '127.0.0.1', 'mail', '', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'null sender is not checked');
$r = run_access("MailfromRule=deny from no_ip to *", '127.0.0.1', 'mail', 'x@noaddr.example.test',
                'rcpt', 'a@example.test', 'reset', 'mail', 'x@nomx.example.test', 'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^ALLOW/, 'facts of a new transaction replace the old ones (has_ip after RSET)');
$r = run_access("DenyUnresolvedMailfrom=yes", '127.0.0.1', 'mail', 'x@nosuch.example.test');
is($r->{mail}, 'DENY DenyUnresolvedMailfrom: 550 5.1.8 <x@nosuch.example.test>: Sender address rejected: Domain not found',
   'DenyUnresolvedMailfrom');
$r = run_access("DenyUnresolvedMailfrom=yes", '127.0.0.1', 'mail', 'x@nomx.example.test');
is($r->{mail}, 'ALLOW', 'DenyUnresolvedMailfrom: an A record is enough (implicit MX)');

# DNSBL failure: "not listed" with a warning naming the zone (Postfix's
# rule: a dead DNSBL must not tempfail every client).
my $silent = $dns->silent;
$r = run_access({ access => $bl, nameserver => $silent }, '127.0.0.2', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'DNSBL timeout: client treated as not listed');
like($r->{_log}, qr/warning: dnsbl bl\.test: lookup of 2\.0\.0\.127\.bl\.test failed: timeout; treating as not listed/,
     'DNSBL timeout logged as a warning naming the zone');
$r = run_access({ access => "DNSBlackList=bl.test\nConnectRule=allow from out_dnsbl to *\n"
                          . "ConnectRule=deny from any to *", nameserver => $silent },
                '127.0.0.2', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'DNSBL timeout: out_dnsbl matches (not listed)');
my $dead = "DNSBlackList=dead.test=127.0.0.2\nDNSBlackList=bl.test\nConnectRule=deny from in_dnsbl to *";
$r = run_access($dead, '127.0.0.2', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'DENY ConnectRule: 554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.test',
   'a failing zone does not hide a listing in another zone');
like($r->{_log}, qr/warning: dnsbl dead\.test: lookup of 2\.0\.0\.127\.dead\.test failed: \S+; treating as not listed/,
     'the failing zone is named (codes stripped)');
$r = run_access($dead, '127.0.0.1', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'failing zone and no listing: accepted');

# Other DNS failures: never a 5xx, tempfail unless every answer agrees.
$r = run_access({ access => "ConnectRule=deny from no_name to *", nameserver => $silent },
                '127.0.0.5', 'connect', 'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^TEMPFAIL ConnectRule: 450 4\.7\.1 .*temporary DNS failure/,
     'rDNS timeout with a no_name rule gives 450, not 550');
$r = run_access({ access => "ConnectRule=allow from has_name to *", nameserver => $silent },
                '127.0.0.5', 'connect', 'rcpt', 'a@example.test');
is($r->{rcpt}, 'ALLOW', 'unknown fact ignored when both outcomes allow');
$r = run_access({ access => "HeloRule=deny from no_ip to *", nameserver => $silent }, '127.0.0.1',
                'helo', 'host.example.test', 'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^TEMPFAIL HeloRule: 450 4\.7\.1 /, 'HELO address timeout gives 450');
$r = run_access({ access => "DenyUnresolvedConnect=yes", nameserver => $silent }, '127.0.0.5', 'connect');
like($r->{connect}, qr/^TEMPFAIL DenyUnresolvedConnect: 421 4\.7\.1 /, 'rDNS timeout at connect gives 421');
$r = run_access({ access => $mr, nameserver => $silent }, '127.0.0.1', 'mail', 'x@nomx.example.test',
                'rcpt', 'a@example.test');
like($r->{rcpt}, qr/^TEMPFAIL MailfromRule: 450 4\.1\.8 /, 'MX timeout gives 450');
$r = run_access({ access => "DenyUnresolvedMailfrom=yes", nameserver => $silent }, '127.0.0.1',
                'mail', 'x@example.test');
like($r->{mail}, qr/^TEMPFAIL DenyUnresolvedMailfrom: 450 4\.1\.8 /, 'DenyUnresolvedMailfrom timeout gives 450');

# Syntax errors are reported.
$r = run_access("RelayRule=allow form any to *", '127.0.0.1', 'connect');
ok(!exists $r->{connect}, 'bad rule: nothing runs');
$r = run_access("RelayRule=allow from any to user\@", '127.0.0.1', 'connect');
ok(!exists $r->{connect}, 'bad recipient mask: nothing runs');
like($r->{load} // '', qr{RelayRule: .*'user\@' is not an address or domain mask: empty},
     'the bad mask and the reason are named');

done_testing;
