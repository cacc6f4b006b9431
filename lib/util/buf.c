/*
 * buf - see buf.h.
 */
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void buf_reserve(struct buf *b, size_t more)
{
    size_t need;
    if (!size_add(b->len, more, &need) || !size_add(need, 1, &need))
        log_fatal("buffer size overflow");
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (!size_mul(cap, 2, &cap))
            cap = need;
    }
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_append_str(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_append_byte(struct buf *b, uint8_t c)
{
    buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    size_t avail;
    int n;

    buf_reserve(b, 128);
    avail = b->cap - b->len;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, avail, fmt, ap);
    va_end(ap);
    if (n < 0)
        log_fatal("buf_printf: bad format");
    if ((size_t)n >= avail) {
        buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = 0;
}

void buf_put_u8(struct buf *b, uint8_t v) { buf_append(b, &v, 1); }

void buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    buf_append(b, p, 2);
}

void buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                     (uint8_t)v };
    buf_append(b, p, 4);
}

void buf_put_u64(struct buf *b, uint64_t v)
{
    buf_put_u32(b, (uint32_t)(v >> 32));
    buf_put_u32(b, (uint32_t)v);
}

uint16_t get_u16(const void *p)
{
    const uint8_t *q = p;
    return (uint16_t)(q[0] << 8 | q[1]);
}

uint32_t get_u32(const void *p)
{
    const uint8_t *q = p;
    return (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
}

uint64_t get_u64(const void *p)
{
    const uint8_t *q = p;
    return (uint64_t)get_u32(q) << 32 | get_u32(q + 4);
}
