#!/usr/bin/perl
# smtpd_stock.t - smtpd fetches queue files ahead (smtpd_queue.c): after a
# commit, tmp/ holds the file fetched with it and the next message gets
# exactly that file (no round trip at MAIL); when qmgr dies the stock
# goes with its connection and the next message still gets a good file
# and a 250 (smtpd keeps no fd of the lost stock); when qmgr refuses new
# files (MinimalQueueFreeSpaceSize, on a small tmpfs queue) the stock is
# dropped and aborted, and MAIL hears the 452 itself.
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
use IO::Socket::INET;
require "$FindBin::Bin/relay_common.pl";

relay_needs([qw(master qmgr smtpd)], [qw(swaks)]);

my $gw = MailgwTest->new(daemons => 'qmgr,smtpd');
my $q = $gw->queue_dir;
$gw->start or BAIL_OUT('mailgw did not start');

my $cur = $gw;                  # the gateway tmp_files and in_queue look at
sub tmp_files { return queue_files($cur, 'tmp') }

sub in_queue { my ($id) = @_; return grep { -f $cur->queue_dir . "/$_/$id" } qw(incoming active deferred) }

# ---- the file fetched with a commit is the next message's ----
my $id1 = send_mail($gw->port, to => 'a@example.test', body => 'token-one');
ok($id1 && in_queue($id1), "first message queued as $id1");
my @stock;
ok(wait_for(sub { @stock = tmp_files(); @stock == 1 }, 10),
   'tmp/ holds the one file fetched with its commit') or diag "tmp/: @stock";
my $id2 = send_mail($gw->port, to => 'b@example.test', body => 'token-two');
ok($id2 && in_queue($id2), "second message queued as $id2");
is($id2, $stock[0], 'it got the file fetched ahead');
ok(wait_for(sub { my @t = tmp_files(); @t == 1 && $t[0] ne $id2 }, 10),
   'and the next one is fetched with its commit');

# ---- qmgr dies: the stock goes with the connection ----
my $st = $gw->status;
my $old = $st->{qmgr}{pid};
my ($stale) = tmp_files();
ok(kill('KILL', $old), "kill -9 qmgr ($old)");
ok(wait_for(sub {
    my $s = $gw->status;
    $s && $s->{qmgr}{pid} && $s->{qmgr}{pid} != $old && $s->{qmgr}{state} eq 'running';
}, 20), 'qmgr restarted');
ok(!-e "$q/tmp/$stale", 'the restarted qmgr emptied tmp/');
my $id3 = send_mail($gw->port, to => 'c@example.test', body => 'token-three');
ok($id3 && in_queue($id3), 'a message after the restart is queued with a 250' . ($id3 ? " as $id3" : ''));
isnt($id3 // '', $stale, 'under a fresh file, not the stale stocked one');
ok(wait_for(sub { scalar(my @t = tmp_files()) == 1 }, 10), 'the stock refills on the new connection');
my $smtpd = $gw->status->{smtpd}{pid};
my @held = grep { m{/tmp/[^/]+ \(deleted\)$} }
           map { readlink($_) // '' } glob("/proc/$smtpd/fd/*");
is(scalar @held, 0, 'smtpd holds no file of the lost connection') or diag "@held";

$gw->stop;

# ---- qmgr refuses new files: the stock is dropped, MAIL gets the 452 ----
# (a queue on a 16 MB tmpfs with MinimalQueueFreeSpaceSize 8 MB; a filler
# file takes the space while smtpd holds files fetched ahead)
my $gw2 = MailgwTest->new(daemons => 'qmgr,smtpd', 'limits.MinimalQueueFreeSpaceSize' => '8 MB');
my $q2 = $gw2->queue_dir;
my $mounted;
END { system('umount', '-l', $q2) if $mounted }
SKIP: {
    skip 'root needed for a small tmpfs queue', 9 unless $> == 0;
    mkdir $q2;
    $mounted = system('mount', '-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', $q2) == 0;
    skip 'cannot mount a tmpfs', 9 unless $mounted;
    $gw2->start or BAIL_OUT('mailgw on the small queue did not start');
    $cur = $gw2;
    my $m1 = send_mail($gw2->port, to => 'e@example.test', body => 'token-e');
    ok($m1 && in_queue($m1), 'a message on the small queue');
    # MAIL, RSET, MAIL in one session: the first MAIL takes the stocked
    # file and the RSET gives it up, so two are wanted; the commit of the
    # second transaction fetches both
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $gw2->port, Timeout => 20)
        or die "connect: $!";
    my @said;
    my $say = sub {
        print $s "$_[0]\r\n" if defined $_[0];
        my $l;
        do { $l = <$s> // '' } while ($l =~ /^\d{3}-/);
        push @said, $l =~ /^(\d{3})/ ? $1 : '?';
    };
    $say->(undef);
    $say->($_) for 'EHLO t', 'MAIL FROM:<s@example.org>', 'RSET', 'MAIL FROM:<s@example.org>',
                   'RCPT TO:<p@example.test>', 'DATA';
    $say->("Subject: p\r\n\r\ntoken-p\r\n.");
    $say->('QUIT');
    close $s;
    is("@said", '220 250 250 250 250 250 354 250 221', 'MAIL, RSET, MAIL: the message is taken');
    ok(wait_for(sub { scalar(my @t = tmp_files()) == 2 }, 10), 'two files fetched ahead')
        or diag join(' ', tmp_files());
    open my $fh, '>', "$q2/filler" or die "$q2/filler: $!";
    print $fh "\0" x (10 * 1024 * 1024);
    close $fh;
    my $m2 = send_mail($gw2->port, to => 'f@example.test', body => 'token-f');
    ok($m2 && in_queue($m2), 'the next message takes the file fetched ahead (250)');
    ok(wait_for(sub { scalar(my @t = tmp_files()) == 0 }, 10),
       'qmgr refused the next fetch: smtpd dropped and aborted its stock, tmp/ is empty')
        or diag join(' ', tmp_files());
    my $o = `swaks --server 127.0.0.1:@{[ $gw2->port ]} --from s\@example.org --to g\@example.test --body x --timeout 20 2>&1`;
    like($o, qr/MAIL FROM:[^\n]*\n<[-*~]*\s+452 4\.3\.1/, 'and MAIL hears the 452 itself');
    unlink "$q2/filler";
    my $m3 = send_mail($gw2->port, to => 'h@example.test', body => 'token-h');
    ok($m3 && in_queue($m3), 'space back: mail is taken again');
    ok(wait_for(sub { scalar(my @t = tmp_files()) >= 1 }, 10), 'and the stock refills');
    $gw2->stop;
    $mounted = system('umount', $q2) != 0;
}
done_testing;
