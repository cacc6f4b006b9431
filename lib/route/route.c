/*
 * route - ForwardRoute table and nexthop strings (see route.h).
 *
 * Interface: route_table_new, route_table_from_conf, route_table_free,
 * route_lookup, route_nexthop_parse, route_mask_match.
 *
 * Masks are matched by lib/addr (addr_mask_match: a mask with '@' against
 * the whole address, one without against the domain, "*" anything).
 * Diagnostics: configuration errors go to the caller's diag buffer; lookups
 * never log.  Security: recipients come from the network; host names
 * are length-checked and limited to name/IP-literal characters so a
 * nexthop string is always safe in logs and proto attributes.
 */
#include "route/route.h"

#include "addr/addr.h"
#include "conf/conf.h"
#include "util/mem.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct route_entry {
    char *mask;
    char *nexthop;      /* normalised nexthop string */
};

struct route_table {
    struct route_entry *entries;
    size_t n;
};

bool route_mask_match(const char *mask, const char *s)
{
    return addr_wildmatch(mask, s);
}

static bool host_char_ok(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_' || c == ':';
}

static bool host_ok(const char *h, size_t n)
{
    if (n == 0 || n > ROUTE_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!host_char_ok(h[i]))
            return false;
    return true;
}

static int parse_port(const char *s, unsigned *port)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v == 0 || v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}

/* "[host]" "[host]:port" "[host:port]" (one ':' inside = port). */
static int parse_bracketed(const char *s, struct route_nexthop *out)
{
    const char *close = strchr(s, ']');
    if (!close)
        return -1;
    const char *in = s + 1;
    size_t n = (size_t)(close - in);
    const char *colon = memchr(in, ':', n);
    bool one_colon = colon && !memchr(colon + 1, ':', (size_t)(close - colon - 1));
    if (close[1] == ':') {
        if (parse_port(close + 2, &out->port) < 0)
            return -1;
    } else if (close[1] != 0) {
        return -1;
    } else if (one_colon) {
        char portbuf[8];
        size_t pn = (size_t)(close - colon - 1);
        if (pn == 0 || pn >= sizeof(portbuf))
            return -1;
        memcpy(portbuf, colon + 1, pn);
        portbuf[pn] = 0;
        if (parse_port(portbuf, &out->port) < 0)
            return -1;
        n = (size_t)(colon - in);
    }
    if (!host_ok(in, n))
        return -1;
    memcpy(out->host, in, n);
    out->host[n] = 0;
    return 0;
}

int route_nexthop_parse(const char *s, struct route_nexthop *out)
{
    memset(out, 0, sizeof(*out));
    out->port = 25;
    if (*s == '[')
        return parse_bracketed(s, out);
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (!host_ok(s, n) || memchr(s, ':', n))
        return -1;
    if (colon && parse_port(colon + 1, &out->port) < 0)
        return -1;
    memcpy(out->host, s, n);
    out->host[n] = 0;
    out->use_mx = true;
    return 0;
}

/* Canonical nexthop string of a parsed nexthop. */
static char *nexthop_string(const struct route_nexthop *nh)
{
    if (nh->use_mx && nh->port == 25)
        return xstrdup(nh->host);
    if (nh->use_mx)
        return xasprintf("%s:%u", nh->host, nh->port);
    if (nh->port == 25)
        return xasprintf("[%s]", nh->host);
    return xasprintf("[%s]:%u", nh->host, nh->port);
}

static int add_entry(struct route_table *t, const char *item, struct buf *diag)
{
    const char *sp = item + strcspn(item, " \t");
    const char *val = sp + strspn(sp, " \t");
    struct route_nexthop nh;
    if (sp == item || *val == 0 || val[strcspn(val, " \t")] != 0) {
        buf_printf(diag, "ForwardRoute: bad entry '%s': expected 'MASK NEXTHOP'\n", item);
        return -1;
    }
    if (route_nexthop_parse(val, &nh) < 0) {
        buf_printf(diag, "ForwardRoute: bad entry '%s': bad next hop '%s'"
                   " (use host, [host] or [host:port])\n", item, val);
        return -1;
    }
    struct route_entry *e = &t->entries[t->n++];
    e->mask = xstrndup(item, (size_t)(sp - item));
    e->nexthop = nexthop_string(&nh);
    return 0;
}

struct route_table *route_table_new(const char *const *items, size_t n, struct buf *diag)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    t->entries = xcalloc(n ? n : 1, sizeof(*t->entries));
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (add_entry(t, items[i], diag) < 0)
            bad = 1;
    if (bad) {
        route_table_free(t);
        return NULL;
    }
    return t;
}

struct route_table *route_table_from_conf(const struct conf *c, struct buf *diag)
{
    const char *const *items = NULL;
    size_t n = conf_list(c, "mailgw.forward", "ForwardRoute", &items);
    return route_table_new(items, n, diag);
}

void route_table_free(struct route_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].mask);
        free(t->entries[i].nexthop);
    }
    free(t->entries);
    free(t);
}

/* user@[192.0.2.1] / user@[IPv6:2001:db8::1]: that address, port 25. */
static int domain_literal(const char *domain, struct buf *out)
{
    struct route_nexthop nh = { .port = 25 };
    const char *close = strchr(domain, ']');
    if (!close || close[1] != 0)
        return -1;
    bool v6 = strncasecmp(domain + 1, "IPv6:", 5) == 0;
    char *lit = xasprintf("[%.*s]", (int)(close - domain - (v6 ? 6 : 1)), domain + (v6 ? 6 : 1));
    int rc = parse_bracketed(lit, &nh);
    free(lit);
    if (rc < 0 || nh.port != 25)
        return -1;
    buf_printf(out, "[%s]", nh.host);
    return 0;
}

int route_lookup(const struct route_table *t, const char *rcpt, struct buf *out)
{
    const char *at = strrchr(rcpt, '@');
    const char *domain = at ? at + 1 : "";
    buf_reset(out);
    for (size_t i = 0; t && i < t->n; i++) {
        const struct route_entry *e = &t->entries[i];
        if (addr_mask_match(e->mask, rcpt)) {
            buf_append_str(out, e->nexthop);
            return 0;
        }
    }
    if (domain[0] == '[')
        return domain_literal(domain, out);
    size_t n = strlen(domain);
    if (!host_ok(domain, n) || strchr(domain, ':'))
        return -1;
    for (size_t i = 0; i < n; i++)
        buf_append_byte(out, (uint8_t)tolower((unsigned char)domain[i]));
    return 0;
}
