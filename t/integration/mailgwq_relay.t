#!/usr/bin/perl
# mailgwq_relay.t - master's relay of queue-* requests when qmgr cannot
# answer them, with t/helpers/testd standing in for the daemons:
#   no qmgr at all        -> "qmgr: not running", exit 2
#   a qmgr that hangs     -> "qmgr: no answer" after master's relay
#                            timeout, exit 2, and master keeps serving
#   a qmgr that does not know the op -> its error, exit 4
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MailgwTest;

my $mailgwq = MailgwTest::bin('mailgwq');
for my $need (MailgwTest::bin('mailgw'), $mailgwq, MailgwTest::libexec('master'),
              MailgwTest::helper('testd')) {
    plan skip_all => "$need not built" unless -x $need;
}

sub mq {
    my ($gw, @args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open(STDERR, '>&', \*STDOUT);
        delete $ENV{MAILGW_CONF};
        exec($mailgwq, '-C', $gw->conf_path, @args) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

# no qmgr
my $gw = MailgwTest->new(testd => ['smtp']);
$gw->start(wait => 'status') or BAIL_OUT('mailgw did not start');
my ($rc, $out) = mq($gw, '-p');
is($rc, 2, 'no qmgr: exit 2');
like($out, qr/qmgr: not running/, '... qmgr: not running');
($rc, $out) = mq($gw, '-d', 'ALL');
is($rc, 2, 'no qmgr: -d ALL exit 2 too');
$gw->stop;

# a qmgr that does not know queue-list (testd answers status=error)
$gw = MailgwTest->new(testd => ['qmgr']);
$gw->start(wait => 'status') or BAIL_OUT('mailgw did not start');
($rc, $out) = mq($gw, '-p');
is($rc, 4, 'qmgr refuses the op: exit 4');
like($out, qr/^mailgwq: queue-list: \S/m, '... with qmgr\'s reason');
($rc, $out) = mq($gw, '-h', '1xX3Z60SlYjzT0');
is($rc, 4, 'qmgr refuses -h: exit 4');
$gw->stop;

# a qmgr that hangs: master answers for it after its relay timeout
$gw = MailgwTest->new(testd => { qmgr => 'hang' }, 'options.HeartbeatTimeout' => 300);
$gw->start(wait => 'status') or BAIL_OUT('mailgw did not start');
ok($gw->wait_log(qr/testd qmgr: hanging as told/, 20), 'testd qmgr hangs');
($rc, $out) = mq($gw, '-j');
is($rc, 2, 'hanging qmgr: exit 2');
like($out, qr/qmgr: no answer/, '... qmgr: no answer');
my ($src, $sout) = $gw->mailgw('status');
is($src, 0, 'master still answers the control socket') or diag $sout;
$gw->stop;
done_testing();
