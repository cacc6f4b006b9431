#!/usr/bin/perl
# scand.t - the anti-virus scanning daemon end to end: a real scand under
# master (MAILGW_DAEMONS=scand), requests sent by t/helpers/scan_client
# over private/scand with a queue file built by the lib/queue writer.
#
# Covers: EICAR as body, as base64 / quoted-printable / uuencoded
# attachment, inside zip, gzip, bzip2, tar and 7z archives (made at test
# time; each skipped when its tool is missing) and inside a nested
# message/rfc822; a clean message with a large attachment is clean and
# delivered; the name and MIME filters give status filtered (also for
# names inside a zip); avir-off gives tempfail, avir-on scans again;
# reload-bases with a broken base keeps the old engine, with a good one
# loads the new signatures; stats reports the antiviral_* counters.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use File::Copy qw(copy);
use MIME::Base64 qw(encode_base64);
use MIME::QuotedPrint qw(encode_qp);
use lib 't/lib';
use MailgwTest;

my $client = MailgwTest::helper('scan_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('scand'), $client) {
    plan skip_all => "$need not built" unless -x $need;
}

# The EICAR test string, assembled at run time (the file is no test virus).
my $EICAR = pack('H*', '58354f2150254041505b345c505a58353428505e2937434329377d24'
    . '45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a');

