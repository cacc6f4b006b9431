package TestDNS;

# TestDNS - a real authoritative DNS server (nsd) for tests, on 127.0.0.1
# at a port picked free at run time, serving zones given as text.
#
#   use lib 't/lib'; use TestDNS;
#   my $dns = TestDNS->new;                  # the standard test zones below
#   my $dns = TestDNS->new(zones => { 'example.test' => "www A 127.0.0.9\n" });
#   $dns->server;     # "127.0.0.1:PORT"  (for [mailgw.resolve] Nameserver)
#   $dns->silent;     # "127.0.0.1:PORT"  a UDP port bound here and never
#                     # answered (timeout tests)
#   $dns->dig('host.example.test', 'A');   # dig +short output lines
#   $dns->stop;       # also on DESTROY
#
# Zone text is relative to the zone ($ORIGIN is the zone, $TTL 300); an SOA
# and NS record are added when the text has no SOA.  nsd runs in the
# foreground as the invoking user with every file in a temp dir; new()
# waits (bounded) until it answers and dies with nsd's log otherwise.
# TestDNS::available() is false when nsd or dig is missing (skip then).

use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

our $NSD = '/usr/sbin/nsd';

# The standard zones: the access and resolver tests rely on these names.
our %STANDARD = (
    'example.test' => <<'EOF',
@        MX 10 mail
@        MX 20 mx2
@        A  127.0.0.10
host     A  127.0.0.5
host     MX 10 mail
mail     A  127.0.0.6
mx2      A  127.0.0.7
liar     A  127.0.0.9
multi    A  127.0.0.11
multi    A  127.0.0.12
v6       AAAA ::1
alias    CNAME host
noaddr   TXT "no address here"
txt      TXT "v=spf1 -all"
txt      TXT "part one" "part two"
nomx     A  127.0.0.13
nullmx   MX 0 .
nullmx   A  127.0.0.14
EOF
    '127.in-addr.arpa' => <<'EOF',
5.0.0    PTR host.example.test.
8.0.0    PTR liar.example.test.
6.0.0    PTR mail.example.test.
EOF
    'bl.test' => <<'EOF',
2.0.0.127   A 127.0.0.2
2.0.0.127   TXT "listed: see http://bl.test/"
3.0.0.127   A 127.255.255.254
4.0.0.127   A 127.0.0.4
10.0.0.127  A 10.0.0.1
EOF
);

sub available { return -x $NSD && system('command -v dig >/dev/null 2>&1') == 0 }

sub _free_port {
    for (1 .. 50) {
        my $t = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Proto => 'tcp', Listen => 1, ReuseAddr => 0) or next;
        my $port = $t->sockport;
        my $u = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                      Proto => 'udp');
        close $t;
        next unless $u;
        close $u;
        return $port;
    }
    die "TestDNS: no free port\n";
}

sub _zone_text {
    my ($zone, $text) = @_;
    my $out = "\$ORIGIN $zone.\n\$TTL 300\n";
    $out .= "\@ SOA ns.$zone. hostmaster.$zone. 1 3600 600 86400 60\n"
          . "\@ NS ns.$zone.\nns A 127.0.0.1\n" unless $text =~ /\bSOA\b/;
    return $out . $text;
}

sub new {
    my ($class, %opt) = @_;
    my $self = bless { zones => $opt{zones} || \%STANDARD }, $class;
    $self->{dir} = tempdir('testdns-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{port} = _free_port();
    $self->{silent_sock} = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                                 Proto => 'udp')
        or die "TestDNS: silent socket: $!\n";
    $self->_write_config;
    $self->_start;
    return $self;
}

sub _write_config {
    my ($self) = @_;
    my ($dir, $port) = @{$self}{qw(dir port)};
    my $conf = <<"EOF";
server:
    ip-address: 127.0.0.1\@$port
    port: $port
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$dir"
    pidfile: "$dir/nsd.pid"
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    logfile: "$dir/nsd.log"
    verbosity: 1
    server-count: 1
    reuseport: no
    refuse-any: no
remote-control:
    control-enable: no
EOF
    for my $zone (sort keys %{ $self->{zones} }) {
        open my $z, '>', "$dir/$zone.zone" or die "TestDNS: $dir/$zone.zone: $!\n";
        print $z _zone_text($zone, $self->{zones}{$zone});
        close $z;
        $conf .= "zone:\n    name: \"$zone\"\n    zonefile: \"$zone.zone\"\n";
    }
    open my $c, '>', "$dir/nsd.conf" or die "TestDNS: nsd.conf: $!\n";
    print $c $conf;
    close $c;
}

sub _start {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $pid = fork // die "TestDNS: fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/nsd.out";
        open STDERR, '>>', "$dir/nsd.out";
        exec $NSD, '-d', '-c', "$dir/nsd.conf";
        exit 127;
    }
    $self->{pid} = $pid;
    for (1 .. 100) {                    # at most ~10 s
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "TestDNS: nsd exited: " . $self->log_text . "\n";
        }
        my @a = $self->dig('example.test', 'SOA');
        my $first = (sort keys %{ $self->{zones} })[0];
        @a = $self->dig($first, 'SOA') unless @a;
        return if @a;
        sleep 0.1;
    }
    $self->stop;
    die "TestDNS: nsd did not answer on port $self->{port}: " . $self->log_text . "\n";
}

sub log_text {
    my ($self) = @_;
    my $t = '';
    for my $f ("$self->{dir}/nsd.log", "$self->{dir}/nsd.out") {
        next unless open my $fh, '<', $f;
        local $/;
        $t .= <$fh> // '';
    }
    return $t;
}

# dig +short against this server (one try, one second).
sub dig {
    my ($self, $name, $type) = @_;
    $type //= 'A';
    my @out = `dig \@127.0.0.1 -p $self->{port} +short +time=1 +tries=1 $name $type 2>/dev/null`;
    chomp @out;
    return grep { length && !/^;;/ } @out;
}

sub port   { $_[0]{port} }
sub server { "127.0.0.1:$_[0]{port}" }
sub silent { "127.0.0.1:" . $_[0]{silent_sock}->sockport }
sub dir    { $_[0]{dir} }

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    for (1 .. 50) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub DESTROY { local ($., $@, $!, $?); $_[0]->stop }

1;
