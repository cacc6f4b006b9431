/*
 * mime_param - Content-Type / Content-Disposition values: the main token
 * and its parameters (RFC 2045 5.1, RFC 2183), with RFC 2231 extended
 * values ("name*=utf-8''a%20b"), continuations ("name*0*=", "name*1=")
 * and charsets decoded to UTF-8.
 *
 * Interface: mime_params_parse(text, &pp), mime_params_get(&pp, name, i)
 * (the i-th value of a parameter: duplicates are all kept, in order),
 * mime_params_free(&pp).
 *
 * Leniency: comments are skipped, quoted strings may lack their closing
 * quote, unquoted values run to the next ';' (blanks inside are kept),
 * a parameter without '=' is skipped; each oddity sets BAD_PARAM in
 * pp.anom, a failed charset conversion BAD_ENCODED_WORD.
 *
 * Security: continuation numbers (MIME_MAX_SECTIONS) and parameters per
 * header (MIME_MAX_PARAMS, more are dropped with BAD_PARAM) are bounded;
 * every buffer grows through buf (checked).
 */
#include "mime/mime_int.h"
#include "util/mem.h"
#include "util/text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_MAX_SECTIONS 100
#define MIME_MAX_PARAMS 64       /* per header: joining sections is O(n^2) */

struct mime_raw_param {
    char *base;                 /* lower case, without '*' parts */
    int section;                /* -1 when not a continuation */
    bool ext;                   /* charset'lang'%XX form */
    char *value;
};

static const char *mime_skip_cfws(const char *s)
{
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        if (*s != '(')
            return s;
        int nest = 0;
        do {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '(')
                nest++;
            else if (*s == ')')
                nest--;
            s++;
        } while (*s && nest > 0);
    }
}

