#!/usr/bin/perl
# master_chroot.t - smtpd and smtp confined (DESIGN §2, lib/server
# server_drop(SERVER_CHROOT)): as root they run chrooted to QueuePath/private as
# User, with the TLS key (mode 0600, root's) loaded before the drop; mail
# still flows swaks -> smtpd -> qmgr -> smtp -> smtp-sink, STARTTLS works,
# a rotated log file reaches the chrooted daemons (SIGUSR1: master passes
# the new file), and `mailgw reload` restarts them (a new certificate is
# served).  Not root: the same mail and TLS checks, the chroot checks are
# skipped.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Cwd qw(abs_path);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use MailgwTest;

my $sinkbin = '/usr/sbin/smtp-sink';
plan skip_all => 'build first'
    unless -x MailgwTest::bin('mailgw') && -x MailgwTest::libexec('master')
    && -x MailgwTest::libexec('smtpd') && -x MailgwTest::libexec('smtp')
    && -x MailgwTest::libexec('qmgr');
plan skip_all => 'needs swaks, openssl and smtp-sink'
    unless -x '/usr/bin/swaks' && -x '/usr/bin/openssl' && -x $sinkbin;

my $root = $> == 0;

sub make_cert {
    my ($dir, $cn) = @_;
    system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=$cn "
           . "-keyout $dir/key.new -out $dir/cert.new >/dev/null 2>&1") == 0 or die "openssl";
    chmod 0600, "$dir/key.new";     # only root reads it: loaded before the drop
    rename("$dir/key.new", "$dir/key.pem") && rename("$dir/cert.new", "$dir/cert.pem")
        or die "rename: $!";
}

sub slurp { open(my $fh, '<', $_[0]) or return ''; local $/; return <$fh> // '' }

sub wait_file {
    my ($path, $re, $seconds) = @_;
    for (1 .. $seconds * 10) {
        return 1 if slurp($path) =~ $re;
        sleep 0.1;
    }
    return 0;
}

# swaks; returns (exit status, transcript)
sub swaks {
    my ($port, @extra) = @_;
    my $cmd = join(' ', '/usr/bin/swaks', '--server', "127.0.0.1:$port", '--timeout', '20',
                   '--from', 'sender@outside.test', '--to', 'user@example.test',
                   '--helo', 'client.test', @extra);
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

sub queued_id { my ($out) = @_; return $out =~ /250 2\.0\.0 Ok: queued as (\S+)/ ? $1 : undef }

# The CN of the certificate the server presents after STARTTLS.
sub served_cn {
    my ($port) = @_;
    my $out = `echo QUIT | timeout 20 openssl s_client -starttls smtp -connect 127.0.0.1:$port 2>/dev/null`;
    return $out =~ /subject=\s*CN\s*=\s*(\S+)/ ? $1 : '';
}

# A daemon confines itself after its set-up: wait (bounded) until it has.
sub proc_root {
    my ($pid, $want) = @_;
    my $r = '';
    for (1 .. 100) {
        $r = readlink("/proc/$pid/root") // '';
        last if $r eq $want;
        sleep 0.1;
    }
    return $r;
}

sub proc_ids {
    my ($pid) = @_;
    my $st = slurp("/proc/$pid/status");
    my ($uid) = $st =~ /^Uid:\s+(\d+\s+\d+\s+\d+\s+\d+)/m;
    return $uid // '';
}

my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp');
my $dir = $gw->dir;
make_cert($dir, 'first.example.test');
$gw->set('mailgw.tls.CertificateFile' => "$dir/cert.pem", 'mailgw.tls.KeyFile' => "$dir/key.pem",
         'mailgw.tls.OfferStartTLS' => 'yes');
$gw->write_config;

my $sink = fork // die "fork: $!";
if (!$sink) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    exec $sinkbin, ($root ? ('-u', 'nobody') : ()), '127.0.0.1:' . $gw->sink_port, 50;
    exit 127;
}
for (1 .. 100) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $gw->sink_port,
                                  Timeout => 1);
    if ($c) { close $c; last }
    sleep 0.05;
}

