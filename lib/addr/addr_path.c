/*
 * addr_path - RFC 5321 reverse-path / forward-path parser (4.1.2) with the
 * ESMTP parameters after it (RFC 5321 4.1.2 esmtp-param, RFC 1870 SIZE,
 * RFC 6152 BODY, RFC 3461 RET ENVID NOTIFY ORCPT, RFC 6531 SMTPUTF8).
 *
 * Interface: addr_path_parse(), addr_path_domain(), addr_xtext_decode(),
 * addr_xtext_encode(),
 * addr_utf8_len() (see addr.h).
 *
 * Accepted: "<local@domain>", "<>" (MAIL only), quoted local parts,
 * source routes "<@a,@b:user@d>" (the route is checked and dropped),
 * address literals [IPv4] and [IPv6:...], RCPT TO:<Postmaster> without a
 * domain.  UTF-8 in the address (RFC 6531) only in an SMTPUTF8
 * transaction.
 *
 * Diagnostics: -1 with *why = "X.Y.Z text" for the reply and p->code the
 * basic code: 501 syntax, 553 non-ASCII without SMTPUTF8, 555 unknown or
 * misplaced parameter.
 *
 * Security: a control character (including NUL, CR, LF, DEL) anywhere in
 * the argument fails the whole command before anything else is looked at;
 * every length is bounded before it is copied.
 */
#include "addr/addr.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ADDR_MAX_PARAMS 16

struct path_ctx {
    const char *s;          /* the path between < and > */
    size_t n, pos;
    bool rcpt, utf8_ok;
    bool saw_utf8;
};

struct esmtp_param {
    const char *key, *val;  /* val NULL: no "=" */
    size_t keylen, vallen;
};

static int fail(struct addr_path *p, int code, const char *text, const char **why)
{
    p->code = code;
    *why = text;
    return -1;
}

static const char *bad_syntax(bool rcpt)
{
    return rcpt ? "5.1.3 Bad recipient address syntax" : "5.1.7 Bad sender address syntax";
}

size_t addr_utf8_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* overlong 3/4-byte forms, surrogates, beyond U+10FFFF */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

/* A non-ASCII character at the current position: its length, or 0 (and
 * the reason noted) when it is not allowed here. */
static size_t path_utf8(struct path_ctx *c)
{
    size_t l = addr_utf8_len((const unsigned char *)c->s + c->pos, c->n - c->pos);
    if (l > 1)
        c->saw_utf8 = true;
    return l > 1 && c->utf8_ok ? l : 0;
}