my $work = File::Temp::tempdir('scand-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $work;
my $bases = "$work/bases";
make_path($bases);
copy(MailgwTest::root() . "/conf/bases/mailgw-eicar.ndb", "$bases/mailgw-eicar.ndb")
    or BAIL_OUT("copy bases: $!");
chmod 0755, $bases;
chmod 0644, "$bases/mailgw-eicar.ndb";

my $gw = MailgwTest->new(daemons => 'scand', 'options.LogLevel' => 9,
    'mailgw.ave.MinWorkers' => 1, 'mailgw.ave.MaxWorkers' => 2,
    'mailgw.policy.IncludeByName' => '*.scr',
    'mailgw.policy.IncludeByMime' => 'application/x-filtered-test',
    raw => "[path]\nBasesPath=$bases\n");
$gw->start or BAIL_OUT('mailgw did not start');
my $sock = $gw->queue_dir . '/private/scand';
ok($gw->wait_log(qr/scand\[\d+\]: pool: /, 20), 'scand pool started')
    or BAIL_OUT("no pool:\n" . $gw->log_text);
like($gw->log_text, qr/anti-virus bases loaded from \Q$bases\E: 1 signatures/,
     'bases loaded, signature count logged');

my $n = 0;
sub scan {
    my ($msg, @args) = @_;
    my $file = "$work/msg" . ++$n . '.eml';
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $msg;
    close $fh;
    my $id = sprintf('T%04dSCAN', $n);
    my @out = `$client -t 60 -i $id @args $sock $file 2>&1`;
    my %r = (id => $id, raw => join('', @out), objs => []);
    for (@out) {
        chomp;
        my ($k, $v) = /^([^=]+)=(.*)$/ or next;
        if ($k =~ /^obj_(\w+)/) {
            push @{ $r{objs} }, {} if $1 eq 'name';
            $r{objs}[-1]{$1} = $v;
        } elsif ($k eq 'group_rcpt') {
            push @{ $r{rcpts} }, $v;
        } else {
            $r{$k} = $v;
        }
    }
    return \%r;
}

sub mail {
    my (%p) = @_;
    my $h = "From: sender\@example.test\nTo: rcpt\@example.test\nSubject: $p{subject}\n"
        . "Message-ID: <$p{subject}\@example.test>\nMIME-Version: 1.0\n";
    return $h . "\n$p{body}\n" unless $p{parts};
    my $b = "=-=mailgw-test-boundary=-=";
    my $m = $h . "Content-Type: multipart/mixed; boundary=\"$b\"\n\nThis is MIME.\n";
    $m .= "--$b\nContent-Type: text/plain\n\nSee attached.\n";
    for my $p (@{ $p{parts} }) {
        $m .= "--$b\n$p->{headers}\n$p->{body}\n";
    }
    return $m . "--$b--\n";
}

sub attach_b64 {
    my ($name, $data, $type) = @_;
    $type //= 'application/octet-stream';
    return { headers => "Content-Type: $type; name=\"$name\"\n"
                 . "Content-Disposition: attachment; filename=\"$name\"\n"
                 . "Content-Transfer-Encoding: base64\n",
             body => encode_base64($data) };
}

sub is_infected {
    my ($r, $what) = @_;
    is($r->{status}, 'ok', "$what: scanned") or diag($r->{raw});
    is($r->{av_status}, 'infected', "$what: infected");
    like($r->{names} // '', qr/Mailgw\.Test\.EICAR/, "$what: virus name");
    is($r->{group_action}, 'block', "$what: blocked (shipped default policy)");
}

sub slurp {
    my ($f) = @_;
    open(my $fh, '<:raw', $f) or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

sub have { my ($t) = @_; return grep { -x "$_/$t" } split /:/, "$ENV{PATH}:/usr/bin:/bin" }

# --- EICAR in the body and in encoded attachments --------------------------
my $r = scan(mail(subject => 'body', body => $EICAR));
is_infected($r, 'EICAR body');
ok($gw->wait_log(qr/$r->{id}: av-scanned status=infected names="[^"]*Mailgw\.Test\.EICAR/, 10),
   'av-scanned log line');

is_infected(scan(mail(subject => 'b64', parts => [attach_b64('eicar.com', $EICAR)])),
            'EICAR base64 attachment');

is_infected(scan(mail(subject => 'qp', parts => [{
    headers => "Content-Type: application/octet-stream; name=\"eicar.txt\"\n"
        . "Content-Disposition: attachment; filename=\"eicar.txt\"\n"
        . "Content-Transfer-Encoding: quoted-printable\n",
    body => encode_qp($EICAR) }])), 'EICAR quoted-printable attachment');

my $uu = "begin 644 eicar.com\n" . pack('u', $EICAR) . "`\nend\n";
is_infected(scan(mail(subject => 'uu', body => "Here it is:\n\n$uu")), 'EICAR uuencoded in text');

# --- archives ----------------------------------------------------------------
my $ad = "$work/arch";
make_path($ad);
open(my $ef, '>', "$ad/eicar.com") or die; print $ef $EICAR; close $ef;
my %archives = (
    zip   => [zip   => "cd $ad && zip -q e.zip eicar.com", 'e.zip'],
    gzip  => [gzip  => "cd $ad && gzip -c eicar.com > e.gz", 'e.gz'],
    bzip2 => [bzip2 => "cd $ad && bzip2 -c eicar.com > e.bz2", 'e.bz2'],
    tar   => [tar   => "cd $ad && tar cf e.tar eicar.com", 'e.tar'],
    '7z'  => ['7z'  => "cd $ad && 7z a -bd e.7z eicar.com >/dev/null", 'e.7z'],
);
for my $kind (sort keys %archives) {
    my ($tool, $cmd, $file) = @{ $archives{$kind} };
    SKIP: {
        skip "$tool not installed", 4 unless have($tool);
        system($cmd) == 0 or BAIL_OUT("$cmd failed");
        is_infected(scan(mail(subject => $kind, parts => [attach_b64($file, slurp("$ad/$file"))])),
                    "EICAR inside $kind");
    }
}

# --- nested message/rfc822 ----------------------------------------------------
my $inner = mail(subject => 'inner', parts => [attach_b64('eicar.com', $EICAR)]);
is_infected(scan(mail(subject => 'nested', parts => [{
    headers => "Content-Type: message/rfc822\nContent-Disposition: attachment; filename=\"fwd.eml\"\n",
    body => $inner }])), 'EICAR in a nested message/rfc822');

# --- clean mail with a large attachment -----------------------------------------
my $big = join('', map { chr(int(rand(256))) } 1 .. 3 * 1024 * 1024);
$r = scan(mail(subject => 'big', parts => [attach_b64('data.bin', $big)]));
is($r->{av_status}, 'clean', 'large clean attachment: clean') or diag($r->{raw});
is($r->{group_action}, 'deliver', 'large clean attachment: delivered');
ok((grep { $_->{name} eq 'data.bin' && $_->{status} eq 'clean' } @{ $r->{objs} }),
   'the attachment is an object of its own');

# --- filters -----------------------------------------------------------------------
$r = scan(mail(subject => 'filt', parts => [attach_b64('screen.scr', 'just text')]));
is($r->{av_status}, 'filtered', 'IncludeByName *.scr: filtered') or diag($r->{raw});
# Shipped default (reference §1.13): filtered is not in BlockMessage, and
# ActionFiltered=remove takes the part out of the delivered copy.
is($r->{group_action}, 'deliver', 'filtered: delivered (not in the default BlockMessage)');
$r = scan(mail(subject => 'filtmime',
               parts => [attach_b64('a.dat', 'x', 'application/x-filtered-test')]));
is($r->{av_status}, 'filtered', 'IncludeByMime: filtered');
SKIP: {
    skip 'zip not installed', 2 unless have('zip');
    open(my $sf, '>', "$ad/inner.scr") or die; print $sf "harmless\n"; close $sf;
    system("cd $ad && zip -q f.zip inner.scr") == 0 or BAIL_OUT('zip failed');
    $r = scan(mail(subject => 'filtzip', parts => [attach_b64('f.zip', slurp("$ad/f.zip"))]));
    is($r->{av_status}, 'filtered', 'a filtered name inside a zip: filtered') or diag($r->{raw});
    ok((grep { $_->{name} =~ m{inner\.scr$} && $_->{status} eq 'filtered' } @{ $r->{objs} }),
       'the archive member is reported');
}

# --- avir-off / avir-on ----------------------------------------------------------------
my ($rc, $out) = $gw->mailgw('avir-off');
is($rc, 0, 'mailgw avir-off') or diag($out);
$r = scan(mail(subject => 'off', body => 'hello'));
is($r->{status}, 'tempfail', 'avir-off: tempfail');
is($r->{reason}, 'anti-virus is off', 'avir-off: reason');
ok(!defined $r->{av_status}, 'avir-off: no verdict');
($rc, $out) = $gw->mailgw('avir-on');
is($rc, 0, 'mailgw avir-on') or diag($out);
is(scan(mail(subject => 'on', body => 'hello'))->{av_status}, 'clean', 'avir-on: scanned again');

# --- reload-bases --------------------------------------------------------------------
my $marker = 'MAILGW-RELOAD-TEST-' . 'SIGNATURE-0123456789';
open(my $bad, '>', "$bases/broken.ndb") or die;
print $bad "This:is:not:a valid signature line\n";
close $bad;
($rc, $out) = $gw->mailgw('reload-bases');
like($out, qr/error|fail/i, 'reload-bases with a broken base fails') or diag($out);
ok($gw->wait_log(qr/reload-bases failed: .*keeping the old bases/, 10), 'failure logged, old kept');
is_infected(scan(mail(subject => 'afterbad', body => $EICAR)), 'old engine still scans');
unlink "$bases/broken.ndb";
open(my $good, '>', "$bases/reload.ndb") or die;
print $good 'Mailgw.Test.Reload:0:*:' . unpack('H*', $marker) . "\n";
close $good;
chmod 0644, "$bases/reload.ndb";
($rc, $out) = $gw->mailgw('reload-bases');
is($rc, 0, 'reload-bases with good bases') or diag($out);
ok($gw->wait_log(qr/bases reloaded from .*: 2 signatures; workers rotate/, 10), 'reload logged');
$r = scan(mail(subject => 'reloaded', body => "text $marker text"));
is($r->{av_status}, 'infected', 'the new signature is used');
like($r->{names} // '', qr/Mailgw\.Test\.Reload/, 'new virus name');

# --- stats ---------------------------------------------------------------------------
($rc, $out) = $gw->mailgw('stats');
like($out, qr/antiviral_infected_messages=([1-9]\d*)/, 'stats: infected counter') or diag($out);
like($out, qr/antiviral_tempfail_messages=1\b/, 'stats: tempfail counter');
like($out, qr/antiviral_checking_sessions_current=0\b/, 'stats: sessions now');

$gw->stop;
done_testing();
