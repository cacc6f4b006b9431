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
 * when the content did not end with one.
 */
#include "smtp.h"

#include <string.h>

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

void smtp_content_encode(struct smtp_content_state *st, const char *p, size_t n,
                         struct buf *out)
{
    size_t i = 0;
    buf_reserve(out, n + n / 32 + 8);
    while (i < n) {
        char c = p[i];
        if (c == '\n') {
            end_line(st, out);          /* CRLF, or a bare LF */
            i++;
            continue;
        }
        if (st->pending_cr)
            end_line(st, out);          /* the CR before was bare */
        if (c == '\r') {
            st->pending_cr = true;
            i++;
            continue;
        }
        if (st->at_bol && c == '.')
            buf_append_byte(out, '.');
        /* copy the run of ordinary bytes up to the next CR or LF */
        size_t j = i;
        while (j < n && p[j] != '\r' && p[j] != '\n')
            j++;
        buf_append(out, p + i, j - i);
        st->at_bol = false;
        i = j;
    }
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
