/* smtpd_data.t - the DATA/BDAT framing state machine and header watcher
 * of smtpd: end of data, dot-unstuffing, smuggling variants, limits. */
#include <string.h>

#include "tap.h"
#include "../../smtpd/smtpd_data.c"

/* Feed all of in (in pieces of step bytes); returns 1 at end of data and
 * *rest = bytes left after it. */
static int feed(struct smtpd_data *d, const char *in, size_t n, size_t step, struct buf *out,
                size_t *rest)
{
    size_t off = 0;

    while (off < n) {
        size_t len = n - off < step ? n - off : step, used;
        if (smtpd_data_feed(d, in + off, len, &used, out)) {
            *rest = n - off - used;
            return 1;
        }
        off += used;
    }
    *rest = 0;
    return 0;
}

static void check(const char *name, const char *in, size_t n, int want_end, const char *want_out,
                  unsigned want_flags, size_t want_rest)
{
    static const size_t steps[] = {1, 2, 3, 7, 4096};

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct smtpd_data d;
        struct buf out = BUF_INIT;
        size_t rest;
        int end;

        smtpd_data_init(&d, SMTPD_DATA_DOT, 1000);
        end = feed(&d, in, n, steps[i], &out, &rest);
        ok(end == want_end && (!want_out || (out.len == strlen(want_out) &&
                                             memcmp(out.data, want_out, out.len) == 0)) &&
               d.flags == want_flags && rest == want_rest,
           "%s (step %zu): end=%d flags=%u rest=%zu", name, steps[i], end, d.flags, rest);
        buf_free(&out);
    }
}

#define S(x) x, sizeof(x) - 1

static void test_framing(void)
{
    check("plain end", S("a\r\nb\r\n.\r\n"), 1, "a\r\nb\r\n", 0, 0);
    check("end at start", S(".\r\n"), 1, "", 0, 0);
    check("rest kept", S("a\r\n.\r\nQUIT\r\n"), 1, "a\r\n", 0, 6);
    check("dot unstuffing", S("..a\r\n..\r\n.\r\n"), 1, ".a\r\n.\r\n", 0, 0);
    check("dot inside line", S("a.b\r\n.x\r\n.\r\n"), 1, "a.b\r\nx\r\n", 0, 0);
    check("no end yet", S("a\r\n."), 0, "a\r\n", 0, 0);
}

/* Every smtpsmug end-of-data variant: never an end, always flagged. */
static void test_smuggling(void)
{
    static const struct { const char *name, *seq; size_t len; unsigned flag; } v[] = {
        {"\\n.\\n", "\n.\n", 3, SMTPD_DATA_BARE_LF},
        {"\\n.\\r\\n", "\n.\r\n", 4, SMTPD_DATA_BARE_LF},
        {"\\r.\\n", "\r.\n", 3, SMTPD_DATA_BARE_CR | SMTPD_DATA_BARE_LF},
        {"\\r.\\r\\n", "\r.\r\n", 4, SMTPD_DATA_BARE_CR},
        {"\\r\\n.\\r", "\r\n.\r", 4, SMTPD_DATA_BARE_CR},
        {"\\r\\n.\\n", "\r\n.\n", 4, SMTPD_DATA_BARE_LF},
        {"\\r\\n\\0.\\r\\n", "\r\n\0.\r\n", 6, SMTPD_DATA_NUL},
        {"\\r\\n.\\0\\r\\n", "\r\n.\0\r\n", 6, SMTPD_DATA_NUL},
        {"\\0\\r\\n.\\r\\n (ends)", "\0\r\n.\r\n", 6, SMTPD_DATA_NUL},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char in[256];
        size_t n = 0;
        const char *pre = "Subject: x\r\n\r\nhello", *post = "MAIL FROM:<evil@x>\r\nsmuggled\r\nX";
        struct smtpd_data d;
        struct buf out = BUF_INIT;
        size_t rest;
        bool ends_legit = strstr(v[i].name, "(ends)") != NULL;

        memcpy(in, pre, strlen(pre)), n += strlen(pre);
        memcpy(in + n, v[i].seq, v[i].len), n += v[i].len;
        memcpy(in + n, post, strlen(post)), n += strlen(post);
        smtpd_data_init(&d, SMTPD_DATA_DOT, 1000);
        int end = feed(&d, in, n, 1, &out, &rest);
        ok(end == (ends_legit ? 1 : 0) && (d.flags & v[i].flag),
           "smuggling variant %s: end=%d flags=%u", v[i].name, end, d.flags);
        ok(smtpd_data_error(d.flags) != NULL, "variant %s gets a reply text", v[i].name);
        buf_free(&out);
    }
}

static void test_raw_and_limits(void)
{
    struct smtpd_data d;
    struct buf out = BUF_INIT;
    size_t used;
    char line[1100];

    smtpd_data_init(&d, SMTPD_DATA_RAW, 1000);
    is_int(smtpd_data_feed(&d, S("a\r\n.\r\n..b\r"), &used, &out), 0, "raw: dot line no end");
    smtpd_data_feed(&d, S("\nc"), &used, &out);
    smtpd_data_finish(&d, &out);
    is_str(out.data, "a\r\n.\r\n..b\r\nc\r\n", "raw: no unstuffing, CR LF across chunks, "
                                             "last line terminated");
    is_int(d.flags, 0, "raw: clean");
    buf_reset(&out);
    smtpd_data_init(&d, SMTPD_DATA_RAW, 1000);
    smtpd_data_feed(&d, S("a\r"), &used, &out);
    smtpd_data_finish(&d, &out);
    ok(d.flags & SMTPD_DATA_BARE_CR, "raw: CR at the very end is a bare CR");
    memset(line, 'x', sizeof(line));
    smtpd_data_init(&d, SMTPD_DATA_DOT, 1000);
    buf_reset(&out);
    smtpd_data_feed(&d, line, 999, &used, &out);
    smtpd_data_feed(&d, S("\r\n"), &used, &out);
    is_int(d.flags & SMTPD_DATA_LONG_LINE, SMTPD_DATA_LONG_LINE, "1001-byte line is too long");
    smtpd_data_init(&d, SMTPD_DATA_DOT, 1000);
    smtpd_data_feed(&d, line, 998, &used, &out);
    smtpd_data_feed(&d, S("\r\n"), &used, &out);
    is_int(d.flags, 0, "1000-byte line (CRLF included) is fine");
    buf_free(&out);
}

static void test_headers(void)
{
    struct smtpd_hdr h;
    const char *msg = "Received: from a\r\n\tby b\r\nreceived : x\r\nMessage-ID:\r\n"
                      " <id@host>\r\nSubject: Received: no\r\n\r\nReceived: body\r\n";

    smtpd_hdr_init(&h);
    for (size_t i = 0; msg[i]; i++)
        smtpd_hdr_feed(&h, msg + i, 1);
    is_int(h.received, 2, "two Received: headers, none from the body");
    is_str(h.msgid, "<id@host>", "folded Message-ID");
    ok(h.done, "header section ended");
    smtpd_hdr_init(&h);
    smtpd_hdr_feed(&h, S("Message-Id: <a\x01" "b@c>\r\n\r\n"));
    is_str(h.msgid, "<a?b@c>", "control characters in Message-ID replaced");
}

int main(void)
{
    test_framing();
    test_smuggling();
    test_raw_and_limits();
    test_headers();
    return tap_done();
}
