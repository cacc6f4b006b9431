/*
 * queue_post.t - qmgr's post records (lib/queue/queue_post.c and the
 * reader in queue_file.c): FLAGS and REASON written by queue_file_append
 * and queue_file_rewrite read back; content, statuses and the rest of the
 * file unchanged; malformed post records rejected with a reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "queue/queue_file.h"
#include "tap.h"
#include "util/buf.h"

static const char body[] = "Subject: post\r\n\r\nbody line\r\n";

/* A complete queue file with two recipients in a memfd. */
static int make_file(void)
{
    struct queue_rcpt r[2] = { { .addr = "a@example.test" }, { .addr = "b@example.test" } };
    struct queue_envelope env = { .arrival_us = 1, .sender = "s@example.org", .rcpts = r,
                                  .nrcpts = 2 };
    struct queue_writer w;
    int fd = memfd_create("queue", MFD_CLOEXEC);

    if (fd < 0 || queue_writer_open(&w, fd) < 0 || queue_writer_envelope(&w, &env) < 0 ||
        queue_writer_content(&w, body, strlen(body)) < 0 || queue_writer_finish(&w) < 0) {
        perror("queue file");
        exit(1);
    }
    queue_writer_close(&w);
    return fd;
}

static char *content_of(int fd, const struct queue_file *qf)
{
    static char out[256];
    struct queue_content c;
    const char *why = NULL;
    ssize_t n;

    queue_content_open(&c, fd, qf);
    n = queue_content_read(&c, out, sizeof out - 1, &why);
    out[n > 0 ? n : 0] = 0;
    return out;
}

/* What the reader says of fd's copy with post + END as its post records. */
static const char *read_raw(int fd, const struct queue_file *qf, const struct buf *post)
{
    static const char *why;
    struct queue_file nqf;
    int nfd = memfd_create("raw", MFD_CLOEXEC);

    why = NULL;
    if (queue_file_rewrite(fd, qf, nfd, post) < 0)
        return "rewrite failed";
    if (queue_file_read(nfd, &nqf, &why) == 0) {
        queue_file_free(&nqf);
        why = "accepted";
    }
    close(nfd);
    return why;
}

static void test_append_and_rewrite(void)
{
    int fd = make_file(), nfd;
    struct queue_file qf, nqf;
    struct buf post = BUF_INIT;
    const char *why = NULL;

    ok(queue_file_read(fd, &qf, &why) == 0, "plain file reads");
    is_int(qf.flags, 0, "no FLAGS: flags 0");
    ok(qf.env.rcpts[0].reason == NULL && qf.env.rcpts[0].reason_dsn == NULL, "no REASON");
    is_int(qf.post_offset, qf.file_size - QUEUE_REC_HEADER, "post_offset = END's offset");
    ok(queue_post_flags(&post, QUEUE_FLAG_NOSCAN) == 0, "FLAGS record made");
    ok(queue_post_flags(&post, 1u << 30) < 0, "unknown flag bit refused");
    ok(queue_file_append(fd, &qf, &post) == 0, "append at commit time");
    queue_file_free(&qf);
    ok(queue_file_read(fd, &qf, &why) == 0, "file with FLAGS reads");
    is_int(qf.flags, QUEUE_FLAG_NOSCAN, "QUEUE_FLAG_NOSCAN read back");
    is_str(content_of(fd, &qf), body, "content unchanged");

    buf_reset(&post);
    (void)queue_post_flags(&post, QUEUE_FLAG_NOSCAN);
    ok(queue_post_reason(&post, 1, "4.4.1", "connect to x[192.0.2.1]:25: refused\r\nX") == 0,
       "REASON record made (CR LF made safe)");
    ok(queue_post_reason(&post, 0, "4.4.1; x", "r") < 0, "a dsn with other characters refused");
    (void)queue_rcpt_set_status(fd, &qf.env.rcpts[0], QUEUE_RCPT_DELIVERED);
    nfd = memfd_create("copy", MFD_CLOEXEC);
    ok(queue_file_rewrite(fd, &qf, nfd, &post) == 0, "rewrite into a fresh file");
    if (!ok(queue_file_read(nfd, &nqf, &why) == 0, "the copy reads"))
        tap_diag("%s", why);
    is_int(nqf.flags, QUEUE_FLAG_NOSCAN, "copy: flags");
    is_str(nqf.env.rcpts[1].reason ? nqf.env.rcpts[1].reason : "(none)",
           "connect to x[192.0.2.1]:25: refused  X", "copy: reason of recipient 2");
    is_str(nqf.env.rcpts[1].reason_dsn ? nqf.env.rcpts[1].reason_dsn : "(none)", "4.4.1",
           "copy: its dsn");
    ok(nqf.env.rcpts[0].reason == NULL, "copy: no reason for recipient 1");
    is_int(nqf.env.rcpts[0].status, QUEUE_RCPT_DELIVERED, "copy: statuses kept");
    is_str(content_of(nfd, &nqf), body, "copy: content unchanged");
    queue_file_free(&nqf);
    close(nfd);

    /* malformed post records */
    buf_reset(&post);
    (void)queue_post_flags(&post, 0);
    (void)queue_post_flags(&post, 0);
    is_str(read_raw(fd, &qf, &post), "duplicate FLAGS record", "two FLAGS records refused");
    buf_reset(&post);
    (void)queue_post_reason(&post, 2, "", "x");
    is_str(read_raw(fd, &qf, &post), "bad REASON record", "REASON for a recipient that is not there");
    buf_reset(&post);
    (void)queue_post_reason(&post, 0, "", "x");
    (void)queue_post_reason(&post, 0, "", "y");
    is_str(read_raw(fd, &qf, &post), "bad REASON record", "two REASONs for one recipient");
    buf_reset(&post);
    buf_put_u8(&post, QREC_FLAGS);
    buf_put_u32(&post, 4);
    buf_put_u32(&post, 1u << 20);
    is_str(read_raw(fd, &qf, &post), "bad FLAGS record", "unknown flag bits refused by the reader");
    buf_reset(&post);
    buf_put_u8(&post, QREC_REASON);
    buf_put_u32(&post, 7);
    buf_put_u32(&post, 0);
    buf_put_u8(&post, 0);
    buf_append(&post, "a\rb", 2);
    is_str(read_raw(fd, &qf, &post), "reason with NUL, CR or LF", "CR in a reason refused");
    buf_reset(&post);
    buf_put_u8(&post, QREC_POST_FIRST);
    buf_put_u32(&post, 0);
    is_str(read_raw(fd, &qf, &post), "unknown record type", "other post types still unknown");
    buf_reset(&post);
    (void)queue_post_reason(&post, 0, "4.0.0", "x");
    buf_put_u8(&post, QREC_CONTENT);
    buf_put_u32(&post, 1);
    buf_put_u8(&post, 'x');
    is_str(read_raw(fd, &qf, &post), "CONTENT record out of order", "CONTENT after a post record");
    buf_free(&post);
    queue_file_free(&qf);
    close(fd);
}

int main(void)
{
    test_append_and_rewrite();
    return tap_done();
}
