#!/usr/bin/perl
# scand_pool.t - the scanning pool under master: a worker killed with
# SIGKILL in the middle of a request gives the client no reply (qmgr
# defers) and is replaced, and the retried message gets its verdict; a
# worker stopped (SIGSTOP) is killed by the watchdog after ScanTimeout +
# margin; workers recycle after MaxMessagesPerProcess; reload-bases
# rotates them; when every worker is busy another is started; as root,
# workers are chrooted into their private directory, a tmpfs of their own.
use strict;
use warnings;
use Test::More;
use IPC::Open2 qw(open2);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use MailgwTest;

my $client = MailgwTest::helper('scan_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('scand'), $client) {
    plan skip_all => "$need not built" unless -x $need;
}
my $EICAR = pack('H*', '58354f2150254041505b345c505a58353428505e2937434329377d24'
    . '45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a');
my $bases = MailgwTest::root() . '/conf/bases';

sub start_gw {
    my (%o) = @_;
    my $gw = MailgwTest->new(daemons => 'scand', 'options.LogLevel' => 9,
                             raw => "[path]\nBasesPath=$bases\n", %o);
    $gw->start or BAIL_OUT('mailgw did not start');
    $gw->wait_log(qr/scand\[\d+\]: worker \d+ started/, 20)
        or BAIL_OUT("no worker:\n" . $gw->log_text);
    open(my $fh, '>', $gw->dir . '/eicar.eml') or die;
    print $fh "From: a\@example.test\nTo: b\@example.test\nSubject: v\n\n$EICAR\n";
    close $fh;
    return $gw;
}

sub workers_of {
    my ($gw) = @_;
    my $parent = $gw->status->{scand}{pid} or return ();
    my @kids;
    opendir(my $dh, '/proc') or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open(my $fh, '<', "/proc/$p/stat") or next;
        my $st = <$fh> // '';
        my ($state, $ppid) = $st =~ /\)\s+(\S)\s+(\d+)/ or next;
        push @kids, $p if $ppid == $parent && $state !~ /[ZX]/;
    }
    my @sorted = sort { $a <=> $b } @kids;
    return @sorted;
}

# The log grows; match only what was written after $mark.
sub wait_log_after {
    my ($gw, $mark, $re, $secs) = @_;
    return wait_until(sub { substr($gw->log_text, $mark) =~ $re }, $secs);
}

sub scan_eicar {
    my ($gw, $id) = @_;
    my $sock = $gw->queue_dir . '/private/scand';
    my $out = `$client -t 30 -i $id $sock @{[ $gw->dir ]}/eicar.eml 2>&1`;
    return ($? >> 8, $out);
}

# A client that connected (worker busy) and waits for our go.
sub held_client {
    my ($gw, $id) = @_;
    my $sock = $gw->queue_dir . '/private/scand';
    my ($out, $in);
    my $pid = open2($out, $in, $client, '-H', '-t', '30', '-i', $id, $sock,
                    $gw->dir . '/eicar.eml');
    my $line = <$out> // '';
    return ($pid, $out, $in, $line);
}

sub release {
    my ($pid, $out, $in) = @_;
    print $in "go\n";
    close $in;
    local $/;
    my $text = <$out> // '';
    waitpid($pid, 0);
    return ($? >> 8, $text);
}

sub wait_until {
    my ($code, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) { return 1 if $code->(); sleep 0.1 }
    return 0;
}

# --- kill -9 mid-request, the watchdog, recycling, rotation -------------------------
my $gw = start_gw('mailgw.ave.MinWorkers' => 1, 'mailgw.ave.MaxWorkers' => 1,
                  'mailgw.ave.ScanTimeout' => 2, 'mailgw.ave.MaxMessagesPerProcess' => 3);
