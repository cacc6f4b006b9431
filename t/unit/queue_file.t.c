/*
 * queue_file.t - the queue file writer and reader (lib/queue/queue_file.c,
 * queue_writer.c): round trips, in-place status updates, and every kind of
 * corruption rejected with a reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/queue_file.h"
#include "tap.h"
#include "util/buf.h"
#include "util/mem.h"

static int memfile(const void *p, size_t n)
{
    int fd = memfd_create("queue", MFD_CLOEXEC);
    size_t done = 0;

    if (fd < 0) {
        perror("memfd_create");
        exit(1);
    }
    while (done < n) {
        ssize_t w = write(fd, (const char *)p + done, n - done);
        if (w <= 0) {
            perror("write");
            exit(1);
        }
        done += (size_t)w;
    }
    return fd;
}

/* Whole file contents of fd into b. */
static void slurp(int fd, struct buf *b)
{
    char tmp[65536];
    off_t off = 0;
    ssize_t n;

    buf_reset(b);
    while ((n = pread(fd, tmp, sizeof tmp, off)) > 0) {
        buf_append(b, tmp, (size_t)n);
        off += n;
    }
}

static int check_bytes(const struct buf *b, const char **why)
{
    struct queue_file qf;
    int fd = memfile(b->data, b->len);
    int rc = queue_file_read(fd, &qf, why);

    queue_file_free(&qf);
    close(fd);
    return rc;
}

static void rec(struct buf *b, int type, const void *p, size_t n)
{
    buf_put_u8(b, (uint8_t)type);
    buf_put_u32(b, (uint32_t)n);
    buf_append(b, p, n);
}

static void rec_u32(struct buf *b, int type, uint32_t v)
{
    buf_put_u8(b, (uint8_t)type);
    buf_put_u32(b, 4);
    buf_put_u32(b, v);
}

static void rec_u64(struct buf *b, int type, uint64_t v)
{
    buf_put_u8(b, (uint8_t)type);
    buf_put_u32(b, 8);
    buf_put_u64(b, v);
}

static void rec_rcpt(struct buf *b, const char *addr)
{
    size_t n = strlen(addr);

    buf_put_u8(b, QREC_RCPT);
    buf_put_u32(b, (uint32_t)(2 + 4 + n + 4));
    buf_put_u8(b, 0);
    buf_put_u8(b, 0);
    buf_put_u32(b, (uint32_t)n);
    buf_append(b, addr, n);
    buf_put_u32(b, 0);
}

/* A small valid file written with the writer. */
static void small_file(struct buf *b)
{
    struct queue_rcpt rcpts[2] = {
        { .addr = "a@example.test", .orcpt = "rfc822;a@example.test",
          .notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY },
        { .addr = "b@example.test" },
    };
    struct queue_envelope env = {
        .arrival_us = 1700000000123456ULL, .client_addr = "192.0.2.1",
        .client_name = "client.example", .helo = "helo.example", .proto = "ESMTP",
        .sender = "s@example.org", .ret = QUEUE_RET_HDRS,
        .body_type = QUEUE_BODY_8BITMIME, .rcpts = rcpts, .nrcpts = 2,
    };
    struct queue_writer w;
    int fd = memfd_create("small", MFD_CLOEXEC);

    queue_writer_open(&w, fd);
    queue_writer_envelope(&w, &env);
    queue_writer_content(&w, "Subject: x\r\n\r\nbody\r\n", 20);
    queue_writer_finish(&w);
    queue_writer_close(&w);
    slurp(fd, b);
    close(fd);
}

