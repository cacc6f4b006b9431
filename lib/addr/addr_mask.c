/*
 * addr_mask - wildcard, address, domain and IP masks, and mask lists.
 *
 * Interface: addr_wildmatch, addr_domain_match, addr_mask_match,
 * addr_ip_parse, addr_ipmask_parse/match, addr_*_check, addr_masklist_*
 * (see addr.h).
 *
 * Wildcards: '*' any run (also empty), '?' exactly one character (a whole
 * UTF-8 sequence, else one byte), ASCII letters case-insensitive.  Matching keeps one backtrack point (the last '*'), so
 * it is O(len(mask) * len(s)) at worst, never exponential.
 *
 * IP masks: "any", "IP", "IP/NN", "IPv4/a.b.c.d" (contiguous netmask).
 * Host bits in the network part are cleared, so "192.0.2.7/24" means
 * 192.0.2.0/24.  IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are matched
 * as IPv4, so a dual-stack listener's clients meet IPv4 masks.
 *
 * Diagnostics: the parse/check functions give a static reason; masklist
 * init also says which item was bad.
 */
#include "addr/addr.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define ADDR_MASK_MAX 512

static int lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

bool addr_wildmatch(const char *mask, const char *s)
{
    const char *m = mask, *t = s, *star = NULL, *tstar = NULL;

    while (*t) {
        if (*m == '*') {
            while (*m == '*')
                m++;
            star = m;
            tstar = t;
        } else if (*m == '?') {
            /* one character: a whole UTF-8 sequence when there is one */
            size_t l = addr_utf8_len((const unsigned char *)t, strnlen(t, 4));
            m++;
            t += l ? l : 1;
        } else if (*m && lower((unsigned char)*m) == lower((unsigned char)*t)) {
            m++;
            t++;
        } else if (star) {
            m = star;
            t = ++tstar;
        } else {
            return false;
        }
    }
    while (*m == '*')
        m++;
    return *m == 0;
}

bool addr_domain_match(const char *mask, const char *domain)
{
    return addr_wildmatch(mask, domain);
}

bool addr_mask_match(const char *mask, const char *addr)
{
    if (strchr(mask, '@'))
        return addr_wildmatch(mask, addr);
    if (strcmp(mask, "*") == 0)
        return true;
    const char *at = strrchr(addr, '@');
    return at != NULL && addr_domain_match(mask, at + 1);
}

/* IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes AF_INET. */
static void ip_unmap(struct addr_ip *ip)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (ip->family == AF_INET6 && memcmp(ip->b, mapped, 12) == 0) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
        ip->family = AF_INET;
    }
}

int addr_ip_parse(const char *s, struct addr_ip *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, s, ip->b) == 1) {
        ip->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, ip->b) == 1) {
        ip->family = AF_INET6;
        ip_unmap(ip);
        return 0;
    }
    return -1;
}

/* Contiguous dotted netmask to a prefix length; -1 when not one. */
static int netmask_prefix(const char *s)
{
    uint8_t b[4];

    if (inet_pton(AF_INET, s, b) != 1)
        return -1;
    uint32_t m = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    int prefix = 0;
    while (prefix < 32 && (m & (0x80000000u >> prefix)))
        prefix++;
    if (prefix < 32 && (m << prefix) != 0)
        return -2;
    return prefix;
}

static int ipmask_prefix(const char *s, int family, unsigned *prefix, const char **why)
{
    unsigned max = family == AF_INET ? 32 : 128;
    size_t n = strlen(s);

    if (n > 0 && n <= 3 && strspn(s, "0123456789") == n) {
        *prefix = (unsigned)atoi(s);
        if (*prefix <= max)
            return 0;
    } else if (family == AF_INET && strchr(s, '.')) {
        int p = netmask_prefix(s);
        if (p >= 0) {
            *prefix = (unsigned)p;
            return 0;
        }
        *why = p == -2 ? "netmask is not contiguous" : "bad netmask";
        return -1;
    }
    *why = family == AF_INET ? "prefix length must be 0..32" : "prefix length must be 0..128";
    return -1;
}

