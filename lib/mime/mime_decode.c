/*
 * mime_decode - streaming body decoders: identity, base64, quoted-
 * printable, uuencode.  The input is a contiguous range of the message
 * (or of a body decoded earlier); the output goes to the caller's
 * callback in chunks of at most MIME_CHUNK bytes, so memory use does not
 * depend on the size of the part.
 *
 * Interface: mime_part_decode(part, cb, arg), mime_part_decode_to_fd(part,
 * fd), and mime_decode_range() for the parser itself.
 *
 * Leniency, the most inclusive reading: base64 skips invalid characters
 * (BAD_B64) and goes on after padding (a second base64 stream glued to
 * the first is decoded too, BAD_B64), and a last incomplete quantum gives
 * the bytes it holds (TRUNCATED_B64); quoted-printable keeps a malformed
 * "=" literally (BAD_QP); uuencode tolerates short lines.
 */
#include "mime/mime_int.h"
#include "util/mem.h"
#include "util/text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mime_out {
    unsigned char *buf;
    size_t n;
    mime_decode_cb cb;
    void *arg;
    int err;
};

static void mime_out_flush(struct mime_out *o)
{
    if (o->n > 0 && o->err == 0 && o->cb(o->buf, o->n, o->arg) < 0)
        o->err = -1;
    o->n = 0;
}

static inline void mime_out_byte(struct mime_out *o, unsigned char c)
{
    o->buf[o->n++] = c;
    if (o->n == MIME_CHUNK)
        mime_out_flush(o);
}

