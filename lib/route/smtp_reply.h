/*
 * smtp_reply - strict, incremental parser of SMTP server replies (RFC 5321
 * §4.2), used by the outbound smtp client.  Pure: no I/O, no logging.
 *
 *   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                Reply-code [ SP textstring ] CRLF
 *
 * The caller keeps its input buffer and calls smtp_reply_feed() whenever
 * more bytes arrive; the parser consumes only complete lines and keeps its
 * state (code, line count, text) in struct smtp_reply.  Limits: a line may
 * hold at most SMTP_REPLY_MAX_LINE bytes including its line end, a reply at
 * most SMTP_REPLY_MAX_LINES lines; text kept for logs is truncated at
 * SMTP_REPLY_MAX_TEXT bytes (parsing goes on).  Every line must carry the
 * same three-digit code (2xx..5xx).  A bare LF is accepted as a line end.
 * Control and 8-bit bytes in the text are replaced by '?', so the kept
 * text is safe for logs and for proto STR attributes.
 *
 * Diagnostics: SMTP_REPLY_BAD with a static reason ("line too long",
 * "too many lines", "bad reply code", "inconsistent reply codes",
 * "bad separator after reply code").  A hostile server cannot make the
 * parser read or write out of bounds nor grow memory without bound.
 */
#ifndef MAILGW_SMTP_REPLY_H
#define MAILGW_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define SMTP_REPLY_MAX_LINE 4096
#define SMTP_REPLY_MAX_LINES 1000
#define SMTP_REPLY_MAX_TEXT 8192

enum smtp_reply_status {
    SMTP_REPLY_BAD = -1,    /* malformed; *why says why */
    SMTP_REPLY_MORE = 0,    /* need more input */
    SMTP_REPLY_DONE = 1,    /* a complete reply is in the struct */
};

struct smtp_reply {
    int code;               /* 200..599, 0 until the first line */
    char dsn[16];           /* enhanced status "X.Y.Z" of the first line, or "" */
    size_t nlines;
    /* Each line's text (after "ddd-" / "ddd "), sanitised, separated by
     * '\n'; truncated at SMTP_REPLY_MAX_TEXT. */
    struct buf lines;
    bool done;
};

void smtp_reply_init(struct smtp_reply *r);
/* Forget the reply, keep memory: ready for the next one. */
void smtp_reply_reset(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);

/* Parse complete lines from data[0..len).  *used gets the number of bytes
 * consumed (the caller drops them).  Returns SMTP_REPLY_DONE when the last
 * line of a reply was read (bytes after it are left alone), MORE when
 * more input is needed, BAD with *why set on malformed input. */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *data, size_t len,
                                       size_t *used, const char **why);

/* The n-th line's text (0-based) as pointer + length; NULL past the end or
 * when truncated away. */
const char *smtp_reply_line(const struct smtp_reply *r, size_t n, size_t *len);

/* The whole reply on one line for logs and for qmgr:
 * "CODE text of line 1 text of line 2 ..." (lines joined by a space). */
void smtp_reply_format(const struct smtp_reply *r, struct buf *out);

/* Parse an enhanced status code "X.Y.Z" (RFC 3463) at the start of text,
 * followed by a space or the end; class must be 2, 4 or 5.  Writes it into
 * out (size >= 16) and returns its length, or 0 when there is none. */
size_t smtp_reply_enhanced(const char *text, size_t len, char *out);

#endif
