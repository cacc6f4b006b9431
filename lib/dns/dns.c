/*
 * dns - the resolver core: settings, nameservers, one query's life (UDP,
 * TCP on truncation, retries across servers), cache use and counters.
 * See dns.h for the interface and the meaning of the results.
 *
 * A query: cache hit -> delivered by a zero timer.  Otherwise an attempt
 * sends the packet from a fresh non-blocking UDP socket connect()ed to
 * server (attempt % nservers) and arms a timer of IONetworkTimeout.  A
 * datagram that is not the answer to our question (ID, QR, question) is
 * ignored.  SERVFAIL/REFUSED/other rcodes, a malformed answer, a timeout
 * or a send error move on to the next attempt; after the last attempt the
 * result is DNS_TEMPFAIL with the last reason.  TC=1 repeats the question
 * over TCP to the same server.
 *
 * Diagnostics: log_debug per query outcome; log_warn for a bad Nameserver
 * value and when no server is configured.
 *
 * Security: IDs come from getrandom(2); source ports from the kernel; the
 * connected socket drops foreign datagrams; answers are validated by
 * dns_answer_parse().  Every lookup ends (timer), so a caller always gets
 * a defined result.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <ldns/ldns.h>

#include "conf/conf.h"
#include "dns/dns_int.h"
#include "util/log.h"
#include "util/mem.h"

#define DNS_MAX_SERVERS 8

struct dns_server {
    struct sockaddr_storage sa;
    socklen_t salen;
};

struct dns_query {
    struct dns_req req;
    struct dns_query *prev, *next;      /* all pending queries */
    enum dns_type type;
    char *name;
    dns_cb cb;
    void *arg;
    uint16_t id;
    uint8_t *wire;
    size_t wirelen;
    unsigned attempt;
    int fd;                             /* UDP socket or -1 */
    struct event *ev_read;
    struct event *ev_timer;
    struct bufferevent *tcp;
    const char *reason;                 /* last failure */
    struct dns_result *cached;          /* a cache hit to deliver */
};

static struct {
    struct event_base *base;
    bool own_base;
    struct dns_server servers[DNS_MAX_SERVERS];
    size_t nservers;
    unsigned timeout;
    unsigned negative_ttl;
    struct dns_counters counters;
    struct dns_query *pending;
} dns;

static void query_attempt(struct dns_query *q);
static int query_tcp_start(struct dns_query *q);

/* "ip", "ip:port", "[ip6]", "[ip6]:port", "ip6" -> sockaddr. */
static int dns_parse_server(const char *s, struct dns_server *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port = NULL, *colon = strrchr(s, ':');
    unsigned long p = 53;
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;

    memset(out, 0, sizeof *out);
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || (size_t)(end - s - 1) >= sizeof host)
            return -1;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != '\0')
            return -1;
    } else if (colon && strchr(s, ':') == colon) {
        if ((size_t)(colon - s) >= sizeof host)
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    } else if (str_copy(host, s, sizeof host) >= sizeof host) {
        return -1;
    }
    if (port) {
        char *end;
        errno = 0;
        p = strtoul(port, &end, 10);
        if (errno || *port == '\0' || *end != '\0' || p == 0 || p > 65535)
            return -1;
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        out->salen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)p);
        out->salen = sizeof *sin6;
    } else {
        return -1;
    }
    return 0;
}

/* The nameserver lines of /etc/resolv.conf. */
static void dns_read_resolv_conf(void)
{
    FILE *f = fopen("/etc/resolv.conf", "re");
    char line[512], addr[256];

    if (!f)
        return;
    while (fgets(line, sizeof line, f) && dns.nservers < DNS_MAX_SERVERS) {
        if (sscanf(line, " nameserver %255s", addr) != 1)
            continue;
        if (strchr(addr, '%'))          /* scoped IPv6: not supported */
            continue;
        if (dns_parse_server(addr, &dns.servers[dns.nservers]) == 0)
            dns.nservers++;
    }
    fclose(f);
}