static bool is_atext(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

/* Dot-string: Atom *("." Atom). */
static int path_dot_string(struct path_ctx *c)
{
    bool need_atext = true;

    while (c->pos < c->n) {
        unsigned char ch = (unsigned char)c->s[c->pos];
        size_t l;
        if (is_atext(ch)) {
            c->pos++;
            need_atext = false;
        } else if (ch == '.' && !need_atext) {
            c->pos++;
            need_atext = true;
        } else if (ch >= 0x80 && (l = path_utf8(c)) > 0) {
            c->pos += l;
            need_atext = false;
        } else {
            break;
        }
    }
    return need_atext ? -1 : 0;
}

/* Quoted-string: DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE. */
static int path_quoted(struct path_ctx *c)
{
    c->pos++; /* the opening quote */
    while (c->pos < c->n) {
        unsigned char ch = (unsigned char)c->s[c->pos];
        size_t l;
        if (ch == '"') {
            c->pos++;
            return 0;
        }
        if (ch == '\\') {
            if (c->pos + 1 >= c->n)
                return -1;
            unsigned char q = (unsigned char)c->s[c->pos + 1];
            if (q < 32 || q > 126)
                return -1;
            c->pos += 2;
        } else if (ch >= 32 && ch <= 126) {
            c->pos++;
        } else if (ch >= 0x80 && (l = path_utf8(c)) > 0) {
            c->pos += l;
        } else {
            return -1;
        }
    }
    return -1;
}

/* Domain: sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]. */
static int path_domain(struct path_ctx *c)
{
    size_t start = c->pos, label = 0;
    bool last_hyphen = false;

    while (c->pos < c->n) {
        unsigned char ch = (unsigned char)c->s[c->pos];
        size_t l = 1;
        if (isalnum(ch) || (ch >= 0x80 && (l = path_utf8(c)) > 0)) {
            last_hyphen = false;
        } else if (ch == '-' && label > 0) {
            last_hyphen = true;
        } else if (ch == '.' && label > 0 && !last_hyphen) {
            label = 0;
            c->pos++;
            continue;
        } else {
            break;
        }
        c->pos += l;
        label += l;
        if (label > 63)
            return -1;
    }
    if (label == 0 || last_hyphen || c->pos - start > ADDR_DOMAIN_MAX)
        return -1;
    return 0;
}

/* address-literal: "[" (IPv4 / "IPv6:" IPv6) "]". */
static int path_literal(struct path_ctx *c)
{
    char lit[64];
    const char *end = memchr(c->s + c->pos, ']', c->n - c->pos);
    struct in6_addr a6;

    if (end == NULL)
        return -1;
    size_t len = (size_t)(end - (c->s + c->pos)) - 1;
    if (len == 0 || len >= sizeof(lit))
        return -1;
    memcpy(lit, c->s + c->pos + 1, len);
    lit[len] = 0;
    c->pos += len + 2;
    if (strncasecmp(lit, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, lit + 5, &a6) == 1 ? 0 : -1;
    return inet_pton(AF_INET, lit, &a6) == 1 ? 0 : -1;
}

/* A-d-l ":" : "@dom,@dom:" (checked, then ignored). */
static int path_route(struct path_ctx *c)
{
    for (;;) {
        if (c->pos >= c->n || c->s[c->pos] != '@')
            return -1;
        c->pos++;
        if (path_domain(c) < 0)
            return -1;
        if (c->pos < c->n && c->s[c->pos] == ',') {
            c->pos++;
            continue;
        }
        if (c->pos < c->n && c->s[c->pos] == ':') {
            c->pos++;
            return 0;
        }
        return -1;
    }
}

/* Mailbox = Local-part "@" (Domain / address-literal); copies it to p. */
static int path_mailbox(struct path_ctx *c, struct addr_path *p, const char **why)
{
    size_t start = c->pos;
    int r = c->pos < c->n && c->s[c->pos] == '"' ? path_quoted(c) : path_dot_string(c);

    if (r < 0)
        return -1;
    size_t local = c->pos - start;
    if (local > ADDR_LOCAL_MAX) {
        *why = c->rcpt ? "5.1.3 Recipient local part too long" : "5.1.7 Sender local part too long";
        return -1;
    }
    if (c->pos == c->n && c->rcpt && local == 10 &&
        strncasecmp(c->s + start, "postmaster", 10) == 0) {
        p->has_domain = false;
    } else {
        if (c->pos >= c->n || c->s[c->pos] != '@')
            return -1;
        c->pos++;
        size_t dstart = c->pos;
        r = c->pos < c->n && c->s[c->pos] == '[' ? path_literal(c) : path_domain(c);
        if (r < 0 || c->pos != c->n)
            return -1;
        if (c->pos - dstart > ADDR_DOMAIN_MAX) {
            *why = c->rcpt ? "5.1.3 Recipient domain too long" : "5.1.7 Sender domain too long";
            return -1;
        }
        p->has_domain = true;
    }
    p->len = c->n - start;
    memcpy(p->addr, c->s + start, p->len);
    p->addr[p->len] = 0;
    p->at = p->has_domain ? local : p->len;
    p->utf8 = c->saw_utf8;
    return 0;
}

/* The text between "<" and ">" (or a bare path). */
static int path_parse_inner(const char *s, size_t n, bool rcpt, bool utf8_ok,
                            struct addr_path *p, const char **why)
{
    struct path_ctx c = { .s = s, .n = n, .rcpt = rcpt, .utf8_ok = utf8_ok };
    const char *reason = bad_syntax(rcpt);

    if (n == 0) {
        if (rcpt)
            return fail(p, 501, reason, why);
        p->addr[0] = 0;
        p->len = p->at = 0;
        return 0;
    }
    if (s[0] == '@' && path_route(&c) < 0)
        return fail(p, 501, reason, why);
    if (path_mailbox(&c, p, &reason) < 0) {
        if (c.saw_utf8 && !utf8_ok)
            return fail(p, 553, rcpt ? "5.6.7 Non-ASCII recipient address requires SMTPUTF8"
                                     : "5.6.7 Non-ASCII sender address requires SMTPUTF8", why);
        return fail(p, 501, reason, why);
    }
    return 0;
}

/* Find where the path ends: the ">" outside a quoted string. */
static size_t path_end(const char *s, size_t n, bool bracketed)
{
    bool quoted = false;

    for (size_t i = bracketed ? 1 : 0; i < n; i++) {
        if (quoted && s[i] == '\\' && i + 1 < n)
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && bracketed && s[i] == '>')
            return i + 1;
        else if (!quoted && !bracketed && s[i] == ' ')
            return i;
    }
    return bracketed ? 0 : n;
}

const char *addr_path_domain(const struct addr_path *p)
{
    return p->has_domain ? p->addr + p->at + 1 : "";
}

/* Split "KEY[=VALUE] KEY[=VALUE]..." into params. */
static int params_split(const char *s, size_t n, struct esmtp_param *v, size_t *nv,
                        struct addr_path *p, const char **why)
{
    size_t i = 0;

    *nv = 0;
    while (i < n) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        if (*nv == ADDR_MAX_PARAMS)
            return fail(p, 501, "5.5.4 Too many parameters", why);
        struct esmtp_param *e = &v[(*nv)++];
        e->key = s + i;
        while (i < n && s[i] != ' ' && s[i] != '=')
            i++;
        e->keylen = (size_t)(s + i - e->key);
        e->val = NULL;
        e->vallen = 0;
        if (i < n && s[i] == '=') {
            e->val = s + ++i;
            while (i < n && s[i] != ' ')
                i++;
            e->vallen = (size_t)(s + i - e->val);
        }
        for (size_t k = 0; k < e->keylen; k++)
            if (!isalnum((unsigned char)e->key[k]) && (k == 0 || e->key[k] != '-'))
                return fail(p, 501, "5.5.2 Syntax error in parameters", why);
        if (e->keylen == 0 || (e->val && e->vallen == 0))
            return fail(p, 501, "5.5.2 Syntax error in parameters", why);
    }
    return 0;
}

