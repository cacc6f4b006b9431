/*
 * mailgwq_format - queue listings in `postqueue -p` and `postqueue -j`
 * form for mailgwq (formats documented in mailgwq_format.h and
 * mailgwq(1)).
 *
 * Interface: mailgwq_queue_* build a listing (from qmgr's queue-list
 * replies or by hand in the unit test); mailgwq_format_postfix() and
 * mailgwq_format_json() render it into a buffer.
 *
 * Diagnostics: mailgwq_queue_parse() fails with a static reason on a
 * malformed reply; rendering cannot fail.
 *
 * Security: every string in a listing came from the network (envelope
 * addresses, remote servers' replies).  Output is made printable (no
 * terminal control sequences reach the admin's terminal) and JSON-escaped;
 * sizes and times are printed as numbers, never used for arithmetic other
 * than the checked total.
 */
#include "mailgwq_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/mem.h"

void mailgwq_queue_init(struct mailgwq_queue *q)
{
    memset(q, 0, sizeof(*q));
}

void mailgwq_queue_free(struct mailgwq_queue *q)
{
    for (size_t i = 0; i < q->n; i++) {
        struct mailgwq_entry *e = &q->v[i];
        for (size_t k = 0; k < e->nrcpts; k++) {
            free(e->rcpts[k].addr);
            free(e->rcpts[k].reason);
        }
        free(e->rcpts);
        free(e->id);
        free(e->state);
        free(e->sender);
    }
    free(q->v);
    mailgwq_queue_init(q);
}

struct mailgwq_entry *mailgwq_queue_add(struct mailgwq_queue *q, const char *id,
                                        const char *state, int64_t size, int64_t arrival,
                                        const char *sender)
{
    struct mailgwq_entry *e;

    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = xreallocarray(q->v, q->cap, sizeof(*q->v));
    }
    e = &q->v[q->n++];
    memset(e, 0, sizeof(*e));
    e->id = xstrdup(id);
    e->state = xstrdup(state);
    e->size = size;
    e->arrival = arrival;
    e->sender = xstrdup(sender);
    return e;
}

void mailgwq_entry_add_rcpt(struct mailgwq_entry *e, const char *addr, const char *reason)
{
    if (e->nrcpts == e->caprcpts) {
        e->caprcpts = e->caprcpts ? e->caprcpts * 2 : 4;
        e->rcpts = xreallocarray(e->rcpts, e->caprcpts, sizeof(*e->rcpts));
    }
    e->rcpts[e->nrcpts].addr = xstrdup(addr);
    e->rcpts[e->nrcpts].reason = xstrdup(reason ? reason : "");
    e->nrcpts++;
}

/* ---- parsing a queue-list reply ---- */

static char *attr_text(const struct proto_attr *a)
{
    return xstrndup((const char *)a->value, a->len);
}

static int attr_number(const struct proto_attr *a, int64_t *out)
{
    char text[32], *end;

    if (a->type == PROTO_INT) {
        *out = a->num;
        return 0;
    }
    if (a->type != PROTO_STR || a->len == 0 || a->len >= sizeof(text))
        return -1;
    memcpy(text, a->value, a->len);
    text[a->len] = 0;
    *out = strtoll(text, &end, 10);
    return *end == 0 ? 0 : -1;
}

