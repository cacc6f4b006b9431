#!/usr/bin/perl
# master_ctlfile.t - reference §3.5 and §3.7: `mailgw stats` sums the
# daemons' counters under Kaspersky's names and writes StatFilename
# atomically; the control files of ControlPath (.c_stats, .c_recv_off,
# .c_recv_on, .c_send_off, .c_avir_off ...) are acted on, removed and
# logged; files that do not qualify (symlinks, other owners) are ignored.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use MailgwTest;

my $sinkbin = '/usr/sbin/smtp-sink';
plan skip_all => 'build first'
    unless -x MailgwTest::bin('mailgw') && -x MailgwTest::libexec('master')
    && -x MailgwTest::libexec('smtpd') && -x MailgwTest::libexec('smtp')
    && -x MailgwTest::libexec('qmgr');
plan skip_all => 'needs swaks and smtp-sink' unless -x '/usr/bin/swaks' && -x $sinkbin;

my $root = $> == 0;

sub slurp { open(my $fh, '<', $_[0]) or return ''; local $/; return <$fh> // '' }

sub wait_for {
    my ($code, $seconds) = @_;
    for (1 .. $seconds * 10) {
        return 1 if $code->();
        sleep 0.1;
    }
    return 0;
}

sub touch {
    my ($path) = @_;
    open(my $fh, '>', $path) or die "$path: $!";
    close $fh;
}

sub greeting {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 5)
        or return '';
    $s->timeout(10);
    my $line = <$s> // '';
    close $s;
    return $line;
}

sub kv { my %h = $_[0] =~ /^(\w+)=(\S*)$/mg; return \%h }

my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp');
my $dir = $gw->dir;
my $ctl = "$dir/control";
my $statfile = "$dir/stats/mailgw.stat";
mkdir "$dir/stats" or die;
$gw->set('mailgw.path.ControlPath' => $ctl, 'mailgw.options.StatFilename' => $statfile);
$gw->write_config;

my $sink = fork // die "fork: $!";
if (!$sink) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    exec $sinkbin, ($root ? ('-u', 'nobody') : ()), '127.0.0.1:' . $gw->sink_port, 50;
    exit 127;
}
wait_for(sub { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $gw->sink_port) }, 5);

ok($gw->start, 'mailgw started with ControlPath and StatFilename') or BAIL_OUT('no start');
ok(wait_for(sub { -d $ctl }, 5), 'a missing ControlPath is created');

# --- status is readable
my ($rc, $out) = $gw->mailgw('status');
is($rc, 0, 'status exits 0');
like($out, qr/^mailgw is running: master pid \d+, uptime \d+ s, configuration \S+$/m,
     'status: master line');
like($out, qr/^daemon\s+pid\s+uptime\s+restarts\s+state$/m, 'status: column header');
like($out, qr/^$_\s+[1-9]\d*\s+\d+\s+0\s+running$/m, "status: $_ row") for qw(qmgr smtpd smtp);

# --- one message through, then the counters
$out = `/usr/bin/swaks --server 127.0.0.1:@{[$gw->port]} --timeout 20 --from a\@outside.test --to user\@example.test,other\@example.test 2>&1`;
my ($id) = $out =~ /queued as (\S+)/;
ok($id && $gw->wait_log(qr/\Q$id\E: removed/, 30), 'a message went through') or diag $out;
ok(wait_for(sub { kv(scalar(($gw->mailgw('stats'))[1]))->{mta_sent_messages} }, 10),
   'smtp counted the delivery');

