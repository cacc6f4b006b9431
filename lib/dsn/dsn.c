/*
 * dsn - builds a delivery status notification (RFC 3461-3464) as one
 * RFC 5322 message: our header, then multipart/report with the text part
 * (dsn_template.c), the delivery-status part (dsn_status.c) and the
 * original or its headers (dsn_original.c).
 *
 * Interface: dsn_build(), dsn_message_free(), dsn_type_of() (dsn.h);
 * dsn_boundary_choose() (dsn_int.h).
 *
 * The three part bodies are built first, then a boundary is chosen that
 * occurs in none of them (time + random, checked; never trusted to be
 * unique by chance alone), then the header and the MIME frame are
 * written around them.
 *
 * Diagnostics: -1 with a static reason (null sender, nothing to report,
 * unreadable original).  Nothing here logs: qmgr logs with the queue ID.
 *
 * Security: see dsn.h.  Every header value passes through dsn_text.c.
 */
#include "dsn/dsn_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/mem.h"

enum { DSN_PART_TEXT, DSN_PART_STATUS, DSN_PART_ORIGINAL, DSN_NPARTS };

enum dsn_type dsn_type_of(const struct dsn_rcpt_report *reports, size_t n)
{
    enum dsn_type t = DSN_TYPE_SUCCESS;

    for (size_t i = 0; i < n; i++) {
        if (reports[i].action == DSN_ACTION_FAILED)
            return DSN_TYPE_FAILURE;
        if (reports[i].action == DSN_ACTION_DELAYED)
            t = DSN_TYPE_DELAY;
    }
    return t;
}

static void dsn_random_hex(char *out, size_t bytes)
{
    static unsigned counter;
    unsigned char r[16];

    if (bytes > sizeof r)
        bytes = sizeof r;
    if (getrandom(r, bytes, GRND_NONBLOCK) != (ssize_t)bytes) {
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ ++counter;
        for (size_t i = 0; i < bytes; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            r[i] = (unsigned char)(x >> 56);
    }
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* RFC 2046 bchars without the space, 1..70 of them. */
static bool dsn_boundary_ok(const char *b)
{
    size_t n = strlen(b);

    if (n == 0 || n > 70)
        return false;
    return strspn(b, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "'()+_,-./:=?") == n;
}

static bool dsn_boundary_free(const char *b, const struct buf *parts, size_t nparts)
{
    size_t n = strlen(b);

    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].len && memmem(parts[i].data, parts[i].len, b, n))
            return false;
    }
    return true;
}

int dsn_boundary_choose(char *out, size_t size, const struct buf *parts, size_t nparts,
                        const char *const *candidates)
{
    char hex[33];

    for (size_t i = 0; candidates && candidates[i]; i++) {
        if (dsn_boundary_ok(candidates[i]) && strlen(candidates[i]) < size &&
            dsn_boundary_free(candidates[i], parts, nparts)) {
            str_copy(out, candidates[i], size);
            return 0;
        }
    }
    for (int tries = 0; tries < 16; tries++) {
        dsn_random_hex(hex, 16);
        snprintf(out, size, "=_mailgw_%llx.%s", (unsigned long long)time(NULL), hex);
        if (dsn_boundary_free(out, parts, nparts))
            return 0;
    }
    return -1;
}

static const char *dsn_subject(enum dsn_type type)
{
    if (type == DSN_TYPE_FAILURE)
        return "Undelivered Mail Returned to Sender";
    if (type == DSN_TYPE_DELAY)
        return "Delayed Mail (still being retried)";
    return "Successful Mail Delivery Report";
}

static void dsn_put(struct buf *out, const char *name, const char *value)
{
    dsn_field(out, name, value, strlen(value));
}

/* The top-level header block; returns true when To: has raw UTF-8. */
static bool dsn_header(struct buf *out, struct dsn_message *msg, const struct dsn_request *req,
                       time_t now)
{
    struct buf host = BUF_INIT, v = BUF_INIT;
    char date[64], rnd[17];
    bool raw8;

    dsn_clean_host(&host, req->hostname);
    buf_printf(&v, "\"Mail Delivery System\" <MAILER-DAEMON@%s>", host.data ? host.data : "");
    dsn_field(out, "From", v.data, v.len);
    buf_reset(&v);
    buf_append_byte(&v, '<');
    raw8 = dsn_clean_addr(&v, req->qf->env.sender, req->qf->env.smtputf8);
    buf_append_byte(&v, '>');
    dsn_field(out, "To", v.data, v.len);
    dsn_put(out, "Subject", dsn_subject(msg->type));
    dsn_date(date, sizeof date, now);
    dsn_put(out, "Date", date);
    dsn_random_hex(rnd, 8);
    buf_reset(&v);
    dsn_clean_id(&v, req->queue_id);
    snprintf(msg->message_id, sizeof msg->message_id, "<%llx.%s.%s@%s>",
             (unsigned long long)now, rnd, v.len ? v.data : "dsn", host.data ? host.data : "");
    dsn_put(out, "Message-ID", msg->message_id);
    dsn_put(out, "Auto-Submitted", "auto-replied");
    dsn_put(out, "MIME-Version", "1.0");
    buf_reset(&v);
    buf_printf(&v, "multipart/report; report-type=delivery-status; boundary=\"%s\"",
               msg->boundary);
    dsn_field(out, "Content-Type", v.data, v.len);
    if (msg->eight_bit)
        dsn_put(out, "Content-Transfer-Encoding", "8bit");
    buf_free(&host);
    buf_free(&v);
    return raw8;
}

