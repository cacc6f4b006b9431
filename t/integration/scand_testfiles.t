#!/usr/bin/perl
# scand_testfiles.t - every file of Debian's clamav-testfiles package
# (/usr/share/clamav-testfiles), attached base64-encoded to a message, is
# detected by a real scand with the starter bases of conf/bases: status
# infected, the message blocked.  Skipped when the package is absent.
use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use MailgwTest;

my $dir = '/usr/share/clamav-testfiles';
my $client = MailgwTest::helper('scan_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('scand'), $client) {
    plan skip_all => "$need not built" unless -x $need;
}
plan skip_all => "$dir absent (apt-get install clamav-testfiles)" unless -d $dir;
opendir(my $dh, $dir) or die "$dir: $!";
my @files = sort grep { -f "$dir/$_" } readdir $dh;
plan skip_all => "$dir is empty" unless @files;

my $bases = MailgwTest::root() . '/conf/bases';
my $gw = MailgwTest->new(daemons => 'scand', 'mailgw.ave.MaxWorkers' => 2,
                         raw => "[path]\nBasesPath=$bases\n");
$gw->start or BAIL_OUT('mailgw did not start');
ok($gw->wait_log(qr/scand\[\d+\]: pool: /, 20), 'scand pool started')
    or BAIL_OUT("no pool:\n" . $gw->log_text);
my $sock = $gw->queue_dir . '/private/scand';
my $tmp = $gw->dir . '/tf.eml';

my $i = 0;
for my $f (@files) {
    open(my $in, '<:raw', "$dir/$f") or die "$dir/$f: $!";
    my $data = do { local $/; <$in> };
    close $in;
    my $b = 'tf-boundary-' . ++$i;
    open(my $out, '>', $tmp) or die "$tmp: $!";
    print $out "From: sender\@example.test\nTo: rcpt\@example.test\nSubject: $f\n"
        . "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"$b\"\n\n"
        . "--$b\nContent-Type: text/plain\n\nattached: $f\n"
        . "--$b\nContent-Type: application/octet-stream; name=\"$f\"\n"
        . "Content-Disposition: attachment; filename=\"$f\"\n"
        . "Content-Transfer-Encoding: base64\n\n" . encode_base64($data) . "--$b--\n";
    close $out;
    my $reply = `$client -t 60 -i TF$i $sock $tmp 2>&1`;
    my ($st) = $reply =~ /^av_status=(\S+)/m;
    my ($names) = $reply =~ /^names=(.*)$/m;
    is($st // 'noreply', 'infected', "$f: infected") or diag($reply);
    like($names // '', qr/Mailgw\.Test\.File\./, "$f: named by the starter bases");
}
$gw->stop;
done_testing();
