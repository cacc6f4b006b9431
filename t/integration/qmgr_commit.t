#!/usr/bin/perl
# qmgr_commit.t - qmgr's commit protocol and start-up recovery, driving
# libexec/qmgr directly as master would: a unix listener on fd 4 (-L 1) and
# a status channel socket pair on fd 3.  The protocol is driven by
# t/helpers/qmgr_client.
#
# Checks: committed files land in incoming/ intact with the Postfix-shaped
# log line; abort and close-without-commit leave nothing; malformed commits
# (no END, garbage, no recipients) and foreign IDs get 451 and leave
# nothing; concurrent commits all succeed; "status" on the status channel
# gives counts; a restart removes tmp/ leftovers and moves a corrupt
# incoming/ file to corrupt/; free space below MinimalQueueFreeSpaceSize
# gives 452.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use Socket qw(AF_UNIX SOCK_STREAM PF_UNSPEC);
use POSIX qw(dup2 WNOHANG _exit);
use Cwd qw(abs_path);
use FindBin;

my $root = abs_path("$FindBin::Bin/../..");
# MAILGW_BUILD as MailgwTest.pm (absolute or relative to the repo), else
# build/, else the queue engineer's build-queue/.
my $B = $ENV{MAILGW_BUILD} || $ENV{B} || 'build';
$B = "$root/$B" unless $B =~ m{^/};
$B = "$root/build-queue" if !-x "$B/libexec/qmgr" && -x "$root/build-queue/libexec/qmgr";
my $qmgr = "$B/libexec/qmgr";
my $client = "$B/t/helpers/qmgr_client";
plan skip_all => "$qmgr or $client not built" unless -x $qmgr && -x $client;