int dns_configure(const char *const *servers, size_t nservers,
                  unsigned timeout, unsigned negative_ttl)
{
    struct dns_server parsed[DNS_MAX_SERVERS];
    size_t n = 0;

    for (size_t i = 0; i < nservers && n < DNS_MAX_SERVERS; i++) {
        if (dns_parse_server(servers[i], &parsed[n]) < 0) {
            log_warn("dns: Nameserver %s: not an address (ip, ip:port, [ip6]:port)",
                     servers[i]);
            return -1;
        }
        n++;
    }
    memcpy(dns.servers, parsed, n * sizeof parsed[0]);
    dns.nservers = n;
    if (n == 0)
        dns_read_resolv_conf();
    if (dns.nservers == 0) {
        log_warn("dns: no nameserver configured; using 127.0.0.1");
        dns_parse_server("127.0.0.1", &dns.servers[0]);
        dns.nservers = 1;
    }
    dns.timeout = timeout ? timeout : 5;
    dns.negative_ttl = negative_ttl;
    return 0;
}

/* A parameter of [mailgw.resolve], when the table has it. */
static bool dns_conf_has(const struct conf *conf, const char *name)
{
    return conf && conf_param_find("mailgw.resolve", name) != NULL;
}

int dns_init(struct event_base *base, const struct conf *conf)
{
    const char *const *servers = NULL;
    size_t n = 0;
    unsigned timeout = 5, negative_ttl = 600;

    if (dns.own_base && base && dns.base != base) {
        event_base_free(dns.base);
        dns.own_base = false;
        dns.base = NULL;
    }
    if (base) {
        dns.base = base;
    } else if (!dns.base) {
        dns.base = event_base_new();
        if (!dns.base)
            return -1;
        dns.own_base = true;
    }
    if (dns_conf_has(conf, "Nameserver"))
        n = conf_list(conf, "mailgw.resolve", "Nameserver", &servers);
    if (dns_conf_has(conf, "IONetworkTimeout"))
        timeout = (unsigned)conf_int(conf, "mailgw.resolve", "IONetworkTimeout");
    if (dns_conf_has(conf, "UnresolvedTTL"))
        negative_ttl = (unsigned)conf_int(conf, "mailgw.resolve", "UnresolvedTTL");
    return dns_configure(servers, n, timeout, negative_ttl);
}

struct event_base *dns_base(void)
{
    return dns.base;
}

void dns_counters(struct dns_counters *out)
{
    *out = dns.counters;
}

void dns_count_failed(void)
{
    dns.counters.queries_failed++;
}

static uint16_t dns_random_id(void)
{
    static uint16_t pool[256];
    static size_t left;

    if (left == 0) {
        if (getrandom(pool, sizeof pool, 0) != (ssize_t)sizeof pool)
            log_fatal("dns: getrandom: %m");
        left = sizeof pool / sizeof pool[0];
    }
    return pool[--left];
}

/* Close the transport of the current attempt. */
static void query_close(struct dns_query *q)
{
    if (q->ev_read) {
        event_free(q->ev_read);
        q->ev_read = NULL;
    }
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
    }
    if (q->tcp) {
        bufferevent_free(q->tcp);
        q->tcp = NULL;
    }
    if (q->ev_timer)
        event_del(q->ev_timer);
}

static void query_free(struct dns_query *q)
{
    query_close(q);
    if (q->ev_timer)
        event_free(q->ev_timer);
    if (q->prev)
        q->prev->next = q->next;
    else if (dns.pending == q)
        dns.pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
    dns_result_free(q->cached);
    free(q->wire);
    free(q->name);
    free(q);
}

static void query_cancel(struct dns_req *req)
{
    query_free((struct dns_query *)req);
}

/* Deliver r (the query is freed first, so the callback may start new
 * lookups or cancel others freely). */
static void query_finish(struct dns_query *q, struct dns_result *r)
{
    dns_cb cb = q->cb;
    void *arg = q->arg;

    if (r->status == DNS_TEMPFAIL)
        dns.counters.queries_failed++;
    log_debug("dns: %s %s: %s%s%s", dns_type_name(q->type), q->name,
              dns_status_name(r->status), r->reason ? " " : "",
              r->reason ? r->reason : "");
    query_free(q);
    cb(r, arg);
}

