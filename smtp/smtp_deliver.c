/*
 * smtp_deliver - one delivery request from qmgr: find the servers of the
 * nexthop, try their addresses in order, collect a result per recipient,
 * log them, and hand the delivery back to smtp.c for the reply.
 *
 * Interface: smtp_delivery_start, smtp_delivery_session_done,
 * smtp_delivery_fail_pending, smtp_rcpt_result, smtp_delivery_free.
 *
 * Routing (CONTRACTS.md): "[host]" / "[host]:port" is that host (an IP
 * literal, or its A/AAAA records), no MX lookup; "domain" is the MX hosts
 * of domain by preference, or the domain's own A/AAAA when it has no MX.
 * A null MX (RFC 7505, "MX 0 .") is a permanent failure, 5.1.10.  MX hosts
 * are resolved lazily: the next host only when the addresses of the ones
 * before all failed.  At most smtp_var.max_addresses addresses are tried.
 *
 * Outcomes: DNS trouble (TEMPFAIL) defers; a domain with neither MX nor
 * address bounces (5.1.2); when no address could be connected the
 * recipients are deferred with the last connect error and unreachable=1.
 *
 * Logs: one line per recipient in Postfix's shape
 *   "ID: to=<rcpt>, relay=NAME[IP]:PORT, delay=D, delays=a/b/c/d,
 *    dsn=X.Y.Z, status=sent (reply)"
 * a: arrival to our receipt of the request, b: until the first connect,
 * c: connection set-up (greeting, EHLO, TLS), d: the transaction.
 */
#include "smtp.h"

#include "dns/dns.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define SMTP_MAX_MX 20

static void delivery_next(struct smtp_delivery *d);
static void delivery_finish(struct smtp_delivery *d);

uint64_t smtp_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

void smtp_rcpt_result(struct smtp_rcpt *r, enum smtp_rcpt_state st, const char *dsn,
                      const char *reply)
{
    r->state = st;
    str_copy(r->dsn, dsn, sizeof(r->dsn));
    free(r->reply);
    r->reply = xstrdup(reply);
}

void smtp_delivery_fail_pending(struct smtp_delivery *d, bool permanent, const char *dsn,
                                const char *reply)
{
    for (size_t i = 0; i < d->nrcpts; i++)
        if (d->rcpts[i].state == SMTP_RCPT_PENDING)
            smtp_rcpt_result(&d->rcpts[i], permanent ? SMTP_RCPT_BOUNCED : SMTP_RCPT_DEFERRED,
                             dsn, reply);
}

/* Add one address (text form) of host; false when it is not an address. */
static bool add_address(struct smtp_delivery *d, const char *host, const char *ip)
{
    struct smtp_addr a;
    memset(&a, 0, sizeof(a));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a.sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.sa;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)d->nh.port);
        a.salen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)d->nh.port);
        a.salen = sizeof(*s6);
    } else {
        return false;
    }
    if (d->naddrs >= smtp_var.max_addresses)
        return true;
    str_copy(a.ip, ip, sizeof(a.ip));
    a.host = xstrdup(host);
    d->addrs = xreallocarray(d->addrs, d->naddrs + 1, sizeof(*d->addrs));
    d->addrs[d->naddrs++] = a;
    return true;
}

/* IPv4 before IPv6 among the addresses of one host (stable). */
static void order_family(struct smtp_delivery *d, size_t from)
{
    size_t n = d->naddrs - from, k = 0;
    if (n < 2)
        return;
    struct smtp_addr *tmp = xcalloc(n, sizeof(*tmp));
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = from; i < d->naddrs; i++)
            if ((d->addrs[i].sa.ss_family == AF_INET) == (pass == 0))
                tmp[k++] = d->addrs[i];
    memcpy(d->addrs + from, tmp, n * sizeof(*tmp));
    free(tmp);
}

static void note_dns_error(struct smtp_delivery *d, const struct dns_result *r, const char *host)
{
    buf_reset(&d->last_error);
    if (r->status == DNS_TEMPFAIL) {
        d->dns_tempfail = true;
        buf_printf(&d->last_error, "Host or domain name not found. Name service error for "
                   "name=%s type=%s: Host not found, try again", host, dns_type_name(r->type));
    } else {
        buf_printf(&d->last_error, "Host or domain name not found. Name service error for "
                   "name=%s type=%s: Host not found", host, dns_type_name(r->type));
    }
}

struct host_lookup {
    struct smtp_delivery *d;
    size_t from;
};

