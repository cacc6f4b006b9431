#!/usr/bin/perl
# smtpd: the SMTP receiver through the real master and qmgr, driven by
# swaks, Python's smtplib, smtp-source and raw sockets: commands,
# extensions (PIPELINING, SIZE, DSN, SMTPUTF8, CHUNKING, STARTTLS), the
# queue file contents, SMTP smuggling, synchronization errors, and the
# END + fsync of queue files on worker threads (an LD_PRELOAD shim holds
# fsync: other sessions are served meanwhile, fsyncs run in parallel).
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use File::Find;
use File::Temp qw(tempdir);
use lib 't/lib';
use MailgwTest;

sub have { my ($p) = @_; return -x $p || grep { -x "$_/$p" } split /:/, $ENV{PATH} }
plan skip_all => 'smtpd not built' unless -x MailgwTest::libexec('smtpd');
plan skip_all => 'swaks missing' unless have('swaks');

my $gw = MailgwTest->new(daemons => 'qmgr,smtpd');
my $dir = $gw->dir;
# A test certificate for STARTTLS.
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=gw.example.test "
       . "-keyout $dir/key.pem -out $dir/cert.pem >/dev/null 2>&1") == 0 or die "openssl";
chmod 0644, "$dir/key.pem", "$dir/cert.pem";
$gw->set('mailgw.tls.CertificateFile' => "$dir/cert.pem", 'mailgw.tls.KeyFile' => "$dir/key.pem");
$gw->write_config;
$gw->start or BAIL_OUT("mailgw did not start:\n" . $gw->log_text);
my $port = $gw->port;

