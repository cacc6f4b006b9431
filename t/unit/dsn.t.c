/*
 * dsn.t - delivery status notifications (lib/dsn): xtext, cleaning,
 * header folding, template expansion, boundary choice, NOTIFY rules,
 * loop detection, and whole reports built from real queue files.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn/dsn.h"
#include "dsn/dsn_int.h"
#include "tap.h"

static char *str_of(struct buf *b)
{
    return b->data ? b->data : "";
}

/* Every line ends in CRLF, none is longer than 998, no bare CR/LF. */
static int wire_clean(const struct buf *b)
{
    size_t col = 0;

    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] == '\r') {
            if (i + 1 >= b->len || b->data[i + 1] != '\n')
                return 0;
            i++;
            col = 0;
        } else if (b->data[i] == '\n' || ++col > 998) {
            return 0;
        }
    }
    return b->len >= 2 && memcmp(b->data + b->len - 2, "\r\n", 2) == 0;
}

static void test_xtext(void)
{
    struct buf b = BUF_INIT;

    dsn_xtext_encode(&b, "a+b=c d\r\xc3", 9);
    is_str(str_of(&b), "a+2Bb+3Dc+20d+0D+C3", "xtext encode");
    buf_reset(&b);
    dsn_xtext_decode(&b, "a+2Bb+3Dc+20d", 13);
    is_str(str_of(&b), "a+b=c d", "xtext decode");
    buf_reset(&b);
    dsn_xtext_decode(&b, "a+zzb+4", 7);
    is_str(str_of(&b), "a+zzb+4", "bad xtext escapes stay literal");
    buf_free(&b);
}

static void test_clean(void)
{
    struct buf b = BUF_INIT;

    dsn_clean_text(&b, "  550 bad\r\n\tBcc: x\x01\xc3\xa9 end  ", 1000);
    is_str(str_of(&b), "550 bad Bcc: x ?? end", "clean text: controls to one space, 8-bit '?'");
    buf_reset(&b);
    dsn_clean_text(&b, "abcdef", 3);
    is_str(str_of(&b), "abc", "clean text stops at max");
    buf_reset(&b);
    ok(dsn_clean_addr(&b, "jos\xc3\xa9@x", true) && strcmp(str_of(&b), "jos\xc3\xa9@x") == 0,
       "UTF-8 address kept with SMTPUTF8");
    buf_reset(&b);
    ok(!dsn_clean_addr(&b, "jos\xc3\xa9 @\x7fx", false) && strcmp(str_of(&b), "jos???@?x") == 0,
       "8-bit, blanks, DEL replaced without SMTPUTF8");
    buf_reset(&b);
    ok(!dsn_clean_addr(&b, "bad\xc3(@x", true) && strcmp(str_of(&b), "bad?(@x") == 0,
       "invalid UTF-8 replaced even with SMTPUTF8");
    buf_reset(&b);
    dsn_clean_host(&b, "mx.example\r\nX: 1");
    is_str(str_of(&b), "mx.example--X:-1", "host name characters only");
    buf_reset(&b);
    dsn_clean_id(&b, "4Xyz\r\n 01");
    is_str(str_of(&b), "4Xyz01", "queue ID characters only");
    buf_free(&b);
}

static void test_address_field(void)
{
    struct buf b = BUF_INIT;
    bool raw8 = false;

    dsn_address_field(&b, "RFC822", "a+2Bb@x", 7, true, false, &raw8);
    is_str(str_of(&b), "rfc822; a+b@x", "ORCPT decoded when printable");
    buf_reset(&b);
    dsn_address_field(&b, "rfc822", "jos+C3+A9@x", 11, true, false, &raw8);
    ok(strcmp(str_of(&b), "rfc822; jos+C3+A9@x") == 0 && !raw8, "8-bit without SMTPUTF8: xtext");
    buf_reset(&b);
    dsn_address_field(&b, "rfc822", "jos+C3+A9@x", 11, true, true, &raw8);
    ok(strcmp(str_of(&b), "rfc822; jos\xc3\xa9@x") == 0 && raw8, "8-bit with SMTPUTF8: raw");
    buf_reset(&b);
    dsn_address_field(&b, "x;y", "a+0D+0Ab@x", 10, true, true, &raw8);
    is_str(str_of(&b), "unknown; a+0D+0Ab@x", "CR/LF always xtext, bad type 'unknown'");
    buf_free(&b);
}