/* Set one field of e from attribute a.  0, or -1 with *why. */
static int parse_field(struct mailgwq_entry *e, const struct proto_attr *a, const char **why)
{
    const char *n = a->name;

    if (strcmp(n, "q_size") == 0 || strcmp(n, "q_arrival") == 0) {
        if (attr_number(a, strcmp(n, "q_size") == 0 ? &e->size : &e->arrival) < 0) {
            *why = "queue-list reply: bad number";
            return -1;
        }
        return 0;
    }
    if (a->type != PROTO_STR) {
        *why = "queue-list reply: attribute of the wrong type";
        return -1;
    }
    char **slot = strcmp(n, "q_state") == 0 ? &e->state : &e->sender;
    if (strcmp(n, "q_rcpt") == 0) {
        char *addr = attr_text(a);
        mailgwq_entry_add_rcpt(e, addr, "");
        free(addr);
        return 0;
    }
    if (strcmp(n, "q_reason") == 0) {
        if (e->nrcpts == 0) {
            *why = "queue-list reply: q_reason before q_rcpt";
            return -1;
        }
        slot = &e->rcpts[e->nrcpts - 1].reason;
    } else if (strcmp(n, "q_state") != 0 && strcmp(n, "q_sender") != 0) {
        return 0;   /* an attribute of a later version */
    }
    free(*slot);
    *slot = attr_text(a);
    return 0;
}

int mailgwq_queue_parse(struct mailgwq_queue *q, const struct proto_msg *m, const char **why)
{
    struct mailgwq_entry *e = NULL;

    for (size_t i = 0; i < m->nattrs; i++) {
        const struct proto_attr *a = &m->attrs[i];
        if (strncmp(a->name, "q_", 2) != 0)
            continue;
        if (strcmp(a->name, "q_id") == 0) {
            if (a->type != PROTO_STR || a->len == 0) {
                *why = "queue-list reply: bad q_id";
                return -1;
            }
            char *id = attr_text(a);
            e = mailgwq_queue_add(q, id, "", 0, 0, "");
            free(id);
            continue;
        }
        if (e == NULL) {
            *why = "queue-list reply: message attribute before q_id";
            return -1;
        }
        if (parse_field(e, a, why) < 0)
            return -1;
    }
    return 0;
}

/* ---- printable strings ---- */

/* Length of the valid UTF-8 sequence (2..4 bytes) at p, or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

void mailgwq_printable(struct buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        size_t len = p[i] >= 0x80 ? utf8_seq(p + i, n - i) : 0;
        if (len > 0) {
            buf_append(out, p + i, len);
            i += len;
        } else {
            buf_append_byte(out, p[i] < 0x20 || p[i] >= 0x7f ? '?' : p[i]);
            i++;
        }
    }
}

void mailgwq_json_quote(struct buf *out, const char *s, size_t n)
{
    static const char esc[] = { '\b', 'b', '\f', 'f', '\n', 'n', '\r', 'r', '\t', 't' };
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        size_t len = p[i] >= 0x80 ? utf8_seq(p + i, n - i) : 0;
        if (len > 0) {
            buf_append(out, p + i, len);
            i += len;
            continue;
        }
        unsigned char c = p[i++];
        const char *hit = c < 0x20 ? memchr(esc, c, sizeof(esc)) : NULL;
        if (hit != NULL && (hit - esc) % 2 == 0) {
            buf_append_byte(out, '\\');
            buf_append_byte(out, (uint8_t)hit[1]);
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(out, "\\u%04X", c);
        } else if (c >= 0x80) {
            buf_append_byte(out, '?');
        } else {
            if (c == '"' || c == '\\')
                buf_append_byte(out, '\\');
            buf_append_byte(out, c);
        }
    }
}

/* ---- postqueue -p ---- */

#define PQ_STRING_FORMAT "%-11s %7s %-20s %s\n"

static const char *sender_shown(const char *sender)
{
    return *sender ? sender : "MAILER-DAEMON";
}

/* asctime()'s first 20 columns: "Fri Nov 27 20:57:35 " */
static void arrival_text(int64_t arrival, char out[32])
{
    time_t t = (time_t)arrival;
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL || strftime(out, 32, "%a %b %e %H:%M:%S ", &tm) == 0)
        str_copy(out, "??", 32);
}

/* The reason line, when it differs from the previous recipient's. */
static void postfix_reason(const char *reason, char **saved, struct buf *out)
{
    struct buf text = BUF_INIT;
    const char *shown;
    int pad;

    mailgwq_printable(&text, reason, strlen(reason));
    buf_append(&text, "", 0);
    shown = text.data ? text.data : "";
    if (strcmp(shown, *saved) != 0) {
        free(*saved);
        *saved = xstrdup(shown);
        if (*shown == 0)
            shown = "reason unavailable";
        pad = 76 - (int)strlen(shown);
        buf_printf(out, "%*s(%s)\n", pad > 0 ? pad : 0, "", shown);
    }
    buf_free(&text);
}

