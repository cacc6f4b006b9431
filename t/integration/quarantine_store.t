#!/usr/bin/perl
# quarantine_store.t - the quarantine daemon on its two sockets (started
# with t/helpers/quarantine_launch the way master passes fd 4 and fd 5):
# store requests for every area with queue files made by the lib/queue
# writer (t/helpers/quarantine_client), then the real CLI:
# `mailgw quarantine list / --json / show / delete / expire`, the
# return codes of reference §3.10, corrupt entries, unreadable areas and
# refused peers.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use MailgwTest;

my $client = MailgwTest::helper('quarantine_client');
my $launch = MailgwTest::helper('quarantine_launch');
my $daemon = MailgwTest::libexec('quarantine');
my $mailgw = MailgwTest::bin('mailgw');
for my $need ($client, $launch, $daemon, $mailgw) {
    plan skip_all => "$need not built" unless -x $need;
}

my $dir = tempdir('quarantine-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MAILGW_KEEP});
my $q = "$dir/queue";
mkdir $q or die;
my $user = $> == 0 ? 'nobody' : scalar getpwuid($>);
my $conf = "$dir/mailgw.conf";
open my $fh, '>', $conf or die;
print $fh <<"EOF";
[mailgw.network]
Hostname=gw.example.test
Postmaster=postmaster\@example.test
ProtectedDomains=example.test
[mailgw.path]
QueuePath=$q
IncomingArchivePath=$dir/archive-in
OutgoingArchivePath=$dir/archive-out
[mailgw.policy]
BackupPath=$dir/backup
[mailgw.options]
LogFilename=$dir/mailgw.log
User=$user
EOF
close $fh;
if ($> == 0) {
    my ($uid, $gid) = (getpwnam('nobody'))[2, 3];
    chown $uid, $gid, $dir, $q;
    chmod 0755, $dir;
}

sub start_daemon {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', "$dir/stderr";
        exec $launch, $q, $daemon, '-c', $conf, '-f' or POSIX::_exit(127);
    }
    for (1 .. 100) {
        last if -S "$q/public/quarantine" && -S "$q/private/quarantine";
        sleep 0.05;
    }
    sleep 0.2;
    return $pid;
}
my $pid = start_daemon();

