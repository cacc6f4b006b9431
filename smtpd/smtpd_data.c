/*
 * smtpd_data - message framing (end of data, dot-unstuffing, strict CRLF)
 * and header watching for smtpd.  See smtpd_data.h for the interface.
 *
 * Security: this is where SMTP smuggling is stopped.  The only end of data
 * is CRLF "." CRLF; bare CR, bare LF and NUL are flagged (the caller
 * refuses the message) and never act as line ends.  Output never exceeds
 * input plus the two bytes that may be pending from the previous call.
 */
#include "smtpd_data.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

enum {
    ST_BOL,     /* at the beginning of a line */
    ST_MID,     /* inside a line */
    ST_CR,      /* CR seen inside a line, not yet written */
    ST_DOT,     /* "." at the beginning of a line, not yet written */
    ST_DOTCR,   /* ".\r" at the beginning of a line, not yet written */
    ST_END,     /* CRLF.CRLF seen */
};

void smtpd_data_init(struct smtpd_data *d, int mode, size_t line_max)
{
    memset(d, 0, sizeof(*d));
    d->mode = mode;
    d->state = ST_BOL;
    d->line_max = line_max;
}

/* One byte inside a line (ST_MID semantics). */
static inline char *data_mid(struct smtpd_data *d, char *o, char c)
{
    if (c == '\r') {
        d->state = ST_CR;
        return o;
    }
    if (c == '\n')
        d->flags |= SMTPD_DATA_BARE_LF;
    else if (c == '\0')
        d->flags |= SMTPD_DATA_NUL;
    d->state = ST_MID;
    *o++ = c;
    return o;
}

static inline void data_count(struct smtpd_data *d, size_t n)
{
    d->line_len += n;
    if (d->line_max && d->line_len > d->line_max)
        d->flags |= SMTPD_DATA_LONG_LINE;
}

/* One byte; returns the new output position.  Sets ST_END at the end. */
static char *data_byte(struct smtpd_data *d, char *o, char c)
{
    data_count(d, 1);
    switch (d->state) {
    case ST_BOL:
        if (c == '.' && d->mode == SMTPD_DATA_DOT) {
            d->state = ST_DOT;
            return o;
        }
        return data_mid(d, o, c);
    case ST_DOT:
        if (c == '\r') {
            d->state = ST_DOTCR;
            return o;
        }
        return data_mid(d, o, c);          /* the stuffed dot is dropped */
    case ST_DOTCR:
        if (c == '\n') {
            d->state = ST_END;
            return o;
        }
        d->flags |= SMTPD_DATA_BARE_CR;
        *o++ = '\r';
        return data_mid(d, o, c);
    case ST_CR:
        if (c == '\n') {
            *o++ = '\r';
            *o++ = '\n';
            d->state = ST_BOL;
            d->line_len = 0;
            return o;
        }
        d->flags |= SMTPD_DATA_BARE_CR;
        *o++ = '\r';
        return data_mid(d, o, c);
    default:
        return data_mid(d, o, c);
    }
}

/* Length of the run of bytes at p that are neither CR, LF nor NUL: eight
 * bytes at a time (a word has a zero byte iff (w - 0x01..) & ~w & 0x80..
 * is not 0; CR and LF are zero after an XOR), then byte by byte within
 * the word that has one.  Linear in the run, whatever the input. */
static size_t data_plain_span(const char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w, cr, lf;
        memcpy(&w, p + i, 8);
        cr = w ^ (ones * '\r');
        lf = w ^ (ones * '\n');
        if ((((w - ones) & ~w) | ((cr - ones) & ~cr) | ((lf - ones) & ~lf)) & highs)
            break;
    }
    while (i < n && p[i] != '\r' && p[i] != '\n' && p[i] != '\0')
        i++;
    return i;
}

