/*
 * mime.t - lib/mime: the golden trees of t/mime/NAME.eml (compared with
 * NAME.ref), the input paths (fd region, memory, reader), streaming
 * decode (chunk sizes, decode to fd, stopping), RFC 2047/2231 helpers and
 * the limits (parts, depth, headers, work) with hostile generated input.
 */
#include "mime/mime.h"
#include "util/buf.h"
#include "util/mem.h"

#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path, size_t *len)
{
    struct buf b = BUF_INIT;
    char tmp[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r;

    if (fd < 0)
        return NULL;
    while ((r = read(fd, tmp, sizeof tmp)) > 0)
        buf_append(&b, tmp, (size_t)r);
    close(fd);
    *len = b.len;
    if (b.data == NULL)
        buf_reserve(&b, 1);
    return b.data;
}

/* t/mime relative to the cwd (prove runs from the repo root) or to the
 * binary (BUILD/t/unit/mime.t). */
static const char *golden_dir(void)
{
    static char path[PATH_MAX + 16];
    char exe[PATH_MAX];
    ssize_t n;

    if (access("t/mime", R_OK) == 0)
        return "t/mime";
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    for (int i = 0; i < 4; i++) {
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = 0;
    }
    snprintf(path, sizeof path, "%s/t/mime", exe);
    return access(path, R_OK) == 0 ? path : NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden(void)
{
    const char *dir = golden_dir();
    DIR *d = dir ? opendir(dir) : NULL;
    char *names[256];
    size_t n = 0;
    struct dirent *de;

    ok(d != NULL, "golden directory t/mime found");
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".eml") == 0)
            names[n++] = xstrndup(de->d_name, l - 4);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    ok(n >= 15, "at least 15 golden messages (%zu)", n);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 512];
        size_t rlen = 0;
        snprintf(path, sizeof path, "%s/%s.ref", dir, names[i]);
        char *ref = slurp(path, &rlen);
        snprintf(path, sizeof path, "%s/%s.eml", dir, names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct mime_msg *msg = fd >= 0 ? mime_msg_parse_fd(fd, 0,
                                   (size_t)lseek(fd, 0, SEEK_END), NULL) : NULL;
        struct buf out = BUF_INIT;
        if (msg)
            mime_msg_dump(msg, &out, 0);
        buf_append_byte(&out, 0);
        out.len--;
        is_str(out.data, ref ? ref : "(no .ref)", names[i]);
        mime_msg_free(msg);
        if (fd >= 0)
            close(fd);
        buf_free(&out);
        free(ref);
        free(names[i]);
    }
}

static const char SIMPLE[] =
    "Subject: region\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    "--b\r\nContent-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; filename=x.bin\r\n\r\n"
    "aGVsbG8gd29ybGQ=\r\n--b--\r\n";

static void dump_mem(const void *p, size_t n, struct buf *out)
{
    struct mime_msg *m = mime_msg_parse_mem(p, n, NULL);
    mime_msg_dump(m, out, 0);
    buf_append_byte(out, 0);
    mime_msg_free(m);
}

static void test_fd_region(void)
{
    char path[] = "/tmp/mime-t-XXXXXX";
    int fd = mkstemp(path);
    struct buf a = BUF_INIT, b = BUF_INIT;

    unlink(path);
    /* junk around the message, an offset not on a page boundary */
    char junk[5000];
    memset(junk, 'J', sizeof junk);
    ok(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk, "write prefix");
    ok(write(fd, SIMPLE, sizeof SIMPLE - 1) == (ssize_t)sizeof SIMPLE - 1,
       "write message");
    ok(write(fd, junk, 100) == 100, "write suffix");
    struct mime_msg *m = mime_msg_parse_fd(fd, sizeof junk, sizeof SIMPLE - 1,
                                           NULL);
    ok(m != NULL, "parse_fd on a region");
    mime_msg_dump(m, &a, 0);
    buf_append_byte(&a, 0);
    dump_mem(SIMPLE, sizeof SIMPLE - 1, &b);
    is_str(a.data, b.data, "fd region parses as the same bytes in memory");
    const void *raw;
    size_t rawlen;
    mime_msg_raw(m, &raw, &rawlen);
    ok(rawlen == sizeof SIMPLE - 1 && memcmp(raw, SIMPLE, rawlen) == 0,
       "raw message is exactly the region");
    mime_msg_free(m);
    errno = 0;
    ok(mime_msg_parse_fd(fd, sizeof junk, 1 << 20, NULL) == NULL,
       "region past the end of the file refused (no SIGBUS)");
    close(fd);
    buf_free(&a);
    buf_free(&b);
}

struct reader {
    const char *p;
    size_t len, pos;
};

