/*
 * mailgwq_format.t - `mailgwq -p` / `-j` rendering against the text
 * Postfix's postqueue(1) prints for the same queue contents.
 *
 * The expected text below was written from Postfix's formats
 * (src/postqueue/showq_compat.c: "%-11s %7ld %20.20s %s" message lines,
 * 41-column recipient indent, reasons right-aligned to column 78 and only
 * when they change, a blank line between messages, "-- N Kbytes in M
 * Requests." with the total truncated to Kbytes; showq_json.c for -j),
 * in TZ=UTC.  The formatter is compiled in from cli/ (not in libmailgw.a).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"

#include "../../cli/mailgwq_format.c"

static const char expect_p[] =
    "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
    "0Lq3Xk9a2BcD*    2170 Fri Nov 27 20:57:35  alice@example.com\n"
    "                                         bob@example.org\n"
    "\n"
    "0Lq3Xm0000Ab    4283 Sat Nov 28 21:06:39  MAILER-DAEMON\n"
    "                 (connect to mx.example.org[192.0.2.1]:25: Connection refused)\n"
    "                                         r1@example.org\n"
    "                                         r2@example.org\n"
    "(host mx.example.com[192.0.2.7] said: 451 4.7.1 Greylisted, please try again in 300 seconds (in reply to RCPT TO command))\n"
    "                                         r3@example.com\n"
    "                                                          (reason unavailable)\n"
    "                                         r4@example.com\n"
    "                                                                (bad ?[31mred)\n"
    "                                         r5@example.com\n"
    "\n"
    "0Lq3Xn11Zz!     100 Mon Nov 30 00:53:20  carol@example.net\n"
    "                                         d1@example.net\n"
    "                                         d2@example.net\n"
    "\n"
    "A1B2C3D4    1234567 Tue Dec  1 04:40:00  a-very-long-local-part-that-goes-on-and-on.and.on@subdomain.of.a.rather.long.example.com\n"
    "                                         another-very-long-recipient-address-for-column-testing@mail.example.org\n"
    "\n"
    "0Lq3Xq3333Yy 12345678 Wed Dec  2 08:26:40  dave@example.com\n"
    "                                                               (4.4.1 timeout)\n"
    "                                         e@example.com\n"
    "\n"
    "-- 13268 Kbytes in 5 Requests.\n";

static const char expect_j[] =
    "{\"queue_name\": \"active\", \"queue_id\": \"0Lq3Xk9a2BcD\", \"arrival_time\": 1795813055, \"message_size\": 2170, \"forced_expire\": false, \"sender\": \"alice@example.com\", \"recipients\": [{\"address\": \"bob@example.org\"}]}\n"
    "{\"queue_name\": \"deferred\", \"queue_id\": \"0Lq3Xm0000Ab\", \"arrival_time\": 1795899999, \"message_size\": 4283, \"forced_expire\": false, \"sender\": \"MAILER-DAEMON\", \"recipients\": [{\"address\": \"r1@example.org\", \"delay_reason\": \"connect to mx.example.org[192.0.2.1]:25: Connection refused\"}, {\"address\": \"r2@example.org\", \"delay_reason\": \"connect to mx.example.org[192.0.2.1]:25: Connection refused\"}, {\"address\": \"r3@example.com\", \"delay_reason\": \"host mx.example.com[192.0.2.7] said: 451 4.7.1 Greylisted, please try again in 300 seconds (in reply to RCPT TO command)\"}, {\"address\": \"r4@example.com\"}, {\"address\": \"r5@example.com\", \"delay_reason\": \"bad \\u001B[31mred\"}]}\n"
    "{\"queue_name\": \"hold\", \"queue_id\": \"0Lq3Xn11Zz\", \"arrival_time\": 1796000000, \"message_size\": 100, \"forced_expire\": false, \"sender\": \"carol@example.net\", \"recipients\": [{\"address\": \"d1@example.net\"}, {\"address\": \"d2@example.net\"}]}\n"
    "{\"queue_name\": \"incoming\", \"queue_id\": \"A1B2C3D4\", \"arrival_time\": 1796100000, \"message_size\": 1234567, \"forced_expire\": false, \"sender\": \"a-very-long-local-part-that-goes-on-and-on.and.on@subdomain.of.a.rather.long.example.com\", \"recipients\": [{\"address\": \"another-very-long-recipient-address-for-column-testing@mail.example.org\"}]}\n"
    "{\"queue_name\": \"deferred\", \"queue_id\": \"0Lq3Xq3333Yy\", \"arrival_time\": 1796200000, \"message_size\": 12345678, \"forced_expire\": false, \"sender\": \"dave@example.com\", \"recipients\": [{\"address\": \"e@example.com\", \"delay_reason\": \"4.4.1 timeout\"}]}\n"
    "{\"queue_name\": \"corrupt\", \"queue_id\": \"0Lq3Xr4444Xx\", \"arrival_time\": 1796200000, \"message_size\": 55, \"forced_expire\": false, \"sender\": \"x@example.com\", \"recipients\": []}\n";

static void seed(struct mailgwq_queue *q)
{
    struct mailgwq_entry *e;
    const char *why = "connect to mx.example.org[192.0.2.1]:25: Connection refused";

    e = mailgwq_queue_add(q, "0Lq3Xk9a2BcD", "active", 2170, 1795813055, "alice@example.com");
    mailgwq_entry_add_rcpt(e, "bob@example.org", "");
    e = mailgwq_queue_add(q, "0Lq3Xm0000Ab", "deferred", 4283, 1795899999, "");
    mailgwq_entry_add_rcpt(e, "r1@example.org", why);
    mailgwq_entry_add_rcpt(e, "r2@example.org", why);
    mailgwq_entry_add_rcpt(e, "r3@example.com",
                           "host mx.example.com[192.0.2.7] said: 451 4.7.1 Greylisted, please "
                           "try again in 300 seconds (in reply to RCPT TO command)");
    mailgwq_entry_add_rcpt(e, "r4@example.com", "");
    mailgwq_entry_add_rcpt(e, "r5@example.com", "bad \x1b[31mred");
    e = mailgwq_queue_add(q, "0Lq3Xn11Zz", "hold", 100, 1796000000, "carol@example.net");
    mailgwq_entry_add_rcpt(e, "d1@example.net", "");
    mailgwq_entry_add_rcpt(e, "d2@example.net", NULL);
    e = mailgwq_queue_add(q, "A1B2C3D4", "incoming", 1234567, 1796100000,
                          "a-very-long-local-part-that-goes-on-and-on.and.on@subdomain.of.a."
                          "rather.long.example.com");
    mailgwq_entry_add_rcpt(e, "another-very-long-recipient-address-for-column-testing@mail."
                              "example.org", "");
    e = mailgwq_queue_add(q, "0Lq3Xq3333Yy", "deferred", 12345678, 1796200000, "dave@example.com");
    mailgwq_entry_add_rcpt(e, "e@example.com", "4.4.1 timeout");
    mailgwq_queue_add(q, "0Lq3Xr4444Xx", "corrupt", 55, 1796200000, "x@example.com");
}

/* Compare line by line so a failure names the first differing line. */
static void is_text(const char *got, const char *want, const char *name)
{
    size_t line = 1;
    const char *g = got, *w = want;

    while (*g && *w && *g == *w) {
        if (*g == '\n')
            line++;
        g++;
        w++;
    }
    if (!ok(*g == 0 && *w == 0, "%s", name)) {
        tap_diag("first difference on line %zu", line);
        tap_diag("got:\n%s", got);
        tap_diag("expected:\n%s", want);
    }
}