sub client { my $out = `$client @_ 2>&1`; chomp $out; return $out }
sub cli {
    local $ENV{MAILGW_CONF} = $conf;
    my $out = `$mailgw -c $conf quarantine @_ 2>&1`;
    return ($? >> 8, $out);
}
# -f: the daemon logs to stderr, which the launcher's parent sent to $dir/stderr
sub log_text { local $/; open my $l, '<', "$dir/stderr" or return ''; return <$l> // '' }

# --- store through the private socket -------------------------------
my $content = "$dir/content.eml";
open my $c, '>', $content or die;
print $c "From: <a\@example.org>\r\nSubject: %SENDER% 100% literal\r\n\r\n" . ("x" x 70 . "\r\n") x 2000;
close $c;
my $content_size = -s $content;

my %id;
for my $case (['quarantine', 'infected', 'EICAR-Test-File', 'bad@example.org', 'u1@example.test,u2@example.test', $content],
              ['backup', 'suspicious', 'HEUR:Trojan.Script.Generic', 'sus@example.org', 'u3@example.test'],
              ['archive-in', 'clean', '', '', 'u4@example.test'],
              ['archive-out', 'clean', '', 'out@example.test', 'remote@example.org']) {
    my ($area, @rest) = @$case;
    my $out = client("$q/private/quarantine", 'store', $area, map { "'$_'" } @rest);
    like($out, qr/^store ok ([0-9A-Za-z]{12,20})$/, "store into $area") or diag $out;
    ($id{$area}) = $out =~ /^store ok (\S+)/;
    ok($id{$area} && -f ($area eq 'quarantine' ? "$q/quarantine/$id{$area}"
                         : $area eq 'backup' ? "$dir/backup/$id{$area}"
                         : "$dir/$area/$id{$area}"), "$area entry file exists");
}
like(log_text(), qr/: stored area=quarantine qid=$id{quarantine} status=infected names="EICAR-Test-File"/,
     'the store is logged with the queue ID first');
is(client("$q/private/quarantine", 'store-garbage', 'quarantine') =~ /^store error 4 queue file:/ ? 1 : 0,
   1, 'a broken queue file is refused (error 4)');
like(client("$q/public/quarantine", 'store', 'quarantine', 'infected', 'X', 's@x', 'r@x'),
     qr/^store error 4 store is not allowed here/, 'store is refused on the public socket');
like(client("$q/private/quarantine", 'raw', 'list', 'area=nowhere'),
     qr/code=4\nreason=unknown area/, 'an unknown area is refused');
my @tmpfiles = glob("$q/quarantine/tmp/*");
is(scalar @tmpfiles, 0, 'no temporary files left behind');

# --- list ------------------------------------------------------------
my ($rc, $out) = cli('list');
is($rc, 0, 'list: exit 0') or diag $out;
my @lines = grep { !/^Total:/ } split /\n/, $out;
is(scalar @lines, 4, 'list: one line per entry');
like($out, qr/^$id{quarantine} INF $content_size \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d 192\.0\.2\.7 <bad\@example\.org> -> <u1\@example\.test>, <u2\@example\.test>$/m,
     'list: klmaila line shape with status INF');
like($out, qr/^$id{backup} SSP \d+ \S+ 192\.0\.2\.7 <sus\@example\.org> -> <u3\@example\.test>$/m, 'list: SSP');
like($out, qr/^$id{'archive-in'} RCV \d+ \S+ \S+ <> -> <u4\@example\.test>$/m, 'list: RCV, null sender');
like($out, qr/^$id{'archive-out'} SNT /m, 'list: SNT');
my $total = $content_size + 3 * 97;
like($out, qr/^Total: 4 messages, $total bytes\.$/m, 'list: footer with count and bytes');

($rc, $out) = cli('list', '--area', 'backup');
is(scalar(grep { !/^Total/ } split /\n/, $out), 1, 'list --area backup: only that area');

($rc, $out) = cli('list', '--json');
is($rc, 0, 'list --json: exit 0');
my @json = map { decode_json($_) } grep { /^\{/ } split /\n/, $out;
is(scalar @json, 4, 'list --json: one object per line');
my ($qj) = grep { $_->{id} eq $id{quarantine} } @json;
is_deeply([ @{$qj}{qw(area status code names group sender size nrcpt)} ],
          [ 'quarantine', 'infected', 'INF', 'EICAR-Test-File', 'policy', 'bad@example.org', $content_size, 2 ],
          'list --json: fields of the quarantined entry');
is_deeply($qj->{recipients}, ['u1@example.test', 'u2@example.test'], 'list --json: recipients');

# --- show --------------------------------------------------------------
($rc, $out) = cli('show', $id{quarantine});
is($rc, 0, 'show: exit 0');
like($out, qr/^status: infected\n/m, 'show: status');
like($out, qr/^names: EICAR-Test-File$/m, 'show: virus names');
like($out, qr/^recipient: u2\@example\.test$/m, 'show: recipients');
like($out, qr/^Subject: %SENDER% 100% literal$/m, 'show: the stored content');
is(scalar(() = $out =~ /^x{70}$/mg), 2000, 'show: the whole content came back');

($rc, $out) = cli('show', '1xX3Xc3zcbjxJ4');
is($rc, 4, 'show of an unknown ID: exit 4');
($rc, $out) = cli('show', '../../etc/passwd');
is($rc, 4, 'show of an invalid ID: exit 4');
($rc, $out) = cli('show');
is($rc, 1, 'show without ID: exit 1 (bad command line)');
($rc, $out) = cli('list', '--area', 'attic');
is($rc, 1, 'unknown area: exit 1');
($rc, $out) = cli('frobnicate');
is($rc, 1, 'unknown command: exit 1');

# --- corrupt entries are skipped, not fatal ------------------------------
my $bogus = '1xX3Xc3zcbjxJ9';
open my $b, '>', "$q/quarantine/$bogus" or die;
print $b "\x01\x00\x00\x00\x04\x00\x00\x00\x01\x02\x00\x00\x00\x01";
close $b;
($rc, $out) = cli('list', '--area', 'quarantine');
is($rc, 0, 'list with a corrupt entry: exit 0');
unlike($out, qr/$bogus/, 'the corrupt entry is not listed');
like(log_text(), qr/warning: $bogus: unreadable entry in .*: record past the end/,
     'the corrupt entry is logged');
($rc, $out) = cli('show', $bogus);
is($rc, 4, 'show of a corrupt entry: exit 4');
unlink "$q/quarantine/$bogus";

# --- release without qmgr: requested action not performed -----------------
($rc, $out) = cli('release', $id{quarantine});
is($rc, 4, 'release without qmgr: exit 4');
like($out, qr/cannot connect to qmgr/, 'release without qmgr: the reason');

# --- delete / expire ---------------------------------------------------
($rc, $out) = cli('delete', $id{backup});
is($rc, 0, 'delete: exit 0');
ok(!-e "$dir/backup/$id{backup}", 'delete: the file is gone');
like(log_text(), qr/$id{backup}: removed from backup/, 'delete is logged');
($rc, $out) = cli('delete', $id{backup});
is($rc, 4, 'delete of a deleted ID: exit 4');
($rc, $out) = cli('expire', '--age', '1');
is($rc, 0, 'expire --age 1: exit 0');
like($out, qr/0 entries expired/, 'expire --age 1: nothing that young expires');
($rc, $out) = cli('delete', 'ALL', '--area', 'archive-out');
like($out, qr/1 entry removed/, 'delete ALL --area archive-out');
($rc, $out) = cli('expire', '--age', '0');
like($out, qr/2 entries expired/, 'expire --age 0: every remaining entry');
like(log_text(), qr/$id{quarantine}: expired from quarantine/, 'expiry is logged');
($rc, $out) = cli('list');
like($out, qr/^Total: 0 messages, 0 bytes\.$/m, 'the store is empty');

# --- unreadable area: exit 2 -------------------------------------------
chmod 0, "$dir/backup";
($rc, $out) = cli('list', '--area', 'backup');
is($rc, 2, 'list of an unreadable area: exit 2 (directory unreadable)');
chmod 0700, "$dir/backup";

# --- SO_PEERCRED on the public socket --------------------------------
SKIP: {
    skip 'needs root to connect as another user', 2 unless $> == 0;
    my $daemon_uid = (getpwnam('daemon'))[2];
    skip 'no user daemon', 2 unless defined $daemon_uid;
    chmod 0777, "$q/public/quarantine";
    chmod 0755, "$q/public", $q;
    my $r = system('perl', '-e', "\$) = '1 1'; \$( = 1; \$> = \$< = $daemon_uid; exec \@ARGV",
                   $mailgw, '-c', $conf, 'quarantine', 'list') >> 8;
    is($r, 3, 'another user is refused (exit 3)');
    like(log_text(), qr/public\/quarantine: refused uid $daemon_uid/, 'the refusal is logged');
}

# --- daemon gone: exit 3 -----------------------------------------------
kill 'TERM', $pid;
waitpid($pid, 0);
($rc, $out) = cli('list');
is($rc, 3, 'daemon not running: exit 3 (system error)');
done_testing();
