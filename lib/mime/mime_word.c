/*
 * mime_word - charsets and RFC 2047 encoded words ("=?utf-8?B?...?=").
 *
 * Interface: mime_charset_to_utf8(charset, bytes, n, &ok) and
 * mime_decode_words(text, n, &bad), both returning malloc'd NUL-terminated
 * strings.  UTF-8, US-ASCII and ISO-8859-1 are converted here; other
 * charsets through iconv(3) when the C library has the converter (in a
 * chroot without gconv modules only those three work); otherwise the raw
 * bytes are kept and *ok is false.  NUL bytes become '?' so names stay C
 * strings.
 *
 * Adjacent encoded words with the same charset are decoded together
 * (a multi-byte character may be split across words) and the blanks
 * between encoded words are dropped (RFC 2047 6.2).
 */
#include "mime/mime_int.h"
#include "util/mem.h"
#include "util/text.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool mime_cs_is(const char *cs, const char *const *names)
{
    for (; *names; names++)
        if (strcasecmp(cs, *names) == 0)
            return true;
    return false;
}

static void mime_latin1(const unsigned char *in, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i] < 0x80) {
            buf_append_byte(out, in[i]);
        } else {
            buf_append_byte(out, (uint8_t)(0xc0 | (in[i] >> 6)));
            buf_append_byte(out, (uint8_t)(0x80 | (in[i] & 0x3f)));
        }
    }
}

static bool mime_iconv(const char *cs, const char *in, size_t n,
                       struct buf *out)
{
    iconv_t cd = iconv_open("UTF-8", cs);

    if (cd == (iconv_t)-1)
        return false;
    char *ip = (char *)in;
    size_t il = n;
    bool ok = true;
    while (il > 0) {
        char tmp[1024], *op = tmp;
        size_t ol = sizeof tmp;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        buf_append(out, tmp, (size_t)(op - tmp));
        if (r == (size_t)-1 && errno != E2BIG) {
            ok = false;
            break;
        }
    }
    iconv_close(cd);
    return ok;
}

char *mime_charset_to_utf8(const char *charset, const char *in, size_t n,
                           bool *ok)
{
    static const char *const utf8[] = { "utf-8", "utf8", "us-ascii",
                                        "ascii", "", NULL };
    static const char *const latin1[] = { "iso-8859-1", "latin1",
                                          "iso_8859-1", NULL };
    struct buf out = BUF_INIT;

    *ok = true;
    if (mime_cs_is(charset, utf8)) {
        buf_append(&out, in, n);
    } else if (mime_cs_is(charset, latin1)) {
        mime_latin1((const unsigned char *)in, n, &out);
    } else if (!mime_iconv(charset, in, n, &out)) {
        *ok = false;
        buf_reset(&out);
        buf_append(&out, in, n);
    }
    for (size_t i = 0; i < out.len; i++)
        if (out.data[i] == 0)
            out.data[i] = '?';
    char *r = xstrndup(out.data ? out.data : "", out.len);
    buf_free(&out);
    return r;
}

static int mime_b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static bool mime_word_b(const char *s, size_t n, struct buf *out)
{
    unsigned acc = 0, bits = 0;
    bool ok = true;

    for (size_t i = 0; i < n; i++) {
        int v = mime_b64val((unsigned char)s[i]);
        if (v < 0) {
            if (s[i] != '=')
                ok = false;
            continue;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_append_byte(out, (uint8_t)(acc >> bits));
            acc &= (1u << bits) - 1;
        }
    }
    return ok;
}

static bool mime_word_q(const char *s, size_t n, struct buf *out)
{
    bool ok = true;

    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '_') {
            buf_append_byte(out, ' ');
        } else if (s[i] == '=' && i + 2 < n &&
                   (h = text_hex_value((unsigned char)s[i + 1])) >= 0 &&
                   (l = text_hex_value((unsigned char)s[i + 2])) >= 0) {
            buf_append_byte(out, (uint8_t)(h * 16 + l));
            i += 2;
        } else {
            if (s[i] == '=')
                ok = false;
            buf_append_byte(out, (uint8_t)s[i]);
        }
    }
    return ok;
}

/* Parses "=?cs?e?text?=" at s; sets the pieces and returns its length,
 * 0 when s does not start an encoded word. */
static size_t mime_word_parse(const char *s, size_t n, char *cs, size_t cslen,
                              char *enc, const char **text, size_t *tlen)
{
    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    const char *q1 = memchr(s + 2, '?', n - 2);
    if (q1 == NULL || q1 + 3 >= s + n || q1[2] != '?')
        return 0;
    const char *t = q1 + 3;
    const char *end = NULL;
    for (const char *p = t; p + 1 < s + n; p++)
        if (p[0] == '?' && p[1] == '=') {
            end = p;
            break;
        }
    size_t l = (size_t)(q1 - (s + 2));
    if (end == NULL || l == 0 || l >= cslen)
        return 0;
    memcpy(cs, s + 2, l);
    cs[l] = 0;
    char *star = strchr(cs, '*');          /* RFC 2231 language suffix */
    if (star)
        *star = 0;
    *enc = (char)toupper((unsigned char)q1[1]);
    *text = t;
    *tlen = (size_t)(end - t);
    return (size_t)(end + 2 - s);
}

struct mime_words {
    struct buf out, pend;       /* decoded text, bytes of pending words */
    char cs[64];                /* charset of the pending words */
    bool bad;
};

static void mime_words_flush(struct mime_words *w)
{
    bool ok = true;

    if (w->pend.len == 0 && w->cs[0] == 0)
        return;
    char *u = mime_charset_to_utf8(w->cs, w->pend.data ? w->pend.data : "",
                                   w->pend.len, &ok);
    buf_append_str(&w->out, u);
    free(u);
    if (!ok)
        w->bad = true;
    buf_reset(&w->pend);
    w->cs[0] = 0;
}

static bool mime_only_blanks(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

char *mime_decode_words(const char *s, size_t n, bool *bad)
{
    struct mime_words w = { BUF_INIT, BUF_INIT, "", false };
    size_t i = 0, plain = 0;
    bool last_word = false;

    while (i < n) {
        char cs[64], enc;
        const char *text;
        size_t tlen, wl = mime_word_parse(s + i, n - i, cs, sizeof cs, &enc,
                                          &text, &tlen);
        if (wl == 0 || (enc != 'B' && enc != 'Q')) {
            i++;
            continue;
        }
        /* literal text between words, dropped when only blanks */
        if (!(last_word && mime_only_blanks(s + plain, i - plain))) {
            mime_words_flush(&w);
            buf_append(&w.out, s + plain, i - plain);
        }
        if (strcasecmp(cs, w.cs) != 0)
            mime_words_flush(&w);
        str_copy(w.cs, cs, sizeof w.cs);
        if (!(enc == 'B' ? mime_word_b(text, tlen, &w.pend)
                         : mime_word_q(text, tlen, &w.pend)))
            w.bad = true;
        i += wl;
        plain = i;
        last_word = true;
    }
    mime_words_flush(&w);
    buf_append(&w.out, s + plain, n - plain);
    for (size_t k = 0; k < w.out.len; k++)
        if (w.out.data[k] == 0)
            w.out.data[k] = '?';
    char *r = xstrndup(w.out.data ? w.out.data : "", w.out.len);
    buf_free(&w.out);
    buf_free(&w.pend);
    if (bad)
        *bad = w.bad;
    return r;
}