/* esmtp-value: 1*(%d33-60 / %d62-126), UTF-8 too in SMTPUTF8 (RFC 6531). */
static bool value_ok(const struct esmtp_param *e, bool utf8)
{
    for (size_t i = 0; i < e->vallen;) {
        unsigned char ch = (unsigned char)e->val[i];
        if (ch >= 33 && ch <= 126 && ch != '=') {
            i++;
            continue;
        }
        size_t l = utf8 ? addr_utf8_len((const unsigned char *)e->val + i, e->vallen - i) : 0;
        if (l < 2)
            return false;
        i += l;
    }
    return true;
}

static bool key_is(const struct esmtp_param *e, const char *name)
{
    return strlen(name) == e->keylen && strncasecmp(e->key, name, e->keylen) == 0;
}

static bool val_is(const struct esmtp_param *e, const char *word)
{
    return e->val && strlen(word) == e->vallen && strncasecmp(e->val, word, e->vallen) == 0;
}

void addr_xtext_encode(struct buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == '+' || c == '=')
            buf_printf(out, "+%02X", c);
        else
            buf_append_byte(out, c);
    }
}

int addr_xtext_decode(const char *s, size_t n, bool utf8, char *out, size_t outsize)
{
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '+') {
            if (i + 3 > n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return -1;
            char hex[3] = { s[i + 1], s[i + 2], 0 };
            ch = (unsigned char)strtoul(hex, NULL, 16);
            i += 3;
        } else if (ch >= 33 && ch <= 126 && ch != '=') {
            i++;
        } else if (ch >= 0x80 && utf8) {
            i++; /* checked as UTF-8 below */
        } else {
            return -1;
        }
        if (ch < 32 || ch == 127 || (ch >= 0x80 && !utf8) || o + 1 >= outsize)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    for (size_t i = 0; i < o;) {
        size_t l = addr_utf8_len((const unsigned char *)out + i, o - i);
        if (l == 0)
            return -1;
        i += l;
    }
    return 0;
}