static ssize_t read_3(void *arg, void *buf, size_t n)
{
    struct reader *r = arg;
    size_t k = r->len - r->pos < 3 ? r->len - r->pos : 3;   /* tiny reads */
    (void)n;
    memcpy(buf, r->p + r->pos, k);
    r->pos += k;
    return (ssize_t)k;
}

static void test_reader(void)
{
    struct reader r = { SIMPLE, sizeof SIMPLE - 1, 0 };
    struct buf a = BUF_INIT, b = BUF_INIT;
    struct mime_msg *m = mime_msg_parse_reader(read_3, &r, NULL);

    ok(m != NULL, "parse_reader");
    mime_msg_dump(m, &a, 0);
    buf_append_byte(&a, 0);
    dump_mem(SIMPLE, sizeof SIMPLE - 1, &b);
    is_str(a.data, b.data, "reader gives the same tree");
    mime_msg_free(m);
    buf_free(&a);
    buf_free(&b);
}

struct chunks {
    size_t n, total, max;
    int stop_after;
};

static int count_cb(const void *p, size_t n, void *arg)
{
    struct chunks *c = arg;
    c->n++;
    c->total += n;
    if (n > c->max)
        c->max = n;
    return c->stop_after && (int)c->n >= c->stop_after ? -1 : 0;
}

static void test_streaming(void)
{
    const size_t size = 1000000;
    unsigned char *bin = xcalloc(1, size + 2);   /* +2: the last quantum */
    struct buf msg = BUF_INIT;
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (size_t i = 0; i < size; i++)
        bin[i] = (unsigned char)(i * 7 + (i >> 8));
    buf_append_str(&msg, "Content-Type: application/octet-stream\r\n"
                         "Content-Transfer-Encoding: base64\r\n\r\n");
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)bin[i] << 16 | (uint32_t)bin[i + 1] << 8 | bin[i + 2];
        char q[4] = { tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], tbl[v & 63] };
        if (i + 1 >= size)
            q[2] = q[3] = '=';
        else if (i + 2 >= size)
            q[3] = '=';
        buf_append(&msg, q, 4);
        if (i % 57 == 54)
            buf_append_str(&msg, "\r\n");
    }
    struct mime_msg *m = mime_msg_parse_mem(msg.data, msg.len, NULL);
    struct chunks c = { 0, 0, 0, 0 };
    ok(mime_part_decode(m->root, count_cb, &c) == 0, "decode 1 MB base64");
    is_int(c.total, size, "decoded size");
    ok(c.max <= 65536 && c.n >= 15, "decoded in chunks of at most 64 KiB (%zu)", c.n);
    struct chunks s = { 0, 0, 0, 2 };
    ok(mime_part_decode(m->root, count_cb, &s) == -1 && s.n == 2,
       "callback returning -1 stops the decode");
    char path[] = "/tmp/mime-t-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    ok(mime_part_decode_to_fd(m->root, fd) == 0, "decode_to_fd");
    size_t got = 0;
    lseek(fd, 0, SEEK_SET);
    unsigned char *back = xmalloc(size + 1);
    ssize_t r;
    while ((r = read(fd, back + got, size + 1 - got)) > 0)
        got += (size_t)r;
    ok(got == size && memcmp(back, bin, size) == 0, "fd holds the decoded bytes");
    is_int(m->anom, 0, "clean base64, CRLF: no anomaly");
    close(fd);
    free(back);
    mime_msg_free(m);
    buf_free(&msg);
    free(bin);
}

static void test_words(void)
{
    bool bad = false;
    const char *w = "=?UTF-8?Q?a=C3=A9?= =?utf-8?B?w6k=?= x";
    char *s = mime_decode_words(w, strlen(w), &bad);
    is_str(s, "a\xc3\xa9\xc3\xa9 x", "2047: Q and B, blank between words dropped");
    ok(!bad, "no error");
    free(s);
    w = "=?x-unknown-cs?Q?caf=E9?= plain";
    s = mime_decode_words(w, strlen(w), &bad);
    is_str(s, "caf\xe9 plain", "unknown charset: raw bytes kept");
    ok(bad, "unknown charset flagged");
    free(s);
    w = "=?utf-8?B?w6";                       /* not a complete word */
    s = mime_decode_words(w, strlen(w), &bad);
    is_str(s, w, "broken word left as it is");
    free(s);
    /* a multi-byte character split over two words */
    w = "=?utf-8?B?4g==?= =?utf-8?B?gqw=?=";
    s = mime_decode_words(w, strlen(w), &bad);
    is_str(s, "\xe2\x82\xac", "character split across words joined");
    free(s);
}

static struct mime_msg *parse_str(const char *s, const struct mime_limits *l)
{
    return mime_msg_parse_mem(s, strlen(s), l);
}

