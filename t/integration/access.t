#!/usr/bin/perl
# Access rules through the real gateway (master + smtpd) with swaks from
# different loopback source addresses, against a real nsd serving the
# test zones (t/lib/TestDNS.pm): DNSBL (listing, error code), rDNS,
# HeloRule, MailfromRule, DenyClients, the open-relay test, a DNSBL
# timeout (not listed, with a warning naming the zone) and an rDNS
# timeout that must give 4xx, never 5xx.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use TestDNS;
use MailgwTest;

plan skip_all => 'nsd or dig missing' unless TestDNS::available();
plan skip_all => 'swaks missing' unless system('command -v swaks >/dev/null 2>&1') == 0;
plan skip_all => 'mailgw not built' unless -x MailgwTest::bin('mailgw') && -x MailgwTest::libexec('smtpd');

my $dns = TestDNS->new;

# One SMTP dialogue up to RCPT; returns swaks' transcript.
sub swaks {
    my ($gw, %o) = @_;
    my @cmd = ('swaks', '--server', '127.0.0.1:' . $gw->port, '--quit-after', 'RCPT',
               '--timeout', '30', '--from', $o{from} // 'alice@example.test',
               '--to', $o{to} // 'bob@example.test', '--helo', $o{helo} // 'host.example.test');
    push @cmd, '--local-interface', $o{ip} if $o{ip};
    my $out = `@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1`;
    return $out;
}

sub gateway {
    my (%access) = @_;
    my $nameserver = delete $access{nameserver} // $dns->server;
    my $gw = MailgwTest->new('mailgw.resolve.Nameserver' => $nameserver,
                             'mailgw.resolve.IONetworkTimeout' => 1, %access);
    $gw->start or return;
    return $gw;
}

# Default-style relay rules: the open-relay test.
{
    my $gw = gateway('mailgw.access.RelayRule' => ['allow from 10.0.0.0/8 to *']);
    ok($gw, 'gateway started') or BAIL_OUT('no gateway');
    my $out = swaks($gw, to => 'victim@other.test', ip => '127.0.0.1');
    like($out, qr/<\*\* 554 5\.7\.1 <victim\@other\.test>: Relay access denied/,
         'open relay refused: non-protected domain from a non-allowed address');
    ok($gw->wait_log(qr/NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 554 5\.7\.1 <victim\@other\.test>: Relay access denied/, 10),
       'reject logged in Postfix shape');
    $out = swaks($gw, to => 'bob@example.test', ip => '127.0.0.1');
    like($out, qr/<-  250 .*\n.*QUIT/s, 'protected domain accepted') or diag $out;
    $gw->stop;
}

# Connect rules: DNSBL and rDNS; DenyClients.
{
    my $gw = gateway('mailgw.access.DNSBlackList' => 'bl.test',
                     'mailgw.access.ConnectRule' => ['deny from in_dnsbl to *',
                                                     'deny from no_name to *@norname.example.test'],
                     'mailgw.access.DenyClients' => '127.0.0.66');
    ok($gw, 'gateway with ConnectRule started') or BAIL_OUT('no gateway');
    like(swaks($gw, ip => '127.0.0.2'),
         qr/<\*\* 554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.2\] blocked using bl\.test/,
         'DNSBL-listed client refused');
    like(swaks($gw, ip => '127.0.0.3'), qr/<-  250 2\.1\.5/,
         '127.255.255.254 error answer is not a listing');
    like(swaks($gw, ip => '127.0.0.1', to => 'x@norname.example.test'),
         qr/<\*\* 550 5\.7\.1 Client host rejected: cannot find your hostname, \[127\.0\.0\.1\]/,
         'ConnectRule no_name for its recipient mask');
    like(swaks($gw, ip => '127.0.0.5', to => 'x@norname.example.test'), qr/<-  250 2\.1\.5/,
         'client with a confirmed name passes');
    ok($gw->wait_log(qr/connect from host\.example\.test\[127\.0\.0\.5\]/, 10),
       'client name from forward-confirmed rDNS in the log');
    like(swaks($gw, ip => '127.0.0.66'), qr/<\*\* 554 5\.7\.1 .*Client host rejected: Access denied/,
         'DenyClients refused at connect');
    $gw->stop;
}

# HELO and MAIL FROM rules.
{
    my $gw = gateway('mailgw.access.HeloRule' => ['deny from no_ip to *'],
                     'mailgw.access.MailfromRule' => ['deny from no_mx to *']);
    ok($gw, 'gateway with HeloRule/MailfromRule started') or BAIL_OUT('no gateway');
    like(swaks($gw, helo => 'nosuch.example.test'),
         qr/<\*\* 550 5\.7\.1 <nosuch\.example\.test>: Helo command rejected: Host not found/,
         'HeloRule no_ip');
    like(swaks($gw, from => 'a@nomx.example.test'),
         qr/<\*\* 550 5\.1\.8 <a\@nomx\.example\.test>: Sender address rejected: Domain not found/,
         'MailfromRule no_mx');
    like(swaks($gw, from => 'a@example.test'), qr/<-  250 2\.1\.5/, 'resolvable HELO and sender pass');
    $gw->stop;
}

# DNS timeouts: a dead DNSBL counts as "not listed" (as in Postfix), a
# failed rDNS lookup gives 4xx, never 5xx.
{
    my $gw = gateway(nameserver => $dns->silent, 'mailgw.access.DNSBlackList' => 'bl.test',
                     'mailgw.access.ConnectRule' => ['deny from in_dnsbl to *',
                                                     'deny from no_name to *@norname.example.test']);
    ok($gw, 'gateway with a silent nameserver started') or BAIL_OUT('no gateway');
    my $out = swaks($gw, ip => '127.0.0.2');
    like($out, qr/<-  250 2\.1\.5/, 'DNSBL timeout: client accepted (not listed)') or diag $out;
    ok($gw->wait_log(qr/warning: dnsbl bl\.test: lookup of 2\.0\.0\.127\.bl\.test failed: timeout; treating as not listed/, 10),
       'DNSBL timeout logged as a warning naming the zone');
    $out = swaks($gw, ip => '127.0.0.2', to => 'x@norname.example.test');
    like($out, qr/<\*\* 450 4\.7\.1 /, 'rDNS timeout with a no_name rule gives 450');
    unlike($out, qr/<\*\* 5\d\d /, 'no 5xx on a DNS timeout');
    $gw->stop;
}

done_testing;