static const signed char mime_b64[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

/* Emits the bytes of a quantum of q (2..4) sextets held in acc. */
static void mime_b64_emit(struct mime_out *o, uint32_t acc, unsigned q)
{
    acc <<= 6 * (4 - q);
    mime_out_byte(o, (unsigned char)(acc >> 16));
    if (q >= 3)
        mime_out_byte(o, (unsigned char)(acc >> 8));
    if (q == 4)
        mime_out_byte(o, (unsigned char)acc);
}

static void mime_dec_base64(const unsigned char *s, size_t len,
                            struct mime_out *o, uint32_t *anom)
{
    uint32_t acc = 0;
    unsigned q = 0;
    bool padded = false;

    for (size_t i = 0; i < len && o->err == 0; i++) {
        int v = mime_b64[s[i]];
        if (v > 0) {
            if (padded)
                *anom |= MIME_ANOM_BAD_B64;     /* data after padding */
            padded = false;
            acc = (acc << 6) | (uint32_t)(v - 1);
            if (++q == 4) {
                mime_b64_emit(o, acc, 4);
                acc = 0;
                q = 0;
            }
        } else if (s[i] == '=') {
            if (q >= 2)
                mime_b64_emit(o, acc, q);
            else if (q == 1)
                *anom |= MIME_ANOM_TRUNCATED_B64;
            acc = 0;
            q = 0;
            padded = true;
        } else if (s[i] != '\r' && s[i] != '\n' && s[i] != ' ' &&
                   s[i] != '\t') {
            *anom |= MIME_ANOM_BAD_B64;
        }
    }
    if (q > 0 && o->err == 0) {
        *anom |= MIME_ANOM_TRUNCATED_B64;
        if (q >= 2)
            mime_b64_emit(o, acc, q);
    }
}

/* "=" then blanks then end of line: a soft line break; returns the
 * number of bytes it spans, 0 if not one. */
static size_t mime_qp_soft(const unsigned char *s, size_t i, size_t len)
{
    size_t j = i + 1;

    while (j < len && (s[j] == ' ' || s[j] == '\t'))
        j++;
    if (j == len)
        return j - i;
    if (s[j] == '\n')
        return j + 1 - i;
    if (s[j] == '\r' && j + 1 < len && s[j + 1] == '\n')
        return j + 2 - i;
    if (s[j] == '\r' && j + 1 == len)
        return j + 1 - i;
    return 0;
}

static void mime_dec_qp(const unsigned char *s, size_t len,
                        struct mime_out *o, uint32_t *anom)
{
    for (size_t i = 0; i < len && o->err == 0; i++) {
        if (s[i] != '=') {
            mime_out_byte(o, s[i]);
            continue;
        }
        int h = i + 1 < len ? text_hex_value(s[i + 1]) : -1;
        int l = i + 2 < len ? text_hex_value(s[i + 2]) : -1;
        size_t soft;
        if (h >= 0 && l >= 0) {
            mime_out_byte(o, (unsigned char)(h * 16 + l));
            i += 2;
        } else if ((soft = mime_qp_soft(s, i, len)) > 0) {
            i += soft - 1;
        } else {
            *anom |= MIME_ANOM_BAD_QP;
            mime_out_byte(o, '=');
        }
    }
}

static void mime_uu_line(const unsigned char *s, size_t n, struct mime_out *o)
{
    if (n == 0)
        return;
    size_t want = (size_t)((s[0] - 32) & 63), done = 0;
    for (size_t i = 1; done < want; i += 4) {
        unsigned char c[4];
        for (int k = 0; k < 4; k++)
            c[k] = (unsigned char)(i + (size_t)k < n ? (s[i + (size_t)k] - 32) & 63 : 0);
        unsigned char b[3] = { (unsigned char)(c[0] << 2 | c[1] >> 4),
                               (unsigned char)(c[1] << 4 | c[2] >> 2),
                               (unsigned char)(c[2] << 6 | c[3]) };
        for (int k = 0; k < 3 && done < want; k++, done++)
            mime_out_byte(o, b[k]);
        if (i >= n)
            break;
    }
}

static void mime_dec_uu(const unsigned char *s, size_t len, struct mime_out *o)
{
    size_t pos = 0;

    while (pos < len && o->err == 0) {
        const unsigned char *nl = memchr(s + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - s) : len, n;
        size_t next = nl ? end + 1 : len;
        if (end > pos && s[end - 1] == '\r')
            end--;
        n = end - pos;
        if (n >= 3 && memcmp(s + pos, "end", 3) == 0 &&
            (n == 3 || s[pos + 3] == ' ' || s[pos + 3] == '\t'))
            break;
        if (!(n >= 6 && memcmp(s + pos, "begin ", 6) == 0))
            mime_uu_line(s + pos, n, o);
        pos = next;
    }
}

static void mime_dec_identity(const unsigned char *s, size_t len,
                              struct mime_out *o)
{
    for (size_t i = 0; i < len && o->err == 0; i += MIME_CHUNK) {
        size_t n = len - i < MIME_CHUNK ? len - i : MIME_CHUNK;
        if (o->cb(s + i, n, o->arg) < 0)
            o->err = -1;
    }
}

int mime_decode_range(const unsigned char *s, size_t len, enum mime_enc enc,
                      uint32_t *anom, mime_decode_cb cb, void *arg)
{
    struct mime_out o = { NULL, 0, cb, arg, 0 };

    if (enc == MIME_ENC_IDENTITY) {
        mime_dec_identity(s, len, &o);
        return o.err;
    }
    o.buf = xmalloc(MIME_CHUNK);
    if (enc == MIME_ENC_BASE64)
        mime_dec_base64(s, len, &o, anom);
    else if (enc == MIME_ENC_QP)
        mime_dec_qp(s, len, &o, anom);
    else
        mime_dec_uu(s, len, &o);
    mime_out_flush(&o);
    free(o.buf);
    return o.err;
}

int mime_part_decode(struct mime_part *p, mime_decode_cb cb, void *arg)
{
    uint32_t anom = 0;
    int r = mime_decode_range(p->src->p + p->body_off, p->body_len, p->enc,
                              &anom, cb, arg);

    if (anom)
        mime_flag(p, anom);
    return r;
}

static int mime_write_cb(const void *buf, size_t n, void *arg)
{
    int fd = *(int *)arg;
    const char *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int mime_part_decode_to_fd(struct mime_part *p, int fd)
{
    return mime_part_decode(p, mime_write_cb, &fd);
}
