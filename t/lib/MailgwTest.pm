# MailgwTest - start a real mailgw in a temporary directory for
# integration tests (API in /work/team/CONTRACTS.md "Test harness").
#
#   use lib 't/lib'; use MailgwTest;
#   my $gw = MailgwTest->new('mailgw.limits.IncomingSessions' => 5);
#   $gw->start or BAIL_OUT('mailgw did not start');
#   ... swaks --server 127.0.0.1:$gw->port ...
#   ok($gw->wait_log(qr/status=sent/, 10));
#   $gw->stop;
#
# new(%args): keys with a dot are config overrides 'section.Name' => value
# (section "mailgw.limits" or just "limits"; value undef removes a default,
# an array ref gives repeated lines); other keys are options:
#   raw     => "text appended to the config file"
#   env     => { NAME => value }   extra environment for mailgw and master
#   testd   => { qmgr => 'run', smtpd => 'run', smtp => 'hang' } or
#              [qw(qmgr smtpd)]: run t/helpers/testd under those daemon
#              names instead of the real daemons (MAILGW_LIBEXEC and
#              MAILGW_DAEMONS are set; modes: run exit hang crash)
#   daemons => 'qmgr,smtpd'        MAILGW_DAEMONS for the real daemons
# The build directory is $MAILGW_BUILD, else <repo>/build.
#
# When run as root the config gets User=nobody (unless overridden) and the
# temporary directory is made searchable so the daemons can reach it.
# $ENV{MAILGW_KEEP}=1 keeps the directory for a post-mortem.
package MailgwTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(ENOENT);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $BUILD = $ENV{MAILGW_BUILD} ? abs_path($ENV{MAILGW_BUILD}) : "$ROOT/build";

sub bin     { return "$BUILD/bin/$_[-1]" }
sub libexec { return "$BUILD/libexec/$_[-1]" }
sub helper  { return "$BUILD/t/helpers/$_[-1]" }
sub root    { return $ROOT }

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1, Proto => 'tcp')
        or die "free_port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

my @SECTION_ORDER = qw(mailgw.network mailgw.access mailgw.forward mailgw.path mailgw.options);

sub _section_name {
    my ($s) = @_;
    return $s if $s =~ /^(mailgw|smtpgw|updater)\./;
    return "mailgw.$s";
}

