#!/usr/bin/perl
# policy.t - policy groups, actions, rewriting and notifications through a
# real scand under master (t/helpers/scan_client over private/scand), and
# template errors refused by `mailgw check` and by a reload through the
# real master (the running configuration stays).
#
# Covers: the shipped default (infected blocked, admin and recipient
# notified, nothing rewritten for a blocked group); a group with
# ActionInfected=placeholder and BlockMessage=none (the rewritten queue
# file: placeholder part, no virus bytes, X-Anti-Virus, only the group's
# recipients); the default ActionFiltered=remove for a name filter set in
# a group; a clean message (X-Anti-Virus clean, no notices); a message
# split over two groups (split log lines, one block per group, the second
# rewrite asked for with group_rewrite_needed=1 when only one rewrite fd
# was given); protected (encrypted zip) when zip is installed; no notice
# about one of our notices and none to <>; the notification texts.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use File::Copy qw(copy);
use MIME::Base64 qw(encode_base64);
use lib 't/lib';
use MailgwTest;

my $client = MailgwTest::helper('scan_client');
for my $need (MailgwTest::bin('mailgw'), MailgwTest::libexec('master'),
              MailgwTest::libexec('scand'), $client) {
    plan skip_all => "$need not built" unless -x $need;
}

my $EICAR = pack('H*', '58354f2150254041505b345c505a58353428505e2937434329377d24'
    . '45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a');