static void address_cb(const struct dns_result *r, void *arg)
{
    struct host_lookup *hl = arg;
    struct smtp_delivery *d = hl->d;
    const char *host = d->mx[d->dns_host - 1].host;
    if (r->status == DNS_OK) {
        for (size_t i = 0; i < r->count; i++)
            add_address(d, host, r->records[i]);
    } else if (d->naddrs == hl->from) {
        note_dns_error(d, r, host);
    }
    if (--d->dns_pending > 0)
        return;
    order_family(d, hl->from);
    free(hl);
    delivery_next(d);
}

/* Resolve the next MX host (or the static host). */
static void resolve_host(struct smtp_delivery *d)
{
    const char *host = d->mx[d->dns_host++].host;
    if (add_address(d, host, host)) {
        delivery_next(d);
        return;
    }
    if (strcasecmp(host, "localhost") == 0) {
        add_address(d, host, "127.0.0.1");
        delivery_next(d);
        return;
    }
    struct host_lookup *hl = xcalloc(1, sizeof(*hl));
    hl->d = d;
    hl->from = d->naddrs;
    d->dns_pending = 2;
    dns_lookup(DNS_T_A, host, address_cb, hl);
    dns_lookup(DNS_T_AAAA, host, address_cb, hl);
}

static void add_mx(struct smtp_delivery *d, const char *host, unsigned pref)
{
    if (d->nmx >= SMTP_MAX_MX)
        return;
    d->mx = xreallocarray(d->mx, d->nmx + 1, sizeof(*d->mx));
    d->mx[d->nmx].host = xstrdup(host);
    d->mx[d->nmx].pref = pref;
    d->nmx++;
}

static void mx_cb(const struct dns_result *r, void *arg)
{
    struct smtp_delivery *d = arg;
    if (r->null_mx) {
        buf_reset(&d->last_error);
        buf_printf(&d->last_error, "Domain %s does not accept mail (nullMX)", d->nh.host);
        smtp_delivery_fail_pending(d, true, "5.1.10", d->last_error.data);
        delivery_finish(d);
        return;
    }
    if (r->status == DNS_TEMPFAIL) {
        note_dns_error(d, r, d->nh.host);
        smtp_delivery_fail_pending(d, false, "4.4.3", d->last_error.data);
        delivery_finish(d);
        return;
    }
    if (r->status == DNS_OK) {
        for (size_t i = 0; i < r->count; i++)
            add_mx(d, r->mx[i].host, r->mx[i].pref);
    }
    if (d->nmx == 0) {
        add_mx(d, d->nh.host, 0);   /* no MX: the domain's own address */
        d->mx_fallback = true;
    }
    delivery_next(d);
}

/* All candidates are used up: give every pending recipient a result. */
static void delivery_exhausted(struct smtp_delivery *d)
{
    if (d->naddrs == 0 && !d->dns_tempfail && d->last_error.len && d->nh.use_mx) {
        smtp_delivery_fail_pending(d, true, d->mx_fallback ? "5.1.2" : "5.4.4",
                                   d->last_error.data);
    } else if (d->naddrs == 0) {
        smtp_delivery_fail_pending(d, false, "4.4.3",
                                   d->last_error.len ? d->last_error.data : "no address found");
    } else {
        if (d->relay[0] == 0)
            d->unreachable = true;
        smtp_delivery_fail_pending(d, d->last_error_permanent,
                                   d->last_error_dsn[0] ? d->last_error_dsn : "4.4.1",
                                   d->last_error.len ? d->last_error.data : "connection failed");
    }
    delivery_finish(d);
}

static bool any_pending(const struct smtp_delivery *d)
{
    for (size_t i = 0; i < d->nrcpts; i++)
        if (d->rcpts[i].state == SMTP_RCPT_PENDING)
            return true;
    return false;
}

static void delivery_next(struct smtp_delivery *d)
{
    if (!any_pending(d)) {
        delivery_finish(d);
    } else if (d->tls_plain_retry && d->next_addr > 0) {
        smtp_session_start(d, &d->addrs[d->next_addr - 1], d->nh.port);
    } else if (d->fresh_retry && d->next_addr > 0) {
        d->fresh_retry = false;     /* a stale cached connection */
        d->no_cache = true;
        smtp_session_start(d, &d->addrs[d->next_addr - 1], d->nh.port);
    } else if (d->next_addr < d->naddrs) {
        const struct smtp_addr *a = &d->addrs[d->next_addr++];
        if (!d->t_connect)
            d->t_connect = smtp_now_us();
        smtp_session_start(d, a, d->nh.port);
    } else if (d->dns_host < d->nmx && d->naddrs < smtp_var.max_addresses) {
        resolve_host(d);
    } else {
        delivery_exhausted(d);
    }
}

