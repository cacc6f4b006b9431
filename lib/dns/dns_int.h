/*
 * dns_int - what the lib/dns files share and nobody else uses: the
 * request header every pending lookup starts with, the cache, the result
 * helpers and the resolver settings.
 */
#ifndef MAILGW_DNS_INT_H
#define MAILGW_DNS_INT_H

#include "dns/dns.h"
#include "util/buf.h"

/* Every pending operation starts with this, so dns_cancel() can stop any
 * of them. */
struct dns_req {
    void (*cancel)(struct dns_req *req);
};

/* At most this many records are kept from one answer. */
#define DNS_MAX_RECORDS 64
/* CNAME chain length followed inside one answer. */
#define DNS_MAX_CNAME 8

/* Cache (dns_cache.c).  A hit returns a copy (caller frees). */
struct dns_result *dns_cache_get(enum dns_type type, const char *name);
void dns_cache_put(const struct dns_result *r, uint32_t ttl);
void dns_cache_clear(void);

/* Result helpers (dns_answer.c). */
void dns_result_add(struct dns_result *r, const char *text);
void dns_result_set(struct dns_result *r, enum dns_type type, const char *name,
                    enum dns_status status, const char *reason);
/* Name checks: a plain host name ("" = the root allowed when root_ok). */
bool dns_name_plain(const char *s, bool root_ok);

/* Counters (dns.c). */
void dns_count_failed(void);

#endif