static void test_fold(void)
{
    struct buf b = BUF_INIT, unfolded = BUF_INIT;
    char word[3000];
    const char *v = "smtp; 550 5.1.1 <bob@example.test>: Recipient address rejected: User "
                    "unknown in virtual mailbox table; see https://example.test/help";

    dsn_field(&b, "Diagnostic-Code", v, strlen(v));
    ok(wire_clean(&b), "folded field is clean");
    ok(strstr(b.data, "\r\n ") != NULL, "long field folded");
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == '\r' && b.data[i + 1] == '\n')
            i++;
        else
            buf_append_byte(&unfolded, (uint8_t)b.data[i]);
    }
    ok(unfolded.len == strlen("Diagnostic-Code: ") + strlen(v) &&
       strcmp(unfolded.data + strlen("Diagnostic-Code: "), v) == 0, "unfolding gives the value");
    size_t first = (size_t)(strstr(b.data, "\r\n") - b.data);
    ok(first <= 78, "first line at most 78 (%zu)", first);
    memset(word, 'A', sizeof word - 1);
    word[sizeof word - 1] = 0;
    buf_reset(&b);
    dsn_field(&b, "X", word, strlen(word));
    ok(wire_clean(&b), "a 2999-octet word is cut under 998");
    buf_reset(&b);
    dsn_field(&b, "Action", "failed", 6);
    is_str(str_of(&b), "Action: failed\r\n", "short field");
    buf_reset(&b);
    dsn_field(&b, "X", "  a   ", 6);
    is_str(str_of(&b), "X: a\r\n", "blanks around a value trimmed");
    buf_free(&b);
    buf_free(&unfolded);
}

static void test_lines_date(void)
{
    struct buf b = BUF_INIT;
    char longline[2500], date[64];

    dsn_text_lines(&b, "a\nb\rc\r\nd", 8);
    is_str(str_of(&b), "a\r\nb\r\nc\r\nd\r\n", "bare LF / CR become CRLF");
    memset(longline, 'x', sizeof longline);
    buf_reset(&b);
    dsn_text_lines(&b, longline, sizeof longline);
    ok(wire_clean(&b) && b.len == 2500 + 3 * 2, "2500-octet line wrapped at 998");
    dsn_date(date, sizeof date, 1700000000);
    ok(strlen(date) >= 30 && date[3] == ',' && strstr(date, " 2023 ") != NULL, "date: %s", date);
    buf_free(&b);
}

static void test_template(void)
{
    struct buf b = BUF_INIT;
    const char *t = "# comment %A%\nA=%A% B=%B% %% %C% 100% %A\n#x\nend %A%";
    struct dsn_macro m[] = { { "A", "%B%" }, { "B", "b" } };

    dsn_template_expand(&b, t, strlen(t), m, 2);
    is_str(str_of(&b), "A=%B% B=b % %C% 100% %A\nend %B%",
           "values literal (never re-scanned), %%, unknown names, comments");
    buf_free(&b);
}

static void test_boundary(void)
{
    struct buf parts[2] = { BUF_INIT, BUF_INIT };
    const char *cands[] = { "in_part", "bad boundary", "free_one", NULL };
    char out[64];

    buf_append_str(&parts[1], "text --in_part-- text");
    ok(dsn_boundary_choose(out, sizeof out, parts, 2, cands) == 0 &&
       strcmp(out, "free_one") == 0, "candidate found in a part and invalid one skipped");
    ok(dsn_boundary_choose(out, sizeof out, parts, 2, NULL) == 0 &&
       strncmp(out, "=_mailgw_", 9) == 0 && strlen(out) <= 70, "random boundary %s", out);
    buf_append_str(&parts[0], out);
    char again[64];
    ok(dsn_boundary_choose(again, sizeof again, parts, 2, NULL) == 0 && strcmp(again, out) != 0,
       "a boundary present in the content is not chosen again");
    buf_free(&parts[0]);
    buf_free(&parts[1]);
}