ok($gw->start(foreground => 0), 'mailgw started (daemon, LogFilename)') or BAIL_OUT('no start');
my $st = $gw->status;
my $qdir = abs_path($gw->queue_dir) . '/private';   # only the sockets are reachable

SKIP: {
    skip 'chroot needs root', 7 unless $root;
    my $nobody = (getpwnam('nobody'))[2];
    for my $d (qw(smtpd smtp)) {
        my $pid = $st->{$d}{pid};
        is(proc_root($pid, $qdir), $qdir, "$d runs chrooted to QueuePath/private");
        is(proc_ids($pid), join("\t", ($nobody) x 4), "$d runs as User (real, effective, saved)");
    }
    is(readlink("/proc/$st->{qmgr}{pid}/root"), '/', 'qmgr is not chrooted (it owns the queue)');
    is((stat("$dir/key.pem"))[2] & 0777, 0600, 'the TLS key is readable by root only');
    unlike($gw->log_text, qr/MAILGW_NO_CHROOT/, 'no chroot override in effect');
}

# --- mail flows end to end, with STARTTLS
my ($rc, $out) = swaks($gw->port, '--tls');
is($rc, 0, 'swaks with STARTTLS: accepted') or diag $out;
like($out, qr/TLS started/i, 'STARTTLS negotiated');
my $id = queued_id($out) // 'none';
ok($gw->wait_log(qr/\Q$id\E: to=<user\@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+,.* status=sent/, 30),
   'delivered to the sink by the chrooted smtp') or diag $gw->log_text;
is(served_cn($gw->port), 'first.example.test', 'the configured certificate is served');

# --- log rotation reaches the chrooted daemons
my $log = $gw->log_path;
ok(rename($log, "$log.1"), 'log renamed');
ok(kill('USR1', $gw->master_pid), 'SIGUSR1 to master');
ok(wait_file($log, qr/log files reopened/, 10), 'master reopened its log');
($rc, $out) = swaks($gw->port);
$id = queued_id($out) // 'none';
ok(wait_file($log, qr/mailgw\/smtpd\[\d+\]: \Q$id\E: client=/, 10),
   'smtpd logs into the new file');
ok(wait_file($log, qr/mailgw\/smtp\[\d+\]: \Q$id\E: to=<user\@example\.test>.* status=sent/, 30),
   'smtp logs into the new file');
unlike(slurp("$log.1"), qr/\Q$id\E/, 'nothing about it in the renamed file');

# --- reload: new daemons (still confined) and the new certificate
make_cert($dir, 'second.example.test');
($rc, $out) = $gw->mailgw('reload');
is($rc, 0, 'mailgw reload') or diag $out;
my $st2;
for (1 .. 100) {
    $st2 = $gw->status;
    last if $st2 && $st2->{smtpd}{pid} && $st2->{smtpd}{pid} != $st->{smtpd}{pid}
        && $st2->{smtp}{pid} && $st2->{smtp}{pid} != $st->{smtp}{pid};
    sleep 0.1;
}
isnt($st2->{smtpd}{pid}, $st->{smtpd}{pid}, 'a new smtpd after the reload');
SKIP: {
    skip 'chroot needs root', 2 unless $root;
    is(proc_root($st2->{$_}{pid}, $qdir), $qdir, "the new $_ is chrooted too") for qw(smtpd smtp);
}
my $cn = '';
for (1 .. 50) { $cn = served_cn($gw->port); last if $cn eq 'second.example.test'; sleep 0.2 }
is($cn, 'second.example.test', 'the new certificate is served after the reload');
($rc, $out) = swaks($gw->port, '--tls');
$id = queued_id($out) // 'none';
ok($gw->wait_log(qr/\Q$id\E: to=<user\@example\.test>.* status=sent/, 30),
   'mail still flows after the reload');
unlike($gw->log_text . slurp("$log.1"), qr/fatal|panic|killed by signal/,
       'no daemon died');

$gw->stop;
kill 'KILL', $sink;
waitpid($sink, 0);
done_testing;