static int streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void test_round_trip_large(void)
{
    enum { NR = 1500 };
    struct queue_rcpt *rcpts = xcalloc(NR, sizeof *rcpts);
    char (*addrs)[64] = xcalloc(NR, 64);
    size_t csize = 3 * 1024 * 1024 + 12345, off = 0;
    unsigned char *content = xmalloc(csize);
    struct queue_envelope env = {
        .arrival_us = 1712345678000001ULL, .client_addr = "2001:db8::1",
        .client_name = "unknown", .helo = "[2001:db8::1]", .proto = "ESMTPS",
        .tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384", .sender = "",
        .envid = "QQ314159", .ret = QUEUE_RET_FULL, .body_type = QUEUE_BODY_BINARYMIME,
        .smtputf8 = true, .rcpts = rcpts, .nrcpts = NR,
    };
    struct queue_writer w;
    struct queue_file qf;
    struct queue_content c;
    const char *why = "";
    int fd = memfd_create("large", MFD_CLOEXEC), bad = 0, rc;

    srand(42);
    for (size_t i = 0; i < csize; i++)
        content[i] = (unsigned char)rand();
    for (size_t i = 0; i < NR; i++) {
        snprintf(addrs[i], 64, "user%zu@d%zu.example.test", i, i % 7);
        rcpts[i].addr = addrs[i];
        rcpts[i].orcpt = i % 3 ? NULL : addrs[i];
        rcpts[i].notify = (unsigned)(i % 16) & ~1u;
    }
    ok(queue_writer_open(&w, fd) == 0, "writer open");
    ok(queue_writer_envelope(&w, &env) == 0, "envelope with %d recipients", NR);
    while (off < csize) {           /* pieces of odd sizes, some > 64 KiB */
        size_t n = (size_t)(rand() % 100000) + 1;
        if (n > csize - off)
            n = csize - off;
        if (queue_writer_content(&w, content + off, n) < 0)
            bad++;
        off += n;
    }
    ok(bad == 0, "content written in pieces");
    is_int(w.content_size, csize, "writer counts content bytes");
    ok(queue_writer_finish(&w) == 0, "finish");
    queue_writer_close(&w);

    rc = queue_file_read(fd, &qf, &why);
    ok(rc == 0, "large file reads back (%s)", rc ? why : "ok");
    is_int(qf.env.arrival_us, env.arrival_us, "arrival");
    ok(streq(qf.env.client_addr, env.client_addr) && streq(qf.env.client_name, "unknown") &&
       streq(qf.env.helo, env.helo) && streq(qf.env.proto, "ESMTPS") &&
       streq(qf.env.tls, env.tls) && streq(qf.env.sender, "") && streq(qf.env.envid, "QQ314159"),
       "envelope strings round trip");
    ok(qf.env.ret == QUEUE_RET_FULL && qf.env.body_type == QUEUE_BODY_BINARYMIME &&
       qf.env.smtputf8, "RET, BODY, SMTPUTF8 round trip");
    is_int(qf.env.nrcpts, NR, "recipient count");
    bad = 0;
    for (size_t i = 0; i < qf.env.nrcpts && i < NR; i++) {
        if (!streq(qf.env.rcpts[i].addr, addrs[i]) || !streq(qf.env.rcpts[i].orcpt, rcpts[i].orcpt) ||
            qf.env.rcpts[i].notify != rcpts[i].notify || qf.env.rcpts[i].status != 0)
            bad++;
    }
    is_int(bad, 0, "every recipient round trips");
    is_int(qf.content_size, csize, "content size");

    unsigned char *back = xmalloc(csize + 1);
    size_t got = 0;
    ssize_t n;
    queue_content_open(&c, fd, &qf);
    for (;;) {
        size_t want = got % 2 ? 7777 : 100001;
        if (want > csize + 1 - got)
            want = csize + 1 - got;
        if ((n = queue_content_read(&c, back + got, want, &why)) <= 0)
            break;
        got += (size_t)n;
    }
    ok(n == 0, "content stream ends cleanly");
    ok(got == csize && memcmp(back, content, csize) == 0, "content streams back intact");

    off_t fsize = lseek(fd, 0, SEEK_END);
    ok(fsize == qf.file_size && fsize < (off_t)(csize + csize / 100 + 200000),
       "file size %lld is content plus small overhead", (long long)fsize);
    queue_file_free(&qf);
    close(fd);
    free(back);
    free(content);
    free(addrs);
    free(rcpts);
}