static void mime_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Copies text up to stop characters, dropping comments and trimming. */
static char *mime_take_token(const char **sp, const char *stops)
{
    struct buf b = BUF_INIT;
    const char *s = mime_skip_cfws(*sp);

    while (*s && !strchr(stops, *s)) {
        if (*s == '(') {
            s = mime_skip_cfws(s);
            continue;
        }
        buf_append_byte(&b, (uint8_t)*s++);
    }
    while (b.len > 0 && (b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\t'))
        b.len--;
    *sp = s;
    char *r = xstrndup(b.data ? b.data : "", b.len);
    buf_free(&b);
    return r;
}

static char *mime_take_quoted(const char **sp, uint32_t *anom)
{
    struct buf b = BUF_INIT;
    const char *s = *sp + 1;

    while (*s && *s != '"') {
        if (*s == '\\' && s[1])
            s++;
        buf_append_byte(&b, (uint8_t)*s++);
    }
    if (*s == '"')
        s++;
    else
        *anom |= MIME_ANOM_BAD_PARAM;
    /* text after the closing quote up to ';' is junk */
    const char *t = mime_skip_cfws(s);
    if (*t && *t != ';')
        *anom |= MIME_ANOM_BAD_PARAM;
    while (*t && *t != ';')
        t++;
    *sp = t;
    char *r = xstrndup(b.data ? b.data : "", b.len);
    buf_free(&b);
    return r;
}

/* "filename*2*" -> base "filename", section 2, ext. */
static void mime_split_name(char *name, struct mime_raw_param *rp)
{
    char *star = strchr(name, '*');

    rp->section = -1;
    rp->ext = false;
    if (star == NULL)
        return;
    *star++ = 0;
    if (isdigit((unsigned char)*star)) {
        long n = 0;
        while (isdigit((unsigned char)*star) && n <= MIME_MAX_SECTIONS)
            n = n * 10 + (*star++ - '0');
        rp->section = n > MIME_MAX_SECTIONS ? MIME_MAX_SECTIONS : (int)n;
        if (*star == '*')
            rp->ext = true;
    } else {
        rp->ext = true;
    }
}

static size_t mime_raw_params(const char *s, struct mime_raw_param **out,
                              uint32_t *anom)
{
    size_t n = 0;

    *out = NULL;
    while (*s == ';') {
        s++;
        char *name = mime_take_token(&s, "=;");
        if (*s != '=' || name[0] == 0) {
            if (name[0])
                *anom |= MIME_ANOM_BAD_PARAM;
            free(name);
            while (*s && *s != ';')
                s++;
            continue;
        }
        if (n >= MIME_MAX_PARAMS) {
            *anom |= MIME_ANOM_BAD_PARAM;
            free(name);
            return n;
        }
        s = mime_skip_cfws(s + 1);
        char *value = *s == '"' ? mime_take_quoted(&s, anom)
                                : mime_take_token(&s, ";");
        *out = xreallocarray(*out, n + 1, sizeof **out);
        struct mime_raw_param *rp = &(*out)[n++];
        mime_lower(name);
        mime_split_name(name, rp);
        rp->base = name;
        rp->value = value;
    }
    return n;
}

static void mime_pct_decode(const char *s, struct buf *out)
{
    for (; *s; s++) {
        int h, l;
        if (*s == '%' && (h = text_hex_value((unsigned char)s[1])) >= 0 &&
            (l = text_hex_value((unsigned char)s[2])) >= 0) {
            buf_append_byte(out, (uint8_t)(h * 16 + l));
            s += 2;
        } else {
            buf_append_byte(out, (uint8_t)*s);
        }
    }
}

/* RFC 2231 4: charset'language'value; returns the charset (malloc'd) and
 * appends the decoded value. */
static char *mime_ext_first(const char *v, struct buf *out)
{
    const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;

    if (q2 == NULL) {
        mime_pct_decode(v, out);
        return NULL;
    }
    mime_pct_decode(q2 + 1, out);
    return xstrndup(v, (size_t)(q1 - v));
}

static void mime_params_push(struct mime_params *pp, const char *name,
                             char *value)
{
    pp->v = xreallocarray(pp->v, pp->n + 1, sizeof *pp->v);
    pp->v[pp->n].name = xstrdup(name);
    pp->v[pp->n].value = value;
    pp->n++;
}

/* Joins the sections of base starting at raw[i] (the first one seen). */
static void mime_join_sections(struct mime_params *pp,
                               struct mime_raw_param *raw, size_t n, size_t i)
{
    struct buf b = BUF_INIT;
    char *charset = NULL;
    int want = 0;

    for (bool found = true; found && want <= MIME_MAX_SECTIONS; want++) {
        found = false;
        for (size_t k = i; k < n; k++) {
            struct mime_raw_param *rp = &raw[k];
            if (rp->section != want || strcmp(rp->base, raw[i].base) != 0)
                continue;
            if (want == 0 && rp->ext)
                charset = mime_ext_first(rp->value, &b);
            else if (rp->ext)
                mime_pct_decode(rp->value, &b);
            else
                buf_append(&b, rp->value, strlen(rp->value));
            rp->section = -2;          /* consumed */
            found = true;
            break;
        }
    }
    for (size_t k = i; k < n; k++)
        if (raw[k].section >= 0 && strcmp(raw[k].base, raw[i].base) == 0) {
            pp->anom |= MIME_ANOM_BAD_PARAM;      /* gap in the sections */
            raw[k].section = -2;
        }
    bool ok = true;
    char *v = mime_charset_to_utf8(charset ? charset : "us-ascii",
                                   b.data ? b.data : "", b.len, &ok);
    if (!ok)
        pp->anom |= MIME_ANOM_BAD_ENCODED_WORD;
    mime_params_push(pp, raw[i].base, v);
    free(charset);
    buf_free(&b);
}

static void mime_params_assemble(struct mime_params *pp,
                                 struct mime_raw_param *raw, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct mime_raw_param *rp = &raw[i];
        if (rp->section == -2)
            continue;
        if (rp->section >= 0) {
            mime_join_sections(pp, raw, n, i);
        } else if (rp->ext) {
            struct buf b = BUF_INIT;
            bool ok = true;
            char *cs = mime_ext_first(rp->value, &b);
            mime_params_push(pp, rp->base,
                             mime_charset_to_utf8(cs ? cs : "us-ascii",
                                                  b.data ? b.data : "", b.len,
                                                  &ok));
            if (!ok)
                pp->anom |= MIME_ANOM_BAD_ENCODED_WORD;
            free(cs);
            buf_free(&b);
        } else {
            mime_params_push(pp, rp->base, xstrdup(rp->value));
        }
    }
}

void mime_params_parse(const char *s, struct mime_params *pp)
{
    struct mime_raw_param *raw;

    memset(pp, 0, sizeof *pp);
    pp->value = mime_take_token(&s, ";");
    mime_lower(pp->value);
    size_t n = mime_raw_params(s, &raw, &pp->anom);
    mime_params_assemble(pp, raw, n);
    for (size_t i = 0; i < n; i++) {
        free(raw[i].base);
        free(raw[i].value);
    }
    free(raw);
}

void mime_params_free(struct mime_params *pp)
{
    for (size_t i = 0; i < pp->n; i++) {
        free(pp->v[i].name);
        free(pp->v[i].value);
    }
    free(pp->v);
    free(pp->value);
    memset(pp, 0, sizeof *pp);
}

const char *mime_params_get(const struct mime_params *pp, const char *name,
                            size_t i)
{
    for (size_t k = 0; k < pp->n; k++)
        if (strcmp(pp->v[k].name, name) == 0 && i-- == 0)
            return pp->v[k].value;
    return NULL;
}