static int param_size(const struct esmtp_param *e, struct addr_path *p, const char **why)
{
    uint64_t v = 0;

    if (e->val == NULL || e->vallen > 20)
        return fail(p, 501, "5.5.4 Bad SIZE value", why);
    for (size_t i = 0; i < e->vallen; i++) {
        unsigned d = (unsigned char)e->val[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return fail(p, 501, "5.5.4 Bad SIZE value", why);
        v = v * 10 + d;
    }
    p->has_size = true;
    p->size = v;
    return 0;
}

static int param_notify(const struct esmtp_param *e, struct addr_path *p, const char **why)
{
    static const struct { const char *word; unsigned bit; } words[] = {
        { "NEVER", ADDR_NOTIFY_NEVER }, { "SUCCESS", ADDR_NOTIFY_SUCCESS },
        { "FAILURE", ADDR_NOTIFY_FAILURE }, { "DELAY", ADDR_NOTIFY_DELAY },
    };
    size_t i = 0;

    if (e->val == NULL)
        return fail(p, 501, "5.5.4 Bad NOTIFY value", why);
    while (i <= e->vallen) {
        const char *w = e->val + i, *comma = memchr(w, ',', e->vallen - i);
        size_t wl = comma ? (size_t)(comma - w) : e->vallen - i;
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof(words) / sizeof(*words); k++)
            if (strlen(words[k].word) == wl && strncasecmp(w, words[k].word, wl) == 0)
                bit = words[k].bit;
        if (bit == 0 || (p->notify & bit))
            return fail(p, 501, "5.5.4 Bad NOTIFY value", why);
        p->notify |= bit;
        i += wl + 1;
    }
    if ((p->notify & ADDR_NOTIFY_NEVER) && p->notify != ADDR_NOTIFY_NEVER)
        return fail(p, 501, "5.5.4 Bad NOTIFY value", why);
    return 0;
}

static int param_orcpt(const struct esmtp_param *e, bool utf8, struct addr_path *p,
                       const char **why)
{
    const char *semi = e->val ? memchr(e->val, ';', e->vallen) : NULL;

    if (semi == NULL || e->vallen > ADDR_ORCPT_MAX)
        return fail(p, 501, "5.5.4 Bad ORCPT value", why);
    size_t tl = (size_t)(semi - e->val);
    if (tl == 0 || tl >= sizeof(p->orcpt_type))
        return fail(p, 501, "5.5.4 Bad ORCPT value", why);
    for (size_t i = 0; i < tl; i++)
        if (!is_atext((unsigned char)e->val[i]))
            return fail(p, 501, "5.5.4 Bad ORCPT value", why);
    memcpy(p->orcpt_type, e->val, tl);
    p->orcpt_type[tl] = 0;
    if (e->vallen - tl - 1 == 0 ||
        addr_xtext_decode(semi + 1, e->vallen - tl - 1, utf8, p->orcpt, sizeof(p->orcpt)) < 0)
        return fail(p, 501, "5.5.4 Bad ORCPT value", why);
    p->has_orcpt = true;
    return 0;
}

static int param_one_mail(const struct esmtp_param *e, bool utf8, struct addr_path *p,
                          const char **why)
{
    if (key_is(e, "SIZE"))
        return param_size(e, p, why);
    if (key_is(e, "BODY")) {
        p->body = val_is(e, "7BIT") ? ADDR_BODY_7BIT : val_is(e, "8BITMIME") ? ADDR_BODY_8BITMIME
                : val_is(e, "BINARYMIME") ? ADDR_BODY_BINARYMIME : ADDR_BODY_NONE;
        return p->body ? 0 : fail(p, 501, "5.5.4 Bad BODY value", why);
    }
    if (key_is(e, "RET")) {
        p->ret = val_is(e, "FULL") ? ADDR_RET_FULL : val_is(e, "HDRS") ? ADDR_RET_HDRS
               : ADDR_RET_NONE;
        return p->ret ? 0 : fail(p, 501, "5.5.4 Bad RET value", why);
    }
    if (key_is(e, "ENVID")) {
        if (e->val == NULL ||
            addr_xtext_decode(e->val, e->vallen, utf8, p->envid, sizeof(p->envid)) < 0)
            return fail(p, 501, "5.5.4 Bad ENVID value", why);
        p->has_envid = true;
        return 0;
    }
    if (key_is(e, "SMTPUTF8"))
        return e->val ? fail(p, 501, "5.5.4 SMTPUTF8 takes no value", why) : 0;
    return fail(p, 555, "5.5.4 Unsupported parameter", why);
}

