/* smtp_reply.t - the strict SMTP reply parser. */
#include "route/smtp_reply.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Feed s in one go; return the status, the formatted reply in out. */
static int parse(const char *s, size_t len, struct buf *out, const char **why, size_t *used)
{
    struct smtp_reply r;
    smtp_reply_init(&r);
    *why = "";
    int rc = smtp_reply_feed(&r, s, len, used, why);
    buf_reset(out);
    if (rc == SMTP_REPLY_DONE)
        smtp_reply_format(&r, out);
    smtp_reply_free(&r);
    return rc;
}

static void test_good(void)
{
    struct buf out = BUF_INIT;
    const char *why;
    size_t used;
    const char *s = "250 2.0.0 Ok: queued as ABC\r\n";
    is_int(parse(s, strlen(s), &out, &why, &used), SMTP_REPLY_DONE, "single line");
    is_str(out.data, "250 2.0.0 Ok: queued as ABC", "single line text");
    is_int(used, strlen(s), "consumed all");

    s = "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n";
    is_int(parse(s, strlen(s), &out, &why, &used), SMTP_REPLY_DONE, "multi-line");
    is_str(out.data, "250 mx.example.com PIPELINING SIZE 1000 8BITMIME", "multi-line text");

    s = "220\r\n";
    is_int(parse(s, strlen(s), &out, &why, &used), SMTP_REPLY_DONE, "code only");
    s = "354 go\n";
    is_int(parse(s, strlen(s), &out, &why, &used), SMTP_REPLY_DONE, "bare LF accepted");
    s = "250 one\r\n250 two\r\n";
    is_int(parse(s, strlen(s), &out, &why, &used), SMTP_REPLY_DONE, "pipelined replies");
    is_int(used, 9, "stops after the first reply");

    s = "250 a\x01\x80z\r\n";
    parse(s, strlen(s), &out, &why, &used);
    is_str(out.data, "250 a??z", "control and 8-bit bytes sanitised");
    buf_free(&out);
}

static void test_incremental(void)
{
    struct smtp_reply r;
    const char *why = "";
    size_t used;
    const char *s = "451-4.3.0 first\r\n451 4.3.0 second\r\n";
    smtp_reply_init(&r);
    is_int(smtp_reply_feed(&r, s, 10, &used, &why), SMTP_REPLY_MORE, "partial line: more");
    is_int(used, 0, "nothing consumed");
    is_int(smtp_reply_feed(&r, s, 20, &used, &why), SMTP_REPLY_MORE, "first line: more");
    is_int(used, 17, "first line consumed");
    is_int(smtp_reply_feed(&r, s + 17, strlen(s) - 17, &used, &why), SMTP_REPLY_DONE, "done");
    is_int(r.code, 451, "code");
    is_str(r.dsn, "4.3.0", "enhanced code");
    is_int(r.nlines, 2, "two lines");
    size_t n;
    const char *l = smtp_reply_line(&r, 1, &n);
    ok(l && n == 12 && memcmp(l, "4.3.0 second", n) == 0, "line 1 text");
    ok(smtp_reply_line(&r, 2, &n) == NULL, "no line 2");
    smtp_reply_reset(&r);
    is_int(smtp_reply_feed(&r, "550 5.1.1 no\r\n", 14, &used, &why), SMTP_REPLY_DONE, "reuse");
    is_str(r.dsn, "5.1.1", "enhanced code after reset");
    smtp_reply_reset(&r);
    smtp_reply_feed(&r, "550 4.1.1 no\r\n", 14, &used, &why);
    is_str(r.dsn, "", "enhanced class must match reply class");
    smtp_reply_free(&r);
}

static void bad(const char *s, size_t len, const char *reason, const char *name)
{
    struct buf out = BUF_INIT;
    const char *why;
    size_t used;
    int rc = parse(s, len, &out, &why, &used);
    ok(rc == SMTP_REPLY_BAD && strcmp(why, reason) == 0, "%s (%s)", name, why);
    buf_free(&out);
}

static void test_bad(void)
{
    bad("250-a\r\n251 b\r\n", 14, "inconsistent reply codes", "inconsistent codes");
    bad("25x ok\r\n", 8, "bad reply code", "non-digit");
    bad("abc\r\n", 5, "bad reply code", "letters");
    bad("\r\n", 2, "bad reply code", "empty line");
    bad("99 ok\r\n", 7, "bad reply code", "short code");
    bad("600 ok\r\n", 8, "bad reply code", "code out of range");
    bad("250ok\r\n", 7, "bad separator after reply code", "missing space/dash");
    bad("250_ok\r\n", 8, "bad separator after reply code", "wrong separator");

    size_t big = SMTP_REPLY_MAX_LINE + 10;
    char *p = malloc(big);
    memcpy(p, "250 ", 4);
    memset(p + 4, 'x', big - 4);
    bad(p, big, "line too long", "over-long line without end");
    p[big - 2] = '\r';
    p[big - 1] = '\n';
    bad(p, big, "line too long", "over-long line with end");
    free(p);

    struct buf many = BUF_INIT;
    for (int i = 0; i < SMTP_REPLY_MAX_LINES + 1; i++)
        buf_append_str(&many, "250-x\r\n");
    buf_append_str(&many, "250 end\r\n");
    bad(many.data, many.len, "too many lines", "too many lines");

    /* Exactly at the limits is fine. */
    buf_reset(&many);
    for (int i = 0; i < SMTP_REPLY_MAX_LINES - 1; i++)
        buf_append_str(&many, "250-x\r\n");
    buf_append_str(&many, "250 end\r\n");
    struct buf out = BUF_INIT;
    const char *why;
    size_t used;
    is_int(parse(many.data, many.len, &out, &why, &used), SMTP_REPLY_DONE, "1000 lines ok");
    ok(out.len <= SMTP_REPLY_MAX_TEXT + 4, "kept text is capped (%zu)", out.len);
    buf_free(&out);
    buf_free(&many);
}

static void test_enhanced(void)
{
    char e[16];
    is_int(smtp_reply_enhanced("2.1.5 Ok", 8, e), 5, "2.1.5");
    is_int(smtp_reply_enhanced("5.7.1", 5, e), 5, "at end");
    is_int(smtp_reply_enhanced("4.123.456 x", 11, e), 9, "3-digit parts");
    is_int(smtp_reply_enhanced("4.1234.1 x", 10, e), 0, "4-digit part");
    is_int(smtp_reply_enhanced("3.1.1 x", 7, e), 0, "class 3");
    is_int(smtp_reply_enhanced("2.1.1x", 6, e), 0, "no space after");
    is_int(smtp_reply_enhanced("Ok", 2, e), 0, "none");
}

int main(void)
{
    test_good();
    test_incremental();
    test_bad();
    test_enhanced();
    return tap_done();
}
