#!/usr/bin/perl
# conf_cli.t - "check" and "config" of cli/mailgw_config.c through the
# t/helpers/conftool driver: exit codes, "Config OK", diagnostics on
# stderr, postconf-like output (-n, -d, -h, named parameters), MAILGW_CONF,
# and that man/man5/mailgw.conf.5 holds exactly what "config --man" prints.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my $b = $ENV{MAILGW_BUILD} // 'build';
my $tool = "$b/t/helpers/conftool";
plan skip_all => "$tool not built" unless -x $tool;

sub run {
    my (@args) = @_;
    my $dir = tempdir(CLEANUP => 1);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$dir/out" or die;
        open STDERR, '>', "$dir/err" or die;
        exec $tool, @args or exit 127;
    }
    waitpid($pid, 0);
    my $rc = $? >> 8;
    local $/;
    open my $o, '<', "$dir/out" or die; my $out = <$o>;
    open my $e, '<', "$dir/err" or die; my $err = <$e>;
    return ($rc, $out, $err);
}

sub slurp { local $/; open my $f, '<', $_[0] or die "$_[0]: $!"; <$f> }

my ($rc, $out, $err) = run(qw(check -c conf/mailgw.conf));
is($rc, 0, 'check: shipped config exit 0');
is($out, "Config OK\n", 'check: Config OK on stdout');
is($err, '', 'check: nothing on stderr');

($rc, $out, $err) = run(qw(check -c t/conf/broken/range.conf));
is($rc, 1, 'check: broken config exit 1');
is($out, '', 'check: no Config OK when broken');
like($err, qr/^t\/conf\/broken\/range\.conf:7: IncomingSessions: value 0 out of range 1\.\.1024$/m,
     'check: diagnostic names file, line, parameter, range');

($rc, $out, $err) = run(qw(check -c /nonexistent/mailgw.conf));
is($rc, 1, 'check: missing file exit 1');
like($err, qr{^/nonexistent/mailgw\.conf: cannot open: No such file}m, 'check: missing file named');

{
    local $ENV{MAILGW_CONF} = 't/conf/valid/minimal.conf';
    ($rc, $out) = run(qw(check));
    is($rc, 0, 'check: MAILGW_CONF used without -c');
    ($rc, $out) = run(qw(config -n));
    is($out, slurp('t/conf/valid/minimal.ref'), 'config -n via MAILGW_CONF');
}

for my $conf (glob 't/conf/valid/*.conf') {
    (my $ref = $conf) =~ s/\.conf$/.ref/;
    ($rc, $out, $err) = run('config', '-n', '-c', $conf);
    is($rc, 0, "config -n $conf exit 0");
    is($out, slurp($ref), "config -n $conf matches $ref");
}

($rc, $out) = run(qw(config -d));
is($rc, 0, 'config -d needs no file');
like($out, qr/^\[mailgw\.limits\]\n(?:.*\n)*?IncomingSessions = 100$/m, 'config -d has defaults');
like($out, qr/^ListenOn = 0\.0\.0\.0:25$/m, 'config -d list default');

($rc, $out) = run(qw(config -c conf/mailgw.conf));
like($out, qr/^MaximalIncomingRcptsPerMessage = 100$/m, 'config: effective values include defaults');
like($out, qr/^QueuePath = build\/run\/queue$/m, 'config: values as written');

($rc, $out, $err) = run(qw(config -c conf/mailgw.conf mailgw.limits.IncomingSessions RelayRule NoSuch));
is($rc, 1, 'config: unknown name gives exit 1');
is($out, "IncomingSessions = 100\nRelayRule = allow from 127.0.0.0/8 to *\n"
       . "RelayRule = allow from any to *\@example.com\nRelayRule = deny from any to *\n",
   'config: named parameters only');
is($err, "mailgw config: unknown parameter 'NoSuch'\n", 'config: unknown name diagnostic');

($rc, $out) = run(qw(config -h -c conf/mailgw.conf Hostname smtpgw.network.ListenOn));
is($out, "mailgw.example.com\n127.0.0.1:2525\n", 'config -h: values only, smtpgw alias');

($rc, $out) = run(qw(config -n -c conf/mailgw.conf IncomingSessions MaximalIncomingHops));
is($out, "IncomingSessions = 100\n", 'config -n with names: only the set ones');

($rc, $out, $err) = run(qw(config -x));
is($rc, 2, 'config: bad option is a usage error');

($rc, $out) = run(qw(config --man));
my $man = slurp('man/man5/mailgw.conf.5');
my ($section) = $man =~ /(^\.\\" BEGIN GENERATED PARAMETERS.*?^\.\\" END GENERATED PARAMETERS\n)/ms;
ok(defined $section, 'man page has the generated section');
is($section, $out, 'man page parameter list is up to date (run t/conf/gen-man.sh)');

done_testing();
