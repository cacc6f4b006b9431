/*
 * smtp_reply fuzz target: feeds arbitrary server output to the strict
 * reply parser in pieces of varying size (as reads would deliver it), the
 * way the smtp client does: consume what was parsed, reset after each
 * complete reply, stop at the first malformed one.  Checks the parser's
 * promises: it never consumes more than it was given, a complete reply has
 * a code 200..599 and at most SMTP_REPLY_MAX_LINES lines, and the kept
 * text stays within SMTP_REPLY_MAX_TEXT and has no control bytes but '\n'
 * separators.
 */
#include "route/smtp_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_reply(const struct smtp_reply *r)
{
    struct buf out = BUF_INIT;
    if (r->code < 200 || r->code > 599 || r->nlines == 0 || r->nlines > SMTP_REPLY_MAX_LINES)
        abort();
    if (r->lines.len > SMTP_REPLY_MAX_TEXT + SMTP_REPLY_MAX_LINES)
        abort();
    smtp_reply_format(r, &out);
    for (size_t i = 0; i < out.len; i++)
        if ((unsigned char)out.data[i] < 0x20 && out.data[i] != '\t')
            abort();
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply r;
    struct buf in = BUF_INIT;
    size_t pos = 0, step = size ? (data[0] % 37) + 1 : 1;
    smtp_reply_init(&r);
    while (pos < size || in.len) {
        size_t take = size - pos < step ? size - pos : step;
        buf_append(&in, data + pos, take);
        pos += take;
        size_t used = 0;
        const char *why = NULL;
        enum smtp_reply_status st = smtp_reply_feed(&r, in.data ? in.data : "", in.len, &used, &why);
        if (used > in.len)
            abort();
        buf_consume(&in, used);
        if (st == SMTP_REPLY_BAD) {
            if (!why)
                abort();
            break;
        }
        if (st == SMTP_REPLY_DONE) {
            check_reply(&r);
            smtp_reply_reset(&r);
            continue;
        }
        if (take == 0)
            break;  /* input exhausted with a partial line */
    }
    smtp_reply_free(&r);
    buf_free(&in);
    return 0;
}
