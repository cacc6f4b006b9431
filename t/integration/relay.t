#!/usr/bin/perl
# relay.t - mailgw as a relay through the real daemons (master, smtpd,
# qmgr, smtp) to real downstream servers on loopback: a Python aiosmtpd
# sink (relay_sink.py) and Postfix's smtp-sink (PIPELINING).
#
# Checks: one recipient is delivered with the Postfix-shaped log lines
# ("to=<...>, relay=..., status=sent", "ID: removed") and the queue ends
# empty; fifty recipients of one message go in one transaction; a message
# for three destinations (ForwardRoute to three ports) reaches each with
# its own recipients; mail to smtp-sink (which pipelines) arrives; the
# envelope sender and the content arrive unchanged.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

for my $need (MailgwTest::bin('mailgw'), map { MailgwTest::libexec($_) } qw(master qmgr smtpd smtp)) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => 'swaks, smtp-sink or aiosmtpd missing'
    unless -x '/usr/bin/swaks' && -x '/usr/sbin/smtp-sink'
    && system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0;

my ($pa, $pb, $pc) = map { MailgwTest::free_port() } 1 .. 3;
my $gw = MailgwTest->new(
    daemons => 'qmgr,smtpd,smtp',
    'forward.ForwardRoute' => ["*\@b.example.test [127.0.0.1:$pb]",
                               "*\@c.example.test [127.0.0.1:$pc]",
                               "* [127.0.0.1:$pa]"],
);
my $d = $gw->dir;
start_py_sink($pa, "$d/sinkA");
start_py_sink($pb, "$d/sinkB");
start_smtp_sink($pc, "$d/sinkC");
$gw->start or BAIL_OUT('mailgw did not start');

# ---- one recipient ----
my $id = send_mail($gw->port, to => 'user@example.test', body => 'token-one-1234');
ok($id, "accepted as $id");
ok(wait_for(sub { grep { $_->{data} =~ /token-one-1234/ } sink_messages("$d/sinkA") }, 30),
   'delivered to the downstream server');
my ($m) = grep { $_->{data} =~ /token-one-1234/ } sink_messages("$d/sinkA");
is($m && $m->{from}, 'sender@example.org', 'envelope sender kept');
is_deeply($m && $m->{rcpts}, ['user@example.test'], 'envelope recipient kept');
ok($gw->wait_log(qr/\Q$id\E: to=<user\@example\.test>, relay=\S+\[127\.0\.0\.1\]:$pa, delay=\S+, delays=\S+, dsn=2\.\d\.\d, status=sent \(250/, 10),
   'smtp logs status=sent in Postfix shape');
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'qmgr logs "ID: removed"');
ok(wait_for(sub { !queue_files($gw, 'active') && !queue_files($gw, 'incoming') }, 10),
   'queue empty afterwards');

# ---- many recipients, one transaction ----
my @many = map { "r$_\@example.test" } 1 .. 50;
$id = send_mail($gw->port, to => join(',', @many), body => 'token-many-5678');
ok($id, 'fifty recipients accepted');
ok(wait_for(sub { grep { $_->{data} =~ /token-many-5678/ } sink_messages("$d/sinkA") }, 30),
   'delivered');
my @got = grep { $_->{data} =~ /token-many-5678/ } sink_messages("$d/sinkA");
is(scalar @got, 1, 'in one transaction');
is_deeply([sort @{ $got[0]{rcpts} }], [sort @many], 'with all fifty recipients') if @got;
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'and removed');

# ---- three destinations ----
$id = send_mail($gw->port, to => 'x@b.example.test,y@c.example.test,z@example.test',
                body => 'token-three-9012');
ok($id, 'message for three destinations accepted');
ok(wait_for(sub { grep { $_->{data} =~ /token-three-9012/ } sink_messages("$d/sinkB") }, 30),
   'ForwardRoute b.example.test: delivered to its sink');
ok(wait_for(sub { grep { /token-three-9012/ } smtp_sink_files("$d/sinkC") }, 30),
   'ForwardRoute c.example.test: delivered to smtp-sink (PIPELINING)');
ok(wait_for(sub { grep { $_->{data} =~ /token-three-9012/ } sink_messages("$d/sinkA") }, 30),
   'default route: delivered');
($m) = grep { $_->{data} =~ /token-three-9012/ } sink_messages("$d/sinkB");
is_deeply($m && $m->{rcpts}, ['x@b.example.test'], 'each sink got only its recipients');
my ($c) = grep { /token-three-9012/ } smtp_sink_files("$d/sinkC");
like($c // '', qr/y\@c\.example\.test/, 'smtp-sink saw its recipient');
ok($gw->wait_log(qr/\Q$id\E: removed/, 10), 'removed once all three are done');

# ---- many messages to smtp-sink, several sessions at once ----
my @ids;
for my $n (1 .. 10) {
    push @ids, send_mail($gw->port, to => "p$n\@c.example.test", body => "token-pipe-$n");
}
is(scalar(grep { $_ } @ids), 10, 'ten messages for smtp-sink accepted');
ok(wait_for(sub { my $t = $gw->log_text; !grep { $t !~ /\Q$_\E: removed/ } grep { $_ } @ids }, 30),
   'all ten delivered and removed');
my $text = join '', smtp_sink_files("$d/sinkC");
is(scalar(() = $text =~ /token-pipe-\d+/g), 10, 'smtp-sink received all ten');

$gw->stop;
done_testing();
