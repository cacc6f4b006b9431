#!/usr/bin/perl
# qmgr_spare.t - queue files are recycled (qmgr_spare.c): a delivered
# message's inode waits in spare/ and becomes the next queue file handed
# out, under a fresh ID; the new message, shorter than the old one,
# arrives byte for byte without the old tail; a deferred message's copy
# with its reasons (qmgr_notes) takes a spare too and the file it
# replaces goes back to the pool; a restart empties spare/.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
use Time::HiRes qw(sleep);
require "$FindBin::Bin/relay_common.pl";

relay_needs([qw(master qmgr smtpd smtp)], [qw(swaks aiosmtpd)]);

my $sink = MailgwTest::free_port();
my $dead = MailgwTest::free_port();     # nothing listens there
my $gw = MailgwTest->new(daemons => 'qmgr,smtpd,smtp',
                         'forward.ForwardRoute' => ["*\@dead.example.test [127.0.0.1:$dead]",
                                                    "* [127.0.0.1:$sink]"]);
my $d = $gw->dir;
my $q = $gw->queue_dir;
start_py_sink($sink, "$d/sink");
$gw->start or BAIL_OUT('mailgw did not start');

sub tmp_files { return queue_files($gw, 'tmp') }
sub tmp_inodes { return map { (stat "$q/tmp/$_")[1] // 0 } tmp_files() }

sub spares {
    opendir my $dh, "$q/spare" or return ();
    return sort grep { $_ ne '.' && $_ ne '..' } readdir $dh;
}

# ---- a long message is delivered: its file is kept ----
my $long = join("\n", ('long-old-bytes ' x 60) x 40);
my $id1 = send_mail($gw->port, to => 'a@example.test', body => "token-first\n$long");
ok($id1, "first message accepted as $id1");
ok($gw->wait_log(qr/\Q$id1\E: removed/, 30), 'delivered and removed');
ok(wait_for(sub { scalar(my @s = spares()) == 1 }, 10), 'its file waits in spare/')
    or diag join(' ', spares());
my ($spare) = spares();
my @st = $spare ? stat("$q/spare/$spare") : ();
ok(@st && $st[7] > 30000, "spare holds the old bytes ($st[7])");
sleep 2.5;      # a done message's removal is fsynced at the next tick
                # (qmgr_spare_remove_later); only then its spare is taken

# ---- the next file handed out is that inode under a fresh ID ----
# smtpd fetched one file ahead with the first commit, before the spare
# existed (smtpd_queue.c): the second message takes that one, and the
# file fetched with its commit is the spare, for the third message.
my ($rc, $out) = $gw->mailgw('send-off');
is($rc, 0, 'send-off') or diag $out;
my $idf = send_mail($gw->port, to => 'f@example.test', body => 'token-filler');
ok($idf, "second message accepted as $idf");
ok(wait_for(sub { my @t = tmp_inodes(); @t == 1 && $t[0] == $st[1] }, 10),
   'the file fetched with its commit is the spare inode') or diag join(' ', tmp_inodes());
is(scalar(my @s = spares()), 0, 'spare/ used up');
my $id2 = send_mail($gw->port, to => 'b@example.test', body => 'token-second short');
ok($id2 && $id2 ne $id1, "third message accepted as $id2");
my ($file) = grep { -f } map { "$q/$_/$id2" } qw(incoming active);
ok($file, 'its queue file is in the queue');
my @st2 = $file ? stat($file) : ();
is($st2[1], $st[1], 'same inode as the spare');
ok(@st2 && $st2[7] < 2000, "cut to its own length ($st2[7] bytes)");

($rc, $out) = $gw->mailgw('send-on');
is($rc, 0, 'send-on') or diag $out;
ok($gw->wait_log(qr/\Q$id2\E: removed/, 30), 'third message delivered');
my ($m) = grep { $_->{data} =~ /token-second/ } sink_messages("$d/sink");
ok($m, 'the sink has it');
unlike($m ? $m->{data} : '', qr/long-old-bytes/, 'no byte of the old message');

# ---- a deferred message's copy with its reasons goes into a spare ----
# (two messages queued at once, then delivered: two spares)
sleep 2.5;      # the second message's spare is ready (the tick's fsync)
$gw->mailgw('send-off');
my @more = map { send_mail($gw->port, to => "c$_\@example.test", body => 'token-fourth') } 1 .. 2;
$gw->mailgw('send-on');
ok(@more == 2 && !grep({ !$_ || !$gw->wait_log(qr/\Q$_\E: removed/, 30) } @more),
   'two more delivered');
ok(wait_for(sub { scalar(my @x = spares()) == 2 }, 10), 'two spares now')
    or diag join(' ', spares());
my %spare_ino = map { (stat("$q/spare/$_"))[1] => 1 } spares();
sleep 2.5;      # the tick's fsync, as above
my ($ahead) = map { [$_, (stat "$q/tmp/$_")[1]] } tmp_files();
my $id3 = send_mail($gw->port, to => 'x@dead.example.test', body => 'token-third');
ok($id3, "message for a dead host accepted as $id3");
is($id3, $ahead ? $ahead->[0] : '', 'it took the file fetched ahead (its name is the ID)');
ok(wait_for(sub { -f "$q/deferred/$id3" }, 20), 'deferred');
my @st4 = stat("$q/deferred/$id3");
ok(@st4 && $spare_ino{ $st4[1] }, 'its file with the reasons is a spare inode');
# both spares were used (the file fetched with its commit, then the
# reasons copy); the file the copy replaced is exchanged into the pool
my @back = spares();
is(scalar(@back), 1, 'one file back in spare/: the one the copy replaced') or diag "@back";
my $back_ino = @back ? (stat("$q/spare/$back[0]"))[1] : 0;
ok($back_ino && $ahead && $back_ino == $ahead->[1] && $back_ino != $st4[1],
   'it is the queue file before the copy');
open my $fh, '<', "$q/deferred/$id3";
my $bytes = do { local $/; <$fh> } // '';
close $fh;
like($bytes, qr/127\.0\.0\.1/, 'the reason is in the file');
unlike($bytes, qr/long-old-bytes|token-second|token-fourth/, 'no byte of an older message');

# ---- a restart empties spare/ ----
my $id5 = send_mail($gw->port, to => 'd@example.test', body => 'token-fifth');
ok($id5 && wait_for(sub { scalar(my @x = spares()) >= 1 }, 30), 'a spare before the restart');
$gw->stop;
$gw->start or BAIL_OUT('mailgw did not restart');
ok(wait_for(sub { scalar(my @x = spares()) == 0 }, 10), 'restart emptied spare/');
$gw->stop;
done_testing();