my ($w1) = workers_of($gw);
ok($w1, "one worker ($w1)");
SKIP: {
    skip 'not root: no chroot', 2 unless $> == 0;
    my $root = readlink("/proc/$w1/root") // '';
    like($root, qr{/mailgw-scand\.\w+$}, "worker chrooted into its private directory ($root)");
    # its root is a private tmpfs (libclamav's temporary files in memory)
    open(my $mi, '<', "/proc/$w1/mountinfo");
    my ($line) = grep { (split ' ')[4] eq '/' } <$mi>;
    like($line // '', qr/ - tmpfs scand .*\bsize=/, 'its root is a size-limited tmpfs of its own');
}

my $mark = length $gw->log_text;
my ($cpid, $cout, $cin, $line) = held_client($gw, 'KILL9');
is($line, "connected\n", 'client connected');
ok(wait_log_after($gw, $mark, qr/worker $w1 busy/, 10), 'worker busy with the request');
kill 'KILL', $w1;
my ($rc, $text) = release($cpid, $cout, $cin);
is($rc, 2, 'killed worker: client got no reply');
like($text, qr/^noreply/m, 'killed worker: noreply');
unlike($text, qr/status=ok/, 'never an ok verdict');
ok($gw->wait_log(qr/worker $w1 killed by signal 9 while scanning/, 10), 'death logged');
ok(wait_until(sub { my @w = workers_of($gw); @w == 1 && $w[0] != $w1 }, 10),
   'the pool replaced the worker');
($rc, $text) = scan_eicar($gw, 'RETRY1');
like($text, qr/^av_status=infected$/m, 'the retried message gets its verdict');

my ($w2) = workers_of($gw);
$mark = length $gw->log_text;
($cpid, $cout, $cin, $line) = held_client($gw, 'STOPPED');
ok(wait_log_after($gw, $mark, qr/worker $w2 busy/, 10), 'second worker busy');
kill 'STOP', $w2;
($rc, $text) = release($cpid, $cout, $cin);
is($rc, 2, 'stopped worker: no reply');
ok($gw->wait_log(qr/worker $w2 busy for \d+ s .*killed by the watchdog/, 15), 'watchdog acted');
ok(wait_until(sub { my @w = workers_of($gw); @w == 1 && $w[0] != $w2 }, 10),
   'the pool replaced the hung worker');

my ($w3) = workers_of($gw);
scan_eicar($gw, "RECYCLE$_") for 1 .. 3;
ok(wait_until(sub { my @w = workers_of($gw); @w == 1 && $w[0] != $w3 }, 10),
   'worker recycled after MaxMessagesPerProcess');

my ($w4) = workers_of($gw);
($rc, $text) = $gw->mailgw('reload-bases');
is($rc, 0, 'reload-bases') or diag($text);
ok(wait_until(sub { my @w = workers_of($gw); @w == 1 && $w[0] != $w4 }, 10),
   'reload-bases rotated the workers');
($rc, $text) = scan_eicar($gw, 'AFTERRELOAD');
like($text, qr/^av_status=infected$/m, 'scanning after the rotation');
($rc, $text) = $gw->mailgw('stats');
like($text, qr/antiviral_workers_killed=1\b/, 'stats: one worker killed by the watchdog');
like($text, qr/antiviral_workers_crashed=1\b/, 'stats: one worker crashed');
$gw->stop;

# --- all busy: another worker starts --------------------------------------------------
$gw = start_gw('mailgw.ave.MinWorkers' => 1, 'mailgw.ave.MaxWorkers' => 3);
my @before = workers_of($gw);
is(scalar @before, 1, 'one idle worker');
($cpid, $cout, $cin, $line) = held_client($gw, 'HOLD');
ok(wait_until(sub { workers_of($gw) == 2 }, 10), 'all busy: a second worker started');
($rc, $text) = scan_eicar($gw, 'PARALLEL');
like($text, qr/^av_status=infected$/m, 'the second worker scans while the first is busy');
($rc, $text) = release($cpid, $cout, $cin);
like($text, qr/^av_status=infected$/m, 'the held request completes');
$gw->stop;

# --- no bases at start: tempfail until reload-bases succeeds --------------------------
my $nobases = File::Temp::tempdir('scand-nobases-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $nobases;
$gw = MailgwTest->new(daemons => 'scand', 'options.LogLevel' => 9,
                      raw => "[path]\nBasesPath=$nobases\n");
$gw->start or BAIL_OUT('mailgw did not start');
ok($gw->wait_log(qr/anti-virus bases not loaded: /, 20), 'missing bases logged');
ok($gw->wait_log(qr/worker \d+ started/, 20), 'the pool runs anyway');
open(my $fh, '>', $gw->dir . '/eicar.eml') or die;
print $fh "From: a\@example.test\n\n$EICAR\n";
close $fh;
($rc, $text) = scan_eicar($gw, 'NOBASES');
like($text, qr/^status=tempfail$/m, 'no engine: tempfail');
like($text, qr/^reason=anti-virus bases are not loaded$/m, 'no engine: reason');
system('cp', "$bases/mailgw-eicar.ndb", "$nobases/") == 0 or die;
chmod 0644, "$nobases/mailgw-eicar.ndb";
($rc, $text) = $gw->mailgw('reload-bases');
is($rc, 0, 'reload-bases loads the bases') or diag($text);
ok(wait_until(sub { (scan_eicar($gw, 'LOADED'))[1] =~ /^av_status=infected$/m }, 10),
   'scanning once the bases are there');
$gw->stop;

done_testing();