my $work = File::Temp::tempdir('policy-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $work;
make_path("$work/bases", "$work/data");
copy(MailgwTest::root() . "/conf/bases/mailgw-eicar.ndb", "$work/bases/mailgw-eicar.ndb")
    or BAIL_OUT("copy bases: $!");
chmod 0755, "$work/bases";
chmod 0644, "$work/bases/mailgw-eicar.ndb";

my $groups = <<'EOF';
[mailgw.group:ph]
Recipients = *@ph.test
ActionInfected = placeholder
BlockMessage = none
NotifySender = infected
AttachOriginalToAdmin = yes
AdminNotifyAddress = phadmin@example.test
[mailgw.group:filt]
Recipients = *@filt.test
IncludeByName = *.scr
EOF
my $gw = MailgwTest->new(daemons => 'scand', 'mailgw.ave.MinWorkers' => 1,
    raw => "[path]\nBasesPath=$work/bases\n$groups");
$gw->start or BAIL_OUT('mailgw did not start');
my $sock = $gw->queue_dir . '/private/scand';
ok($gw->wait_log(qr/scand\[\d+\]: pool: /, 20), 'scand pool started')
    or BAIL_OUT($gw->log_text);

my $n = 0;
# scan(MESSAGE, rcpts => [...], sender => S, wfiles => N): the reply as
# {raw, groups => [{attr => value or [values]}], files => [paths]}.
sub scan {
    my ($msg, %o) = @_;
    my $id = sprintf('POLT%04d', ++$n);
    my $file = "$work/$id.eml";
    open(my $fh, '>', $file) or die "$file: $!";
    print $fh $msg;
    close $fh;
    my $dd = "$work/data/$id";
    make_path($dd);
    my @w = map { "$work/$id.w$_" } 1 .. ($o{wfiles} // 1);
    my @cmd = ($client, '-t', 30, '-i', $id, '-d', $dd, (map { ('-w', $_) } @w),
               (map { ('-r', $_) } @{ $o{rcpts} || ['rcpt@example.test'] }),
               (defined $o{sender} ? ('-s', $o{sender}) : ()), $sock, $file);
    open(my $p, '-|', @cmd) or die "scan_client: $!";
    my $raw = do { local $/; <$p> };
    close $p;
    my %r = (raw => $raw, id => $id, files => \@w, groups => []);
    my $g;
    for my $line (split /\n/, $raw) {
        my ($k, $v) = $line =~ /^([^=]+)=(.*)$/ or next;
        if ($k eq 'group') {
            $g = { group => $v, group_rcpt => [] };
            push @{ $r{groups} }, $g;
        } elsif ($g && $k =~ /^notify_/) {
            push @{ $g->{$k} }, $v;
        } elsif ($g && $k eq 'group_rcpt') {
            push @{ $g->{group_rcpt} }, $v;
        } elsif ($g) {
            $g->{$k} = $v;
        } else {
            $r{$k} //= $v;
        }
    }
    return \%r;
}

sub slurp { my ($f) = @_; open(my $fh, '<', $f) or return ''; local $/; my $t = <$fh>; return $t }
sub data_of { my ($v) = @_; return $v =~ /^@(.*)$/ ? slurp($1) : '' }

sub mail {
    my (%o) = @_;
    my $head = "From: Alice <alice\@example.org>\nTo: bob\@example.test\n"
        . "Subject: $o{subject}\nMessage-ID: <$o{subject}\@example.org>\n" . ($o{extra} || '');
    return "${head}\n$o{body}\n" unless $o{parts};
    my $m = "${head}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XYZ\"\n\n"
        . "preamble\n--XYZ\nContent-Type: text/plain\n\nHello, see the attachment.\n";
    for my $p (@{ $o{parts} }) {
        my ($name, $data, $type) = @$p;
        $m .= "--XYZ\nContent-Type: " . ($type || 'application/octet-stream')
            . "; name=\"$name\"\nContent-Disposition: attachment; filename=\"$name\"\n"
            . "Content-Transfer-Encoding: base64\n\n" . encode_base64($data);
    }
    return $m . "--XYZ--\n";
}

# --- the shipped default: infected is blocked, admin + recipient told ---
my $r = scan(mail(subject => 'def', parts => [['v.com', $EICAR]]), rcpts => ['bob@example.test']);
is($r->{status}, 'ok', 'default: reply ok') or diag $r->{raw};
my $g = $r->{groups}[0];
is($g->{group}, 'policy', 'default group');
is($g->{group_action}, 'block', 'infected: blocked');
is($g->{group_status}, 'infected', 'group status');
like($g->{group_names}, qr/EICAR/, 'group names');
is($g->{group_rewritten}, 0, 'blocked: nothing rewritten');
is($g->{group_save}, 'none', 'SaveInQB default: none');
is("$g->{group_notify_admin}$g->{group_notify_sender}$g->{group_notify_recipient}", '101',
   'admin and recipient notified, not the sender');
is($g->{notify_admin_to}[0], 'postmaster@example.test', 'admin = Postmaster by default');
my $adm = data_of($g->{notify_admin_msg}[0]);
like($adm, qr/^Subject: \[mailgw\] infected message from <sender\@example\.test> \(POLT0001\)\r$/m,
     'admin notice subject');
like($adm, qr/^Auto-Submitted: auto-generated\r$/m, 'admin notice: Auto-Submitted');
like($adm, qr/^X-Mailgw-Notification: admin\r$/m, 'admin notice: marked as ours');
like($adm, qr/v\.com \(application\/octet-stream\): infected \S*EICAR/, 'admin notice lists the object');
unlike($adm, qr/Content-Type: message\/rfc822\r/, 'no original attached by default');
is($g->{notify_recipient_to}[0], 'bob@example.test', 'recipient notice target');
my $rn = data_of($g->{notify_recipient_msg}[0]);
like($rn, qr/^To: bob\@example\.test\r$/m, 'recipient notice To:');
like($rn, qr/^Subject: A message for you from <sender\@example\.test> was blocked\r$/m,
     'recipient notice subject says blocked');
ok($gw->wait_log(qr/POLT0001: av-scanned group=policy nrcpt=1 status=infected names="[^"]*EICAR[^"]*" action=block/, 10),
   'av-scanned log line per group');

# --- group ph: placeholder, delivered, rewritten ---
$r = scan(mail(subject => 'ph', parts => [['v.com', $EICAR]]), rcpts => ['x@ph.test']);
$g = $r->{groups}[0];
is($g->{group}, 'ph', 'recipient mask picks group ph');
is($g->{group_action}, 'deliver', 'BlockMessage=none: delivered');
is($g->{group_rewritten}, 1, 'rewritten');
is($g->{group_rewritten_fd}, 1, 'into fd 1');
my $eml = slurp("$r->{files}[0].eml");
like($eml, qr/\AX-Anti-Virus: mailgw \S+, bases: \d{8} #\d+, check: \d{8} infected\r\n/,
     'X-Anti-Virus header on top');
ok(index($eml, 'EICAR-STANDARD') < 0 && index($eml, encode_base64($EICAR, '')) < 0,
   'virus bytes gone');
like($eml, qr/has been removed by the mail gateway/, 'placeholder text in place');
like($eml, qr/Hello, see the attachment\./, 'the text part is kept');
unlike($eml, qr/(?<!\r)\n/, 'CRLF line ends only');
is(slurp("$r->{files}[0].env"), "sender=sender\@example.test\nrcpt=x\@ph.test\n",
   'new queue file: envelope copied, the group\'s recipient');
is($g->{notify_admin_to}[0], 'phadmin@example.test', 'group AdminNotifyAddress');
like(data_of($g->{notify_admin_msg}[0]), qr/Content-Type: message\/rfc822\r/,
     'AttachOriginalToAdmin: original attached');
is($g->{notify_sender_to}[0], 'sender@example.test', 'NotifySender=infected: sender told');
like(data_of($g->{notify_sender_msg}[0]),
     qr/Actions taken: delivered with objects replaced\./, 'sender notice: actions');

# --- group filt: name filter, default ActionFiltered=remove ---
$r = scan(mail(subject => 'filt', parts => [['screen.scr', 'just text'], ['ok.txt', 'fine', 'text/plain']]),
          rcpts => ['y@filt.test']);
$g = $r->{groups}[0];
is($r->{av_status}, 'clean', 'message level ([mailgw.policy] filter): clean');
is($g->{group_status}, 'filtered', 'group filt sees filtered');
is($g->{group_action}, 'deliver', 'filtered: delivered');
$eml = slurp("$r->{files}[0].eml");
unlike($eml, qr/screen\.scr/, 'filtered part removed');
like($eml, qr/ok\.txt/, 'other attachment kept');
like($eml, qr/check: \d{8} filtered\r\n/, 'header says filtered');

# --- clean ---
$r = scan(mail(subject => 'clean', body => 'nothing here'));
$g = $r->{groups}[0];
is($g->{group_action}, 'deliver', 'clean: delivered');
is("$g->{group_notify_admin}$g->{group_notify_sender}$g->{group_notify_recipient}", '000',
   'clean: no notices');
like(slurp("$r->{files}[0].eml"), qr/\AX-Anti-Virus: .* clean\r\n.*nothing here/s,
     'clean: header added, body kept');

# --- split over two groups, one rewrite fd ---
$r = scan(mail(subject => 'split', parts => [['v.com', $EICAR]]),
          rcpts => ['a@ph.test', 'b@example.test', 'c@ph.test', 'd@filt.test']);
is(scalar @{ $r->{groups} }, 3, 'three groups in the reply');
is(join(',', map { $_->{group} } @{ $r->{groups} }), 'ph,policy,filt', 'in order of first recipient');
is(join(',', @{ $r->{groups}[0]{group_rcpt} }), 'a@ph.test,c@ph.test', 'ph recipients');
is($r->{groups}[0]{group_rewritten}, 1, 'first group needing a rewrite gets fd 1');
is($r->{groups}[1]{group_action}, 'block', 'policy part blocked');
is($r->{groups}[2]{group_action}, 'block', 'filt (BlockMessage from the policy): blocked');
ok($gw->wait_log(qr/POLT0005: split group=ph nrcpt=2/, 10), 'split log line');
is(slurp("$r->{files}[0].env"), "sender=sender\@example.test\nrcpt=a\@ph.test\nrcpt=c\@ph.test\n",
   'rewritten file carries only the group\'s recipients');
# clean, two groups needing a rewrite (the header), one fd
$r = scan(mail(subject => 'split1', body => 'clean text'), rcpts => ['a@ph.test', 'd@filt.test']);
is($r->{groups}[0]{group_rewritten}, 1, 'first group rewritten');
is($r->{groups}[1]{group_rewritten}, 0, 'second: no fd left');
is($r->{groups}[1]{group_rewrite_needed}, 1, 'second: group_rewrite_needed=1');
# the same with two fds: both rewritten
$r = scan(mail(subject => 'split2', body => 'clean text'),
          rcpts => ['a@ph.test', 'd@filt.test'], wfiles => 2);
is($r->{groups}[1]{group_rewritten_fd}, 2, 'second group gets fd 2');
like(slurp("$r->{files}[1].env"), qr/rcpt=d\@filt\.test/, 'second file: its recipient');

# --- no notice about a notice, none to <> ---
$r = scan(mail(subject => 'loop', parts => [['v.com', $EICAR]],
               extra => "Auto-Submitted: auto-generated\nX-Mailgw-Notification: admin\n"),
          rcpts => ['x@ph.test']);
$g = $r->{groups}[0];
is("$g->{group_notify_admin}$g->{group_notify_sender}$g->{group_notify_recipient}", '000',
   'our own notice: no notices about it');
$r = scan(mail(subject => 'null', parts => [['v.com', $EICAR]]), rcpts => ['x@ph.test'], sender => '');
is($r->{groups}[0]{group_notify_sender}, 0, 'null sender: no sender notice');

# --- protected: an encrypted zip ---
SKIP: {
    skip 'zip not installed', 2 unless system('zip -v >/dev/null 2>&1') == 0;
    open(my $fh, '>', "$work/secret.txt") or die;
    print $fh "secret\n" x 50;
    close $fh;
    system("cd $work && zip -q -P pw enc.zip secret.txt") == 0 or skip 'zip -P failed', 2;
    my $zip = slurp("$work/enc.zip");
    $r = scan(mail(subject => 'enc', parts => [['enc.zip', $zip, 'application/zip']]));
    is($r->{groups}[0]{group_status}, 'protected', 'encrypted zip: protected') or diag $r->{raw};
    is($r->{groups}[0]{group_action}, 'block', 'protected: blocked by default');
}
$gw->stop;

# --- broken templates: mailgw check, and reload through the master ---
my $gw2 = MailgwTest->new(daemons => 'scand,qmgr,smtpd,smtp', raw => "[path]\nBasesPath=$work/bases\n");
$gw2->start or BAIL_OUT('mailgw did not start');
my ($rc, $out) = $gw2->mailgw('check');
is($rc, 0, 'check: valid config') or diag $out;
open(my $t, '>', "$work/bad.tmpl") or die;
print $t "Subject: %NO_SUCH%\n\nbody\n";
close $t;
open($t, '>>', $gw2->conf_path) or die;
print $t "[mailgw.policy]\nNotifyAdminTemplate = $work/bad.tmpl\n";
close $t;
($rc, $out) = $gw2->mailgw('check');
isnt($rc, 0, 'check: a broken template fails');
like($out, qr/NotifyAdminTemplate: \Q$work\E\/bad\.tmpl:1: .*NO_SUCH/, 'diagnostic names the template line')
    or diag $out;
($rc, $out) = $gw2->mailgw('reload');
isnt($rc, 0, 'mailgw reload refuses it');
my $pid = slurp($gw2->queue_dir . '/pid/master.pid');
($pid) = $pid =~ /(\d+)/;
ok($pid && kill('HUP', $pid), 'SIGHUP to master');
ok($gw2->wait_log(qr/reload: configuration has errors; keeping the running one/, 10),
   'master refuses the reload and keeps the running configuration');
like($gw2->log_text, qr/bad\.tmpl:1: unknown macro %NO_SUCH%/, 'the template error is logged');
$gw2->write_config;
my ($src, $sout) = $gw2->mailgw('status');
is($src, 0, 'still running on the old configuration') or diag $sout;
$gw2->stop;
done_testing();
