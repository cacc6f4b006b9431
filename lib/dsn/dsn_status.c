/*
 * dsn_status - the machine-readable part of a report: the body of the
 * message/delivery-status part (RFC 3464 §2).
 *
 * Interface (dsn_int.h): dsn_status_part(), dsn_status_code(),
 * dsn_remote_name(); dsn_action_name() (dsn.h).
 *
 * Layout, in the order of RFC 3464's grammar: the per-message fields
 * (Original-Envelope-Id when ENVID was given, Reporting-MTA, Arrival-Date,
 * then the extension X-Mailgw-Queue-ID), then for each
 * recipient an empty line and its block (Original-Recipient when ORCPT
 * was given, Final-Recipient, Action, Status, Remote-MTA when known,
 * Diagnostic-Code when known, Last-Attempt-Date, Will-Retry-Until for
 * "delayed").  Diagnostic-Code is "smtp; REPLY" for a server's reply
 * and "X-Mailgw; TEXT" for our own (connection refused, timeout, ...).
 *
 * Security: ENVID, ORCPT and addresses are written decoded when they are
 * printable ASCII (raw UTF-8 only for SMTPUTF8 messages) and in xtext
 * otherwise; diagnostic text is reduced to printable ASCII and folded;
 * a status that is not X.Y.Z is replaced by the action's default.
 */
#include "dsn/dsn_int.h"

#include <string.h>

const char *dsn_action_name(enum dsn_action a)
{
    switch (a) {
    case DSN_ACTION_FAILED:
        return "failed";
    case DSN_ACTION_DELAYED:
        return "delayed";
    case DSN_ACTION_DELIVERED:
        return "delivered";
    case DSN_ACTION_RELAYED:
        return "relayed";
    case DSN_ACTION_EXPANDED:
        return "expanded";
    }
    return "failed";
}

/* 1-3 digits, at most max_len. */
static const char *dsn_digits(const char *p, size_t max_len)
{
    size_t n = 0;

    while (p[n] >= '0' && p[n] <= '9' && n <= max_len)
        n++;
    return (n >= 1 && n <= max_len) ? p + n : NULL;
}

/* RFC 3463: class "." subject "." detail; class 2, 4 or 5, subject 1-3
 * digits, detail 1-3 digits; the class must fit the action: 5 for
 * "failed" (or 4, a temporary error that became final: expiry, 4.4.7, as
 * Postfix reports it), 4 for "delayed", 2 for the others. */
static bool dsn_status_valid(const char *s, enum dsn_action a)
{
    const char *p;

    if (!s || !(s[0] == '2' || s[0] == '4' || s[0] == '5') || s[1] != '.')
        return false;
    if (a == DSN_ACTION_FAILED ? s[0] == '2'
                               : s[0] != (a == DSN_ACTION_DELAYED ? '4' : '2'))
        return false;
    p = dsn_digits(s + 2, 3);
    if (!p || *p != '.')
        return false;
    p = dsn_digits(p + 1, 3);
    return p && *p == 0;
}

const char *dsn_status_code(const struct dsn_rcpt_report *r)
{
    if (dsn_status_valid(r->status, r->action))
        return r->status;
    if (r->action == DSN_ACTION_FAILED)
        return "5.0.0";
    if (r->action == DSN_ACTION_DELAYED)
        return "4.0.0";
    return "2.0.0";
}

static bool dsn_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_' || c == ':';
}

/* Only host name / address characters survive, so the result is safe in
 * a field and in the text part. */
void dsn_remote_name(struct buf *out, const char *remote)
{
    const char *name = remote, *lb;
    bool literal = false;
    size_t n;

    if (!remote || !*remote || strcmp(remote, "none") == 0)
        return;
    lb = strchr(remote, '[');
    n = lb ? (size_t)(lb - remote) : strlen(remote);
    if (lb && (n == 0 || (n == 7 && strncmp(remote, "unknown", 7) == 0))) {
        const char *rb = strchr(lb, ']');
        if (!rb)
            return;
        name = lb + 1;
        n = (size_t)(rb - name);
        literal = true;
    }
    if (n == 0)
        return;
    if (literal)
        buf_append_byte(out, '[');
    for (size_t i = 0; i < n && i < 255; i++)
        buf_append_byte(out, dsn_host_char(name[i]) ? (uint8_t)name[i] : '?');
    if (literal)
        buf_append_byte(out, ']');
}

/* "NNN" or "NNN text" with N a reply code: a remote server's reply; any
 * other text is our own diagnostic (type X-Mailgw, as Postfix's
 * X-Postfix). */