static void test_minimal(void)
{
    struct queue_rcpt r = { .addr = "x@y" };
    struct queue_envelope env = { .sender = "", .rcpts = &r, .nrcpts = 1 };
    struct queue_writer w;
    struct queue_file qf;
    struct queue_content c;
    const char *why = "";
    char tmp[16];
    int fd = memfd_create("min", MFD_CLOEXEC);

    queue_writer_open(&w, fd);
    queue_writer_envelope(&w, &env);
    ok(queue_writer_finish(&w) == 0, "file without content finishes");
    queue_writer_close(&w);
    ok(queue_file_read(fd, &qf, &why) == 0, "file without content reads");
    ok(qf.env.client_addr == NULL && qf.env.helo == NULL && qf.env.tls == NULL,
       "absent envelope records read as NULL");
    is_int(qf.content_size, 0, "no content");
    queue_content_open(&c, fd, &qf);
    is_int(queue_content_read(&c, tmp, sizeof tmp, &why), 0, "empty content stream");
    queue_file_free(&qf);
    close(fd);
}

static void test_writer_rejects(void)
{
    struct queue_rcpt r = { .addr = "x@y" }, empty = { .addr = "" }, crlf = { .addr = "x\r\n@y" };
    struct queue_envelope env = { .sender = "s@x", .rcpts = &r, .nrcpts = 1 };
    struct queue_writer w;
    int fd = memfd_create("rej", MFD_CLOEXEC);

    queue_writer_open(&w, fd);
    ok(queue_writer_content(&w, "x", 1) < 0 && w.error, "content before envelope refused");
    ok(queue_writer_envelope(&w, &env) < 0, "a failed writer stays failed");
    queue_writer_close(&w);

#define REJECT(field, value, name) do { \
        struct queue_envelope e = env; \
        e.field = value; \
        queue_writer_open(&w, fd); \
        ok(queue_writer_envelope(&w, &e) < 0 && errno == EINVAL, name); \
        queue_writer_close(&w); \
    } while (0)
    REJECT(helo, "evil\r\nRCPT TO:<x>", "HELO with CRLF refused");
    REJECT(sender, NULL, "missing sender refused");
    REJECT(nrcpts, 0, "no recipients refused");
    REJECT(rcpts, &empty, "empty recipient refused");
    REJECT(rcpts, &crlf, "recipient with CRLF refused");
    REJECT(ret, 7, "bad RET refused");
    queue_writer_open(&w, fd);
    queue_writer_envelope(&w, &env);
    ok(queue_writer_finish(&w) == 0 && queue_writer_content(&w, "x", 1) < 0,
       "content after finish refused");
    queue_writer_close(&w);
    close(fd);
}

static void expect_reject(struct buf *b, const char *want, const char *name)
{
    const char *why = NULL;
    int rc = check_bytes(b, &why);

    ok(rc < 0 && why && strcmp(why, want) == 0, "%s: %s", name, why ? why : "(accepted)");
    buf_reset(b);
}

static void test_truncation(void)
{
    struct buf b = BUF_INIT, t = BUF_INIT;
    const char *why;
    int accepted = 0, noreason = 0;

    small_file(&b);
    ok(check_bytes(&b, &why) == 0, "small file valid (%zu bytes)", b.len);
    for (size_t n = 0; n < b.len; n++) {
        buf_reset(&t);
        buf_append(&t, b.data, n);
        why = NULL;
        if (check_bytes(&t, &why) == 0)
            accepted++;
        else if (why == NULL || *why == 0)
            noreason++;
    }
    is_int(accepted, 0, "every truncation rejected");
    is_int(noreason, 0, "every rejection has a reason");
    buf_reset(&t);
    buf_append(&t, b.data, b.len);
    buf_append(&t, "x", 1);
    expect_reject(&t, "data after END record", "trailing garbage");
    buf_free(&b);
    buf_free(&t);
}

/* Offsets of the record headers of a valid file. */
static size_t record_offsets(const struct buf *b, size_t *offs, size_t max)
{
    size_t n = 0, pos = 0;

    while (pos + QUEUE_REC_HEADER <= b->len && n < max) {
        offs[n++] = pos;
        pos += QUEUE_REC_HEADER + get_u32(b->data + pos + 1);
    }
    return n;
}