static void test_params(void)
{
    struct mime_msg *m = parse_str(
        "Content-Type: text/plain\r\nContent-Disposition: attachment;\r\n"
        " filename*1=\"two.\"; filename*0=\"one-\"; filename*2*=%65xe\r\n\r\nx", NULL);
    is_str(m->root->filename, "one-two.exe", "2231 sections out of order joined");
    mime_msg_free(m);
    m = parse_str("Content-Type: application/x; name=\"unterminated\r\n\r\nx", NULL);
    is_str(m->root->filename, "unterminated", "unterminated quoted string");
    ok(m->root->anom & MIME_ANOM_BAD_PARAM, "flagged BAD_PARAM");
    mime_msg_free(m);
    m = parse_str("Content-Type: Multipart/Mixed (comment); (c) boundary = \"q\" ; x\r\n\r\n"
                  "--q\r\n\r\nin\r\n--q--\r\n", NULL);
    is_str(m->root->type, "multipart/mixed", "type lower-cased, comment dropped");
    is_str(m->root->boundary, "q", "boundary with comments and blanks");
    ok(m->root->child != NULL && m->root->child->next == NULL, "one child");
    mime_msg_free(m);
}

static void test_part_limit(void)
{
    struct buf b = BUF_INIT;

    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
    for (int i = 0; i < 100000; i++)
        buf_append_str(&b, "--p\r\n\r\nx\r\n");
    buf_append_str(&b, "--p--\r\n");
    struct mime_msg *m = mime_msg_parse_mem(b.data, b.len, NULL);
    ok(m->anom & MIME_ANOM_PART_LIMIT, "100k parts: PART_LIMIT");
    is_int(m->nparts, 10000, "parts capped at the default 10000");
    ok(m->root->scan, "the cut container is scanned flat");
    mime_msg_free(m);
    struct mime_limits l;
    mime_limits_default(&l);
    l.max_parts = 10;
    m = mime_msg_parse_mem(b.data, b.len, &l);
    is_int(m->nparts, 10, "configured max_parts honoured");
    mime_msg_free(m);
    buf_free(&b);
}

static void test_header_limits(void)
{
    struct buf b = BUF_INIT;
    struct mime_limits l;

    mime_limits_default(&l);
    l.max_headers = 5;
    for (int i = 0; i < 20; i++)
        buf_printf(&b, "X-Junk-%d: %d\r\n", i, i);
    buf_append_str(&b, "Content-Type: multipart/mixed; boundary=h\r\n\r\n"
                       "--h\r\n\r\nbody\r\n--h--\r\n");
    struct mime_msg *m = mime_msg_parse_mem(b.data, b.len, &l);
    is_str(m->root->type, "multipart/mixed", "Content-Type after the header limit still used");
    ok(m->root->anom & MIME_ANOM_HEADER_LIMIT, "HEADER_LIMIT");
    ok(m->root->nheaders == 6, "5 headers + Content-Type stored (%zu)", m->root->nheaders);
    mime_msg_free(m);
    buf_free(&b);
}

/* Each level has a line only a loose match accepts, so the loose view
 * re-parses everything below: exponential without the work budget. */
static void test_work_limit(void)
{
    struct buf b = BUF_INIT;
    const int depth = 30;

    for (int i = 0; i < depth; i++)
        buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"-L%d\"\r\n\r\n"
                       "----L%d\r\n\r\n---L%d\r\n", i, i, i);
    buf_append_str(&b, "Content-Type: text/plain\r\n\r\nleaf\r\n");
    for (int i = depth - 1; i >= 0; i--)
        buf_printf(&b, "---L%d--\r\n", i);
    struct mime_msg *m = mime_msg_parse_mem(b.data, b.len, NULL);
    ok(m->anom & (MIME_ANOM_WORK_LIMIT | MIME_ANOM_PART_LIMIT),
       "exponential views stopped by a limit");
    ok(m->nparts <= 10000, "parts bounded (%zu)", m->nparts);
    mime_msg_free(m);
    buf_free(&b);
}

static void test_small_inputs(void)
{
    static const char *const cases[] = {
        "", "\n", "\r\n", "X", ":", "\r\n\r\n", "Content-Type: multipart/mixed",
        "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
        "Content-Type: message/rfc822\r\n\r\n",
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!",
        " folded first\r\n\r\nbody", "begin 644 x\n", "\0\0\0",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct buf out = BUF_INIT;
        dump_mem(cases[i], strlen(cases[i]) + (i == 12 ? 3 : 0), &out);
        ok(strncmp(out.data, "message parts=", 14) == 0, "tiny input %zu parses", i);
        buf_free(&out);
    }
}

int main(void)
{
    test_golden();
    test_fd_region();
    test_reader();
    test_streaming();
    test_words();
    test_params();
    test_part_limit();
    test_header_limits();
    test_work_limit();
    test_small_inputs();
    return tap_done();
}
