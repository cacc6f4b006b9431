/*
 * smtp_reply - strict incremental SMTP reply parser (see smtp_reply.h).
 *
 * Interface: smtp_reply_init/reset/free, smtp_reply_feed, smtp_reply_line,
 * smtp_reply_format, smtp_reply_enhanced.
 *
 * Security: the input comes from a remote server we do not trust.  Every
 * index is checked against len; a line is only looked at once its end is
 * within SMTP_REPLY_MAX_LINE bytes, the line count is capped, and the kept
 * text is capped, so memory per reply is bounded by SMTP_REPLY_MAX_TEXT.
 */
#include "route/smtp_reply.h"

#include <string.h>

void smtp_reply_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->lines);
}

void smtp_reply_reset(struct smtp_reply *r)
{
    r->code = 0;
    r->dsn[0] = 0;
    r->nlines = 0;
    r->done = false;
    buf_reset(&r->lines);
}

void smtp_reply_free(struct smtp_reply *r)
{
    buf_free(&r->lines);
    smtp_reply_init(r);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Up to max digits at p[*i..len); returns the count (0 = none). */
static size_t digits(const char *p, size_t len, size_t *i, size_t max)
{
    size_t n = 0;
    while (*i < len && is_digit(p[*i]) && n < max) {
        (*i)++;
        n++;
    }
    return n;
}

size_t smtp_reply_enhanced(const char *text, size_t len, char *out)
{
    size_t i = 0;
    if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.')
        return 0;
    i = 2;
    if (digits(text, len, &i, 3) == 0 || i >= len || text[i] != '.')
        return 0;
    i++;
    if (digits(text, len, &i, 3) == 0)
        return 0;
    if (i < len && text[i] != ' ' && text[i] != '\t')
        return 0;
    memcpy(out, text, i);
    out[i] = 0;
    return i;
}

/* Keep one line's text, sanitised, within the text cap. */
static void keep_text(struct smtp_reply *r, const char *text, size_t len)
{
    if (r->nlines > 0) {
        if (r->lines.len >= SMTP_REPLY_MAX_TEXT)
            return;
        buf_append_byte(&r->lines, '\n');
    }
    size_t room = SMTP_REPLY_MAX_TEXT - (r->lines.len < SMTP_REPLY_MAX_TEXT ? r->lines.len
                                                                            : SMTP_REPLY_MAX_TEXT);
    if (len > room)
        len = room;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        buf_append_byte(&r->lines, (c < 0x20 && c != '\t') || c >= 0x7f ? '?' : c);
    }
}

/* Check one complete line (without its line end).  Returns 1 for the last
 * line of the reply, 0 for a continuation, -1 when malformed. */
static int parse_line(struct smtp_reply *r, const char *p, size_t n, const char **why)
{
    if (n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '5' || !is_digit(p[2])) {
        *why = "bad reply code";
        return -1;
    }
    int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (r->nlines > 0 && code != r->code) {
        *why = "inconsistent reply codes";
        return -1;
    }
    if (n > 3 && p[3] != ' ' && p[3] != '-') {
        *why = "bad separator after reply code";
        return -1;
    }
    bool last = n == 3 || p[3] == ' ';
    const char *text = n > 4 ? p + 4 : "";
    size_t tlen = n > 4 ? n - 4 : 0;
    if (r->nlines == 0) {
        r->code = code;
        if (smtp_reply_enhanced(text, tlen, r->dsn) && r->dsn[0] != p[0])
            r->dsn[0] = 0;  /* class must agree with the reply code */
    }
    keep_text(r, text, tlen);
    r->nlines++;
    return last ? 1 : 0;
}

enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *data, size_t len,
                                       size_t *used, const char **why)
{
    size_t pos = 0;
    *used = 0;
    while (!r->done) {
        size_t avail = len - pos;
        size_t scan = avail < SMTP_REPLY_MAX_LINE ? avail : SMTP_REPLY_MAX_LINE;
        const char *nl = memchr(data + pos, '\n', scan);
        if (!nl) {
            if (avail >= SMTP_REPLY_MAX_LINE) {
                *why = "line too long";
                return SMTP_REPLY_BAD;
            }
            break;
        }
        size_t n = (size_t)(nl - (data + pos));
        size_t linelen = n + 1;
        if (n > 0 && data[pos + n - 1] == '\r')
            n--;
        if (r->nlines >= SMTP_REPLY_MAX_LINES) {
            *why = "too many lines";
            return SMTP_REPLY_BAD;
        }
        int rc = parse_line(r, data + pos, n, why);
        if (rc < 0)
            return SMTP_REPLY_BAD;
        pos += linelen;
        *used = pos;
        if (rc == 1)
            r->done = true;
    }
    return r->done ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

const char *smtp_reply_line(const struct smtp_reply *r, size_t n, size_t *len)
{
    const char *p = r->lines.data;
    const char *end = p + r->lines.len;
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    return p;
}

void smtp_reply_format(const struct smtp_reply *r, struct buf *out)
{
    buf_printf(out, "%03d", r->code);
    for (size_t i = 0;; i++) {
        size_t n;
        const char *t = smtp_reply_line(r, i, &n);
        if (!t)
            break;
        if (n == 0)
            continue;
        buf_append_byte(out, ' ');
        buf_append(out, t, n);
    }
}
