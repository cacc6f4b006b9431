#!/usr/bin/perl
# qmgr_spare_scan.t - with scanning on, no step of a message costs a new
# inode once the pool has spares (qmgr_spare.c): the rewrite files of a
# scan request come from spare/, the one scand left unused goes back,
# and the original a rewritten copy replaces (AddXHeader rewrites every
# message) is exchanged out of incoming/ into the pool instead of freed.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
use Time::HiRes qw(sleep);
require "$FindBin::Bin/relay_common.pl";

my ($gw) = scanning_gateway();
my $sink = start_scanning_gateway($gw, "");     # AddXHeader is on by default
my $q = $gw->queue_dir;

sub tmp_files { return queue_files($gw, 'tmp') }

sub spare_inodes {
    opendir my $dh, "$q/spare" or return ();
    return map { (stat "$q/spare/$_")[1] } grep { $_ ne '.' && $_ ne '..' } readdir $dh;
}

# ---- two recipients: two rewrite files, one used ----
my $id1 = send_mail($gw->port, to => 'a@example.test,b@example.test', body => 'token-one');
ok($id1, "first message accepted as $id1");
ok($gw->wait_log(qr/\Q$id1\E: content rewritten by the scanner/, 60), 'rewritten (X-Anti-Virus)')
    or diag $gw->log_text;
ok($gw->wait_log(qr/\Q$id1\E: removed/, 60), 'delivered and removed');
# the delivered file, the original it replaced, the unused rewrite file
ok(wait_for(sub { scalar(my @s = spare_inodes()) == 3 }, 10), 'three files wait in spare/')
    or diag join(' ', spare_inodes());
my %pool = map { $_ => 1 } spare_inodes();
sleep 2.5;      # a done message's removal is fsynced at the next tick
                # (qmgr_spare_remove_later); only then its spare is taken

# ---- the next message: queue file and rewrite files are spares ----
my ($rc, $out) = $gw->mailgw('send-off');
is($rc, 0, 'send-off') or diag $out;
# it takes the file smtpd fetched ahead with the first commit (before
# the pool had spares: a new inode, named as its ID will be)
my ($ahead) = map { [$_, (stat "$q/tmp/$_")[1]] } tmp_files();
my $id2 = send_mail($gw->port, to => 'c@example.test,d@example.test', body => 'token-two');
ok($id2, "second message accepted as $id2");
is($id2, $ahead ? $ahead->[0] : '', 'it took the file fetched ahead');
$pool{ $ahead->[1] } = 1 if $ahead;
my $file;
ok(wait_for(sub { ($file) = grep { -f } map { "$q/$_/$id2" } qw(incoming active); $file }, 10),
   'its queue file is in the queue');
ok($gw->wait_log(qr/\Q$id2\E: content rewritten by the scanner/, 60), 'scanned and rewritten');
my $ino = (stat "$q/active/$id2")[1] // (stat "$q/incoming/$id2")[1];
ok($ino && $pool{$ino}, 'the rewritten copy is a spare inode');
# every file the message took came from the pool, the two it gave back
# (the original and the unused rewrite file) are pool inodes again
my @now = spare_inodes();
ok(wait_for(sub { @now = spare_inodes(); @now == 2 }, 10), 'two files in spare/ meanwhile')
    or diag join(' ', @now);
my @fetched = map { (stat "$q/tmp/$_")[1] } tmp_files();
is(scalar(grep { !$pool{$_} } @now, $ino, @fetched), 0,
   'no new inode was allocated (the file fetched with its commit is a spare too)');

($rc, $out) = $gw->mailgw('send-on');
is($rc, 0, 'send-on') or diag $out;
ok($gw->wait_log(qr/\Q$id2\E: removed/, 60), 'second message delivered');
ok(wait_for(sub { grep { $_->{data} =~ /token-two/ && $_->{data} =~ /^X-Anti-Virus:/m }
                   sink_messages($sink) }, 10), 'delivered with the X-Anti-Virus header');

$gw->stop;
done_testing;