void smtp_delivery_session_done(struct smtp_delivery *d, bool retry)
{
    d->session = NULL;
    if (retry)
        delivery_next(d);
    else
        delivery_finish(d);
}

void smtp_delivery_start(struct smtp_delivery *d)
{
    const char *why = NULL;
    d->t_received = smtp_now_us();
    buf_init(&d->last_error);
    str_copy(d->relay, "", sizeof(d->relay));
    if (route_nexthop_parse(d->nexthop, &d->nh) < 0) {
        smtp_delivery_fail_pending(d, false, "4.3.5", "mail routing error: bad next hop");
        delivery_finish(d);
        return;
    }
    if (queue_file_read(d->fd, &d->qf, &why) < 0) {
        buf_printf(&d->last_error, "cannot read the queue file: %s", why);
        smtp_delivery_fail_pending(d, false, "4.3.0", d->last_error.data);
        delivery_finish(d);
        return;
    }
    d->qf_loaded = true;
    if (d->nh.use_mx) {
        dns_lookup(DNS_T_MX, d->nh.host, mx_cb, d);
    } else {
        add_mx(d, d->nh.host, 0);
        delivery_next(d);
    }
}

/* Postfix's delay format: 2 significant digits below 10 s, whole above. */
static void fmt_delay(struct buf *b, uint64_t from, uint64_t to)
{
    double s = to > from ? (double)(to - from) / 1e6 : 0.0;
    if (s >= 10)
        buf_printf(b, "%.0f", s);
    else if (s < 0.005)
        buf_append_str(b, "0");
    else if (s < 0.01)
        buf_append_str(b, "0.01");
    else
        buf_printf(b, "%.2g", s);
}

static const char *state_name(enum smtp_rcpt_state st)
{
    switch (st) {
    case SMTP_RCPT_SENT: return "sent";
    case SMTP_RCPT_BOUNCED: return "bounced";
    default: return "deferred";
    }
}

static void log_results(struct smtp_delivery *d)
{
    struct buf delays = BUF_INIT;
    uint64_t arrival = d->arrival_us && d->arrival_us < d->t_received ? d->arrival_us
                                                                      : d->t_received;
    uint64_t conn = d->t_connect ? d->t_connect : d->t_done;
    uint64_t setup = d->t_connected ? d->t_connected : d->t_done;
    buf_append_str(&delays, "delay=");
    fmt_delay(&delays, arrival, d->t_done);
    buf_append_str(&delays, ", delays=");
    fmt_delay(&delays, arrival, d->t_received);
    buf_append_byte(&delays, '/');
    fmt_delay(&delays, d->t_received, conn);
    buf_append_byte(&delays, '/');
    fmt_delay(&delays, conn, setup);
    buf_append_byte(&delays, '/');
    fmt_delay(&delays, setup, d->t_done);
    for (size_t i = 0; i < d->nrcpts; i++) {
        const struct smtp_rcpt *r = &d->rcpts[i];
        log_msg("%s: to=<%s>, relay=%s, %s, dsn=%s, status=%s (%s)", d->id, r->addr,
                d->relay[0] ? d->relay : "none", delays.data, r->dsn, state_name(r->state),
                r->reply ? r->reply : "");
    }
    buf_free(&delays);
}

static void delivery_finish(struct smtp_delivery *d)
{
    smtp_delivery_fail_pending(d, false, "4.3.0", "delivery ended without a result");
    d->t_done = smtp_now_us();
    log_results(d);
    d->done(d, d->done_arg);
}

void smtp_delivery_free(struct smtp_delivery *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nrcpts; i++) {
        free(d->rcpts[i].addr);
        free(d->rcpts[i].orcpt);
        free(d->rcpts[i].reply);
    }
    for (size_t i = 0; i < d->naddrs; i++)
        free(d->addrs[i].host);
    for (size_t i = 0; i < d->nmx; i++)
        free(d->mx[i].host);
    free(d->rcpts);
    free(d->addrs);
    free(d->mx);
    if (d->qf_loaded)
        queue_file_free(&d->qf);
    if (d->fd >= 0)
        close(d->fd);
    buf_free(&d->last_error);
    free(d->id);
    free(d->nexthop);
    free(d->sender);
    free(d->envid);
    free(d->ret);
    free(d);
}
