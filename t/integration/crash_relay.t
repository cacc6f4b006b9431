#!/usr/bin/perl
# crash_relay.t - durability of the whole relay under kill -9 (DESIGN §4:
# at least once, never zero times).
#
# A Python client sends 5,000 messages (each with a unique Message-ID, 8
# sessions at once) through mailgw to a downstream sink that records the
# Message-IDs it receives, while qmgr, smtp and smtpd are killed with
# SIGKILL at random moments (a bounded number of kills; master restarts
# them).  A message whose DATA got no 250 is sent again by the client.
# At the end (after `mailgw flush` for anything deferred by the crashes)
# every Message-ID that got a 250 must have reached the sink at least
# once; duplicates are counted and reported (diag), not failed.
#
# MAILGW_CRASH_MESSAGES overrides the count (default 5000).
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Temp qw(tempfile);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

for my $need (MailgwTest::bin('mailgw'), map { MailgwTest::libexec($_) } qw(master qmgr smtpd smtp)) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => 'aiosmtpd missing'
    unless system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0;

my $N = $ENV{MAILGW_CRASH_MESSAGES} || 5000;
my $pa = MailgwTest::free_port();
my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp',
                         'forward.ForwardRoute' => "* [127.0.0.1:$pa]",
                         'limits.MaximalIncomingSessionsPerIP' => 32,
                         'limits.OutgoingSessions' => 20);
my $d = $gw->dir;
start_py_sink($pa, "$d/sink");
$gw->start or BAIL_OUT('mailgw did not start');

my $client = <<'PY';
import smtplib, sys, threading, time
port, n, acked_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
acked = open(acked_path, "w")
todo = list(range(n))
deadline = time.time() + 150
def worker():
    s = None
    while time.time() < deadline:
        with lock:
            if not todo: break
            i = todo.pop()
        mid = "<crash-%d@example.org>" % i
        msg = ("From: <c@example.org>\r\nTo: <r@example.test>\r\nSubject: crash %d\r\n"
               "Message-ID: %s\r\n\r\nbody %d\r\n" % (i, mid, i)).encode()
        ok = False
        for attempt in range(50):
            if time.time() > deadline: break
            try:
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
                    s.ehlo("crash.example.org")
                s.sendmail("c@example.org", ["r%d@example.test" % (i % 7)], msg)
                ok = True
                break
            except Exception:
                try: s.close()
                except Exception: pass
                s = None
                time.sleep(0.2)
        if ok:
            with lock:
                acked.write(mid + "\n"); acked.flush()
    if s is not None:
        try: s.quit()
        except Exception: pass
ts = [threading.Thread(target=worker) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
acked.close()
PY
my ($cfh, $cfile) = tempfile(DIR => $d, SUFFIX => '.py');
print $cfh $client;
close $cfh;
my $acked = "$d/acked.txt";
my $cpid = fork // die;
if ($cpid == 0) {
    open STDOUT, '>', "$d/client.log";
    open STDERR, '>&', \*STDOUT;
    exec '/usr/bin/python3', $cfile, $gw->port, $N, $acked or POSIX::_exit(127);
}

# kill -9 at random moments while the client runs: at random counts of
# acknowledged messages (so the kills land inside the run however fast
# the gateway is), at most 8, at least 1 s apart (master's restart
# back-off grows with kills in a row)
my %kills;
my $deadline = time + 160;
srand($ENV{MAILGW_CRASH_SEED} // $$);
my @at = sort { $a <=> $b } map { int($N * (0.03 + rand 0.9)) } 1 .. 8;
sub acked_count {
    open my $fh, '<', $acked or return 0;
    my $n = 0;
    $n++ while <$fh>;
    return $n;
}
while (@at && time < $deadline && waitpid($cpid, WNOHANG) == 0) {
    sleep 0.05;
    next if acked_count() < $at[0];
    shift @at;
    my $st = $gw->status or next;
    my @names = grep { $st->{$_} && $st->{$_}{pid} } qw(qmgr smtp smtpd);
    next unless @names;
    my $victim = $names[int rand @names];
    $kills{ "$victim#" . scalar(keys %kills) } = 1 if kill 'KILL', $st->{$victim}{pid};
    sleep 1;
}
waitpid($cpid, 0) if waitpid($cpid, WNOHANG) == 0;
my %by = ();
$by{ (split /#/)[0] }++ for keys %kills;
diag('kills: ' . join(', ', map { "$_ x$by{$_}" } sort keys %by));
ok(keys(%kills) >= 3, 'daemons were killed during the run');

open my $afh, '<', $acked or die "$acked: $!";
chomp(my @acked = <$afh>);
close $afh;
ok(@acked >= $N * 0.9, scalar(@acked) . " of $N messages got a 250");

# let the queue drain; flush what the crashes deferred
my %seen;
my $drained = wait_for(sub {
    $gw->mailgw('flush');
    %seen = ();
    $seen{ $_->{message_id} }++ for sink_messages("$d/sink");
    !grep { !$seen{$_} } @acked;
}, 120);
my @lost = grep { !$seen{$_} } @acked;
ok($drained && !@lost, 'every acknowledged message was delivered at least once')
    or diag('lost: ' . scalar(@lost) . ' e.g. ' . join(' ', @lost[0 .. ($#lost < 9 ? $#lost : 9)]));
my $dups = grep { $_ > 1 } values %seen;
diag("delivered: " . scalar(keys %seen) . " distinct, $dups delivered more than once");
ok(wait_for(sub { !queue_files($gw, 'incoming') && !queue_files($gw, 'active') && !queue_files($gw, 'deferred') }, 60),
   'queue empty at the end');

$gw->stop;
done_testing();