static int param_one_rcpt(const struct esmtp_param *e, bool utf8, struct addr_path *p,
                          const char **why)
{
    if (key_is(e, "NOTIFY"))
        return param_notify(e, p, why);
    if (key_is(e, "ORCPT"))
        return param_orcpt(e, utf8, p, why);
    return fail(p, 555, "5.5.4 Unsupported parameter", why);
}

/* Parse the parameters; sets p->smtputf8 first so values may use it. */
static int params_parse(const char *s, size_t n, bool rcpt, unsigned flags,
                        struct addr_path *p, const char **why)
{
    struct esmtp_param v[ADDR_MAX_PARAMS];
    size_t nv;

    if (params_split(s, n, v, &nv, p, why) < 0)
        return -1;
    for (size_t i = 0; i < nv; i++) {
        for (size_t j = 0; j < i; j++)
            if (v[j].keylen == v[i].keylen && strncasecmp(v[j].key, v[i].key, v[i].keylen) == 0)
                return fail(p, 501, "5.5.4 Duplicate parameter", why);
        if (!rcpt && key_is(&v[i], "SMTPUTF8")) {
            if (!(flags & ADDR_SMTPUTF8_OK))
                return fail(p, 555, "5.5.4 SMTPUTF8 not supported", why);
            p->smtputf8 = true;
        }
    }
    bool utf8 = (flags & ADDR_UTF8) || p->smtputf8;
    for (size_t i = 0; i < nv; i++) {
        if (v[i].val && !value_ok(&v[i], utf8))
            return fail(p, 501, "5.5.2 Syntax error in parameters", why);
        if ((rcpt ? param_one_rcpt : param_one_mail)(&v[i], utf8, p, why) < 0)
            return -1;
    }
    return 0;
}

int addr_path_parse(const char *arg, size_t len, enum addr_path_kind kind,
                    unsigned flags, struct addr_path *p, const char **why)
{
    bool rcpt = kind == ADDR_RCPT;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)arg[i] < 32 || arg[i] == 127)
            return fail(p, 501, bad_syntax(rcpt), why);
    while (len > 0 && *arg == ' ') {
        arg++;
        len--;
    }
    while (len > 0 && arg[len - 1] == ' ')
        len--;
    bool bracketed = len > 0 && arg[0] == '<';
    if (!bracketed && !(flags & ADDR_BARE_OK))
        return fail(p, 501, bad_syntax(rcpt), why);
    size_t end = path_end(arg, len, bracketed);
    if (bracketed && end == 0)
        return fail(p, 501, bad_syntax(rcpt), why);
    if (end < len && arg[end] != ' ')
        return fail(p, 501, bad_syntax(rcpt), why);
    if (end > ADDR_PATH_MAX - (bracketed ? 0 : 2))
        return fail(p, 501, rcpt ? "5.1.3 Recipient address too long"
                                 : "5.1.7 Sender address too long", why);
    if (params_parse(arg + end, len - end, rcpt, flags, p, why) < 0)
        return -1;
    bool utf8_ok = (flags & ADDR_UTF8) || p->smtputf8;
    if (bracketed)
        return path_parse_inner(arg + 1, end - 2, rcpt, utf8_ok, p, why);
    if (end == 0)
        return fail(p, 501, bad_syntax(rcpt), why);
    return path_parse_inner(arg, end, rcpt, utf8_ok, p, why);
}