static void ip_clear_host_bits(struct addr_ip *ip, unsigned prefix)
{
    unsigned bytes = ip->family == AF_INET ? 4 : 16;

    for (unsigned i = 0; i < bytes; i++) {
        unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - i * 8 : 0;
        ip->b[i] &= (uint8_t)(0xff00 >> keep);
    }
}

int addr_ipmask_parse(const char *s, struct addr_ipmask *m, const char **why)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    memset(m, 0, sizeof(*m));
    if (strcasecmp(s, "any") == 0) {
        m->any = true;
        return 0;
    }
    if (hl == 0 || hl >= sizeof(host)) {
        *why = "not an IP address";
        return -1;
    }
    memcpy(host, s, hl);
    host[hl] = 0;
    struct addr_ip raw;
    memset(&raw, 0, sizeof(raw));
    if (inet_pton(AF_INET, host, raw.b) == 1) {
        raw.family = AF_INET;
    } else if (inet_pton(AF_INET6, host, raw.b) == 1) {
        raw.family = AF_INET6;
    } else {
        *why = "not an IP address";
        return -1;
    }
    m->prefix = raw.family == AF_INET ? 32 : 128;
    if (slash && ipmask_prefix(slash + 1, raw.family, &m->prefix, why) < 0)
        return -1;
    m->net = raw;
    /* ::ffff:a.b.c.d/NN with NN >= 96 is an IPv4 mask. */
    struct addr_ip un = raw;
    ip_unmap(&un);
    if (un.family == AF_INET && raw.family == AF_INET6 && m->prefix >= 96) {
        m->net = un;
        m->prefix -= 96;
    }
    ip_clear_host_bits(&m->net, m->prefix);
    return 0;
}

bool addr_ipmask_match(const struct addr_ipmask *m, const struct addr_ip *ip)
{
    struct addr_ip a;

    if (m->any)
        return true;
    a = *ip;
    ip_unmap(&a);
    if (a.family != m->net.family)
        return false;
    ip_clear_host_bits(&a, m->prefix);
    return memcmp(a.b, m->net.b, a.family == AF_INET ? 4 : 16) == 0;
}

int addr_ipmask_check(const char *s, const char **why)
{
    struct addr_ipmask m;
    return addr_ipmask_parse(s, &m, why);
}

/* Characters of a mask's domain part (and of a domain mask). */
static bool domain_char(unsigned char c, bool literal)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '*' || c == '?' ||
           (literal && (c == '[' || c == ']' || c == ':'));
}

/* Every byte non-control; non-ASCII only as well-formed UTF-8. */
static int mask_bytes_ok(const char *s, const char **why)
{
    size_t n = strlen(s);

    if (n == 0) {
        *why = "empty mask";
        return -1;
    }
    if (n > ADDR_MASK_MAX) {
        *why = "mask too long";
        return -1;
    }
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = addr_utf8_len((const unsigned char *)s + i, n - i);
        if (c <= ' ' || c == 127 || l == 0) {
            *why = c == ' ' ? "space in mask" : "control character or bad UTF-8 in mask";
            return -1;
        }
        i += l;
    }
    return 0;
}

static int domain_part_ok(const char *s, bool literal, const char **why)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x80 && !domain_char(*p, literal)) {
            *why = "bad character in domain (letters, digits, '-', '.', '_', '*', '?')";
            return -1;
        }
    return 0;
}

int addr_domainmask_check(const char *s, const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (mask_bytes_ok(s, why) < 0)
        return -1;
    if (strchr(s, '@')) {
        *why = "a domain mask has no '@'";
        return -1;
    }
    return domain_part_ok(s, false, why);
}

