/*
 * smtp_content - the message content as it goes on the wire.
 *
 * Interface: smtp_content_init, smtp_content_encode, smtp_content_finish
 * (a streaming transform over chunks of any size), smtp_content_has_8bit.
 *
 * The stored content already has CRLF line ends and is dot-unstuffed, but
 * it is not trusted to be canonical: a bare CR or a bare LF is sent as
 * CRLF, so nothing ever goes out bare (RFC 5321 §2.3.8 and the SMTP
 * smuggling family of attacks).  Every line that starts with '.' gets one
 * more '.' (RFC 5321 §4.5.2).  The end is CRLF "." CRLF, with a CRLF added
 * when the content did not end with one.  Canonical lines (the usual
 * case) are found with memchr and copied in runs; anything else takes the
 * careful path one step at a time.
 */
#include "smtp.h"

#include <string.h>

/* Lines longer than this take the careful byte-by-byte path. */
#define SMTP_LINE_SCAN 1024

void smtp_content_init(struct smtp_content_state *st)
{
    st->at_bol = true;
    st->pending_cr = false;
}

static void end_line(struct smtp_content_state *st, struct buf *out)
{
    buf_append(out, "\r\n", 2);
    st->at_bol = true;
    st->pending_cr = false;
}

/* Length of a canonical line at q ("...CRLF", no other CR or LF, found
 * within SMTP_LINE_SCAN bytes), 0 when there is none. */
static size_t canonical_line(const char *q, size_t len)
{
    size_t lim = len < SMTP_LINE_SCAN ? len : SMTP_LINE_SCAN;
    const char *lf = memchr(q, '\n', lim);

    if (lf == NULL || lf == q || lf[-1] != '\r' || memchr(q, '\r', (size_t)(lf - 1 - q)))
        return 0;
    return (size_t)(lf - q) + 1;
}

/* One step of the careful path at p[i]; returns the next index. */
static size_t encode_step(struct smtp_content_state *st, const char *p, size_t n, size_t i,
                          struct buf *out)
{
    char c = p[i];
    size_t j;

    if (c == '\n') {
        end_line(st, out);              /* CRLF, or a bare LF */
        return i + 1;
    }
    if (st->pending_cr)
        end_line(st, out);              /* the CR before was bare */
    if (c == '\r') {
        st->pending_cr = true;
        return i + 1;
    }
    if (st->at_bol && c == '.')
        buf_append_byte(out, '.');
    /* copy the run of ordinary bytes up to the next CR or LF */
    for (j = i; j < n && p[j] != '\r' && p[j] != '\n'; j++)
        ;
    buf_append(out, p + i, j - i);
    st->at_bol = false;
    return j;
}

void smtp_content_encode(struct smtp_content_state *st, const char *p, size_t n,
                         struct buf *out)
{
    size_t i = 0, run = 0;          /* p[run..i) goes out unchanged */

    buf_reserve(out, n + n / 32 + 8);
    while (i < n) {
        size_t len;
        if (st->at_bol && !st->pending_cr && p[i] != '.' &&
            (len = canonical_line(p + i, n - i)) > 0) {
            i += len;                   /* still at the beginning of a line */
            continue;
        }
        buf_append(out, p + run, i - run);
        i = encode_step(st, p, n, i, out);
        run = i;
    }
    buf_append(out, p + run, i - run);
}

void smtp_content_finish(struct smtp_content_state *st, struct buf *out)
{
    if (st->pending_cr || !st->at_bol)
        end_line(st, out);
    buf_append(out, ".\r\n", 3);
}

int smtp_content_has_8bit(int fd, const struct queue_file *qf, const char **why)
{
    struct queue_content c;
    char chunk[65536];
    ssize_t n;
    queue_content_open(&c, fd, qf);
    while ((n = queue_content_read(&c, chunk, sizeof(chunk), why)) > 0)
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)chunk[i] >= 0x80)
                return 1;
    return n < 0 ? -1 : 0;
}
