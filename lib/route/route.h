/*
 * route - the next hop of a recipient: [mailgw.forward] ForwardRoute
 * (reference §1.5), else the MX of the recipient's domain.
 *
 * ForwardRoute lines, first match wins:
 *   MASK domain.tld       MX hosts of domain.tld        -> "domain.tld"
 *   MASK [host]           host, port 25, no MX lookup   -> "[host]"
 *   MASK [host:port]      host on port, no MX lookup    -> "[host]:port"
 *   MASK [host]:port      the same (also for IPv6: [::1]:2525)
 *   MASK domain.tld:port  MX hosts of domain.tld, on port (an extension,
 *                         as Postfix's "domain:port"; tests use it)
 * MASK is a recipient address mask with '*' and '?' (case-insensitive);
 * a mask without '@' is a domain mask (the 5.0 form) and matches the
 * recipient's domain.  A recipient matching no line goes to its own
 * domain ("example.com", lower-cased).
 *
 * The nexthop string is what qmgr groups deliveries by and what it sends
 * to smtp (CONTRACTS.md, delivery protocol); route_nexthop_parse() turns
 * it back into host, port and whether to look up MX records.
 *
 * Diagnostics: route_table_new() appends one line per bad entry to diag
 * ("ForwardRoute: bad entry 'x': reason") and returns NULL.
 */
#ifndef MAILGW_ROUTE_H
#define MAILGW_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define ROUTE_HOST_MAX 255

struct route_table;
struct conf;

/* Build a table from ForwardRoute items ("MASK NEXTHOP").  NULL on error
 * (diag says why).  n == 0 gives an empty table (MX of every domain). */
struct route_table *route_table_new(const char *const *items, size_t n, struct buf *diag);
/* The same from [mailgw.forward] ForwardRoute of a loaded config. */
struct route_table *route_table_from_conf(const struct conf *c, struct buf *diag);
void route_table_free(struct route_table *t);

/* The nexthop of rcpt ("local@domain") into out (reset first).  Returns 0,
 * or -1 when no line matches and rcpt has no usable domain. */
int route_lookup(const struct route_table *t, const char *rcpt, struct buf *out);

struct route_nexthop {
    char host[ROUTE_HOST_MAX + 1];  /* name or IP literal, no brackets */
    unsigned port;                  /* 25 unless given */
    bool use_mx;                    /* "domain" form: MX lookup */
};

/* Parse "domain", "domain:port", "[host]", "[host]:port" or
 * "[host:port]".  0 or -1. */
int route_nexthop_parse(const char *s, struct route_nexthop *out);

/* The wildcard match of the table (lib/addr's addr_wildmatch: '*' any
 * run, '?' one character, ASCII case-insensitive). */
bool route_mask_match(const char *mask, const char *s);

#endif