static void test_rules(void)
{
    struct dsn_rcpt_report r = { .action = DSN_ACTION_FAILED, .status = "5.1.1" };
    struct buf b = BUF_INIT;

    ok(dsn_rcpt_wants(0, DSN_ACTION_FAILED) && dsn_rcpt_wants(0, DSN_ACTION_DELAYED) &&
       !dsn_rcpt_wants(0, DSN_ACTION_RELAYED), "no NOTIFY: failure and delay only");
    ok(!dsn_rcpt_wants(QUEUE_NOTIFY_NEVER, DSN_ACTION_FAILED), "NOTIFY=NEVER: nothing");
    ok(dsn_rcpt_wants(QUEUE_NOTIFY_SUCCESS, DSN_ACTION_RELAYED) &&
       !dsn_rcpt_wants(QUEUE_NOTIFY_SUCCESS, DSN_ACTION_FAILED), "NOTIFY=SUCCESS");
    ok(dsn_rcpt_wants(QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, DSN_ACTION_DELAYED) &&
       !dsn_rcpt_wants(QUEUE_NOTIFY_FAILURE, DSN_ACTION_DELAYED), "NOTIFY=FAILURE,DELAY");
    is_str(dsn_status_code(&r), "5.1.1", "valid status kept");
    r.status = "5.1.1\r\nX: y";
    is_str(dsn_status_code(&r), "5.0.0", "malformed status replaced");
    r.status = "2.0.0";
    is_str(dsn_status_code(&r), "5.0.0", "status of the wrong class replaced");
    r.action = DSN_ACTION_DELAYED;
    r.status = "4.4.1000";
    is_str(dsn_status_code(&r), "4.0.0", "over-long detail replaced");
    dsn_remote_name(&b, "mx.example.test[192.0.2.1]:25");
    is_str(str_of(&b), "mx.example.test", "remote NAME[IP]:PORT -> NAME");
    buf_reset(&b);
    dsn_remote_name(&b, "unknown[2001:db8::1]:25");
    is_str(str_of(&b), "[2001:db8::1]", "unknown name -> [IP]");
    buf_reset(&b);
    dsn_remote_name(&b, "none");
    ok(b.len == 0, "relay=none -> no Remote-MTA");
    struct dsn_rcpt_report list[3] = { { .action = DSN_ACTION_RELAYED },
                                       { .action = DSN_ACTION_DELAYED },
                                       { .action = DSN_ACTION_FAILED } };
    ok(dsn_type_of(list, 1) == DSN_TYPE_SUCCESS && dsn_type_of(list, 2) == DSN_TYPE_DELAY &&
       dsn_type_of(list, 3) == DSN_TYPE_FAILURE, "report type from the actions");
    buf_free(&b);
}

static void test_detect(void)
{
    const char *ours = "From: \"Mail Delivery System\" <MAILER-DAEMON@mx>\r\n"
                       "Auto-Submitted: auto-replied\r\nSubject: x\r\n\r\nbody";
    const char *folded = "Subject: x\r\nContent-Type: multipart/report;\r\n"
                         "\treport-type=\"delivery-status\"; boundary=x\r\n\r\n";
    const char *mdn = "Content-Type: multipart/report; report-type=disposition-notification\r\n"
                      "\r\n";
    const char *daemon_only = "From: MAILER-DAEMON@mx\r\nSubject: hello\r\n\r\n";
    const char *in_body = "Subject: x\r\n\r\nContent-Type: multipart/report; "
                          "report-type=delivery-status\r\n";
    struct queue_envelope env = { .sender = "" };
    const char *why = NULL;

    ok(dsn_is_notification(ours, strlen(ours)), "our bounce recognised");
    ok(dsn_is_notification(folded, strlen(folded)), "folded multipart/report recognised");
    ok(!dsn_is_notification(mdn, strlen(mdn)), "an MDN is not a DSN");
    ok(!dsn_is_notification(daemon_only, strlen(daemon_only)), "MAILER-DAEMON alone is not");
    ok(!dsn_is_notification(in_body, strlen(in_body)), "text in the body does not count");
    ok(dsn_should_bounce(&env, -1, NULL, &why) == DSN_NO_NULL_SENDER &&
       strcmp(why, "no bounce to <>") == 0, "no bounce to <>");
    env.sender = "a@b";
    ok(dsn_should_bounce(&env, -1, NULL, &why) == DSN_SEND, "a sender gets reports");
}