static void render(const struct mailgwq_queue *q, bool json, struct buf *out)
{
    buf_reset(out);
    buf_append(out, "", 0);
    if (json)
        mailgwq_format_json(q, out);
    else
        mailgwq_format_postfix(q, out);
}

static void test_seeded(void)
{
    struct mailgwq_queue q;
    struct buf out = BUF_INIT;

    mailgwq_queue_init(&q);
    seed(&q);
    render(&q, false, &out);
    is_text(out.data, expect_p, "-p: seeded queue as postqueue -p prints it");
    render(&q, true, &out);
    is_text(out.data, expect_j, "-j: seeded queue as postqueue -j prints it");
    mailgwq_queue_free(&q);
    buf_free(&out);
}

static void test_empty(void)
{
    struct mailgwq_queue q;
    struct buf out = BUF_INIT;

    mailgwq_queue_init(&q);
    render(&q, false, &out);
    is_str(out.data, "Mail queue is empty\n", "-p: empty queue");
    render(&q, true, &out);
    is_str(out.data, "", "-j: empty queue prints nothing");
    mailgwq_queue_add(&q, "0Lq3Xr4444Xx", "corrupt", 55, 1796200000, "x@example.com");
    render(&q, false, &out);
    is_str(out.data, "Mail queue is empty\n", "-p: corrupt messages are not listed");
    mailgwq_queue_free(&q);
    buf_free(&out);
}

/* Kbytes: the sum of the sizes, divided by 1024 and truncated. */
static void test_footer(void)
{
    struct mailgwq_queue q;
    struct buf out = BUF_INIT;

    mailgwq_queue_init(&q);
    mailgwq_queue_add(&q, "0Lq3Xk9a2BcD", "deferred", 1023, 1795813055, "a@example.com");
    render(&q, false, &out);
    is_str(out.data,
           "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
           "0Lq3Xk9a2BcD    1023 Fri Nov 27 20:57:35  a@example.com\n"
           "\n"
           "-- 0 Kbytes in 1 Request.\n",
           "-p: one message, no recipient left, 1023 bytes = 0 Kbytes, singular");
    mailgwq_queue_add(&q, "0Lq3Xk9a2BcE", "deferred", 1025, 1795813055, "a@example.com");
    render(&q, false, &out);
    ok(strstr(out.data, "\n-- 2 Kbytes in 2 Requests.\n") != NULL,
       "-p: 1023 + 1025 bytes = 2 Kbytes (sum first, then truncate)");
    mailgwq_queue_add(&q, "0Lq3Xk9a2BcF", "active", 1000, 1795813055, "a@example.com");
    render(&q, false, &out);
    ok(strstr(out.data, "\n-- 2 Kbytes in 3 Requests.\n") != NULL, "-p: 3071 bytes = 2 Kbytes");
    mailgwq_queue_free(&q);
    buf_free(&out);
}