my $dir = tempdir('qmgr_commit.XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{KEEP});
diag("test dir $dir") if $ENV{KEEP};
my $queue = "$dir/queue";
my $log = "$dir/mailgw.log";
my ($user, $uid, $gid) = (scalar getpwuid($<), $<, (getpwuid($<))[3]);
if ($< == 0) {      # as root the daemon drops to User: give it the dir
    ($user, $uid, $gid) = ('nobody', (getpwnam('nobody'))[2, 3]);
    chown $uid, $gid, $dir or die "chown $dir: $!";
}

sub write_conf {
    my (%extra) = @_;
    open my $fh, '>', "$dir/mailgw.conf" or die "$dir/mailgw.conf: $!";
    print $fh <<"EOF";
[mailgw.network]
Hostname = gw.example.test
Postmaster = postmaster\@example.test
ProtectedDomains = example.test
[mailgw.path]
QueuePath = $queue
[mailgw.options]
LogFilename = $log
LogLevel = 9
User = $user
[mailgw.limits]
MinimalQueueFreeSpaceSize = @{[ $extra{minfree} // 0 ]}
EOF
    close $fh;
}

sub log_text {
    open my $fh, '<', $log or return '';
    local $/;
    return <$fh>;
}

# Bounded wait for a condition (no timing assertions: only an upper bound).
sub wait_for {
    my ($cond, $secs) = @_;
    for (1 .. ($secs // 10) * 20) {
        return 1 if $cond->();
        select(undef, undef, undef, 0.05);
    }
    return $cond->();
}

# ---- proto frames (lib/proto/proto.h) for the status channel ----
sub frame {
    my (@attrs) = @_;
    my $body = '';
    while (my ($name, $v) = splice(@attrs, 0, 2)) {
        if ($v =~ /^-?\d+$/) {
            $body .= pack('C n/a* N', 2, $name, 8) . pack('q>', $v);
        } else {
            $body .= pack('C n/a* N/a*', 1, $name, $v);
        }
    }
    return pack('N n', length $body, 0) . $body;
}

my $inbuf = '';     # bytes read from the status channel, not yet framed
sub read_frame {
    my ($sock, $secs) = @_;
    my $rin = '';
    vec($rin, fileno($sock), 1) = 1;
    while (length $inbuf < 6 || length $inbuf < 6 + unpack('N', $inbuf)) {
        return undef unless select(my $r = $rin, undef, undef, $secs);
        my $n = sysread($sock, $inbuf, 65536, length $inbuf);
        return undef unless $n;
    }
    my $buf = $inbuf;
    my ($len) = unpack('N', $buf);
    my $body = substr($buf, 6, $len);
    $inbuf = substr($inbuf, 6 + $len);
    my %m;
    while (length $body) {
        my ($type, $name) = unpack('C n/a*', $body);
        $body = substr($body, 3 + length $name);
        my $v = unpack('N/a*', $body);
        $body = substr($body, 4 + length $v);
        $m{$name} //= $type == 2 ? unpack('q>', $v) : $v;
    }
    return \%m;
}

# ---- qmgr process ----
my ($pid, $chan);

sub start_qmgr {
    my $lsock = "$dir/qmgr.sock";
    unlink $lsock;
    my $listen = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $lsock, Listen => 64)
        or die "listen $lsock: $!";
    socketpair(my $ours, my $theirs, AF_UNIX, SOCK_STREAM, PF_UNSPEC) or die "socketpair: $!";
    $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $ours;
        # via fds out of the way: the originals may sit on 3 or 4 already
        my ($t, $l) = (fileno($theirs), fileno($listen));
        dup2($t, 20) // _exit(126);
        dup2($l, 21) // _exit(126);
        dup2(20, 3) // _exit(126);
        dup2(21, 4) // _exit(126);
        POSIX::close($_) for 20, 21;
        open STDIN, '<', '/dev/null';
        exec $qmgr, '-c', "$dir/mailgw.conf", '-L', '1' or _exit(127);
    }
    close $theirs;
    close $listen;
    $chan = $ours;
    $inbuf = '';
    my $hb = read_frame($chan, 10);
    ok($hb && ($hb->{op} // '') eq 'heartbeat', 'qmgr up: first heartbeat on the status channel');
    return $lsock;
}

sub stop_qmgr {
    kill 'TERM', $pid;
    my $done = wait_for(sub { waitpid($pid, WNOHANG) == $pid }, 10);
    my $status = $?;
    ok($done && $status == 0, 'qmgr stops on SIGTERM with status 0');
    kill 'KILL', $pid unless $done;
    close $chan;
}

sub run_client {
    my ($sock, @cmds) = @_;
    open my $fh, '-|', $client, $sock, @cmds or die "$client: $!";
    my @out = <$fh>;
    close $fh;
    chomp @out;
    return @out;
}

sub files_in {
    my ($d) = @_;
    opendir my $dh, "$queue/$d" or return ();
    return sort grep { !/^\.\.?$/ } readdir $dh;
}

# ---- first run ----
write_conf();
my $sock = start_qmgr();
ok(-d "$queue/$_", "queue dir $_ created") for qw(tmp incoming active deferred hold corrupt);

my @out = run_client($sock, 'new', 'write', 'good:5:300000', 'commit');
my ($id) = ($out[0] // '') =~ /^new ok (\w+)$/;
ok($id, "new gives an ID") or diag "@out";
is($out[2], "commit ok $id", 'commit acknowledged with the ID');
ok(-f "$queue/incoming/$id", 'committed file is in incoming/');
ok(!-e "$queue/tmp/$id", 'and no longer in tmp/');
my ($check) = run_client($sock, 'check', "$queue/incoming/$id");
is($check, 'check ok nrcpt=5 size=300000 content=match', 'committed file intact');
like(log_text(), qr/\Q$id\E: from=<sender\@example\.org>, size=300000, nrcpt=5 \(queue active\)/,
    'Postfix-shaped log line');

@out = run_client($sock, 'new', 'write', 'good', 'abort');
($id) = $out[0] =~ /^new ok (\w+)$/;
is($out[2], 'abort ok', 'abort answered');
ok(!-e "$queue/tmp/$id" && !-e "$queue/incoming/$id", 'aborted file gone');

@out = run_client($sock, 'new', 'write', 'good', 'close');
($id) = $out[0] =~ /^new ok (\w+)$/;
ok(wait_for(sub { !-e "$queue/tmp/$id" }), 'file of a connection closed without commit removed');
ok(!-e "$queue/incoming/$id", 'and never committed');

for my $mode (qw(noend garbage norcpt)) {
    @out = run_client($sock, 'new', 'write', $mode, 'commit');
    ($id) = $out[0] =~ /^new ok (\w+)$/;
    like($out[2], qr/^commit error 451 /, "malformed commit ($mode) gets 451: $out[2]");
    ok(!-e "$queue/tmp/$id" && !-e "$queue/incoming/$id", "malformed commit ($mode) leaves nothing");
}

@out = run_client($sock, 'new', 'commit-id', '../../../etc/passwd', 'commit-id', '1xX3GX1DJ4jxOF');
like($out[1], qr/^commit error 451 /, 'commit of a path-like ID refused');
like($out[2], qr/^commit error 451 /, 'commit of an ID not handed to this connection refused');

# an ID another connection holds: the second client must not commit it
{
    open my $holder, '-|', $client, $sock, 'new', 'write', 'good', 'pause', '1500'
        or die "$client: $!";
    my $first = <$holder>;
    my ($held) = ($first // '') =~ /^new ok (\w+)/;
    my @o = run_client($sock, 'commit-id', $held // 'x');
    like($o[0], qr/^commit error 451 /, "another connection's ID refused");
    close $holder;
    ok(wait_for(sub { !-e "$queue/tmp/$held" }), 'its file goes when its owner closes') if $held;
}

@out = run_client($sock, 'op', 'bogus', 'new', 'abort');
like($out[0], qr/^op error 451 /, 'unknown request answered with 451');
like($out[1], qr/^new ok /, 'connection still usable after it');

my $before = () = files_in('incoming');
@out = run_client($sock, 'batch', '20');
is($out[-1], 'batch ok 20', '20 concurrent commits all acknowledged');
is(scalar(() = files_in('incoming')), $before + 20, 'and all 20 are in incoming/');
my @batches = log_text() =~ /commit batch of (\d+)/g;
diag('commit batches: ' . join(',', @batches));
is(scalar(my @t = files_in('tmp')), 0, 'tmp/ empty after all of that');

syswrite($chan, frame(op => 'status', reqid => 7));
my $st;
for (1 .. 5) {      # skip heartbeats
    $st = read_frame($chan, 10);
    last if !$st || ($st->{op} // '') eq 'reply';
}
is($st && $st->{reqid}, 7, 'status answered on the status channel');
is($st && $st->{incoming}, $before + 20, 'status counts incoming/');
is($st && $st->{corrupt}, 0, 'status counts corrupt/');
syswrite($chan, frame(op => 'stats', reqid => 8));
for (1 .. 5) {
    $st = read_frame($chan, 10);
    last if !$st || ($st->{op} // '') eq 'reply';
}
is($st && $st->{reqid}, 8, 'stats (what master relays) answered');
is($st && $st->{incoming}, $before + 20, 'with the same counts');
syswrite($chan, frame(op => 'send-off', reqid => 9));
syswrite($chan, frame(op => 'stats', reqid => 10));
for (1 .. 5) {
    $st = read_frame($chan, 10);
    last if !$st || (($st->{op} // '') eq 'reply' && $st->{reqid} == 10);
}
is($st && $st->{send}, 'off', 'send-off recorded');
stop_qmgr();

# ---- restart: tmp leftovers, a corrupt incoming file ----
my @incoming = files_in('incoming');
my $victim = $incoming[0];
{
    open my $fh, '+<', "$queue/incoming/$victim" or die "$victim: $!";
    truncate $fh, 100;
    close $fh;
    open $fh, '>', "$queue/tmp/1xX3GX1DJ4jxOF" or die;
    print $fh "leftover";
    close $fh;
    open $fh, '>', "$queue/tmp/.new-1-2" or die;
    close $fh;
    chown $uid, $gid, "$queue/tmp/1xX3GX1DJ4jxOF", "$queue/tmp/.new-1-2";
}
$sock = start_qmgr();
is(scalar(my @t2 = files_in('tmp')), 0, 'restart removed every tmp/ file');
ok(-f "$queue/corrupt/$victim" && !-e "$queue/incoming/$victim", 'truncated incoming file moved to corrupt/');
like(log_text(), qr/\Q$victim\E: malformed queue file incoming\/\Q$victim\E \(.+\): moved to corrupt\//,
    'corrupt move logged with the reason');
is(scalar(my @i = files_in('incoming')), @incoming - 1, 'the valid files stay in incoming/');
stop_qmgr();

# ---- free space guard ----
my $avail_mb = `df -Pm "$queue" | awk 'NR==2 {print \$4}'`;
chomp $avail_mb;
SKIP: {
    skip "queue file system has more than 1000000 MB free", 2 unless $avail_mb =~ /^\d+$/ && $avail_mb < 900000;
    write_conf(minfree => '1000000');
    $sock = start_qmgr();
    @out = run_client($sock, 'new');
    like($out[0], qr/^new error 452 4\.3\.1/, 'below MinimalQueueFreeSpaceSize: 452 4.3.1');
    stop_qmgr();
}

done_testing();