/* A real queue file with the given content, read back. */
static int make_queue_file(struct queue_file *qf, struct queue_envelope *env, const char *content,
                           size_t len)
{
    char path[] = "/tmp/dsn.t.XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    struct queue_writer w;
    const char *why;

    if (fd < 0)
        return -1;
    unlink(path);
    if (queue_writer_open(&w, fd) < 0 || queue_writer_envelope(&w, env) < 0 ||
        queue_writer_content(&w, content, len) < 0 || queue_writer_finish(&w) < 0 ||
        queue_file_read(fd, qf, &why) < 0) {
        queue_writer_close(&w);
        close(fd);
        return -1;
    }
    queue_writer_close(&w);
    return fd;
}

static void test_build(void)
{
    struct queue_rcpt rc = { .addr = "bob@example.test", .orcpt = "rfc822;bob@example.test" };
    struct queue_envelope env = { .arrival_us = 1700000000000000ULL, .sender = "al@example.org",
                                  .rcpts = &rc, .nrcpts = 1, .ret = QUEUE_RET_HDRS };
    struct dsn_rcpt_report rep = { .final_rcpt = "bob@example.test", .action = DSN_ACTION_FAILED,
                                   .orcpt = "rfc822;bob@example.test", .status = "5.1.1",
                                   .diagnostic = "550 no\r\nsuch user" };
    const char *orig = "Subject: hi\r\nX-A: 1\r\n\r\nsecret body\r\n";
    struct queue_file qf, back;
    struct dsn_message msg;
    struct dsn_envelope de;
    const char *why = NULL;
    int fd = make_queue_file(&qf, &env, orig, strlen(orig));

    if (!ok(fd >= 0, "original queue file"))
        return;
    struct dsn_request req = { .fd = fd, .qf = &qf, .hostname = "mx.example.test",
                               .queue_id = "4Xyz0123abcd", .reports = &rep, .nreports = 1 };
    ok(dsn_build(&req, &msg, &why) == 0, "report built");
    ok(wire_clean(&msg.text), "report is CRLF, lines <= 998");
    ok(strstr(msg.text.data, "Content-Type: text/rfc822-headers") &&
       strstr(msg.text.data, "Subject: hi\r\n") && !strstr(msg.text.data, "secret body"),
       "RET=HDRS returns the headers only");
    ok(strstr(msg.text.data, "Original-Recipient: rfc822; bob@example.test\r\n") != NULL,
       "Original-Recipient from ORCPT");
    ok(strstr(msg.text.data, "Diagnostic-Code: smtp; 550 no such user\r\n") != NULL,
       "CR/LF in the diagnostic become a space");
    ok(msg.type == DSN_TYPE_FAILURE && !msg.eight_bit && !msg.truncated, "type and flags");

    /* The report queued as a message, then read back. */
    char path[] = "/tmp/dsn.t.XXXXXX";
    int qfd = mkostemp(path, O_CLOEXEC);
    unlink(path);
    dsn_envelope_make(&de, &qf.env, &msg, 1700000001000000ULL);
    ok(qfd >= 0 && dsn_queue_write(qfd, &de, &msg, &why) == 0, "report written to a queue file");
    ok(queue_file_read(qfd, &back, &why) == 0 && back.env.sender[0] == 0 && back.env.nrcpts == 1 &&
       strcmp(back.env.rcpts[0].addr, "al@example.org") == 0 &&
       back.content_size == msg.text.len, "read back: <>, rcpt = sender, whole content");
    queue_file_free(&back);
    dsn_envelope_free(&de);
    dsn_message_free(&msg);
    close(qfd);

    req.nreports = 0;
    ok(dsn_build(&req, &msg, &why) < 0, "nothing to report: -1 (%s)", why);
    dsn_message_free(&msg);
    req.nreports = 1;
    const char *saved = qf.env.sender;
    qf.env.sender = "";
    ok(dsn_build(&req, &msg, &why) < 0 && strcmp(why, "no bounce to <>") == 0,
       "null sender: nothing built");
    dsn_message_free(&msg);
    qf.env.sender = saved;      /* owned by qf: restore before free */
    queue_file_free(&qf);
    close(fd);
}