int smtpd_data_feed(struct smtpd_data *d, const char *in, size_t n,
                    size_t *used, struct buf *out)
{
    size_t i;
    char *o;

    if (d->state == ST_END) {
        *used = 0;
        return 1;
    }
    buf_reserve(out, n + 2);
    o = out->data + out->len;
    for (i = 0; i < n; i++) {
        /* Fast path: the plain bytes inside a line, up to the next CR, LF
         * or NUL (data_plain_span), copied at once. */
        if (d->state == ST_MID) {
            size_t span = data_plain_span(in + i, n - i);
            if (span > 0) {
                data_count(d, span);
                memcpy(o, in + i, span);
                o += span;
                i += span;
                if (i == n)
                    break;
            }
        }
        o = data_byte(d, o, in[i]);
        if (d->state == ST_END) {
            i++;
            break;
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = 0;
    *used = i;
    return d->state == ST_END;
}

void smtpd_data_finish(struct smtpd_data *d, struct buf *out)
{
    if (d->state == ST_CR) {
        d->flags |= SMTPD_DATA_BARE_CR;
        buf_append(out, "\r", 1);
        d->state = ST_MID;
    }
    if (d->state == ST_MID)
        buf_append(out, "\r\n", 2);
    d->state = ST_BOL;
    d->line_len = 0;
}

const char *smtpd_data_error(unsigned flags)
{
    if (flags & SMTPD_DATA_BARE_LF)
        return "Error: bare <LF> received in message data";
    if (flags & SMTPD_DATA_BARE_CR)
        return "Error: bare <CR> received in message data";
    if (flags & SMTPD_DATA_NUL)
        return "Error: NUL character received in message data";
    if (flags & SMTPD_DATA_LONG_LINE)
        return "Error: message line too long";
    return NULL;
}

/* ---- header watching ---- */

void smtpd_hdr_init(struct smtpd_hdr *h)
{
    memset(h, 0, sizeof(*h));
}

/* Message-ID value for the log: trimmed, printable ASCII only. */
static void hdr_take_msgid(struct smtpd_hdr *h, const char *v, size_t n)
{
    size_t k = 0;

    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < n && k < SMTPD_MSGID_MAX; i++) {
        unsigned char c = (unsigned char)v[i];
        h->msgid[k++] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
    }
    h->msgid[k] = 0;
}

/* "Name:" (optional blanks before the colon) at the start of the line? */
static bool hdr_is(const char *line, size_t len, const char *name, size_t *vpos)
{
    size_t nl = strlen(name), i;

    if (len < nl || strncasecmp(line, name, nl) != 0)
        return false;
    for (i = nl; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
        ;
    if (i >= len || line[i] != ':')
        return false;
    *vpos = i + 1;
    return true;
}

static void hdr_line(struct smtpd_hdr *h)
{
    const char *l = h->line;
    size_t n = h->linelen, v;

    if (n == 0) {
        h->done = true;             /* the empty line ends the headers */
        return;
    }
    if (l[0] == ' ' || l[0] == '\t') {
        if (h->in_msgid && h->msgid[0] == 0)
            hdr_take_msgid(h, l, n);
        return;
    }
    h->in_msgid = false;
    if (!memchr(l, ':', n)) {
        h->done = true;             /* not a header: the body started */
        return;
    }
    if (hdr_is(l, n, "Received", &v))
        h->received++;
    else if (hdr_is(l, n, "Message-ID", &v) && h->msgid[0] == 0) {
        h->in_msgid = true;
        hdr_take_msgid(h, l + v, n - v);
    }
}

void smtpd_hdr_feed(struct smtpd_hdr *h, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !h->done; i++) {
        char c = p[i];
        if (c == '\n' && h->last_cr) {
            h->last_cr = false;
            if (h->linelen)
                h->linelen--;       /* drop the CR kept in line */
            if (!h->overflow || h->linelen)
                hdr_line(h);
            h->linelen = 0;
            h->overflow = false;
            continue;
        }
        h->last_cr = (c == '\r');
        if (h->linelen < SMTPD_HDR_LINE_MAX)
            h->line[h->linelen++] = c;
        else
            h->overflow = true;
    }
}
