/*
 * dsn_detect - when a report may be sent: never to the null sender,
 * never about a report (no bounce loops), only for the actions a
 * recipient's NOTIFY asks for.
 *
 * Interface: dsn_should_bounce(), dsn_is_notification(),
 * dsn_rcpt_wants() (dsn.h).
 *
 * dsn_is_notification reads only the header block (at most the bytes it
 * is given; dsn_should_bounce gives it the first 64 KiB of the content),
 * unfolds fields and looks at Content-Type, From and Auto-Submitted.
 * Any multipart/report with report-type=delivery-status counts, ours or
 * another MTA's; so does a MAILER-DAEMON message marked auto-replied.
 *
 * Diagnostics: a static "why" for the caller's log line.  Nothing logs.
 */
#include "dsn/dsn_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

#define DSN_DETECT_MAX 65536

struct dsn_seen {
    bool report;                /* multipart/report; delivery-status */
    bool daemon;                /* From: MAILER-DAEMON@... */
    bool auto_replied;          /* Auto-Submitted: auto-replied */
};

/* Lower-cased copy of v without leading blanks. */
static void dsn_lower(struct buf *out, const char *v, size_t n)
{
    size_t i = 0;

    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    for (; i < n; i++)
        buf_append_byte(out, (uint8_t)tolower((unsigned char)v[i]));
}

static bool dsn_report_type(const char *v)
{
    const char *p = strstr(v, "report-type");

    if (!p)
        return false;
    p += strlen("report-type");
    p += strspn(p, " \t");
    if (*p++ != '=')
        return false;
    p += strspn(p, " \t\"");
    return strncmp(p, "delivery-status", 15) == 0 ||
           strncmp(p, "global-delivery-status", 22) == 0;
}

static void dsn_seen_field(struct dsn_seen *s, const struct buf *field)
{
    const char *colon = memchr(field->data, ':', field->len);
    struct buf v = BUF_INIT;
    size_t nl;

    if (!colon)
        return;
    nl = (size_t)(colon - field->data);
    dsn_lower(&v, colon + 1, field->len - nl - 1);
    if (!v.data)
        return;
    if (nl == 12 && strncasecmp(field->data, "Content-Type", 12) == 0)
        s->report |= strncmp(v.data, "multipart/report", 16) == 0 && dsn_report_type(v.data);
    else if (nl == 4 && strncasecmp(field->data, "From", 4) == 0)
        s->daemon |= strstr(v.data, "mailer-daemon@") != NULL;
    else if (nl == 14 && strncasecmp(field->data, "Auto-Submitted", 14) == 0)
        s->auto_replied |= strncmp(v.data, "auto-replied", 12) == 0;
    buf_free(&v);
}

bool dsn_is_notification(const char *content, size_t len)
{
    struct dsn_seen seen = { false, false, false };
    struct buf field = BUF_INIT;
    size_t pos = 0;

    while (pos < len) {
        const char *eol = memchr(content + pos, '\n', len - pos);
        size_t end = eol ? (size_t)(eol - content) : len;
        size_t n = end - pos;
        if (n > 0 && content[pos + n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        if (content[pos] != ' ' && content[pos] != '\t') {
            if (field.len)
                dsn_seen_field(&seen, &field);
            buf_reset(&field);
        }
        buf_append(&field, content + pos, n);
        pos = end + 1;
    }
    if (field.len)
        dsn_seen_field(&seen, &field);
    buf_free(&field);
    return seen.report || (seen.daemon && seen.auto_replied);
}

static bool dsn_content_is_notification(int fd, const struct queue_file *qf)
{
    struct queue_content qc;
    const char *why;
    char *head = xmalloc(DSN_DETECT_MAX);
    size_t len = 0;
    ssize_t r;
    bool yes;

    queue_content_open(&qc, fd, qf);
    while (len < DSN_DETECT_MAX &&
           (r = queue_content_read(&qc, head + len, DSN_DETECT_MAX - len, &why)) > 0)
        len += (size_t)r;
    yes = dsn_is_notification(head, len);
    free(head);
    return yes;
}

enum dsn_verdict dsn_should_bounce(const struct queue_envelope *env, int fd,
                                   const struct queue_file *qf, const char **why)
{
    const char *dummy;

    if (!why)
        why = &dummy;
    if (!env || !env->sender || !*env->sender) {
        *why = "no bounce to <>";
        return DSN_NO_NULL_SENDER;
    }
    if (fd >= 0 && qf && dsn_content_is_notification(fd, qf)) {
        *why = "no bounce about a delivery report";
        return DSN_NO_NOTIFICATION;
    }
    *why = NULL;
    return DSN_SEND;
}

bool dsn_rcpt_wants(unsigned notify, enum dsn_action action)
{
    if (notify & QUEUE_NOTIFY_NEVER)
        return false;
    switch (action) {
    case DSN_ACTION_FAILED:
        return notify == 0 || (notify & QUEUE_NOTIFY_FAILURE);
    case DSN_ACTION_DELAYED:
        return notify == 0 || (notify & QUEUE_NOTIFY_DELAY);
    case DSN_ACTION_DELIVERED:
    case DSN_ACTION_RELAYED:
    case DSN_ACTION_EXPANDED:
        break;
    }
    return (notify & QUEUE_NOTIFY_SUCCESS) != 0;
}
