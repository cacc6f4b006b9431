#!/usr/bin/perl
# policy_matrix.t - every object status x every action through a real
# scand under master (t/helpers/scan_client over private/scand), one start.
#
# Triggers (libclamav 1.x with scand's scan options; the starter bases in
# conf/bases only add the EICAR signature):
#   infected    the EICAR test string (Mailgw.Test.EICAR)
#   suspicious  a PDF whose /OpenAction names /J#61vaScript: the escaped
#               name gives Heuristics.PDF.ObfuscatedNameObject
#   protected   a zip encrypted with zip -P (or 7z -p): Heuristics.Encrypted.Zip
#   corrupted   a PE cut inside its optional header (Heuristics.Broken.
#               Executable), bare and as the member of a zip
#   error       a zip nested 25 deep (MaxRecursion 17 by default):
#               Heuristics.Limits.Exceeded.MaxRecursion; a zip of 120
#               files (MaxFiles 50 here): ...MaxFiles; an attachment over
#               MaxFileSize (1M here): ...MaxFileSize (checked once)
#   filtered    IncludeByName = *.scr and IncludeByMime = video/* (clean
#               content); a zip member named *.scr (checked once)
# (A truncated zip, gzip, bzip2, xz, tar or 7z archive is reported clean by
# libclamav 1.4, so the corrupted trigger is the truncated executable.)
#
# One group per action (pass, remove, placeholder: every Action* set to it,
# BlockMessage=none) and one group per BlockMessage list (infected,
# suspicious, protected, corrupted, error (covers corrupted), filtered,
# all; objects replaced when delivered); the default group [mailgw.policy]
# keeps the shipped actions (remove) with BlockMessage=none.  Each message
# (a text part + the trigger) goes to one group at a time; checked: the
# reply (av_status, obj_status, group_status, group_names, group_action,
# group_rewritten) and the rewritten content parsed with Python's email
# package (X-Anti-Virus on top with the status; pass: the object intact;
# remove: gone, the text part kept; placeholder: a text/plain part with
# PlaceholderTemplate's text naming the object and its status), and the
# av-scanned log line per group.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use File::Temp ();
use MIME::Base64 qw(encode_base64);
use Digest::MD5 qw(md5_hex);
use JSON::PP;
use lib 't/lib';
use MailgwTest;

my $client = MailgwTest::helper('scan_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('scand'), $client, '/usr/bin/python3') {
    plan skip_all => "$need not available" unless -x $need;
}