static void test_escaping(void)
{
    struct buf out = BUF_INIT;
    const char utf8[] = "j\xc3\xbcrgen@b\xc3\xbc" "cher.example";
    const char bad[] = "x\xff\xc3(y\xed\xa0\x80";
    const char ctl[] = "a\x1b[0m\xc3\xa9\x80" "z";

    mailgwq_json_quote(&out, "a\"b\\c\td\x7f" "e\x01", 10);
    is_str(out.data, "a\\\"b\\\\c\\td\\u007Fe\\u0001", "json: quotes, backslash, tab, DEL, controls");
    buf_reset(&out);
    mailgwq_json_quote(&out, "\b\f\n\r", 4);
    is_str(out.data, "\\b\\f\\n\\r", "json: named escapes");
    buf_reset(&out);
    mailgwq_json_quote(&out, utf8, strlen(utf8));
    is_str(out.data, utf8, "json: valid UTF-8 kept");
    buf_reset(&out);
    mailgwq_json_quote(&out, bad, sizeof(bad) - 1);
    is_str(out.data, "x?" "?(y???", "json: invalid UTF-8 (and surrogates) become '?'");
    buf_reset(&out);
    mailgwq_printable(&out, ctl, sizeof(ctl) - 1);
    is_str(out.data, "a?[0m\xc3\xa9?z", "-p: controls and bad bytes become '?', UTF-8 kept");
    buf_free(&out);
}

static void test_parse(void)
{
    struct proto_msg m;
    struct mailgwq_queue q;
    struct buf out = BUF_INIT;
    const char *why = NULL;

    proto_msg_init(&m);
    proto_put_str(&m, "status", "ok");
    proto_put_str(&m, "q_id", "0Lq3Xm0000Ab");
    proto_put_str(&m, "q_state", "hold");
    proto_put_int(&m, "q_size", 4283);
    proto_put_int(&m, "q_arrival", 1795899999);
    proto_put_str(&m, "q_sender", "");
    proto_put_str(&m, "q_rcpt", "r1@example.org");
    proto_put_str(&m, "q_reason", "4.4.1 timeout");
    proto_put_str(&m, "q_rcpt", "r2@example.org");
    proto_put_str(&m, "q_reason", "");
    proto_put_str(&m, "q_id", "0Lq3Xk9a2BcD");
    proto_put_str(&m, "q_state", "active");
    proto_put_int(&m, "q_size", 10);
    proto_put_int(&m, "q_arrival", 1795813055);
    proto_put_str(&m, "q_sender", "a@example.com");
    proto_put_str(&m, "q_rcpt", "b@example.com");
    mailgwq_queue_init(&q);
    ok(mailgwq_queue_parse(&q, &m, &why) == 0, "parse: queue-list reply");
    is_int(q.n, 2, "parse: two messages");
    render(&q, false, &out);
    is_str(out.data,
           "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
           "0Lq3Xm0000Ab!    4283 Sat Nov 28 21:06:39  MAILER-DAEMON\n"
           "                                                               (4.4.1 timeout)\n"
           "                                         r1@example.org\n"
           "                                                          (reason unavailable)\n"
           "                                         r2@example.org\n"
           "\n"
           "0Lq3Xk9a2BcD*      10 Fri Nov 27 20:57:35  a@example.com\n"
           "                                         b@example.com\n"
           "\n"
           "-- 4 Kbytes in 2 Requests.\n",
           "parse: rendered as postqueue -p");
    mailgwq_queue_free(&q);
    proto_msg_free(&m);

    proto_msg_init(&m);
    proto_put_str(&m, "q_sender", "a@example.com");
    proto_put_str(&m, "q_id", "0Lq3Xm0000Ab");
    mailgwq_queue_init(&q);
    ok(mailgwq_queue_parse(&q, &m, &why) < 0 && why != NULL,
       "parse: a message attribute before q_id is refused");
    mailgwq_queue_free(&q);
    proto_msg_free(&m);

    proto_msg_init(&m);
    proto_put_str(&m, "q_id", "0Lq3Xm0000Ab");
    proto_put_str(&m, "q_reason", "x");
    mailgwq_queue_init(&q);
    ok(mailgwq_queue_parse(&q, &m, &why) < 0, "parse: q_reason without q_rcpt is refused");
    mailgwq_queue_free(&q);
    proto_msg_free(&m);

    proto_msg_init(&m);
    proto_put_str(&m, "q_id", "0Lq3Xm0000Ab");
    proto_put_str(&m, "q_size", "12x");
    mailgwq_queue_init(&q);
    ok(mailgwq_queue_parse(&q, &m, &why) < 0, "parse: a bad number is refused");
    mailgwq_queue_free(&q);
    proto_msg_free(&m);
    buf_free(&out);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    test_seeded();
    test_empty();
    test_footer();
    test_escaping();
    test_parse();
    return tap_done();
}