sub new {
    my ($class, %args) = @_;
    my $self = bless { overrides => {}, order => [], env => {}, started => 0 }, $class;
    $self->{dir} = tempdir('mailgw-test-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $self->{dir} if $> == 0;
    $self->{port} = free_port();
    $self->{sink_port} = free_port();
    $self->{raw} = delete $args{raw} // '';
    %{ $self->{env} } = %{ delete $args{env} // {} };
    $self->_setup_testd(delete $args{testd}) if exists $args{testd};
    $self->{env}{MAILGW_DAEMONS} = delete $args{daemons} if exists $args{daemons};
    $self->_defaults;
    $self->set(%args);
    $self->write_config;
    return $self;
}

sub _defaults {
    my ($self) = @_;
    my $d = $self->{dir};
    $self->set(
        'mailgw.network.ListenOn'         => "127.0.0.1:$self->{port}",
        'mailgw.network.Hostname'         => 'gw.example.test',
        'mailgw.network.Postmaster'       => 'postmaster@example.test',
        'mailgw.network.ProtectedDomains' => 'example.test',
        'mailgw.access.RelayRule'         => 'allow from 127.0.0.0/8 to *',
        'mailgw.forward.ForwardRoute'     => "* [127.0.0.1:$self->{sink_port}]",
        'mailgw.path.QueuePath'           => "$d/queue",
        'mailgw.options.LogFilename'      => "$d/mailgw.log",
    );
    $self->set('mailgw.options.User' => 'nobody') if $> == 0;
}

sub _setup_testd {
    my ($self, $spec) = @_;
    my %modes = ref $spec eq 'HASH' ? %$spec : map { $_ => 'run' } @$spec;
    my @names = ref $spec eq 'HASH' ? sort keys %$spec : @$spec;
    my $lx = "$self->{dir}/libexec";
    mkdir $lx or die "mkdir $lx: $!";
    chmod 0755, $lx;
    for my $n (@names) {
        symlink(helper('testd'), "$lx/$n") or die "symlink $lx/$n: $!";
        $self->{env}{"TESTD_MODE_$n"} = $modes{$n} if $modes{$n} ne 'run';
    }
    $self->{env}{MAILGW_LIBEXEC} = $lx;
    $self->{env}{MAILGW_DAEMONS} = join(',', @names);
}

# set('section.Name' => value, ...): change overrides (call write_config).
sub set {
    my ($self, %kv) = @_;
    for my $k (sort keys %kv) {
        my ($sec, $name) = $k =~ /^(.+)\.([^.]+)$/ or die "override '$k' is not section.Name";
        $sec = _section_name($sec);
        push @{ $self->{order} }, $sec unless grep { $_ eq $sec } @{ $self->{order} };
        $self->{overrides}{$sec}{$name} = $kv{$k};
    }
    return $self;
}

sub config_text {
    my ($self) = @_;
    my %seen;
    my @secs = grep { !$seen{$_}++ } (@SECTION_ORDER, @{ $self->{order} });
    my $text = "# written by MailgwTest\n";
    for my $sec (@secs) {
        my $p = $self->{overrides}{$sec} or next;
        my @lines;
        for my $name (sort keys %$p) {
            my $v = $p->{$name};
            next unless defined $v;
            push @lines, map { "$name=$_\n" } (ref $v eq 'ARRAY' ? @$v : ($v));
        }
        $text .= "[$sec]\n" . join('', @lines) if @lines;
    }
    return $text . ($self->{raw} ne '' ? "$self->{raw}\n" : '');
}

sub write_config {
    my ($self, $text) = @_;
    $text //= $self->config_text;
    my $path = $self->conf_path;
    open(my $fh, '>', "$path.tmp") or die "$path.tmp: $!";
    print $fh $text;
    close $fh or die "$path.tmp: $!";
    rename("$path.tmp", $path) or die "rename $path: $!";
    return $path;
}

sub dir       { return $_[0]{dir} }
sub port      { return $_[0]{port} }
sub sink_port { return $_[0]{sink_port} }
sub conf_path { return "$_[0]{dir}/mailgw.conf" }
sub log_path  { return "$_[0]{dir}/mailgw.log" }
sub queue_dir { return "$_[0]{dir}/queue" }
sub pid_path  { return "$_[0]{dir}/queue/pid/master.pid" }

sub log_text {
    my ($self) = @_;
    open(my $fh, '<', $self->log_path) or return '';
    local $/;
    my $t = <$fh>;
    return $t // '';
}

sub wait_log {
    my ($self, $re, $seconds) = @_;
    my $deadline = time + ($seconds // 10);
    while (1) {
        return 1 if $self->log_text =~ $re;
        return 0 if time > $deadline;
        sleep 0.1;
    }
}

sub _with_env {
    my ($self, $code) = @_;
    local %ENV = (%ENV, %{ $self->{env} });
    delete $ENV{MAILGW_CONF};
    return $code->();
}

# ($rc, $output): build/bin/mailgw -c CONF @args, stdout and stderr merged.
sub mailgw {
    my ($self, @args) = @_;
    return $self->_with_env(sub {
        my $pid = open(my $fh, '-|') // die "fork: $!";
        if ($pid == 0) {
            open(STDERR, '>&', \*STDOUT);
            exec(bin('mailgw'), '-c', $self->conf_path, @args) or POSIX::_exit(127);
        }
        local $/;
        my $out = <$fh> // '';
        close $fh;
        return ($? >> 8, $out);
    });
}

sub master_pid {
    my ($self) = @_;
    open(my $fh, '<', $self->pid_path) or return 0;
    my $pid = <$fh> // 0;
    chomp $pid;
    return $pid =~ /^\d+$/ ? $pid : 0;
}

# start(foreground => 1 (default) | 0, wait => 'smtp' | 'status' | 'none')
sub start {
    my ($self, %opt) = @_;
    my $fg = $opt{foreground} // 1;
    if ($fg) {
        $self->_with_env(sub {
            my $pid = fork // die "fork: $!";
            if ($pid == 0) {
                setpgrp(0, 0);
                open(STDIN, '<', '/dev/null');
                open(STDOUT, '>>', $self->log_path) or POSIX::_exit(127);
                open(STDERR, '>&', \*STDOUT);
                exec(bin('mailgw'), '-c', $self->conf_path, 'start', '-f') or POSIX::_exit(127);
            }
            $self->{fg_pid} = $pid;
        });
    } else {
        my ($rc, $out) = $self->mailgw('start');
        $self->{start_output} = $out;
        if ($rc != 0) {
            Test::More::diag("mailgw start failed ($rc): $out") if $INC{'Test/More.pm'};
            return 0;
        }
    }
    $self->{started} = 1;
    my $wait = $opt{wait} // ($self->_runs_smtpd ? 'smtp' : 'status');
    return 1 if $wait eq 'none';
    my $ok = $wait eq 'smtp' ? $self->_wait_smtp(20) : $self->_wait_status(20);
    if (!$ok && $INC{'Test/More.pm'}) {
        Test::More::diag("mailgw did not come up; log:\n" . $self->log_text);
    }
    return $ok;
}

sub _runs_smtpd {
    my ($self) = @_;
    my $set = $self->{env}{MAILGW_DAEMONS} // 'qmgr,smtpd,smtp';
    return 0 unless grep { $_ eq 'smtpd' } split /[, ]+/, $set;
    my $dir = $self->{env}{MAILGW_LIBEXEC} // "$BUILD/libexec";
    return -x "$dir/smtpd";
}

sub _fg_alive {
    my ($self) = @_;
    return 1 unless $self->{fg_pid};
    return 0 if waitpid($self->{fg_pid}, WNOHANG) == $self->{fg_pid};
    return 1;
}

sub _banner {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 2) or return '';
    my $line = '';
    # smtpd greets after the client's reverse lookup, which against a
    # silent test nameserver takes IONetworkTimeout times the attempts.
    if (IO::Select->new($s)->can_read(8)) {
        sysread($s, $line, 512);
    }
    print $s "QUIT\r\n";
    close $s;
    return $line;
}

sub _wait_smtp {
    my ($self, $seconds) = @_;
    my $deadline = time + $seconds;
    while (time < $deadline) {
        return 0 unless $self->_fg_alive;
        return 1 if $self->_banner =~ /^220/;
        sleep 0.2;
    }
    return 0;
}

sub _wait_status {
    my ($self, $seconds) = @_;
    my $deadline = time + $seconds;
    while (time < $deadline) {
        return 0 unless $self->_fg_alive;
        my ($rc, $out) = $self->mailgw('status');
        return 1 if $rc == 0 && $out !~ /\b(waiting)\b/;
        sleep 0.2;
    }
    return 0;
}

# Parsed `mailgw status`: { master => pid, NAME => { pid, uptime,
# restarts, state } }, or undef when not running.
sub status {
    my ($self) = @_;
    my ($rc, $out) = $self->mailgw('status');
    return undef if $rc != 0;
    my %st;
    ($st{master}) = $out =~ /master pid (\d+)/;
    for my $line (split /\n/, $out) {
        my ($n, $pid, $up, $r, $state) = $line =~ /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)/
            or next;
        $st{$n} = { pid => $pid, uptime => $up, restarts => $r, state => $state };
    }
    return \%st;
}

# true while pid runs (a zombie waiting for its reaper counts as gone).
sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    open(my $fh, '<', "/proc/$pid/stat") or return 0;
    my $stat = <$fh> // '';
    return $stat =~ /\)\s+([A-Za-z])/ && $1 !~ /[ZX]/ ? 1 : 0;
}
sub _alive { return alive($_[0]) }