/* The answer for this query: cache it and deliver. */
static void query_answer(struct dns_query *q, struct dns_result *r)
{
    uint32_t ttl;

    if (r->status == DNS_OK) {
        ttl = r->ttl < DNS_CACHE_MAX_TTL ? r->ttl : DNS_CACHE_MAX_TTL;
        dns_cache_put(r, ttl);
    } else if (r->status == DNS_NXDOMAIN) {
        dns_cache_put(r, dns.negative_ttl);
    }
    query_finish(q, r);
    dns_result_clear(r);
}

static void query_next(struct dns_query *q, const char *reason)
{
    q->reason = reason;
    query_close(q);
    q->attempt++;
    query_attempt(q);
}

/* One packet that may be our answer (UDP or TCP).  Returns true when the
 * query moved on (answered, failed over, or switched to TCP). */
static bool query_packet(struct dns_query *q, const uint8_t *p, size_t n, bool tcp)
{
    struct dns_result r;

    if (dns_answer_parse(p, n, q->id, q->type, q->name, &r) < 0)
        return false;
    if (!tcp && (p[2] & 0x02)) {
        dns_result_clear(&r);
        query_close(q);
        if (query_tcp_start(q) < 0)
            query_next(q, "TCP connect failed");
        return true;
    }
    if (r.status == DNS_TEMPFAIL) {
        const char *reason = r.reason;
        dns_result_clear(&r);
        query_next(q, reason);
        return true;
    }
    query_answer(q, &r);
    return true;
}

static void query_udp_read(evutil_socket_t fd, short what, void *arg)
{
    static uint8_t pkt[65536];
    struct dns_query *q = arg;

    /* Bounded: a flood of foreign datagrams cannot pin the loop. */
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(fd, pkt, sizeof pkt, 0);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            query_next(q, errno == ECONNREFUSED ? "connection refused" : "receive error");
            return;
        }
        if (query_packet(q, pkt, (size_t)n, false))
            return;
    }
}

/* The query's timer: the start of the first attempt (no transport open
 * yet, so even a local failure is reported from the loop), or the end of
 * an attempt's wait. */
static void query_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;

    if (q->fd < 0 && !q->tcp)
        query_attempt(q);
    else
        query_next(q, "timeout");
}

static void query_tcp_read(struct bufferevent *bev, void *arg)
{
    struct dns_query *q = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t hdr[2], *p;
    size_t need;

    if (evbuffer_get_length(in) < 2)
        return;
    evbuffer_copyout(in, hdr, 2);
    need = (size_t)get_u16(hdr) + 2;
    if (evbuffer_get_length(in) < need)
        return;
    p = evbuffer_pullup(in, (ev_ssize_t)need);
    if (!p || !query_packet(q, p + 2, need - 2, true))
        query_next(q, "bad TCP answer");
}

static void query_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        query_next(arg, "TCP error");
}

