/*
 * dsn_original - the third part of a report: the original message
 * (message/rfc822) or its header block only (text/rfc822-headers).
 *
 * Interface (dsn_int.h): dsn_original_part().
 *
 * The content is streamed from the queue file (lib/queue reader) line by
 * line: CRLF, bare CR and bare LF all end a line and are written as CRLF;
 * a line over 998 octets is cut (in the header block the rest continues
 * as a folded line, so the cut never makes a new header field).  Output
 * stops at the limit on a line boundary: the header block is kept as far
 * as the limit allows, then as much body as fits.  Reading stops as soon
 * as nothing more is wanted, so a huge original costs at most the limit.
 *
 * Diagnostics: -1 with the reader's static reason on an I/O error.
 */
#include "dsn/dsn_int.h"

#include <string.h>

#include "util/mem.h"

struct dsn_copy {
    struct buf *out;
    size_t limit;
    bool hdrs_only;
    bool in_headers;
    bool cr;                    /* the last byte was a CR */
    bool done;
    bool truncated;
    char line[DSN_LINE_MAX];
    size_t len;
};

static void dsn_copy_line(struct dsn_copy *c)
{
    size_t need = c->len + 2;

    if (c->done)
        return;
    if (c->in_headers && c->len == 0) {
        c->in_headers = false;
        if (c->hdrs_only) {
            c->done = true;
            return;
        }
    }
    if (c->out->len + need > c->limit) {
        c->done = c->truncated = true;
        return;
    }
    buf_append(c->out, c->line, c->len);
    buf_append_str(c->out, "\r\n");
    c->len = 0;
}

static void dsn_copy_byte(struct dsn_copy *c, char ch)
{
    if (ch == '\n' && c->cr) {
        c->cr = false;
        return;
    }
    c->cr = ch == '\r';
    if (ch == '\r' || ch == '\n') {
        dsn_copy_line(c);
        c->len = 0;
        return;
    }
    if (c->len == DSN_LINE_MAX) {
        dsn_copy_line(c);
        c->len = 0;
        if (c->in_headers)
            c->line[c->len++] = ' ';
    }
    c->line[c->len++] = ch;
}

int dsn_original_part(struct buf *out, int fd, const struct queue_file *qf, bool hdrs_only,
                      size_t limit, bool *truncated, const char **why)
{
    struct dsn_copy c = { .out = out, .hdrs_only = hdrs_only, .in_headers = true };
    struct queue_content qc;
    char chunk[16384];
    ssize_t r;

    if (!size_add(out->len, limit, &c.limit))
        c.limit = SIZE_MAX;
    queue_content_open(&qc, fd, qf);
    while (!c.done && (r = queue_content_read(&qc, chunk, sizeof chunk, why)) != 0) {
        if (r < 0)
            return -1;
        for (ssize_t i = 0; i < r && !c.done; i++)
            dsn_copy_byte(&c, chunk[i]);
    }
    if (!c.done && c.len > 0)
        dsn_copy_line(&c);
    *truncated = c.truncated;
    return 0;
}