static void postfix_entry(const struct mailgwq_entry *e, struct buf *out)
{
    struct buf id = BUF_INIT, text = BUF_INIT;
    char when[32], *saved = xstrdup("");

    mailgwq_printable(&id, e->id, strlen(e->id));
    if (strcmp(e->state, "active") == 0)
        buf_append_byte(&id, '*');
    else if (strcmp(e->state, "hold") == 0)
        buf_append_byte(&id, '!');
    arrival_text(e->arrival, when);
    mailgwq_printable(&text, sender_shown(e->sender), strlen(sender_shown(e->sender)));
    buf_printf(out, "%-11s %7" PRId64 " %20.20s %s\n", id.data, e->size, when, text.data);
    for (size_t i = 0; i < e->nrcpts; i++) {
        postfix_reason(e->rcpts[i].reason, &saved, out);
        buf_reset(&text);
        mailgwq_printable(&text, e->rcpts[i].addr, strlen(e->rcpts[i].addr));
        buf_printf(out, PQ_STRING_FORMAT, "", "", "", text.data ? text.data : "");
    }
    buf_free(&id);
    buf_free(&text);
    free(saved);
}

void mailgwq_format_postfix(const struct mailgwq_queue *q, struct buf *out)
{
    uint64_t total = 0;
    unsigned long count = 0;

    for (size_t i = 0; i < q->n; i++) {
        const struct mailgwq_entry *e = &q->v[i];
        if (strcmp(e->state, "corrupt") == 0)
            continue;
        if (count == 0)
            buf_printf(out, PQ_STRING_FORMAT, "-Queue ID-", "--Size--", "----Arrival Time----",
                       "-Sender/Recipient-------");
        else
            buf_append_str(out, "\n");
        postfix_entry(e, out);
        if (e->size > 0 && total + (uint64_t)e->size >= total)
            total += (uint64_t)e->size;
        count++;
    }
    if (count == 0)
        buf_append_str(out, "Mail queue is empty\n");
    else
        buf_printf(out, "\n-- %" PRIu64 " Kbytes in %lu Request%s.\n", total / 1024, count,
                   count == 1 ? "" : "s");
}

/* ---- postqueue -j ---- */

static void json_str(struct buf *out, const char *name, const char *value, const char *after)
{
    buf_printf(out, "\"%s\": \"", name);
    mailgwq_json_quote(out, value, strlen(value));
    buf_printf(out, "\"%s", after);
}

static void json_entry(const struct mailgwq_entry *e, struct buf *out)
{
    buf_append_str(out, "{");
    json_str(out, "queue_name", e->state, ", ");
    json_str(out, "queue_id", e->id, ", ");
    buf_printf(out, "\"arrival_time\": %" PRId64 ", ", e->arrival);
    buf_printf(out, "\"message_size\": %" PRId64 ", ", e->size);
    buf_append_str(out, "\"forced_expire\": false, ");
    json_str(out, "sender", sender_shown(e->sender), ", ");
    buf_append_str(out, "\"recipients\": [");
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (i > 0)
            buf_append_str(out, ", ");
        buf_append_str(out, "{");
        json_str(out, "address", e->rcpts[i].addr, "");
        if (*e->rcpts[i].reason) {
            buf_append_str(out, ", ");
            json_str(out, "delay_reason", e->rcpts[i].reason, "");
        }
        buf_append_str(out, "}");
    }
    buf_append_str(out, "]}\n");
}

void mailgwq_format_json(const struct mailgwq_queue *q, struct buf *out)
{
    for (size_t i = 0; i < q->n; i++)
        json_entry(&q->v[i], out);
}
