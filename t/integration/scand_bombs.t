#!/usr/bin/perl
# scand_bombs.t - the archive-bomb set against a real scand: none may come
# out clean, and each gets the status a limit or heuristic should give.
#   encrypted zip (zip -P)                       protected
#   zip with 20,000 entries (MaxFiles 10000)     error (limit)
#   zip nested 25 deep (MaxRecursion 17)         error (limit)
#   zip whose entries overlap (each entry's      suspicious (libclamav's
#   data holds the next entry: the overlap of    Heuristics.Zip.Overlapping-
#   Fifield's non-recursive zip bombs)           Files)
#   gzip of 200 MB of zeros (MaxScanSize 50 MB)  not clean
# Archives are made at test time (zip, gzip, python3).
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use MailgwTest;

my $client = MailgwTest::helper('scan_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('scand'), $client, '/usr/bin/python3') {
    plan skip_all => "$need not available" unless -x $need;
}
plan skip_all => 'zip not installed' unless -x '/usr/bin/zip';

my $bases = MailgwTest::root() . '/conf/bases';
my $gw = MailgwTest->new(daemons => 'scand', 'mailgw.ave.MaxScanSize' => '50M',
                         raw => "[path]\nBasesPath=$bases\n");
$gw->start or BAIL_OUT('mailgw did not start');
ok($gw->wait_log(qr/scand\[\d+\]: pool: /, 20), 'scand pool started')
    or BAIL_OUT("no pool:\n" . $gw->log_text);
my $sock = $gw->queue_dir . '/private/scand';
my $d = $gw->dir . '/bombs';
make_path($d);

sub py {
    my ($code) = @_;
    open(my $p, '|-', '/usr/bin/python3', '-', $d) or die "python3: $!";
    print $p "import sys, os, zipfile, struct, zlib, gzip\nd = sys.argv[1]\n$code";
    close $p or die "python3 failed: $?";
}

sub scan_file {
    my ($file, $label) = @_;
    open(my $in, '<:raw', "$d/$file") or die "$d/$file: $!";
    my $data = do { local $/; <$in> };
    close $in;
    my $msg = "$d/$file.eml";
    open(my $out, '>', $msg) or die;
    print $out "From: a\@example.test\nTo: b\@example.test\nSubject: $label\nMIME-Version: 1.0\n"
        . "Content-Type: multipart/mixed; boundary=\"bb\"\n\n--bb\nContent-Type: text/plain\n\nx\n"
        . "--bb\nContent-Type: application/octet-stream; name=\"$file\"\n"
        . "Content-Transfer-Encoding: base64\n\n" . encode_base64($data) . "--bb--\n";
    close $out;
    my $reply = `$client -t 120 -i BOMB$label $gw->{dir}/queue/private/scand $msg 2>&1`;
    my ($st) = $reply =~ /^av_status=(\S+)/m;
    my ($act) = $reply =~ /^group_action=(\S+)/m;
    my ($names) = $reply =~ /^names=(.*)$/m;
    return ($st // 'noreply', $act // '', $names // '', $reply);
}

sub check {
    my ($file, $label, $want) = @_;
    my ($st, $act, $names, $reply) = scan_file($file, $label);
    isnt($st, 'clean', "$label: not clean");
    isnt($act, 'deliver', "$label: not delivered");
    if (defined $want) {
        like($st, $want, "$label: status $st ($names)") or diag($reply);
    } else {
        note("$label: status $st ($names)");
    }
}

# encrypted zip
open(my $f, '>', "$d/plain.txt") or die; print $f "secret content\n" x 10; close $f;
system("cd $d && zip -q -P s3cret enc.zip plain.txt") == 0 or BAIL_OUT('zip -P failed');
check('enc.zip', 'encrypted', qr/^protected$/);

# 20,000 entries
py(<<'EOF');
with zipfile.ZipFile(os.path.join(d, 'many.zip'), 'w', zipfile.ZIP_STORED) as z:
    for i in range(20000):
        z.writestr('f%05d.txt' % i, 'x')
EOF
check('many.zip', 'manyfiles', qr/^error$/);

# nested 25 deep
py(<<'EOF');
data = b'innermost\n'
name = 'level.txt'
for i in range(25):
    p = os.path.join(d, 'n.zip')
    with zipfile.ZipFile(p, 'w', zipfile.ZIP_STORED) as z:
        z.writestr(name, data)
    data = open(p, 'rb').read()
    name = 'level%02d.zip' % i
open(os.path.join(d, 'nested.zip'), 'wb').write(data)
EOF
check('nested.zip', 'nesting', qr/^error$/);

# overlapping entries: each entry's stored data holds the next entry's
# local header and data (the overlap of Fifield's non-recursive bombs)
py(<<'EOF');
def lh(name, data):
    crc = zlib.crc32(data) & 0xffffffff
    return struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0, crc, len(data), len(data),
                       len(name), 0) + name
def ch(name, data, off):
    crc = zlib.crc32(data) & 0xffffffff
    return struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 0, 0, 0, crc, len(data),
                       len(data), len(name), 0, 0, 0, 0, 0, off) + name
n = 50
names = [b'f%03d.bin' % i for i in range(n)]
datas = [None] * n
datas[n - 1] = b'kernel' * 100
blob = lh(names[n - 1], datas[n - 1]) + datas[n - 1]
for i in range(n - 2, -1, -1):
    datas[i] = blob
    blob = lh(names[i], blob) + blob
offs, o = [], 0
for i in range(n):
    offs.append(o)
    o += 30 + len(names[i])
cd = b''.join(ch(names[i], datas[i], offs[i]) for i in range(n))
end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, len(cd), len(blob), 0)
open(os.path.join(d, 'overlap.zip'), 'wb').write(blob + cd + end)
EOF
check('overlap.zip', 'overlap', qr/^suspicious$/);

# a gzip that inflates beyond MaxScanSize
py(<<'EOF');
with gzip.open(os.path.join(d, 'zeros.gz'), 'wb', 9) as g:
    block = b'\0' * (1 << 20)
    for i in range(200):
        g.write(block)
EOF
check('zeros.gz', 'bigdeflate', undef);

$gw->stop;
done_testing();