my $work = File::Temp::tempdir('policy-matrix-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MAILGW_KEEP});
chmod 0755, $work;
make_path("$work/data", "$work/obj");

# ---------------------------------------------------------------- triggers

my $EICAR = pack('H*', '58354f2150254041505b345c505a58353428505e2937434329377d24'
    . '45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a');

my $PDF = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /OpenAction << /S /J#61vaScript "
    . "/JS (app.alert\\(1\\)) >> >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

# MZ header -> "PE\0\0", a COFF header announcing one section and a
# 224-byte optional header, of which only 20 bytes follow.
my $BROKEN_PE = pack('a2 x58 V', 'MZ', 64)
    . pack('a4 v v V V V v v', "PE\0\0", 0x14c, 1, 0, 0, 0, 0xe0, 0x0102) . "\0" x 20;

sub py {
    my ($code) = @_;
    open(my $p, '|-', '/usr/bin/python3', '-', "$work/obj") or die "python3: $!";
    print $p "import sys, os, zipfile\nd = sys.argv[1]\n$code";
    close $p or die "python3 failed: $?";
}

sub slurp {
    my ($f) = @_;
    open(my $fh, '<:raw', $f) or return '';
    local $/;
    my $t = <$fh>;
    return $t // '';
}

sub spew {
    my ($f, $data) = @_;
    open(my $fh, '>:raw', $f) or die "$f: $!";
    print $fh $data;
    close $fh or die "$f: $!";
}

spew("$work/obj/setup.exe", $BROKEN_PE);
py(<<'EOF');
data, name = b'innermost\n', 'level.txt'
for i in range(25):
    p = os.path.join(d, 'n.zip')
    with zipfile.ZipFile(p, 'w', zipfile.ZIP_STORED) as z:
        z.writestr(name, data)
    data = open(p, 'rb').read()
    name = 'level%02d.zip' % i
open(os.path.join(d, 'deep.zip'), 'wb').write(data)
with zipfile.ZipFile(os.path.join(d, 'tools.zip'), 'w', zipfile.ZIP_DEFLATED) as z:
    z.write(os.path.join(d, 'setup.exe'), 'setup.exe')
with zipfile.ZipFile(os.path.join(d, 'many.zip'), 'w', zipfile.ZIP_STORED) as z:
    for i in range(120):
        z.writestr('f%03d.txt' % i, 'x%d\n' % i)
with zipfile.ZipFile(os.path.join(d, 'pack.zip'), 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('readme.txt', 'read me\n')
    z.writestr('docs/screen.scr', 'a harmless text with a filtered name\n')
EOF

# protected: zip -P, else 7z's zip writer
spew("$work/obj/secret.txt", "secret content\n" x 20);
my $enc = '';
if (system("cd $work/obj && zip -q -P s3cret secret.zip secret.txt >/dev/null 2>&1") == 0
    || system("cd $work/obj && 7z a -tzip -ps3cret secret.zip secret.txt >/dev/null 2>&1") == 0) {
    $enc = slurp("$work/obj/secret.zip");
}

# [label, file name, content, MIME type, status, virus name pattern]
my @TRIGGERS = (
    ['infected', 'eicar.com', $EICAR, 'application/octet-stream', 'infected',
     qr/^Mailgw\.Test\.EICAR/],
    ['suspicious', 'statement.pdf', $PDF, 'application/pdf', 'suspicious',
     qr/^Heuristics\.PDF\.ObfuscatedNameObject/],
    ($enc ne '' ? (['protected', 'secret.zip', $enc, 'application/zip', 'protected',
                    qr/^Heuristics\.Encrypted\.Zip/]) : ()),
    ['corrupted', 'setup.exe', $BROKEN_PE, 'application/octet-stream', 'corrupted',
     qr/^Heuristics\.Broken\.Executable/],
    ['corrupted-in-zip', 'tools.zip', slurp("$work/obj/tools.zip"), 'application/zip',
     'corrupted', qr/^Heuristics\.Broken\.Executable/],
    ['error', 'deep.zip', slurp("$work/obj/deep.zip"), 'application/zip', 'error',
     qr/^Heuristics\.Limits\.Exceeded\.MaxRecursion/],
    ['error-maxfiles', 'many.zip', slurp("$work/obj/many.zip"), 'application/zip', 'error',
     qr/^Heuristics\.Limits\.Exceeded\.MaxFiles/],
    ['filtered-name', 'screen.scr', "just a harmless text\n" x 5, 'application/octet-stream',
     'filtered', qr/^$/],
    ['filtered-mime', 'clip.bin', "not really a video\n" x 5, 'video/x-test', 'filtered',
     qr/^$/],
);
diag('zip -P / 7z not available: protected not tested') if $enc eq '';

# ------------------------------------------------------------------ config

my @ACTIONS = qw(pass remove placeholder);
my @BLOCKS = qw(infected suspicious protected corrupted error filtered all);
my @PARAMS = qw(ActionInfected ActionSuspicious ActionProtected ActionError ActionFiltered);

my $conf = "[mailgw.policy]\nIncludeByName = *.scr\nIncludeByMime = video/*\n"
    . "BlockMessage = none\nNotifyAdmin = none\nNotifyRecipient = none\n";
for my $a (@ACTIONS) {
    $conf .= "[mailgw.group:$a]\nRecipients = *\@$a.test\n" . join('', map { "$_ = $a\n" } @PARAMS);
}
for my $b (@BLOCKS) {
    $conf .= "[mailgw.group:block_$b]\nRecipients = *\@block-$b.test\nBlockMessage = $b\n"
        . join('', map { "$_ = placeholder\n" } @PARAMS);
}

my $gw = MailgwTest->new(daemons => 'scand', 'mailgw.ave.MinWorkers' => 1,
    'mailgw.ave.MaxFiles' => 50, 'mailgw.ave.MaxFileSize' => '1M',
    raw => "[path]\nBasesPath=" . MailgwTest::root() . "/conf/bases\n$conf");
$gw->start or BAIL_OUT('mailgw did not start');
my $sock = $gw->queue_dir . '/private/scand';
ok($gw->wait_log(qr/scand\[\d+\]: pool: /, 20), 'scand pool started')
    or BAIL_OUT($gw->log_text);

# ----------------------------------------------------------------- helpers

my $PARSER = "$work/parse.py";
spew($PARSER, <<'EOF');
import sys, json, email, hashlib
raw = open(sys.argv[1], 'rb').read()
m = email.message_from_bytes(raw)
out = {'first': raw.split(b'\r\n', 1)[0].decode('latin-1'),
       'xav': [str(v) for v in (m.get_all('X-Anti-Virus') or [])],
       'defects': [], 'parts': []}
for p in m.walk():
    out['defects'] += [type(x).__name__ for x in p.defects]
    if p.is_multipart():
        continue
    data = p.get_payload(decode=True) or b''
    out['parts'].append({'type': p.get_content_type(), 'filename': p.get_filename() or '',
                         'md5': hashlib.md5(data).hexdigest(),
                         'text': data.decode('utf-8', 'replace')
                                 if p.get_content_maintype() == 'text' else ''})
print(json.dumps(out))
EOF

sub parse_eml {
    my ($file) = @_;
    open(my $p, '-|', '/usr/bin/python3', $PARSER, $file) or die "python3: $!";
    my $json = do { local $/; <$p> };
    close $p;
    return eval { decode_json($json) } // { parts => [], defects => ['unparsable'] };
}

sub mail {
    my ($t, $subject) = @_;
    my (undef, $name, $data, $type) = @$t;
    return "From: Alice <alice\@example.org>\nTo: bob\@example.test\nSubject: $subject\n"
        . "Message-ID: <$subject\@example.org>\nMIME-Version: 1.0\n"
        . "Content-Type: multipart/mixed; boundary=\"XYZ\"\n\npreamble\n"
        . "--XYZ\nContent-Type: text/plain\n\nHello, keep me.\n"
        . "--XYZ\nContent-Type: $type; name=\"$name\"\n"
        . "Content-Disposition: attachment; filename=\"$name\"\n"
        . "Content-Transfer-Encoding: base64\n\n" . encode_base64($data) . "--XYZ--\n";
}

my $n = 0;
my @logged;     # [id, group, status, action]

# scan(TRIGGER, RCPT): the reply {raw, id, file, attr => first value,
# objs => [[name, status, virus]], group => {attr => value}}.
sub scan {
    my ($t, $rcpt) = @_;
    my $id = sprintf('MTX%04d', ++$n);
    spew("$work/$id.msg", mail($t, $id));
    my $dd = "$work/data/$id";
    make_path($dd);
    my @cmd = ($client, '-t', 60, '-i', $id, '-d', $dd, '-w', "$work/$id.w1", '-r', $rcpt,
               $sock, "$work/$id.msg");
    open(my $p, '-|', @cmd) or die "scan_client: $!";
    my $raw = do { local $/; <$p> };
    close $p;
    my %r = (raw => $raw, id => $id, rcpt => $rcpt, file => "$work/$id.w1", objs => [],
             groups => []);
    my ($g, $o);
    for my $line (split /\n/, $raw) {
        my ($k, $v) = $line =~ /^([^=]+)=(.*)$/ or next;
        if ($k eq 'group') {
            $g = { group => $v };
            push @{ $r{groups} }, $g;
        } elsif ($g) {
            $g->{$k} //= $v;
        } elsif ($k eq 'obj_name') {
            $o = [$v];
            push @{ $r{objs} }, $o;
        } elsif ($k eq 'obj_status' && $o) {
            $o->[1] = $v;
        } elsif ($k eq 'obj_virus' && $o) {
            $o->[2] = $v;
        } else {
            $r{$k} //= $v;
        }
    }
    return \%r;
}

sub text_part_ok {
    my ($tree) = @_;
    return grep { $_->{type} eq 'text/plain' && $_->{filename} eq ''
                  && $_->{text} =~ /^Hello, keep me\.\r?\n?$/ } @{ $tree->{parts} };
}

# The rewritten content of a delivered group.
sub check_content {
    my ($t, $r, $action, $label) = @_;
    my (undef, $name, $data, undef, $status) = @$t;
    my $eml = "$r->{file}.eml";
    ok(-s $eml, "$label: rewritten content written") or return;
    is(slurp("$r->{file}.env"), "sender=sender\@example.test\nrcpt=$r->{rcpt}\n",
       "$label: the new queue file's envelope: the group's recipient");
    my $raw = slurp($eml);
    my $tree = parse_eml($eml);
    like($tree->{first}, qr/^X-Anti-Virus: mailgw \S+, bases: \d{8} #\d+, check: \d{8} \Q$status\E$/,
         "$label: X-Anti-Virus on top says $status");
    is(scalar @{ $tree->{xav} }, 1, "$label: one X-Anti-Virus field");
    is_deeply($tree->{defects}, [], "$label: well-formed MIME (Python email: no defects)");
    ok(text_part_ok($tree), "$label: the text part is kept");
    unlike($raw, qr/(?<!\r)\n/, "$label: CRLF line ends only");
    my $md5 = md5_hex($data);
    my @obj = grep { $_->{md5} eq $md5 } @{ $tree->{parts} };
    my $b64 = substr(encode_base64($data, ''), 0, 60);
    if ($action eq 'pass') {
        is(scalar @obj, 1, "$label: pass: the object is still there, intact");
        is($obj[0] && $obj[0]{filename}, $name, "$label: pass: with its file name");
        is(scalar @{ $tree->{parts} }, 2, "$label: pass: two parts");
        return;
    }
    is(scalar @obj, 0, "$label: $action: the object's content is gone");
    ok(index($raw, $b64) < 0, "$label: $action: its encoded bytes are gone");
    ok(!grep({ $_->{filename} eq $name } @{ $tree->{parts} }), "$label: $action: no part named $name");
    if ($action eq 'remove') {
        is(scalar @{ $tree->{parts} }, 1, "$label: remove: only the text part left");
        unlike($raw, qr/has been removed by the mail gateway/, "$label: remove: no placeholder text");
        return;
    }
    my @ph = grep { $_->{type} eq 'text/plain' && $_->{text} =~ /has been removed by the mail gateway/ }
        @{ $tree->{parts} };
    is(scalar @{ $tree->{parts} }, 2, "$label: placeholder: two parts");
    is(scalar @ph, 1, "$label: placeholder: one text/plain placeholder part");
    my $txt = $ph[0] ? $ph[0]{text} : '';
    like($txt, qr/^\s*Name:\s+\Q$name\E\r?$/m, "$label: placeholder names the object");
    like($txt, qr/^\s*Status:\s+\Q$status\E\b/m, "$label: placeholder gives its status");
    like($txt, qr/Reference: \Q$r->{id}\E\./, "$label: placeholder gives the queue ID");
}

# The reply's message-level part and the group's block, common to all.
sub check_reply {
    my ($t, $r, $group, $label) = @_;
    my (undef, $name, undef, undef, $status, $virus) = @$t;
    is($r->{status}, 'ok', "$label: reply ok") or do { diag($r->{raw}); return 0 };
    is($r->{av_status}, $status, "$label: av_status $status");
    my ($obj) = grep { $_->[0] eq $name } @{ $r->{objs} };
    is($obj && $obj->[1], $status, "$label: object $name is $status");
    like($obj ? $obj->[2] // '' : '', $virus, "$label: object's name") if $obj;
    is(scalar @{ $r->{groups} }, 1, "$label: one group block");
    my $g = $r->{groups}[0] || {};
    is($g->{group}, $group, "$label: group $group");
    is($g->{group_status}, $status, "$label: group_status $status");
    like($g->{group_names}, $virus, "$label: group_names");
    is($g->{group_save}, 'none', "$label: nothing saved");
    return 1;
}

# --------------------------------------------------------- action groups

for my $t (@TRIGGERS) {
    for my $a (@ACTIONS) {
        my $label = "$t->[0] x $a";
        my $r = scan($t, "user\@$a.test");
        check_reply($t, $r, $a, $label) or next;
        my $g = $r->{groups}[0];
        is($g->{group_action}, 'deliver', "$label: BlockMessage=none: delivered");
        is($g->{group_rewritten}, 1, "$label: rewritten");
        is($g->{group_rewritten_fd}, 1, "$label: into fd 1");
        push @logged, [$r->{id}, $a, $t->[4], 'deliver'];
        check_content($t, $r, $a, $label);
    }
    # the default group: the shipped actions remove every status
    my $label = "$t->[0] x default group";
    my $r = scan($t, 'user@example.test');
    check_reply($t, $r, 'policy', $label) or next;
    is($r->{groups}[0]{group_action}, 'deliver', "$label: delivered");
    push @logged, [$r->{id}, 'policy', $t->[4], 'deliver'];
    check_content($t, $r, 'remove', $label);
}

# ------------------------------------------------------- BlockMessage lists

sub blocks {
    my ($list, $status) = @_;
    return $list eq 'all' || $list eq $status || ($list eq 'error' && $status eq 'corrupted');
}

for my $t (@TRIGGERS) {
    for my $b (@BLOCKS) {
        my $block = blocks($b, $t->[4]);
        my $label = "$t->[0] x BlockMessage=$b";
        my $r = scan($t, "user\@block-$b.test");
        check_reply($t, $r, "block_$b", $label) or next;
        my $g = $r->{groups}[0];
        if ($block) {
            is($g->{group_action}, 'block', "$label: blocked");
            is($g->{group_rewritten}, 0, "$label: blocked: nothing rewritten");
            ok(!-s $r->{file}, "$label: blocked: the rewrite fd is left empty");
        } else {
            is($g->{group_action}, 'deliver', "$label: not in the list: delivered");
            is($g->{group_rewritten}, 1, "$label: rewritten");
            check_content($t, $r, 'placeholder', $label);
        }
        push @logged, [$r->{id}, "block_$b", $t->[4], $block ? 'block' : 'deliver'];
    }
}

# ------------------------------------------------ checked with one action

# An attachment over MaxFileSize (1M here): libclamav 1.4 returns CL_VIRUS
# without a virus name for it unless a clcb_virus_found callback is
# installed (the callback gets Heuristics.Limits.Exceeded.MaxFileSize);
# it must come out as error, not infected.
# A zip whose member's name IncludeByName catches: the raw message's scan
# sees the member, but the group's verdict needs the part's own scan to
# see it too (libclamav's clean cache must not skip the members).
my @ONCE = (
    [['error-maxfilesize', 'big.dat',
      join('', map { pack('N', $_ * 2654435761 % 4294967296) } 1 .. 300_000),
      'application/octet-stream', 'error', qr/^Heuristics\.Limits\.Exceeded\.MaxFileSize/],
     'placeholder'],
    [['filtered-in-zip', 'pack.zip', slurp("$work/obj/pack.zip"), 'application/zip', 'filtered',
      qr/^$/], 'remove'],
);
for my $once (@ONCE) {
    my ($t, $a) = @$once;
    my $label = "$t->[0] x $a";
    my $r = scan($t, "user\@$a.test");
    check_reply($t, $r, $a, $label) or next;
    is($r->{groups}[0]{group_action}, 'deliver', "$label: delivered");
    push @logged, [$r->{id}, $a, $t->[4], 'deliver'];
    check_content($t, $r, $a, $label);
}

# ------------------------------------------------------------------ the log

my $last = $logged[-1];
ok($gw->wait_log(qr/\Q$last->[0]\E: av-scanned group=/, 10), 'last av-scanned line logged');
my $log = $gw->log_text;
my @missing = grep {
    my ($id, $grp, $st, $act) = @$_;
    $log !~ /\Q$id\E: av-scanned group=\Q$grp\E nrcpt=1 status=\Q$st\E names="[^"]*" action=\Q$act\E$/m
} @logged;
is(scalar @missing, 0, 'an av-scanned line with group, status and action for every scan')
    or diag(join("\n", map { "missing: @$_" } @missing));
unlike($log, qr/scand\[\d+\]: .*(?:crash|signal|fatal)/i, 'scand logged no crash');

$gw->stop;
done_testing();
