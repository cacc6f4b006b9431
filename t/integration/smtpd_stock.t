#!/usr/bin/perl
# smtpd_stock.t - smtpd fetches queue files ahead (smtpd_queue.c): after a
# commit, tmp/ holds the file fetched with it and the next message gets
# exactly that file (no round trip at MAIL); when qmgr dies the stock
# goes with its connection and the next message still gets a good file
# and a 250 (smtpd keeps no fd of the lost stock); when qmgr refuses new
# files (MinimalQueueFreeSpaceSize) MAIL hears the 452 itself (the stock
# is emptied by the refused fetch, or went with a restart of smtpd).
use strict;
use warnings;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../lib";
use MailgwTest;
require "$FindBin::Bin/relay_common.pl";

relay_needs([qw(master qmgr smtpd)], [qw(swaks)]);

my $gw = MailgwTest->new(daemons => 'qmgr,smtpd');
my $q = $gw->queue_dir;
$gw->start or BAIL_OUT('mailgw did not start');

sub tmp_files {
    opendir my $dh, "$q/tmp" or return ();
    return sort grep { !/^\./ } readdir $dh;
}

sub in_queue { my ($id) = @_; return grep { -f "$q/$_/$id" } qw(incoming active deferred) }

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

# ---- qmgr refuses new files: the stock is emptied, MAIL gets the 452 ----
$gw->set('limits.MinimalQueueFreeSpaceSize' => '1000000 MB');
$gw->write_config;
my ($rc, $out) = $gw->mailgw('reload');
is($rc, 0, 'reload with MinimalQueueFreeSpaceSize above the free space') or diag $out;
ok($gw->wait_log(qr/reload/i, 10), 'reloaded');
my @replies;
for my $n (1 .. 3) {
    my $o = `swaks --server 127.0.0.1:@{[ $gw->port ]} --from s\@example.org --to d$n\@example.test --body x --timeout 20 2>&1`;
    my ($mail) = $o =~ /MAIL FROM:[^\n]*\n<[-*~]*\s+(\d{3})/;
    push @replies, $mail // '?';
}
# the file in stock may still take one message; after that MAIL hears 452
is($replies[-1], '452', "MAIL answered 452 once the stock is gone (@replies)");
ok(!grep({ $_ ne '250' && $_ ne '452' } @replies), 'only 250 or 452');
$gw->stop;
done_testing;
