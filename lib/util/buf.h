/*
 * buf - the one length-carrying buffer for wire data.  data[len] is always
 * 0 (so text can be used as a C string when it holds no NUL), but length,
 * not the NUL, is the truth.  Growth is checked; a buffer never shrinks
 * until buf_free().
 */
#ifndef MAILGW_BUF_H
#define MAILGW_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t more);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_append_byte(struct buf *b, uint8_t c);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Big-endian integers, as every mailgw wire and file format uses. */
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_u64(struct buf *b, uint64_t v);
uint16_t get_u16(const void *p);
uint32_t get_u32(const void *p);
uint64_t get_u64(const void *p);

#endif