int addr_mask_check(const char *s, const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (mask_bytes_ok(s, why) < 0)
        return -1;
    const char *at = strchr(s, '@');
    if (at == NULL)
        return domain_part_ok(s, false, why);
    if (strchr(at + 1, '@')) {
        *why = "more than one '@'";
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)at; p++)
        if (*p < 0x80 && (strchr("<>()[]\\,;:\"", *p) != NULL)) {
            *why = "bad character in local part";
            return -1;
        }
    if (at == s || at[1] == 0) {
        *why = "empty local part or domain (use '*')";
        return -1;
    }
    return domain_part_ok(at + 1, at[1] == '[', why);
}

/* With both kinds allowed: which one is this item? */
static bool looks_like_ip(const char *s)
{
    if (strpbrk(s, "@*?"))
        return false;
    return strchr(s, ':') != NULL || strspn(s, "0123456789./") == strlen(s);
}

static void masklist_add_ip(struct addr_masklist *l, const struct addr_ipmask *m)
{
    l->ips = xreallocarray(l->ips, l->nips + 1, sizeof(*l->ips));
    l->ips[l->nips++] = *m;
}

static void masklist_add_mask(struct addr_masklist *l, const char *s)
{
    char *copy = xstrdup(s);

    for (char *p = copy; *p; p++)
        *p = (char)lower((unsigned char)*p);
    l->masks = xreallocarray(l->masks, l->nmasks + 1, sizeof(*l->masks));
    l->masks[l->nmasks++] = copy;
}

static int masklist_add(struct addr_masklist *l, const char *item, unsigned flags,
                        const char **why)
{
    struct addr_ipmask m;

    if (strcasecmp(item, "any") == 0) {
        if (flags & ADDR_LIST_IP) {
            m.any = true;
            addr_ipmask_parse("any", &m, why);
            masklist_add_ip(l, &m);
        }
        if (flags & ADDR_LIST_ADDR)
            masklist_add_mask(l, "*");
        return 0;
    }
    bool ip = (flags & ADDR_LIST_IP) &&
              (!(flags & ADDR_LIST_ADDR) || looks_like_ip(item));
    if (ip) {
        if (addr_ipmask_parse(item, &m, why) < 0)
            return -1;
        masklist_add_ip(l, &m);
        return 0;
    }
    if (!(flags & ADDR_LIST_ADDR)) {
        *why = "not an IP mask";
        return -1;
    }
    if (addr_mask_check(item, why) < 0)
        return -1;
    masklist_add_mask(l, item);
    return 0;
}

int addr_masklist_init(struct addr_masklist *l, const char *const *items, unsigned flags,
                       const char **why, size_t *bad)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    memset(l, 0, sizeof(*l));
    for (size_t i = 0; items && items[i]; i++) {
        if (masklist_add(l, items[i], flags, why) < 0) {
            if (bad)
                *bad = i;
            addr_masklist_free(l);
            return -1;
        }
    }
    return 0;
}

void addr_masklist_free(struct addr_masklist *l)
{
    for (size_t i = 0; i < l->nmasks; i++)
        free(l->masks[i]);
    free(l->masks);
    free(l->ips);
    memset(l, 0, sizeof(*l));
}

bool addr_masklist_match_ipbin(const struct addr_masklist *l, const struct addr_ip *ip)
{
    for (size_t i = 0; i < l->nips; i++)
        if (addr_ipmask_match(&l->ips[i], ip))
            return true;
    return false;
}

bool addr_masklist_match_ip(const struct addr_masklist *l, const char *ip)
{
    struct addr_ip a;
    return addr_ip_parse(ip, &a) == 0 && addr_masklist_match_ipbin(l, &a);
}

bool addr_masklist_match_addr(const struct addr_masklist *l, const char *addr)
{
    for (size_t i = 0; i < l->nmasks; i++)
        if (addr_mask_match(l->masks[i], addr))
            return true;
    return false;
}

bool addr_masklist_empty(const struct addr_masklist *l)
{
    return l->nips == 0 && l->nmasks == 0;
}