static void test_type_and_length_flips(void)
{
    struct buf b = BUF_INIT, t = BUF_INIT;
    size_t offs[64], nrec;
    const char *why;
    int unknown_ok = 0, huge_ok = 0, noreason = 0, tried = 0;
    static const int unknown[] = { 0, 13, 31, 33, 47, 49, QREC_POST_FIRST, QREC_POST_LAST, 126, 128, 255 };
    static const uint32_t lens[] = { 0xffffffffu, 0x80000000u, 0x7fffffffu, 0x10000u, 0x10001u };

    small_file(&b);
    nrec = record_offsets(&b, offs, 64);
    ok(nrec >= 12, "small file has %zu records", nrec);
    for (size_t i = 0; i < nrec; i++) {
        for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
            buf_reset(&t);
            buf_append(&t, b.data, b.len);
            t.data[offs[i]] = (char)unknown[k];
            why = NULL;
            if (check_bytes(&t, &why) == 0)
                unknown_ok++;
            else if (!why)
                noreason++;
        }
        for (int v = 0; v < 256; v++) {     /* any type byte: no crash */
            buf_reset(&t);
            buf_append(&t, b.data, b.len);
            t.data[offs[i]] = (char)v;
            why = NULL;
            if (check_bytes(&t, &why) < 0 && !why)
                noreason++;
            tried++;
        }
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            buf_reset(&t);
            buf_append(&t, b.data, b.len);
            unsigned char *p = (unsigned char *)t.data + offs[i] + 1;
            p[0] = (unsigned char)(lens[k] >> 24), p[1] = (unsigned char)(lens[k] >> 16);
            p[2] = (unsigned char)(lens[k] >> 8), p[3] = (unsigned char)lens[k];
            why = NULL;
            if (check_bytes(&t, &why) == 0)
                huge_ok++;
            else if (!why)
                noreason++;
        }
    }
    is_int(unknown_ok, 0, "unknown record types rejected everywhere");
    is_int(huge_ok, 0, "huge record lengths rejected everywhere");
    ok(noreason == 0 && tried > 0, "no rejection without a reason (%d type flips tried)", tried);
    buf_free(&b);
    buf_free(&t);
}

/* Every byte of the small file set to several values: no crash. */
static void test_byte_flips(void)
{
    struct buf b = BUF_INIT, t = BUF_INIT;
    static const int vals[] = { 0x00, 0x01, 0x0a, 0x0d, 0x7f, 0x80, 0xff };
    const char *why;
    int noreason = 0;

    small_file(&b);
    for (size_t i = 0; i < b.len; i++) {
        for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
            buf_reset(&t);
            buf_append(&t, b.data, b.len);
            t.data[i] = (char)vals[k];
            why = NULL;
            if (check_bytes(&t, &why) < 0 && !why)
                noreason++;
        }
    }
    is_int(noreason, 0, "byte flips: never a crash, every rejection with a reason");
    buf_free(&b);
    buf_free(&t);
}

static void envelope_start(struct buf *b)
{
    rec_u32(b, QREC_VERSION, QUEUE_FILE_VERSION);
    rec_u64(b, QREC_ARRIVAL, 1);
}

static void test_hand_made(void)
{
    struct buf b = BUF_INIT;

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "no recipients", "zero recipients");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec(&b, QREC_CONTENT, "abc", 3);
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "no recipients", "content without recipients");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec(&b, QREC_HELO, "h", 1);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "envelope record out of order", "HELO after SENDER");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec(&b, QREC_SENDER, "t@x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "envelope record out of order", "SENDER twice");

    envelope_start(&b);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "missing SENDER record", "no SENDER");

    rec_u32(&b, QREC_VERSION, QUEUE_FILE_VERSION);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "missing ARRIVAL record", "no ARRIVAL");

    rec_u64(&b, QREC_ARRIVAL, 1);
    rec_u32(&b, QREC_VERSION, QUEUE_FILE_VERSION);
    expect_reject(&b, "missing VERSION record", "VERSION not first");

    rec_u32(&b, QREC_VERSION, 2);
    expect_reject(&b, "unsupported queue file version", "version 2");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_CONTENT, "abc", 3);
    rec_rcpt(&b, "q@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "RCPT record out of order", "RCPT after CONTENT");

    envelope_start(&b);
    rec(&b, QREC_HELO, "a\nb", 3);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "envelope string with NUL, CR or LF", "LF in HELO");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s\0x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "envelope string with NUL, CR or LF", "NUL in SENDER");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec_rcpt(&b, "r\r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "recipient with NUL, CR or LF", "CR in recipient");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_CONTENT, NULL, 0);
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "bad CONTENT record length", "empty CONTENT record");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, "x", 1);
    expect_reject(&b, "bad END record length", "END with a value");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_CONTENT, "abc", 3);
    expect_reject(&b, "missing END record", "no END");

    envelope_start(&b);
    rec(&b, QREC_SENDER, "s@x", 3);
    rec(&b, QREC_RET, "\x09", 1);
    rec_rcpt(&b, "r@x");
    rec(&b, QREC_END, NULL, 0);
    expect_reject(&b, "bad envelope value", "RET out of range");
    buf_free(&b);
}

