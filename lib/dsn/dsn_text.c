/*
 * dsn_text - the text-safety layer of lib/dsn: cleaning network strings
 * for headers and report fields, xtext (RFC 3461 §4), header folding,
 * RFC 5322 dates and CRLF line normalisation.
 *
 * Interface (dsn_int.h): dsn_utf8_valid, dsn_has_8bit, dsn_clean_text,
 * dsn_clean_addr, dsn_clean_host, dsn_clean_id, dsn_xtext_encode, dsn_xtext_decode, dsn_address_field,
 * dsn_field, dsn_date, dsn_text_lines.
 *
 * Security: these functions are the only way a value from the network
 * enters a header or a delivery-status field.  Their outputs hold no
 * CR, LF, NUL or control characters (dsn_clean_*, xtext) and no line
 * longer than 998 octets (dsn_field, dsn_text_lines).  Nothing here logs.
 */
#include "addr/addr.h"
#include "dsn/dsn_int.h"
#include "util/text.h"

#include <stdio.h>
#include <string.h>

static bool dsn_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static size_t dsn_utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, min = 0x80, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, min = 0x800, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, min = 0x10000, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool dsn_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    while (n > 0) {
        size_t l = dsn_utf8_seq(p, n);
        if (l == 0)
            return false;
        p += l;
        n -= l;
    }
    return true;
}

bool dsn_has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return true;
    }
    return false;
}

void dsn_clean_text(struct buf *out, const char *s, size_t max)
{
    size_t start = out->len;
    bool space = false;

    for (size_t i = 0; s[i] && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (dsn_ctl(c) || c == ' ') {
            space = true;
            continue;
        }
        if (space && out->len > start)
            buf_append_byte(out, ' ');
        space = false;
        buf_append_byte(out, c >= 0x80 ? '?' : c);
    }
}

bool dsn_clean_addr(struct buf *out, const char *s, bool utf8_ok)
{
    size_t n = strlen(s);
    bool keep8 = utf8_ok && dsn_utf8_valid(s, n);
    bool wrote8 = false;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (dsn_ctl(c) || c == ' ' || (c >= 0x80 && !keep8))
            c = '?';
        if (c >= 0x80)
            wrote8 = true;
        buf_append_byte(out, c);
    }
    return wrote8;
}

void dsn_clean_host(struct buf *out, const char *host)
{
    for (size_t i = 0; host && host[i] && i < 255; i++) {
        char c = host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
        buf_append_byte(out, ok ? (uint8_t)c : '-');
    }
}

void dsn_clean_id(struct buf *out, const char *id)
{
    for (size_t i = 0; id && id[i] && i < 64; i++) {
        char c = id[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            buf_append_byte(out, (uint8_t)c);
    }
}

void dsn_xtext_encode(struct buf *out, const char *s, size_t n)
{
    addr_xtext_encode(out, s, n);
}

/* Lenient: a '+' not followed by two hex digits stays a '+'. */
void dsn_xtext_decode(struct buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '+' && i + 2 < n && (h = text_hex_value(s[i + 1])) >= 0 &&
            (l = text_hex_value(s[i + 2])) >= 0) {
            buf_append_byte(out, (uint8_t)(h * 16 + l));
            i += 2;
        } else {
            buf_append_byte(out, (uint8_t)s[i]);
        }
    }
}

static void dsn_addr_type(struct buf *out, const char *type)
{
    size_t n = strlen(type);
    bool ok = n > 0 && n <= 32;

    for (size_t i = 0; ok && i < n; i++) {
        char c = type[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-';
    }
    if (!ok) {
        buf_append_str(out, "unknown");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = type[i];
        buf_append_byte(out, (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : (uint8_t)c);
    }
}

void dsn_address_field(struct buf *out, const char *type, const char *s, size_t n,
                       bool xtext_in, bool utf8_ok, bool *raw8)
{
    struct buf a = BUF_INIT;
    bool printable = true, ctl = false;

    if (xtext_in)
        dsn_xtext_decode(&a, s, n);
    else
        buf_append(&a, s, n);
    for (size_t i = 0; i < a.len; i++) {
        unsigned char c = (unsigned char)a.data[i];
        ctl |= dsn_ctl(c);
        printable &= c >= 0x20 && c < 0x7f;
    }
    dsn_addr_type(out, type);
    buf_append_str(out, "; ");
    if (printable) {
        buf_append(out, a.data, a.len);
    } else if (utf8_ok && !ctl && dsn_utf8_valid(a.data, a.len)) {
        buf_append(out, a.data, a.len);
        if (raw8)
            *raw8 = true;
    } else {
        dsn_xtext_encode(out, a.data, a.len);
    }
    buf_free(&a);
}

/* Append value[i..e) to the current line, cutting words that would pass
 * DSN_LINE_MAX (continued after CRLF SP). */
static void dsn_field_put(struct buf *out, size_t *col, const char *p, size_t n)
{
    while (*col + n > DSN_LINE_MAX) {
        size_t room = DSN_LINE_MAX - *col;
        buf_append(out, p, room);
        buf_append_str(out, "\r\n ");
        p += room;
        n -= room;
        *col = 1;
    }
    buf_append(out, p, n);
    *col += n;
}

void dsn_field(struct buf *out, const char *name, const char *value, size_t n)
{
    size_t col = strlen(name) + 1;
    size_t i = 0;
    bool first = true;

    buf_append_str(out, name);
    buf_append_byte(out, ':');
    while (i < n) {
        size_t s = i, e;
        while (s < n && value[s] == ' ')
            s++;
        if (s == n)
            break;
        for (e = s; e < n && value[e] != ' ';)
            e++;
        if (!first && col + (e - i) > DSN_FOLD_AT) {
            buf_append_str(out, "\r\n");
            col = 0;
        }
        if (s == i || first) {
            buf_append_byte(out, ' ');
            col++;
            i = s;
        }
        dsn_field_put(out, &col, value + i, e - i);
        i = e;
        first = false;
    }
    buf_append_str(out, "\r\n");
}

void dsn_date(char *out, size_t size, time_t t)
{
    static const char *const day[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    long off;

    if (!localtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    off = tm.tm_gmtoff / 60;
    snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", day[tm.tm_wday % 7],
             tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60,
             (off < 0 ? -off : off) % 60);
}

void dsn_text_lines(struct buf *out, const char *s, size_t n)
{
    size_t col = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
                i++;
            buf_append_str(out, "\r\n");
            col = 0;
            continue;
        }
        if (col == DSN_LINE_MAX) {
            buf_append_str(out, "\r\n");
            col = 0;
        }
        buf_append_byte(out, (uint8_t)s[i]);
        col++;
    }
    if (col > 0 || n == 0)
        buf_append_str(out, "\r\n");
}