($rc, $out) = $gw->mailgw('stats');
is($rc, 0, 'stats exits 0') or diag $out;
my $s = kv($out);
like($s->{time_initialized} // '', qr/^\d{10}$/, 'time_initialized: unix time');
like($s->{time_initialized_iso} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/,
     'time_initialized_iso: ISO 8601');
like($s->{time_processing} // '', qr/^\d+$/, 'time_processing');
is($s->{mta_received_messages}, 1, 'mta_received_messages (smtpd)');
is($s->{mta_received_recipients}, 2, 'mta_received_recipients (smtpd)');
ok(($s->{mta_received_bytes} // 0) > 100, 'mta_received_bytes (smtpd)');
is($s->{mta_sent_messages}, 1, 'mta_sent_messages (smtp)');
ok(($s->{mta_incoming_connections_total} // 0) >= 1, 'mta_incoming_connections_total (smtpd)');
is($s->{mta_outgoing_connections_total}, 1, 'mta_outgoing_connections_total (smtp)');
is($s->{mta_stored_messages_current}, 0, 'mta_stored_messages_current (qmgr: queue empty)');
is($s->{mta_dsn_generated}, 0, 'mta_dsn_generated (qmgr)');
like($s->{mta_dns_queries_total} // '', qr/^\d+$/, 'mta_dns_queries_total (resolver counters)');
is($s->{mta_routing_queries_total}, 0, 'a listed counter nobody keeps is 0');
is($s->{antiviral_checking_sessions_current}, 0, 'antiviral_checking_sessions_current without scand');
like($out, qr/^smtpd: mta_received_messages=1$/m, 'the per-daemon lines follow');
ok(index($out, "time_initialized=") < index($out, "smtpd: ok"), '... after the totals');

my $file = slurp($statfile);
like($file, qr/\Atime_initialized=\d+\ntime_initialized_iso=\S+\ntime_processing=\d+\n/,
     'StatFilename written, times first');
like($file, qr/^mta_received_messages=1$/m, 'StatFilename: mta_received_messages');
unlike($file, qr/^\w+: /m, 'StatFilename holds only name=value lines');
my @names = $file =~ /^(\w+)=/mg;
my %seen;
is(scalar(grep { $seen{$_}++ } @names), 0, 'each counter once');
opendir(my $dh, "$dir/stats") or die;
is_deeply([sort grep { !/^\./ } readdir $dh], ['mailgw.stat'], 'no temporary file left');
closedir $dh;

# --- control files
sub ctlfile_done {
    my ($name) = @_;
    touch("$ctl/$name");
    my $ok = $gw->wait_log(qr/control file \Q$name\E: done/, 10);
    return $ok && !-e "$ctl/$name";
}

unlink $statfile;
ok(ctlfile_done('.c_stats'), '.c_stats: done, file removed');
like(slurp($statfile), qr/^mta_received_messages=1$/m, '.c_stats wrote StatFilename');

ok(ctlfile_done('.c_recv_off'), '.c_recv_off: done');
like(greeting($gw->port), qr/^421 4\.3\.2 /, 'receiving is off');
ok(ctlfile_done('.c_recv_on'), '.c_recv_on: done');
like(greeting($gw->port), qr/^220 /, 'receiving is on again');
ok(ctlfile_done('.c_send_off'), '.c_send_off: done (qmgr)');
like($gw->log_text, qr/qmgr\[\d+\]: sending suspended/, 'qmgr suspended sending');
ok(ctlfile_done('.c_send_on'), '.c_send_on: done');

touch("$ctl/.c_avir_off");
ok($gw->wait_log(qr/control file \.c_avir_off: failed/, 10), '.c_avir_off without scand: failed');
like($gw->log_text, qr/control file \.c_avir_off: scand: not running/, '... saying why');
ok(!-e "$ctl/.c_avir_off", '... and the file is removed');

symlink("$dir/elsewhere", "$ctl/.c_recv_off") or die;
ok($gw->wait_log(qr/control file \Q$ctl\E\/\.c_recv_off: ignored: not a regular file/, 10),
   'a symlink is ignored');
ok(-l "$ctl/.c_recv_off", '... and left alone');
like(greeting($gw->port), qr/^220 /, '... receiving stays on');
unlink "$ctl/.c_recv_off";

SKIP: {
    skip 'needs root and the user "daemon"', 3 unless $root && getpwnam('daemon');
    touch("$ctl/tmp");    # owned by daemon before master can see it
    chown((getpwnam('daemon'))[2, 3], "$ctl/tmp") or die "chown: $!";
    rename("$ctl/tmp", "$ctl/.c_recv_off") or die "rename: $!";
    ok($gw->wait_log(qr/\.c_recv_off: ignored: owned by neither root nor the mailgw user/, 10),
       'a file of another user is ignored');
    ok(-e "$ctl/.c_recv_off", '... and left alone');
    like(greeting($gw->port), qr/^220 /, '... receiving stays on');
    unlink "$ctl/.c_recv_off";
}

# --- StatFilename that cannot be written: stats says so
$gw->set('mailgw.options.StatFilename' => "$dir/missing/mailgw.stat");
$gw->write_config;
($rc, $out) = $gw->mailgw('reload');
is($rc, 0, 'reloaded with an unwritable StatFilename') or diag $out;
($rc, $out) = $gw->mailgw('stats');
is($rc, 1, 'stats exits 1 when StatFilename cannot be written');
like($out, qr/StatFilename \S+missing\/mailgw\.stat: cannot create/, '... and says why');
like($out, qr/^mta_received_messages=\d+$/m, '... the counters are printed anyway');

$gw->stop;
kill 'KILL', $sink;
waitpid($sink, 0);
done_testing;