static void test_status(void)
{
    struct buf b = BUF_INIT;
    struct queue_file qf, again;
    const char *why = "";
    int fd;

    small_file(&b);
    fd = memfile(b.data, b.len);
    ok(queue_file_read(fd, &qf, &why) == 0, "read for status update");
    ok(queue_rcpt_set_status(fd, &qf.env.rcpts[1], QUEUE_RCPT_DELIVERED) == 0,
       "set status of recipient 2");
    ok(queue_rcpt_set_status(fd, &qf.env.rcpts[0], 99) < 0 && errno == EINVAL,
       "out-of-range status refused");
    ok(queue_file_read(fd, &again, &why) == 0, "file still valid after the update");
    ok(again.env.nrcpts == 2 && again.env.rcpts[0].status == QUEUE_RCPT_PENDING &&
       again.env.rcpts[1].status == QUEUE_RCPT_DELIVERED, "status recorded in place");
    ok(queue_rcpt_mark_status(fd, &again.env.rcpts[0], QUEUE_RCPT_FAILED) == 0 &&
       queue_file_sync(fd) == 0, "mark + one sync");
    queue_file_free(&qf);
    ok(queue_file_read(fd, &qf, &why) == 0 && qf.env.rcpts[0].status == QUEUE_RCPT_FAILED,
       "marked status read back");
    queue_file_free(&qf);
    queue_file_free(&again);
    close(fd);
    buf_free(&b);
}

/* A recycled file (qmgr_spare) still holds a longer old message: the
 * writer starts at offset 0 and cuts the file after its END. */
static void test_overwrite_longer(void)
{
    struct queue_rcpt r = { .addr = "x@y" };
    struct queue_envelope env = { .sender = "s@example.org", .rcpts = &r, .nrcpts = 1 };
    struct queue_writer w;
    struct queue_file qf;
    const char *why = "";
    char old[8192];
    int fd = memfd_create("recycled", MFD_CLOEXEC);
    struct stat st;

    memset(old, 'Z', sizeof old);
    ok(write(fd, old, sizeof old) == (ssize_t)sizeof old && lseek(fd, 0, SEEK_SET) == 0,
       "old bytes in the file");
    queue_writer_open(&w, fd);
    queue_writer_envelope(&w, &env);
    queue_writer_content(&w, "Subject: new\r\n\r\nhi\r\n", 21);
    ok(queue_writer_finish(&w) == 0, "finish over older bytes");
    ok(fstat(fd, &st) == 0 && (uint64_t)st.st_size == w.written && st.st_size < 8192,
       "file cut after END (%lld bytes)", (long long)st.st_size);
    queue_writer_close(&w);
    ok(queue_file_read(fd, &qf, &why) == 0 && qf.content_size == 21, "overwritten file reads");
    queue_file_free(&qf);
    /* without the cut the reader must refuse the old tail */
    ok(ftruncate(fd, 8192) == 0 && queue_file_read(fd, &qf, &why) < 0,
       "old bytes after END refused: %s", why);
    close(fd);
}

int main(void)
{
    test_overwrite_longer();
    test_round_trip_large();
    test_minimal();
    test_writer_rejects();
    test_truncation();
    test_type_and_length_flips();
    test_byte_flips();
    test_hand_made();
    test_status();
    return tap_done();
}