static void test_limit(void)
{
    struct queue_rcpt rc = { .addr = "bob@example.test" };
    struct queue_envelope env = { .arrival_us = 1700000000000000ULL, .sender = "al@example.org",
                                  .rcpts = &rc, .nrcpts = 1 };
    struct dsn_rcpt_report rep = { .final_rcpt = "bob@example.test", .action = DSN_ACTION_FAILED };
    struct buf orig = BUF_INIT;
    struct queue_file qf;
    struct dsn_message msg;
    const char *why = NULL;

    buf_append_str(&orig, "Subject: big\r\nX-Long: ");
    for (int i = 0; i < 2000; i++)
        buf_append_byte(&orig, 'h');
    buf_append_str(&orig, "\r\n\r\n");
    for (int i = 0; i < 20000; i++)
        buf_append_str(&orig, "line of the body\n");
    int fd = make_queue_file(&qf, &env, orig.data, orig.len);
    if (!ok(fd >= 0, "large original queued"))
        return;
    struct dsn_request req = { .fd = fd, .qf = &qf, .hostname = "mx", .reports = &rep,
                               .nreports = 1, .content_limit = 5000 };
    ok(dsn_build(&req, &msg, &why) == 0 && msg.truncated, "built and marked truncated");
    ok(wire_clean(&msg.text), "long header line wrapped, LF made CRLF");
    ok(strstr(msg.text.data, "Subject: big\r\n") && strstr(msg.text.data, "\r\n hhh"),
       "headers kept; a cut header continues as a folded line");
    ok(msg.text.len < 5000 + 3000, "size bounded (%zu)", msg.text.len);
    dsn_message_free(&msg);
    queue_file_free(&qf);
    close(fd);
    buf_free(&orig);
}

static void test_template_files(void)
{
    struct buf b = BUF_INIT;
    const char *why = NULL;

    ok(dsn_template_load("/nonexistent/dsn.tmpl", &b, &why) < 0 && why, "missing template: -1");
    ok(dsn_template_load("/", &b, &why) < 0, "a directory is not a template");
    if (access("conf/dsn.tmpl", R_OK) == 0) {
        struct buf x = BUF_INIT, y = BUF_INIT;
        struct dsn_macro m[] = { { "HOSTNAME", "h" } };
        ok(dsn_template_load("conf/dsn.tmpl", &b, &why) == 0, "conf/dsn.tmpl loads");
        dsn_template_expand(&x, b.data, b.len, m, 1);
        dsn_template_expand(&y, dsn_template_default(), strlen(dsn_template_default()), m, 1);
        is_str(str_of(&x), str_of(&y), "conf/dsn.tmpl = the built-in template");
        buf_free(&x);
        buf_free(&y);
    } else {
        ok(1, "# skip conf/dsn.tmpl not found from here");
        ok(1, "# skip");
    }
    buf_free(&b);
}

int main(void)
{
    test_xtext();
    test_clean();
    test_address_field();
    test_fold();
    test_lines_date();
    test_template();
    test_boundary();
    test_rules();
    test_detect();
    test_build();
    test_limit();
    test_template_files();
    return tap_done();
}