static int query_tcp_start(struct dns_query *q)
{
    const struct dns_server *srv = &dns.servers[q->attempt % dns.nservers];
    int fd = socket(srv->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    uint8_t len[2] = { (uint8_t)(q->wirelen >> 8), (uint8_t)q->wirelen };
    struct timeval tv = { (time_t)dns.timeout, 0 };

    if (fd < 0)
        return -1;
    q->tcp = bufferevent_socket_new(dns.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!q->tcp) {
        close(fd);
        return -1;
    }
    bufferevent_setcb(q->tcp, query_tcp_read, NULL, query_tcp_event, q);
    if (bufferevent_socket_connect(q->tcp, (const struct sockaddr *)&srv->sa,
                                   (int)srv->salen) < 0)
        return -1;
    bufferevent_write(q->tcp, len, 2);
    bufferevent_write(q->tcp, q->wire, q->wirelen);
    bufferevent_enable(q->tcp, EV_READ);
    evtimer_add(q->ev_timer, &tv);
    return 0;
}

/* Send over UDP to the attempt's server; -1 when that failed locally. */
static int query_udp_send(struct dns_query *q)
{
    const struct dns_server *srv = &dns.servers[q->attempt % dns.nservers];
    struct timeval tv = { (time_t)dns.timeout, 0 };

    q->fd = socket(srv->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        return -1;
    if (connect(q->fd, (const struct sockaddr *)&srv->sa, srv->salen) < 0
        || send(q->fd, q->wire, q->wirelen, 0) != (ssize_t)q->wirelen)
        return -1;
    q->ev_read = event_new(dns.base, q->fd, EV_READ | EV_PERSIST, query_udp_read, q);
    if (!q->ev_read)
        return -1;
    event_add(q->ev_read, NULL);
    evtimer_add(q->ev_timer, &tv);
    return 0;
}

static unsigned dns_max_attempts(void)
{
    unsigned n = dns.nservers >= 2 ? (unsigned)dns.nservers * 2 : 2;

    return n > 6 ? 6 : n;
}

static void query_attempt(struct dns_query *q)
{
    while (q->attempt < dns_max_attempts()) {
        if (query_udp_send(q) == 0)
            return;
        query_close(q);
        q->reason = "send error";
        q->attempt++;
    }
    {
        struct dns_result r = { 0 };
        dns_result_set(&r, q->type, q->name, DNS_TEMPFAIL,
                       q->reason ? q->reason : "no answer");
        query_finish(q, &r);
        dns_result_clear(&r);
    }
}

/* The query packet: our random ID, RD set, one question. */
static int query_build(struct dns_query *q)
{
    ldns_rdf *dname = ldns_dname_new_frm_str(q->name);
    ldns_pkt *pkt;
    ldns_status st;

    if (!dname)
        return -1;
    pkt = ldns_pkt_query_new(dname, (ldns_rr_type)q->type, LDNS_RR_CLASS_IN, LDNS_RD);
    if (!pkt)
        return -1;
    q->id = dns_random_id();
    ldns_pkt_set_id(pkt, q->id);
    st = ldns_pkt2wire(&q->wire, pkt, &q->wirelen);
    ldns_pkt_free(pkt);
    return st == LDNS_STATUS_OK ? 0 : -1;
}

/* Deliver a ready result (cache hit, invalid name) from the loop. */
static void query_deliver_ready(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    struct dns_result *r = q->cached;

    q->cached = NULL;
    query_finish(q, r);
    dns_result_free(r);
}

static struct dns_query *query_new(enum dns_type type, const char *name,
                                   dns_cb cb, void *arg)
{
    struct dns_query *q = xcalloc(1, sizeof *q);
    size_t n = strlen(name);

    q->req.cancel = query_cancel;
    q->type = type;
    /* One spelling for the wire and the cache: no trailing dot. */
    q->name = xstrndup(name, n > 1 && name[n - 1] == '.' ? n - 1 : n);
    q->cb = cb;
    q->arg = arg;
    q->fd = -1;
    q->next = dns.pending;
    if (dns.pending)
        dns.pending->prev = q;
    dns.pending = q;
    return q;
}

struct dns_req *dns_lookup(enum dns_type type, const char *name, dns_cb cb, void *arg)
{
    struct dns_query *q;

    if (!dns.base)
        dns_init(NULL, NULL);
    q = query_new(type, name, cb, arg);
    dns.counters.queries_total++;
    if (!dns_name_plain(q->name, false)) {
        q->cached = xcalloc(1, sizeof *q->cached);
        dns_result_set(q->cached, type, q->name, DNS_NXDOMAIN, "invalid name");
    } else if ((q->cached = dns_cache_get(type, q->name)) != NULL) {
        dns.counters.queries_through_cache++;
    } else if (query_build(q) < 0) {
        q->cached = xcalloc(1, sizeof *q->cached);
        dns_result_set(q->cached, type, q->name, DNS_NXDOMAIN, "invalid name");
    }
    if (q->cached) {
        struct timeval zero = { 0, 0 };
        q->ev_timer = evtimer_new(dns.base, query_deliver_ready, q);
        if (!q->ev_timer)
            log_fatal("dns: evtimer_new failed");
        evtimer_add(q->ev_timer, &zero);
        return &q->req;
    }
    q->ev_timer = evtimer_new(dns.base, query_timeout, q);
    if (!q->ev_timer)
        log_fatal("dns: evtimer_new failed");
    {
        struct timeval zero = { 0, 0 };
        evtimer_add(q->ev_timer, &zero);
    }
    return &q->req;
}

void dns_cancel(struct dns_req *req)
{
    if (req)
        req->cancel(req);
}

void dns_shutdown(void)
{
    while (dns.pending)
        query_free(dns.pending);
    dns_cache_clear();
    if (dns.own_base)
        event_base_free(dns.base);
    memset(&dns, 0, sizeof dns);
}