# ---- a raw client ----
sub conn {    # optional: another gateway's port
    my ($p) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p // $port, Timeout => 10)
        or die "connect: $!";
    binmode $s;
    my $c = { s => $s, buf => '' };
    $c->{greeting} = reply($c);
    return $c;
}
sub reply {    # one complete (multi-line) reply, '' on EOF/timeout
    my ($c, $timeout) = @_;
    my $sel = IO::Select->new($c->{s});
    my $deadline = time + ($timeout // 10);
    while (1) {
        while ($c->{buf} =~ /\A((?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n)/) {
            my $r = $1;
            substr($c->{buf}, 0, length $r) = '';
            return $r;
        }
        my $left = $deadline - time;
        return '' if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($c->{s}, my $chunk, 65536);
        return '' unless $n;
        $c->{buf} .= $chunk;
    }
}
sub send_raw { my ($c, $t) = @_; syswrite($c->{s}, $t); }
sub cmd { my ($c, $line) = @_; send_raw($c, "$line\r\n"); return reply($c); }
sub closed { my ($c) = @_; return reply($c, 5) eq '' }

sub queue_files {
    my @f;
    find(sub { push @f, $File::Find::name if -f $_ && $File::Find::dir !~ m{/(pid|private|public|tmp)$} },
         $gw->queue_dir);
    return @f;
}
sub qfile {
    my ($id) = @_;
    for (1 .. 50) {
        my ($f) = grep { m{/\Q$id\E$} } queue_files();
        return $f if $f;
        select(undef, undef, undef, 0.1);
    }
    return undef;
}
sub dump_id {
    my ($id) = @_;
    my $f = qfile($id) or return '';
    return scalar `@{[MailgwTest::helper('smtpd_qdump')]} $f 2>&1`;
}
sub queued_id { my ($r) = @_; return $r =~ /^250 2\.0\.0 Ok: queued as (\w+)/ ? $1 : undef }
sub committed { my $n = () = $gw->log_text =~ /\(queue active\)/g; return $n }

# ---- swaks: the basic path ----
my $out = `swaks --server 127.0.0.1:$port --from a\@b.test --to user\@example.test --helo client.test --header 'Message-ID: <m1\@client.test>' 2>&1`;
like($out, qr/<-  250 2\.0\.0 Ok: queued as (\w+)/, 'swaks: message queued');
my ($id) = $out =~ /queued as (\w+)/;
ok($gw->wait_log(qr/\Q$id\E: client=unknown\[127\.0\.0\.1\]/, 5), 'log: ID: client=NAME[IP]');
ok($gw->wait_log(qr/\Q$id\E: message-id=<[^>\s]+>/, 5), 'log: ID: message-id=<...>');
ok($gw->wait_log(qr/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5/, 5),
   'log: Postfix-style disconnect line');
my $d = dump_id($id);
like($d, qr/^sender=a\@b\.test$/m, 'queue file: sender');
like($d, qr/^rcpt=user\@example\.test notify=0 orcpt=\(none\)$/m, 'queue file: recipient');
like($d, qr/^helo=client\.test$/m, 'queue file: HELO');
like($d, qr/^proto=ESMTP$/m, 'queue file: proto');
like($d, qr/content:\nReceived: from client\.test \(unknown \[127\.0\.0\.1\]\)\r\n\tby gw\.example\.test \(mailgw\) with ESMTP id \Q$id\E\r\n\tfor <user\@example\.test>; /,
     'Received: header first in the content');
like($d, qr/This is a test mailing\r\n/, 'content stored with CRLF');

# ---- commands ----
my $c = conn();
like($c->{greeting}, qr/^220 gw\.example\.test ESMTP/, 'greeting');
like(cmd($c, 'MAIL FROM:<a@b.test>'), qr/^503 5\.5\.1/, 'MAIL before EHLO: 503');
my $ehlo = cmd($c, 'EHLO client.test');
for my $ext (qw(PIPELINING SIZE STARTTLS ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8 CHUNKING)) {
    like($ehlo, qr/^250[- ]$ext\b/m, "EHLO advertises $ext");
}
like(cmd($c, 'NOOP'), qr/^250 2\.0\.0/, 'NOOP');
like(cmd($c, 'VRFY someone'), qr/^252 2\.0\.0/, 'VRFY 252');
like(cmd($c, 'EXPN list'), qr/^502 5\.5\.1/, 'EXPN 502');
like(cmd($c, 'HELP'), qr/^214 2\.0\.0/, 'HELP');
like(cmd($c, 'FOO'), qr/^502 5\.5\.2/, 'unknown command');
like(cmd($c, 'RCPT TO:<x@example.test>'), qr/^503 5\.5\.1/, 'RCPT before MAIL: 503');
like(cmd($c, 'DATA'), qr/^503 5\.5\.1/, 'DATA before MAIL: 503');
like(cmd($c, 'MAIL FROM:<bad address@b>'), qr/^501 5\.1\.7/, 'bad sender syntax: 501 5.1.7');
like(cmd($c, 'MAIL FROM:<a@b.test> FOO=1'), qr/^555 5\.5\.4/, 'unknown MAIL parameter: 555');
like(cmd($c, 'MAIL FROM:<a@b.test>'), qr/^250 2\.1\.0/, 'MAIL');
like(cmd($c, 'MAIL FROM:<a@b.test>'), qr/^503 5\.5\.1/, 'nested MAIL: 503');
like(cmd($c, 'RCPT TO:<>'), qr/^501 5\.1\.3/, 'null recipient: 501');
like(cmd($c, 'DATA'), qr/^554 5\.5\.1/, 'DATA without recipients: 554');
like(cmd($c, 'RSET'), qr/^250 2\.0\.0/, 'RSET');
send_raw($c, "NOOP\n");
like(reply($c), qr/^500 5\.5\.2 Error: bare <LF>/, 'bare LF in a command: 500 5.5.2');
send_raw($c, 'NOOP ' . ('x' x 3000) . "\r\n");
like(reply($c), qr/^500 5\.5\.2 Error: line too long/, 'over-long command line: 500 5.5.2');
like(cmd($c, 'NOOP'), qr/^250/, 'session goes on after the long line');
like(cmd($c, 'QUIT'), qr/^221 2\.0\.0/, 'QUIT');
ok(closed($c), 'closed after QUIT');

# ---- DSN parameters stored in the envelope ----
$c = conn();
cmd($c, 'EHLO client.test');
like(cmd($c, 'MAIL FROM:<a@b.test> RET=HDRS ENVID=env+2Bid SIZE=100 BODY=8BITMIME'), qr/^250/, 'MAIL with DSN params');
like(cmd($c, 'RCPT TO:<u1@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u1+40orig.test'), qr/^250/, 'RCPT with NOTIFY/ORCPT');
like(cmd($c, 'RCPT TO:<u2@example.test> NOTIFY=NEVER'), qr/^250/, 'RCPT NOTIFY=NEVER');
like(cmd($c, 'DATA'), qr/^354/, 'DATA 354');
my $r = cmd($c, "Subject: dsn\r\n\r\n..dotted\r\n.");
$id = queued_id($r);
ok($id, 'DSN message queued') or diag $r;
$d = dump_id($id // 'none');
like($d, qr/^envid=env\+2Bid$/m, 'ENVID stored (xtext)');
like($d, qr/^ret=2$/m, 'RET=HDRS stored');
like($d, qr/^body=2$/m, 'BODY=8BITMIME stored');
like($d, qr/^rcpt=u1\@example\.test notify=6 orcpt=rfc822;u1\@orig\.test$/m, 'NOTIFY and ORCPT stored (xtext, canonical)');
like($d, qr/^rcpt=u2\@example\.test notify=1 /m, 'NOTIFY=NEVER stored');
like($d, qr/\r\n\.dotted\r\n/, 'dot-unstuffed content');
unlike($d, qr/for <u1/, 'no "for" clause with two recipients');
cmd($c, 'QUIT');

# ---- SMTPUTF8 ----
$c = conn();
cmd($c, 'EHLO client.test');
like(cmd($c, "MAIL FROM:<j\xc3\xb6rg\@b.test>"), qr/^553 5\.6\.7/, 'UTF-8 sender without SMTPUTF8: 553');
like(cmd($c, "MAIL FROM:<j\xc3\xb6rg\@b.test> SMTPUTF8"), qr/^250/, 'UTF-8 sender with SMTPUTF8');
like(cmd($c, "RCPT TO:<\xc3\xbcser\@example.test>"), qr/^250/, 'UTF-8 recipient');
cmd($c, 'DATA');
$id = queued_id(cmd($c, "Subject: utf8\r\n\r\nhi\r\n."));
$d = dump_id($id // 'none');
like($d, qr/^smtputf8=1$/m, 'SMTPUTF8 flag stored');
like($d, qr/^proto=UTF8SMTP$/m, 'proto UTF8SMTP');
like($d, qr/^rcpt=\xc3\xbcser\@example\.test /m, 'UTF-8 recipient stored');
cmd($c, 'QUIT');

# ---- PIPELINING ----
$c = conn();
cmd($c, 'EHLO client.test');
send_raw($c, "MAIL FROM:<a\@b.test>\r\nRCPT TO:<p1\@example.test>\r\nRCPT TO:<p2\@example.test>\r\nDATA\r\n");
my @r = map { reply($c) } 1 .. 4;
ok($r[0] =~ /^250/ && $r[1] =~ /^250/ && $r[2] =~ /^250/ && $r[3] =~ /^354/, 'pipelined MAIL RCPT RCPT DATA')
    or diag "@r";
send_raw($c, "Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\n");
like(reply($c), qr/^250 2\.0\.0 Ok: queued/, 'message after pipelined group');
like(reply($c), qr/^250 2\.0\.0 Ok/, 'command pipelined after the final dot');
cmd($c, 'QUIT');

$c = conn();
send_raw($c, "EHLO client.test\r\nMAIL FROM:<a\@b.test>\r\n");
like(reply($c), qr/^554 5\.5\.0 Error: SMTP protocol synchronization/, 'command pipelined after EHLO: 554 5.5.0');
ok(closed($c), 'closed after a synchronization error');
ok($gw->wait_log(qr/improper command pipelining after EHLO from unknown\[127\.0\.0\.1\]: MAIL FROM/, 5),
   'log: improper command pipelining');

# ---- CHUNKING / BDAT ----
$c = conn();
cmd($c, 'EHLO client.test');
send_raw($c, "BDAT 5\r\nabcde");
like(reply($c), qr/^503 5\.5\.1/, 'BDAT without MAIL: chunk read, 503');
like(cmd($c, 'NOOP'), qr/^250/, 'BDAT chunk was consumed, not taken as commands');
cmd($c, 'MAIL FROM:<a@b.test>');
cmd($c, 'RCPT TO:<b1@example.test>');
my $msg = "Subject: bdat\r\n\r\nline one\r\n.\r\nline two\r\n";
send_raw($c, "BDAT 10\r\n" . substr($msg, 0, 10) . "BDAT " . (length($msg) - 10) . "\r\n" . substr($msg, 10));
like(reply($c), qr/^250 2\.0\.0 Ok: 10 octets/, 'first chunk');
like(reply($c), qr/^250 2\.0\.0 Ok/, 'second chunk');
like(cmd($c, 'DATA'), qr/^503 5\.5\.1/, 'DATA during a BDAT transfer: 503');
send_raw($c, "BDAT 0 LAST\r\n");
$id = queued_id(reply($c));
ok($id, 'BDAT 0 LAST ends the message');
like(dump_id($id // 'none'), qr/\r\n\r\nline one\r\n\.\r\nline two\r\n$/, 'BDAT content raw (no unstuffing)');
cmd($c, 'MAIL FROM:<a@b.test>');
cmd($c, 'RCPT TO:<b2@example.test>');
send_raw($c, "BDAT 12 LAST\r\nSubject: x\r\n");
ok(queued_id(reply($c)), 'single BDAT LAST chunk');
cmd($c, 'QUIT');

# ---- SMTP smuggling: no variant may end data or queue a second message ----
my @variants = ("\n.\n", "\n.\r\n", "\r.\n", "\r.\r\n", "\r\n.\r", "\r\n.\n",
                "\r\n\0.\r\n", "\r\n.\0\r\n", "\n\0.\n");
my $before = committed();
for my $v (@variants) {
    (my $name = $v) =~ s/\r/\\r/g; $name =~ s/\n/\\n/g; $name =~ s/\0/\\0/g;
    $c = conn();
    cmd($c, 'EHLO client.test');
    cmd($c, 'MAIL FROM:<a@b.test>');
    cmd($c, 'RCPT TO:<s1@example.test>');
    cmd($c, 'DATA');
    send_raw($c, "Subject: first\r\n\r\nhello" . $v
             . "MAIL FROM:<evil\@b.test>\r\nRCPT TO:<victim\@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx"
             . "\r\n.\r\n");
    my $rr = reply($c);
    like($rr, qr/^550 5\.5\.2 /, "smuggling $name: refused with 550 5.5.2");
    like(cmd($c, 'NOOP'), qr/^250/, "smuggling $name: exactly one reply for the whole input");
    cmd($c, 'QUIT');
}
# The pipelining variant: DATA and the text in one write, before the 354.
$c = conn();
cmd($c, 'EHLO client.test');
cmd($c, 'MAIL FROM:<a@b.test>');
cmd($c, 'RCPT TO:<s1@example.test>');
send_raw($c, "DATA\r\nSubject: x\r\n\r\nx\r\n.\r\nMAIL FROM:<evil\@b.test>\r\nRCPT TO:<v\@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n");
like(reply($c), qr/^554 5\.5\.0/, 'DATA with the text pipelined: synchronization error');
select(undef, undef, undef, 0.5);
is(committed(), $before, 'no smuggling variant queued any message');
unlike($gw->log_text, qr/from=<evil\@b\.test>/, 'the smuggled sender never got through');

# ---- STARTTLS (Python smtplib) ----
my $py = <<'PY';
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)
s.ehlo('client.test')
code, _ = s.starttls(context=ctx)
print('starttls', code)
s.ehlo('client.test')
print('has_starttls_after', s.has_extn('starttls'))
s.sendmail('a@b.test', ['t@example.test'], 'Subject: tls\r\n\r\nsecret\r\n')
print('sent')
s.quit()
PY
open(my $pf, '>', "$dir/tls.py") or die; print $pf $py; close $pf;
my $pyout = `/usr/bin/python3 $dir/tls.py $port 2>&1`;
like($pyout, qr/starttls 220/, 'smtplib: STARTTLS 220');
like($pyout, qr/has_starttls_after False/, 'STARTTLS not offered again inside TLS');
like($pyout, qr/sent/, 'smtplib: message sent over TLS') or diag $pyout;
ok($gw->wait_log(qr/Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.[23] with cipher/, 5),
   'log: TLS connection established');
my @ids = $gw->log_text =~ /(\w+): client=/g;
$d = dump_id($ids[-1]);
like($d, qr/^proto=ESMTPS$/m, 'proto ESMTPS');
like($d, qr/^tls=TLSv1\.[23] with cipher \S+ \(\d+\/\d+ bits\)$/m, 'TLS details in the envelope');
like($d, qr/\t\(using TLSv1\.[23] with cipher /, 'TLS details in Received:');

$c = conn();
cmd($c, 'EHLO client.test');
send_raw($c, "STARTTLS\r\nNOOP\r\n");
like(reply($c), qr/^220 2\.0\.0/, 'STARTTLS with a pipelined command: 220');
is(reply($c, 2), '', 'the pipelined command gets no answer');
close $c->{s};

# ---- smtp-source ----
SKIP: {
    skip 'smtp-source missing', 1 unless -x '/usr/sbin/smtp-source';
    my $n0 = committed();
    system("/usr/sbin/smtp-source -s 4 -m 40 -f src\@b.test -t dst\@example.test 127.0.0.1:$port >/dev/null 2>&1");
    for (1 .. 50) { last if committed() >= $n0 + 40; select(undef, undef, undef, 0.1) }
    is(committed() - $n0, 40, 'smtp-source: 40 messages over 4 sessions committed');
}

# ---- recv-off / recv-on ----
my ($rc, $o) = $gw->mailgw('recv-off');
SKIP: {
    skip "mailgw recv-off not available: $o", 2 if $rc != 0;
    my $cc;
    for (1 .. 20) { $cc = conn(); last if $cc->{greeting} =~ /^421/; select(undef, undef, undef, 0.2) }
    like($cc->{greeting}, qr/^421 4\.3\.2/, 'recv-off: 421 4.3.2 to new connections');
    $gw->mailgw('recv-on');
    for (1 .. 20) { $cc = conn(); last if $cc->{greeting} =~ /^220/; select(undef, undef, undef, 0.2) }
    like($cc->{greeting}, qr/^220/, 'recv-on: greeting again');
}

$gw->stop;

# ---- END + fsync off the event loop (smtpd/smtpd_fsync.c) ----
# A shim (LD_PRELOAD, smtpd only) holds fsync of regular files while
# HOLD_DIR/hold exists (at most 60 s) and appends one byte to HOLD_DIR/held
# per held fsync; while HOLD_DIR/fail exists, fsync fails with EIO.  Two
# sessions end their DATA: both fsyncs must be held at the same time
# (worker threads), a third session must still be served (the loop does
# not wait), and 250 must come only after the release.  A failed fsync
# must give 451 and queue nothing.
my $shim = <<'EOF';
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_smtpd(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *b;

    if (n <= 0)
        return 0;
    exe[n] = 0;
    b = strrchr(exe, '/');
    return strcmp(b ? b + 1 : exe, "smtpd") == 0;
}

int fsync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    const char *dir = getenv("FSYNC_HOLD_DIR");
    char hold[4096], held[4096], fail[4096];
    struct stat st;

    if (dir && is_smtpd() && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(hold, sizeof hold, "%s/hold", dir);
        snprintf(held, sizeof held, "%s/held", dir);
        snprintf(fail, sizeof fail, "%s/fail", dir);
        if (access(fail, F_OK) == 0) {
            errno = EIO;
            return -1;
        }
        if (access(hold, F_OK) == 0) {
            int f = open(held, O_WRONLY | O_APPEND | O_CREAT, 0666);
            if (f >= 0) {
                (void)!write(f, "x", 1);
                close(f);
            }
            for (int i = 0; i < 1200 && access(hold, F_OK) == 0; i++)
                usleep(50000);
        }
    }
    return real(fd);
}
EOF
SKIP: {
    local $SIG{PIPE} = 'IGNORE';    # a failing smtpd may close on us
    my $td = tempdir('smtpd-fsync-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $td;
    mkdir "$td/h" or die "$td/h: $!";
    chmod 0777, "$td/h";
    open my $fh, '>', "$td/shim.c" or die "$td/shim.c: $!";
    print $fh $shim;
    close $fh;
    my $cc = $ENV{CC} // 'cc';
    skip 'no C compiler for the fsync shim', 15
        if system("$cc -shared -fPIC -o $td/shim.so $td/shim.c -ldl >/dev/null 2>&1") != 0;
    chmod 0755, "$td/shim.so";
    # verify_asan_link_order=0: a sanitizer build accepts the preload too.
    my $fg = MailgwTest->new(daemons => 'qmgr,smtpd',
                             # the shim's files and /proc are outside smtpd's chroot
                             env => { LD_PRELOAD => "$td/shim.so", FSYNC_HOLD_DIR => "$td/h",
                                      MAILGW_NO_CHROOT => 1,
                                      ASAN_OPTIONS => 'verify_asan_link_order=0' });
    if (!$fg->start) {
        diag $fg->log_text;
        skip 'the gateway does not start with the LD_PRELOAD shim', 15;
    }
    my $fp = $fg->port;
    my @a = map { conn($fp) } 1 .. 2;
    my $b = conn($fp);
    for my $n (1, 2) {
        cmd($a[$n - 1], 'EHLO client.test');
        cmd($a[$n - 1], "MAIL FROM:<a$n\@b.test>");
        cmd($a[$n - 1], 'RCPT TO:<user@example.test>');
        cmd($a[$n - 1], 'DATA');
    }
    open $fh, '>', "$td/h/hold" or die "$td/h/hold: $!";
    close $fh;
    send_raw($a[$_ - 1], "Subject: fsync $_\r\n\r\nbody\r\n.\r\n") for 1, 2;
    for (1 .. 100) { last if (-s "$td/h/held" // 0) >= 2; select(undef, undef, undef, 0.1) }
    is(-s "$td/h/held" // 0, 2, 'two sessions\' fsyncs run at the same time (worker threads)');
    like(cmd($b, 'EHLO other.test'), qr/^250-/, 'another session is served while fsyncs are held');
    like(cmd($b, 'NOOP'), qr/^250 /, '... (NOOP)');
    like(conn($fp)->{greeting}, qr/^220 /, '... and a new one greeted');
    is(reply($a[0], 1), '', 'no reply to the end of DATA before the fsync is done');
    unlink "$td/h/hold";
    my @ids = map { queued_id(reply($_, 30)) } @a;
    ok(defined $ids[0] && defined $ids[1], 'both messages queued once the fsyncs complete');
    my ($i1, $i2) = map { $_ // 'none' } @ids;
    ok($fg->wait_log(qr/\Q$i1\E: from=<a1\@b\.test>.*\(queue active\)/, 10)
       && $fg->wait_log(qr/\Q$i2\E: from=<a2\@b\.test>.*\(queue active\)/, 10),
       'both committed by qmgr');
    unlike($fg->log_text, qr/warning: .*(?:fsync|finish)/, 'no queue file warnings');
    open $fh, '>', "$td/h/fail" or die "$td/h/fail: $!";
    close $fh;
    cmd($b, 'MAIL FROM:<f@b.test>');
    cmd($b, 'RCPT TO:<user@example.test>');
    cmd($b, 'DATA');
    like(cmd($b, "Subject: fail\r\n\r\nbody\r\n."), qr/^451 4\.3\.0 /, 'failed fsync: 451');
    ok($fg->wait_log(qr/warning: \w+: queue file finish: queue file fsync error: Input\/output error/, 10),
       'failed fsync logged with the reason');
    unlink "$td/h/fail";
    like(cmd($b, 'NOOP'), qr/^250 /, 'the session goes on after a failed fsync');
    unlike($fg->log_text, qr/from=<f\@b\.test>.*queue active/, 'the failed message was not committed');
    # The client goes away while its fsync is held: the job finishes alone.
    my $d = conn($fp);
    cmd($d, 'EHLO gone.test');
    cmd($d, 'MAIL FROM:<gone@b.test>');
    cmd($d, 'RCPT TO:<user@example.test>');
    cmd($d, 'DATA');
    open $fh, '>', "$td/h/hold" or die "$td/h/hold: $!";
    close $fh;
    send_raw($d, "Subject: gone\r\n\r\nbody\r\n.\r\n");
    for (1 .. 100) { last if (-s "$td/h/held" // 0) >= 3; select(undef, undef, undef, 0.1) }
    close $d->{s};
    ok($fg->wait_log(qr/lost connection after DATA from unknown\[127\.0\.0\.1\]/, 10),
       'client gone during its fsync: session ended');
    unlink "$td/h/hold";
    like(cmd($b, 'NOOP'), qr/^250 /, 'smtpd still serving after the orphaned fsync');
    unlike($fg->log_text, qr/from=<gone\@b\.test>.*queue active/, 'the orphaned message was not committed');
    cmd($_, 'QUIT') for @a, $b;
    $fg->stop;
}

done_testing();