static bool dsn_is_smtp_reply(const char *d)
{
    return d[0] >= '2' && d[0] <= '5' && d[1] >= '0' && d[1] <= '9' && d[2] >= '0' &&
           d[2] <= '9' && (d[3] == 0 || d[3] == ' ' || d[3] == '-');
}

static void dsn_field_buf(struct buf *out, const char *name, const struct buf *v)
{
    dsn_field(out, name, v->data ? v->data : "", v->len);
}

static void dsn_field_date(struct buf *out, const char *name, time_t t)
{
    char date[64];

    dsn_date(date, sizeof date, t);
    dsn_field(out, name, date, strlen(date));
}

static void dsn_status_message(struct buf *out, const struct dsn_request *req)
{
    const struct queue_envelope *env = &req->qf->env;
    struct buf v = BUF_INIT;

    if (env->envid && *env->envid) {
        struct buf dec = BUF_INIT;
        dsn_xtext_decode(&dec, env->envid, strlen(env->envid));
        bool printable = true;
        for (size_t i = 0; i < dec.len; i++)
            printable &= (unsigned char)dec.data[i] >= 0x20 && (unsigned char)dec.data[i] < 0x7f;
        if (printable)
            buf_append(&v, dec.data, dec.len);
        else
            dsn_xtext_encode(&v, dec.data, dec.len);
        dsn_field_buf(out, "Original-Envelope-Id", &v);
        buf_free(&dec);
        buf_reset(&v);
    }
    buf_append_str(&v, "dns; ");
    dsn_clean_host(&v, req->hostname);
    dsn_field_buf(out, "Reporting-MTA", &v);
    dsn_field_date(out, "Arrival-Date", (time_t)(env->arrival_us / 1000000));
    if (req->queue_id) {        /* extension fields come last (§2.2) */
        buf_reset(&v);
        dsn_clean_id(&v, req->queue_id);
        dsn_field_buf(out, "X-Mailgw-Queue-ID", &v);
    }
    buf_free(&v);
}

static void dsn_status_orcpt(struct buf *out, const char *orcpt, bool utf8_ok, bool *raw8)
{
    struct buf v = BUF_INIT;
    const char *semi = strchr(orcpt, ';');
    char type[40] = "rfc822";

    if (semi) {
        size_t tl = (size_t)(semi - orcpt);
        if (tl >= sizeof type)
            tl = 0;
        memcpy(type, orcpt, tl);
        type[tl] = 0;
    }
    semi = semi ? semi + 1 : orcpt;
    dsn_address_field(&v, type, semi, strlen(semi), true, utf8_ok, raw8);
    dsn_field_buf(out, "Original-Recipient", &v);
    buf_free(&v);
}

static void dsn_status_rcpt(struct buf *out, const struct dsn_request *req,
                            const struct dsn_rcpt_report *r, time_t now, bool *raw8)
{
    bool utf8_ok = req->qf->env.smtputf8;
    const char *rcpt = r->final_rcpt ? r->final_rcpt : "";
    struct buf v = BUF_INIT;

    buf_append_str(out, "\r\n");
    if (r->orcpt && *r->orcpt)
        dsn_status_orcpt(out, r->orcpt, utf8_ok, raw8);
    dsn_address_field(&v, "rfc822", rcpt, strlen(rcpt), false, utf8_ok, raw8);
    dsn_field_buf(out, "Final-Recipient", &v);
    dsn_field(out, "Action", dsn_action_name(r->action), strlen(dsn_action_name(r->action)));
    dsn_field(out, "Status", dsn_status_code(r), strlen(dsn_status_code(r)));
    buf_reset(&v);
    dsn_remote_name(&v, r->remote_mta);
    if (v.len) {
        buf_reset(&v);
        buf_append_str(&v, "dns; ");
        dsn_remote_name(&v, r->remote_mta);
        dsn_field_buf(out, "Remote-MTA", &v);
    }
    if (r->diagnostic && *r->diagnostic) {
        buf_reset(&v);
        buf_append_str(&v, dsn_is_smtp_reply(r->diagnostic) ? "smtp; " : "X-Mailgw; ");
        dsn_clean_text(&v, r->diagnostic, DSN_MAX_DIAGNOSTIC);
        dsn_field_buf(out, "Diagnostic-Code", &v);
    }
    dsn_field_date(out, "Last-Attempt-Date", r->last_attempt ? r->last_attempt : now);
    if (r->action == DSN_ACTION_DELAYED && r->will_retry_until)
        dsn_field_date(out, "Will-Retry-Until", r->will_retry_until);
    buf_free(&v);
}

void dsn_status_part(struct buf *out, const struct dsn_request *req, time_t now, bool *raw8)
{
    dsn_status_message(out, req);
    for (size_t i = 0; i < req->nreports; i++)
        dsn_status_rcpt(out, req, &req->reports[i], now, raw8);
}
