/*
 * dns - the asynchronous, caching, non-recursive resolver of every mailgw daemon.
 *
 * Queries are built and answers parsed with ldns; the I/O is ours: one
 * non-blocking UDP socket per query (connect()ed to the server, so the
 * kernel drops datagrams from anyone else), TCP when the answer is
 * truncated, all on the caller's libevent base, so any number of queries
 * run at once.  Nameservers: [mailgw.resolve] Nameserver (ip, ip:port,
 * [ipv6]:port), else the "nameserver" lines of /etc/resolv.conf, else
 * 127.0.0.1.  Each attempt waits IONetworkTimeout seconds; attempts go
 * round the servers (two rounds, at least two attempts) before giving up.
 *
 * Every lookup ends with exactly one callback (unless cancelled):
 *   DNS_OK        records of the asked type (CNAME chains followed)
 *   DNS_NXDOMAIN  no such name, or the name has no record of that type
 *   DNS_TEMPFAIL  timeout, SERVFAIL/REFUSED/other rcode from every server,
 *                 malformed answer, local error
 * Answers whose ID, question or source do not match the query are ignored
 * (the query keeps waiting); they are never accepted.  Answer counts and
 * sizes are never trusted: ldns parses, this module checks.
 *
 * Cache: positive answers for their TTL (capped at DNS_CACHE_MAX_TTL),
 * NXDOMAIN for [mailgw.resolve] UnresolvedTTL; TEMPFAIL is never cached.
 * Counters as reference §3.7: mta_dns_queries_total (every lookup),
 * mta_dns_queries_through_cache (answered from the cache),
 * mta_dns_queries_failed (TEMPFAIL results).
 *
 * Callbacks always run from the event loop, never from inside the call
 * that started the lookup.  A result is valid only during its callback
 * (dns_result_dup() to keep one).
 *
 * Security: names from the network (PTR, MX targets) are only returned
 * when they are plain host names (letters, digits, '-', '_', '.'), so they
 * are safe in logs and as query names; TXT strings have control bytes
 * replaced by '?'.
 */
#ifndef MAILGW_DNS_H
#define MAILGW_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct event_base;

#define DNS_CACHE_MAX_TTL 3600
#define DNS_MAX_NAME 256        /* text form incl. NUL */

enum dns_type {
    DNS_T_A = 1,
    DNS_T_PTR = 12,
    DNS_T_MX = 15,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
};

enum dns_status {
    DNS_OK = 0,
    DNS_NXDOMAIN,
    DNS_TEMPFAIL,
};

struct dns_mx {
    unsigned pref;
    char *host;                 /* no trailing dot */
};

struct dns_result {
    enum dns_status status;
    enum dns_type type;
    char *name;                 /* the name asked for (as given) */
    uint32_t ttl;               /* smallest TTL of the records used */
    size_t count;               /* records / mx entries */
    char **records;             /* A/AAAA: address text; PTR: host name;
                                 * TXT: the strings of one record joined;
                                 * MX: the host (same order as mx) */
    struct dns_mx *mx;          /* MX only: sorted by preference */
    bool null_mx;               /* MX "." (RFC 7505): status NXDOMAIN */
    const char *reason;         /* TEMPFAIL: "timeout", "SERVFAIL", ... */
};

typedef void (*dns_cb)(const struct dns_result *r, void *arg);

/* A pending lookup (of any kind below); valid until its callback starts. */
struct dns_req;

/* Set up the resolver on base (NULL: a private base, for the blocking
 * wrapper) with conf (NULL: /etc/resolv.conf and defaults).  Calling it
 * again replaces servers and settings (the cache is kept).  0 / -1. */
int dns_init(struct event_base *base, const struct conf *conf);
/* Explicit settings (tests, CLIs): servers as in Nameserver; timeout in
 * seconds; negative_ttl for NXDOMAIN.  0 / -1 (a bad server address). */
int dns_configure(const char *const *servers, size_t nservers,
                  unsigned timeout, unsigned negative_ttl);
/* Cancel everything, free the cache and the private base. */
void dns_shutdown(void);
struct event_base *dns_base(void);

struct dns_req *dns_lookup(enum dns_type type, const char *name, dns_cb cb, void *arg);
/* The callback is not called after this. */
void dns_cancel(struct dns_req *req);

/* Forward-confirmed reverse DNS: PTR of ip, then A/AAAA of each name (at
 * most 4); DNS_OK with the first name whose addresses contain ip (in
 * r->records[0]); DNS_NXDOMAIN when there is no PTR or none confirms;
 * DNS_TEMPFAIL when a failure left it open. */
struct dns_req *dns_fcrdns(const char *ip, dns_cb cb, void *arg);

/* DNSBL: spec is "zone" or "zone=127.0.0.2,127.0.0.4".  Looks up
 * reversed-ip.zone A; a listing is an answer address inside 127.0.0.0/8,
 * not 127.255.255.0/24 (error codes), and, when codes are given, equal to
 * one of them.  DNS_OK = listed (r->records: the listing addresses),
 * DNS_NXDOMAIN = not listed, DNS_TEMPFAIL = unknown. */
struct dns_req *dns_dnsbl(const char *ip, const char *spec, dns_cb cb, void *arg);
/* true when addr (text) is a listing for spec (the rule above). */
bool dns_dnsbl_match(const char *spec, const char *addr);

/* "1.2.0.192.in-addr.arpa" / nibbles + "ip6.arpa"; with zone (may be NULL)
 * "1.2.0.192.ZONE".  0 / -1 (not an address, too long). */
int dns_reverse_name(const char *ip, const char *zone, char *out, size_t size);

/* Blocking wrapper (CLIs, tests): runs the resolver's base until the
 * answer is there.  Never NULL; free with dns_result_free. */
struct dns_result *dns_resolve(enum dns_type type, const char *name);
struct dns_result *dns_resolve_fcrdns(const char *ip);
struct dns_result *dns_resolve_dnsbl(const char *ip, const char *spec);

struct dns_result *dns_result_dup(const struct dns_result *r);
void dns_result_free(struct dns_result *r);

struct dns_counters {
    uint64_t queries_total;
    uint64_t queries_through_cache;
    uint64_t queries_failed;
};
void dns_counters(struct dns_counters *out);

/* Answer validation (exposed for the fuzz target): parse wire as the
 * answer to the question (type, qname, id) and fill r.  Returns 0 when
 * the packet is an answer to this question (r set: OK/NXDOMAIN/TEMPFAIL
 * by rcode), -1 when it must be ignored (malformed, wrong ID/question). */
int dns_answer_parse(const uint8_t *wire, size_t len, uint16_t id,
                     enum dns_type type, const char *qname, struct dns_result *r);
/* Free what dns_answer_parse put into r (not r itself). */
void dns_result_clear(struct dns_result *r);
const char *dns_type_name(enum dns_type type);
const char *dns_status_name(enum dns_status status);

#endif
