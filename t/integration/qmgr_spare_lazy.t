#!/usr/bin/perl
# qmgr_spare_lazy.t - a delivered message's removal does not cost a
# directory fsync of its own (qmgr_spare_remove_later): 100 messages sent
# one after another through one session, each delivered and removed
# alone, and qmgr fsyncs active/ once per QMGR_SPARE_LAZY (32) removals or
# once a tick, not once per message; the removals are still fsynced in
# the end (the tick), and every message reaches the sink.  Counted with
# strace on the real qmgr.
use strict;
use warnings;
use Test::More;
use FindBin;
use POSIX qw(ceil);
use Time::HiRes qw(time sleep);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

relay_needs([qw(master qmgr smtpd smtp)], [qw(smtp-source smtp-sink strace root)]);

my $n = 100;
my $sink = MailgwTest::free_port();
my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp',
                         'forward.ForwardRoute' => ["* [127.0.0.1:$sink]"]);
my $d = $gw->dir;
start_smtp_sink($sink, undef);
$gw->start or BAIL_OUT('mailgw did not start');
my $st = $gw->status;
my $qmgr = $st && $st->{qmgr} ? $st->{qmgr}{pid} : 0;
ok($qmgr, "qmgr runs ($qmgr)") or BAIL_OUT('no qmgr');

my $trace = "$d/qmgr.strace";
my $tpid = start_strace($qmgr, $trace, '-y', '-e', 'trace=fsync');

my $t0 = time;
system('/usr/sbin/smtp-source', '-s', 1, '-m', $n, '-l', 2000, '-f', 'src@example.org',
       '-t', 'rcpt@example.test', "127.0.0.1:" . $gw->port);
is($? >> 8, 0, "smtp-source sent $n messages one at a time");
my $removed = sub { my @r = $gw->log_text =~ /: removed$/mg; scalar @r };
ok(wait_for(sub { $removed->() >= $n }, 120), "all $n delivered and removed")
    or diag $removed->() . ' removed';
my $elapsed = time - $t0;
my @sent = $gw->log_text =~ /status=sent/g;
is(scalar @sent, $n, "$n status=sent lines");
sleep 2.5;                      # the tick that fsyncs the last removals
stop_strace($tpid);

open my $fh, '<', $trace or die "$trace: $!";
my ($active, $incoming) = (0, 0);
while (<$fh>) {
    $active++ if m{^\d+\s+fsync\(\d+</[^>]*/queue/active>\)};
    $incoming++ if m{^\d+\s+fsync\(\d+</[^>]*/queue/incoming>\)};
}
close $fh;
my $bound = ceil($n / 32) + ceil($elapsed) + 3;
ok($incoming >= 1, "incoming/ is fsynced for the commits ($incoming fsyncs)");
ok($active >= 1, "the removals were fsynced in the end ($active fsyncs of active/)");
ok($active <= $bound,
   "active/ fsyncs: $active for $n removals in ${\ sprintf '%.1f', $elapsed} s (at most $bound)");
$gw->stop;
done_testing;