static void dsn_part(struct buf *out, const char *boundary, const char *desc, const char *type,
                     const struct buf *body)
{
    bool eight = dsn_has_8bit(body->data ? body->data : "", body->len);

    buf_printf(out, "--%s\r\n", boundary);
    dsn_put(out, "Content-Description", desc);
    dsn_put(out, "Content-Type", type);
    if (eight)
        dsn_put(out, "Content-Transfer-Encoding", "8bit");
    buf_append_str(out, "\r\n");
    buf_append(out, body->data, body->len);
    if (body->len < 2 || memcmp(body->data + body->len - 2, "\r\n", 2) != 0)
        buf_append_str(out, "\r\n");
}

static const char *dsn_original_desc(const struct dsn_message *msg, bool hdrs_only)
{
    if (msg->type != DSN_TYPE_FAILURE)
        return msg->truncated ? "Message Headers (truncated)" : "Message Headers";
    if (hdrs_only)
        return msg->truncated ? "Undelivered Message Headers (truncated)"
                              : "Undelivered Message Headers";
    return msg->truncated ? "Undelivered Message (truncated)" : "Undelivered Message";
}

static void dsn_assemble(struct dsn_message *msg, const struct dsn_request *req, time_t now,
                         const struct buf *parts, bool hdrs_only)
{
    bool text8 = parts[DSN_PART_TEXT].data &&
                 dsn_has_8bit(parts[DSN_PART_TEXT].data, parts[DSN_PART_TEXT].len);

    for (size_t i = 0; i < DSN_NPARTS; i++)
        msg->eight_bit |= dsn_has_8bit(parts[i].data ? parts[i].data : "", parts[i].len);
    msg->smtputf8 |= dsn_header(&msg->text, msg, req, now);
    buf_append_str(&msg->text, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
    dsn_part(&msg->text, msg->boundary, "Notification",
             text8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii",
             &parts[DSN_PART_TEXT]);
    dsn_part(&msg->text, msg->boundary, "Delivery report", "message/delivery-status",
             &parts[DSN_PART_STATUS]);
    dsn_part(&msg->text, msg->boundary, dsn_original_desc(msg, hdrs_only),
             hdrs_only ? "text/rfc822-headers" : "message/rfc822", &parts[DSN_PART_ORIGINAL]);
    buf_printf(&msg->text, "--%s--\r\n", msg->boundary);
}

static int dsn_check(const struct dsn_request *req, const char **why)
{
    if (!req->qf || !req->hostname || !req->reports || req->nreports == 0) {
        *why = "nothing to report";
        return -1;
    }
    if (!req->qf->env.sender || !*req->qf->env.sender) {
        *why = "no bounce to <>";
        return -1;
    }
    return 0;
}

int dsn_build(const struct dsn_request *req, struct dsn_message *msg, const char **why)
{
    struct buf parts[DSN_NPARTS] = { BUF_INIT, BUF_INIT, BUF_INIT };
    time_t now = req->now ? req->now : time(NULL);
    bool hdrs_only, raw8 = false;
    int rc = -1;

    memset(msg, 0, sizeof *msg);
    buf_init(&msg->text);
    if (dsn_check(req, why) < 0)
        return -1;
    msg->type = dsn_type_of(req->reports, req->nreports);
    /* RET applies to failures only (RFC 3461 §4.3); no RET = full. */
    hdrs_only = msg->type != DSN_TYPE_FAILURE || req->qf->env.ret == QUEUE_RET_HDRS;
    dsn_text_part(&parts[DSN_PART_TEXT], req, msg->type, req->qf->env.smtputf8);
    dsn_status_part(&parts[DSN_PART_STATUS], req, now, &raw8);
    if (dsn_original_part(&parts[DSN_PART_ORIGINAL], req->fd, req->qf, hdrs_only,
                          req->content_limit ? req->content_limit : DSN_DEFAULT_CONTENT_LIMIT,
                          &msg->truncated, why) < 0)
        goto out;
    if (dsn_boundary_choose(msg->boundary, sizeof msg->boundary, parts, DSN_NPARTS,
                            req->boundary_candidates) < 0) {
        *why = "no usable MIME boundary";
        goto out;
    }
    msg->smtputf8 = raw8;
    dsn_assemble(msg, req, now, parts, hdrs_only);
    rc = 0;
out:
    for (size_t i = 0; i < DSN_NPARTS; i++)
        buf_free(&parts[i]);
    return rc;
}

void dsn_message_free(struct dsn_message *msg)
{
    buf_free(&msg->text);
}