# The control protocol spoken directly (lib/proto frames): returns the
# reply as a list of [name, value] pairs, or undef when master is not
# reachable.  control_request($op) sends hello then {op=$op}.
sub _frame {
    my (@attrs) = @_;
    my $body = '';
    while (my ($name, $v) = splice(@attrs, 0, 2)) {
        if ($v =~ /^-?\d+$/ && $name ne 'op') {
            $body .= pack('C n/a* N q>', 2, $name, 8, $v);
        } else {
            $body .= pack('C n/a* N/a*', 1, $name, $v);
        }
    }
    return pack('N n', length($body), 0) . $body;
}

sub _read_frame {
    my ($sock) = @_;
    my $hdr = _read_exact($sock, 6) // return;
    my ($len) = unpack('N n', $hdr);
    my $body = _read_exact($sock, $len) // return;
    my @out;
    while (length $body) {
        my ($type, $name) = unpack('C n/a*', $body);
        substr($body, 0, 3 + length $name, '');
        my $vlen = unpack('N', $body);
        my $v = substr($body, 4, $vlen);
        substr($body, 0, 4 + $vlen, '');
        $v = unpack('q>', $v) if $type == 2;
        push @out, [$name, $v];
    }
    return \@out;
}

sub _read_exact {
    my ($sock, $n) = @_;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    while (length($buf) < $n) {
        return unless $sel->can_read(30);
        my $r = sysread($sock, $buf, $n - length($buf), length $buf);
        return unless $r;
    }
    return $buf;
}

sub control_request {
    my ($self, $op) = @_;
    require IO::Socket::UNIX;
    my $s = IO::Socket::UNIX->new(Peer => $self->queue_dir . '/public/control') or return;
    syswrite($s, _frame(proto => 'mailgw-control', version => 1));
    my $hello = _read_frame($s) or return;
    syswrite($s, _frame(op => $op));
    my $reply = _read_frame($s);
    close $s;
    return $reply;
}

# First value of name in a control reply.
sub reply_get {
    my ($reply, $name) = @_;
    for (@$reply) { return $_->[1] if $_->[0] eq $name }
    return;
}

sub stop {
    my ($self) = @_;
    return unless $self->{started};
    $self->{started} = 0;
    my $mpid = $self->master_pid;
    my ($rc, $out) = $self->mailgw('stop');
    my $deadline = time + 20;
    if ($self->{fg_pid}) {
        while (time < $deadline && waitpid($self->{fg_pid}, WNOHANG) == 0) { sleep 0.1 }
        if (waitpid($self->{fg_pid}, WNOHANG) == 0) {
            kill 'KILL', -$self->{fg_pid};
            waitpid($self->{fg_pid}, 0);
        }
        delete $self->{fg_pid};
    } elsif (_alive($mpid)) {
        while (time < $deadline && _alive($mpid)) { sleep 0.1 }
        kill 'KILL', $mpid if _alive($mpid);
    }
    return $rc;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    $self->stop if $self->{started};
    remove_tree($self->{dir}) if $self->{dir} && !$ENV{MAILGW_KEEP};
}

1;
