# relay_common.pl - shared helpers of the relay*.t tests (required, not run
# by prove): downstream sinks (relay_sink.py on aiosmtpd, Postfix's
# smtp-sink), mail submission with swaks, the control socket with
# attributes (queue-* ops), bounded waits, and the scanning gateway the
# policy tests share.
use strict;
use warnings;
use FindBin;
use File::Copy ();
use File::Path ();
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our @RELAY_PIDS;
END { local $?; kill 'TERM', $_ for @RELAY_PIDS; waitpid($_, 0) for @RELAY_PIDS }

# Skip the whole test unless mailgw and the daemons are built and the
# tools are here: relay_needs([qw(master qmgr smtpd smtp)],
# [qw(swaks aiosmtpd smtp-source smtp-sink strace root)]).
my %TOOL = (
    swaks         => sub { -x '/usr/bin/swaks' },
    aiosmtpd      => sub { system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0 },
    'smtp-source' => sub { -x '/usr/sbin/smtp-source' },
    'smtp-sink'   => sub { -x '/usr/sbin/smtp-sink' },
    strace        => sub { -x '/usr/bin/strace' },
    root          => sub { $> == 0 },
);
sub relay_needs {
    my ($daemons, $tools) = @_;
    for my $need (MailgwTest::bin('mailgw'), map { MailgwTest::libexec($_) } @$daemons) {
        Test::More::plan(skip_all => "$need not built") unless -x $need;
    }
    for my $t (@{ $tools // [] }) {
        Test::More::plan(skip_all => "$t missing") unless ($TOOL{$t} // die "tool $t?")->();
    }
}

# strace on a running daemon, its output in $file; returns strace's pid
# (stop_strace ends it and waits, so the file is complete).
sub start_strace {
    my ($pid, $file, @args) = @_;
    my $tpid = fork // die "fork: $!";
    if ($tpid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec('/usr/bin/strace', '-f', @args, '-o', $file, '-p', $pid) or POSIX::_exit(127);
    }
    wait_for(sub { -e $file }, 10);
    sleep 0.5;                  # attached to every thread
    return $tpid;
}

sub stop_strace {
    my ($tpid) = @_;
    kill 'INT', $tpid;
    waitpid $tpid, 0;
}

sub wait_for {
    my ($cond, $secs) = @_;
    my $deadline = time + ($secs // 10);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.1;
    }
    return $cond->() ? 1 : 0;
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# relay_sink.py on $port writing into $dir (created); returns its pid.
sub start_py_sink {
    my ($port, $dir) = @_;
    mkdir $dir;
    unlink "$dir/ready";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/sink.log";
        open STDERR, '>&', \*STDOUT;
        exec '/usr/bin/python3', "$FindBin::Bin/relay_sink.py", $port, $dir or POSIX::_exit(127);
    }
    push @RELAY_PIDS, $pid;
    wait_for(sub { -e "$dir/ready" && port_open($port) }, 20) or die "relay_sink.py on $port did not start";
    return $pid;
}

sub stop_pid {
    my ($pid) = @_;
    kill 'TERM', $pid;
    waitpid($pid, 0);
    @RELAY_PIDS = grep { $_ != $pid } @RELAY_PIDS;
}

# Postfix's smtp-sink on $port; extra args; dumps into $dir when given.
sub start_smtp_sink {
    my ($port, $dir, @args) = @_;
    my @cmd = ('/usr/sbin/smtp-sink');
    if ($dir) {
        mkdir $dir;
        chmod 0777, $dir;
        push @cmd, '-d', "$dir/%M.";
    }
    push @cmd, '-u', 'nobody' if $> == 0;
    push @cmd, @args, "127.0.0.1:$port", 256;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    push @RELAY_PIDS, $pid;
    wait_for(sub { port_open($port) }, 10) or die "smtp-sink on $port did not start";
    return $pid;
}

sub sink_messages {
    my ($dir) = @_;
    open my $fh, '<', "$dir/messages.jsonl" or return ();
    my @m;
    while (my $l = <$fh>) {
        my $r = eval { decode_json($l) };
        push @m, $r if $r;
    }
    return @m;
}

sub smtp_sink_files {
    my ($dir) = @_;
    opendir my $dh, $dir or return ();
    return map {
        local $/;
        open my $fh, '<', "$dir/$_" or ();
        <$fh> // '';
    } grep { !/^\./ } readdir $dh;
}

# swaks to the gateway; returns the queue ID of the 250 (or undef).
sub send_mail {
    my ($port, %a) = @_;
    my @cmd = ('swaks', '--server', "127.0.0.1:$port", '--from', $a{from} // 'sender@example.org',
               '--to', $a{to}, '--timeout', 30);
    push @cmd, '--body', $a{body} if defined $a{body};
    push @cmd, '--header', $a{header} if defined $a{header};
    push @cmd, @{ $a{extra} } if $a{extra};
    open my $fh, '-|', @cmd or die "swaks: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my ($id) = $out =~ /<-\s+250 [^\n]*queued as ([0-9A-Za-z]+)/;
    ($id) = $out =~ /<-\s+250\b[^\n]*\b([0-9A-Za-z]{12,20})\b[^\n]*\n[^\n]*QUIT/ unless $id;
    Test::More::diag($out) unless $id;
    return $id;
}

sub queue_files {
    my ($gw, $d) = @_;
    opendir my $dh, $gw->queue_dir . "/$d" or return ();
    return sort grep { !/^\./ } readdir $dh;
}

# ---- control socket with attributes (queue-* ops relayed to qmgr) ----
sub ctl_frame {
    my (@attrs) = @_;
    my $body = '';
    while (my ($name, $v) = splice(@attrs, 0, 2)) {
        if ($v =~ /^-?\d+$/ && $name ne 'op' && $name ne 'id') {
            $body .= pack('C n/a* N q>', 2, $name, 8, $v);
        } else {
            $body .= pack('C n/a* N/a*', 1, $name, $v);
        }
    }
    return pack('N n', length($body), 0) . $body;
}

# [ [name, value], ... ] or undef.
sub ctl_request {
    my ($gw, @attrs) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $gw->queue_dir . '/public/control') or return;
    syswrite($s, ctl_frame(proto => 'mailgw-control', version => 1));
    MailgwTest::_read_frame($s) or return;
    syswrite($s, ctl_frame(@attrs));
    my $reply = MailgwTest::_read_frame($s);
    close $s;
    return $reply;
}

sub ctl_get {
    my ($reply, $name) = @_;
    return unless $reply;
    for (@$reply) { return $_->[1] if $_->[0] eq $name }
    return;
}

# ---- a scanning gateway (archive.t, policy_relay*.t) ----

# Skips the test unless every daemon, swaks, aiosmtpd and the EICAR base
# are there; returns a gateway (qmgr, smtpd, smtp, scand, quarantine, one
# scan worker) with the EICAR base in DIR/bases, and DIR/store, a
# directory the quarantine daemon can write.
sub scanning_gateway {
    for my $need (MailgwTest::bin('mailgw'),
                  map { MailgwTest::libexec($_) } qw(master qmgr smtpd smtp scand quarantine)) {
        Test::More::plan(skip_all => "$need not built") unless -x $need;
    }
    my $ndb = MailgwTest::root() . '/conf/bases/mailgw-eicar.ndb';
    Test::More::plan(skip_all => 'swaks, aiosmtpd or the EICAR base missing')
        unless -x '/usr/bin/swaks' && -f $ndb
        && system('/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null') == 0;
    my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp,scand,quarantine',
                             'ave.MinWorkers' => 1);
    my $d = $gw->dir;
    File::Path::make_path("$d/bases");
    chmod 0755, "$d/bases";
    File::Copy::copy($ndb, "$d/bases/mailgw-eicar.ndb") or die "copy: $!";
    chmod 0644, "$d/bases/mailgw-eicar.ndb";
    my $store = "$d/store";
    mkdir $store or die "mkdir $store: $!";
    chown((getpwnam('nobody'))[2, 3], $store) if $> == 0;
    return ($gw, $store);
}

# Writes the config (BasesPath, then the raw sections given), starts the
# sink and the gateway, waits for the bases; returns the sink directory.
sub start_scanning_gateway {
    my ($gw, $raw) = @_;
    my $d = $gw->dir;
    $gw->{raw} = "[path]\nBasesPath=$d/bases\n" . ($raw // '');
    $gw->write_config;
    my $sink = "$d/sink";
    start_py_sink($gw->sink_port, $sink);
    $gw->start or Test::More::BAIL_OUT('mailgw did not start');
    Test::More::ok($gw->wait_log(qr/anti-virus bases loaded/, 30), 'scand loaded the bases')
        or Test::More::BAIL_OUT($gw->log_text);
    return $sink;
}

1;
