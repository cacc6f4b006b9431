/*
 * dns_helpers - lookups built from plain ones: reverse names, forward-
 * confirmed rDNS, DNSBL queries with explicit result codes, and the
 * blocking wrappers for CLIs and tests.  See dns.h.
 *
 * DNSBL results: only an address in 127.0.0.0/8 outside 127.255.255.0/24
 * can be a listing (Spamhaus-style 127.255.255.x answers mean "query
 * refused", never "listed"); a zone given with codes lists only with one
 * of those codes.  Error codes are logged as a warning once per answer.
 *
 * Diagnostics: log_warn for DNSBL error answers.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns/dns_int.h"
#include "util/log.h"
#include "util/mem.h"

#define FCRDNS_MAX_NAMES 4

/* An address as family + bytes; IPv4-mapped IPv6 counts as IPv4. */
struct dns_ip {
    int family;
    unsigned char b[16];
};

static int dns_ip_parse(const char *s, struct dns_ip *ip)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    memset(ip, 0, sizeof *ip);
    if (inet_pton(AF_INET, s, ip->b) == 1) {
        ip->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, ip->b) != 1)
        return -1;
    ip->family = AF_INET6;
    if (memcmp(ip->b, mapped, sizeof mapped) == 0) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
        ip->family = AF_INET;
    }
    return 0;
}

static bool dns_ip_equal(const struct dns_ip *a, const struct dns_ip *b)
{
    return a->family == b->family
           && memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16) == 0;
}

int dns_reverse_name(const char *ip, const char *zone, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    struct dns_ip a;
    struct buf b = BUF_INIT;
    int rc = 0;

    if (dns_ip_parse(ip, &a) < 0)
        return -1;
    if (a.family == AF_INET) {
        buf_printf(&b, "%u.%u.%u.%u.", a.b[3], a.b[2], a.b[1], a.b[0]);
    } else {
        for (int i = 15; i >= 0; i--)
            buf_printf(&b, "%c.%c.", hex[a.b[i] & 15], hex[a.b[i] >> 4]);
    }
    buf_append_str(&b, zone ? zone : a.family == AF_INET ? "in-addr.arpa" : "ip6.arpa");
    if (b.len >= size || b.len >= DNS_MAX_NAME)
        rc = -1;
    else
        memcpy(out, b.data, b.len + 1);
    buf_free(&b);
    return rc;
}

/* ------------------------------------------------------------ DNSBL */

/* The zone part of "zone=code,code" (trimmed) into out. */
static int dnsbl_zone(const char *spec, char *out, size_t size)
{
    const char *end = strchr(spec, '=');
    size_t n = end ? (size_t)(end - spec) : strlen(spec);

    while (n > 0 && isspace((unsigned char)*spec)) {
        spec++;
        n--;
    }
    while (n > 0 && (isspace((unsigned char)spec[n - 1]) || spec[n - 1] == '.'))
        n--;
    if (n == 0 || n >= size)
        return -1;
    memcpy(out, spec, n);
    out[n] = '\0';
    return 0;
}

/* Is addr one of the comma-separated codes? */
static bool dnsbl_code_listed(const char *codes, const struct dns_ip *addr)
{
    char item[64];

    while (*codes) {
        size_t n = strcspn(codes, ",");
        size_t i = 0, j = n;
        struct dns_ip code;

        while (i < j && isspace((unsigned char)codes[i]))
            i++;
        while (j > i && isspace((unsigned char)codes[j - 1]))
            j--;
        if (j - i < sizeof item) {
            memcpy(item, codes + i, j - i);
            item[j - i] = '\0';
            if (dns_ip_parse(item, &code) == 0 && dns_ip_equal(&code, addr))
                return true;
        }
        codes += n;
        if (*codes == ',')
            codes++;
    }
    return false;
}

bool dns_dnsbl_match(const char *spec, const char *addr)
{
    const char *codes = strchr(spec, '=');
    struct dns_ip a;

    if (dns_ip_parse(addr, &a) < 0 || a.family != AF_INET || a.b[0] != 127)
        return false;
    if (a.b[1] == 255 && a.b[2] == 255)
        return false;
    return codes ? dnsbl_code_listed(codes + 1, &a) : true;
}

struct dnsbl_op {
    struct dns_req req;
    char *spec;
    dns_cb cb;
    void *arg;
    struct dns_req *child;
};

static void dnsbl_cancel(struct dns_req *req)
{
    struct dnsbl_op *op = (struct dnsbl_op *)req;

    dns_cancel(op->child);
    free(op->spec);
    free(op);
}

static void dnsbl_done(const struct dns_result *r, void *arg)
{
    struct dnsbl_op *op = arg;
    struct dns_result out = { 0 };

    dns_result_set(&out, DNS_T_A, r->name, r->status, r->reason);
    if (r->status == DNS_OK) {
        for (size_t i = 0; i < r->count; i++) {
            if (dns_dnsbl_match(op->spec, r->records[i]))
                dns_result_add(&out, r->records[i]);
            else if (strncmp(r->records[i], "127.255.255.", 12) == 0)
                log_warn("dns: DNSBL %s answered error code %s: not a listing",
                         r->name, r->records[i]);
        }
        out.ttl = r->ttl;
        out.status = out.count ? DNS_OK : DNS_NXDOMAIN;
        out.reason = out.count ? NULL : "not listed";
    }
    {
        /* Free first: the callback may cancel or free its own owner. */
        dns_cb cb = op->cb;
        void *cbarg = op->arg;

        op->child = NULL;
        dnsbl_cancel(&op->req);
        cb(&out, cbarg);
    }
    dns_result_clear(&out);
}

struct dns_req *dns_dnsbl(const char *ip, const char *spec, dns_cb cb, void *arg)
{
    struct dnsbl_op *op = xcalloc(1, sizeof *op);
    char zone[DNS_MAX_NAME], name[DNS_MAX_NAME];

    op->req.cancel = dnsbl_cancel;
    op->spec = xstrdup(spec);
    op->cb = cb;
    op->arg = arg;
    /* A bad zone or address gives an invalid name: NXDOMAIN from the loop. */
    if (dnsbl_zone(spec, zone, sizeof zone) < 0
        || dns_reverse_name(ip, zone, name, sizeof name) < 0)
        str_copy(name, "invalid..name", sizeof name);
    op->child = dns_lookup(DNS_T_A, name, dnsbl_done, op);
    return &op->req;
}

/* ------------------------------------------------------------ FCrDNS */

struct fcrdns_op;

struct fcrdns_fwd {
    struct fcrdns_op *op;
    struct dns_req *req;
    char *name;
};

struct fcrdns_op {
    struct dns_req req;
    char *ip;
    struct dns_ip addr;
    dns_cb cb;
    void *arg;
    struct dns_req *ptr;
    struct fcrdns_fwd fwd[FCRDNS_MAX_NAMES];
    size_t nfwd, pending;
    bool tempfail;
};

static void fcrdns_cancel(struct dns_req *req)
{
    struct fcrdns_op *op = (struct fcrdns_op *)req;

    dns_cancel(op->ptr);
    for (size_t i = 0; i < op->nfwd; i++) {
        dns_cancel(op->fwd[i].req);
        free(op->fwd[i].name);
    }
    free(op->ip);
    free(op);
}

/* Deliver and free the operation (freed first: see dnsbl_done). */
static void fcrdns_finish(struct fcrdns_op *op, enum dns_status st,
                          const char *reason, const char *name)
{
    struct dns_result out = { 0 };
    dns_cb cb = op->cb;
    void *cbarg = op->arg;

    dns_result_set(&out, DNS_T_PTR, op->ip, st, reason);
    if (name)
        dns_result_add(&out, name);
    fcrdns_cancel(&op->req);
    cb(&out, cbarg);
    dns_result_clear(&out);
}

static bool fcrdns_contains(const struct fcrdns_op *op, const struct dns_result *r)
{
    struct dns_ip a;

    for (size_t i = 0; i < r->count; i++)
        if (dns_ip_parse(r->records[i], &a) == 0 && dns_ip_equal(&a, &op->addr))
            return true;
    return false;
}

static void fcrdns_forward_done(const struct dns_result *r, void *arg)
{
    struct fcrdns_fwd *fwd = arg;
    struct fcrdns_op *op = fwd->op;

    fwd->req = NULL;
    op->pending--;
    if (r->status == DNS_OK && fcrdns_contains(op, r)) {
        char *name = xstrdup(fwd->name);
        fcrdns_finish(op, DNS_OK, NULL, name);
        free(name);
        return;
    }
    if (r->status == DNS_TEMPFAIL)
        op->tempfail = true;
    if (op->pending == 0) {
        if (op->tempfail)
            fcrdns_finish(op, DNS_TEMPFAIL, "forward lookup failed", NULL);
        else
            fcrdns_finish(op, DNS_NXDOMAIN, "not confirmed", NULL);
    }
}

static void fcrdns_ptr_done(const struct dns_result *r, void *arg)
{
    struct fcrdns_op *op = arg;
    enum dns_type t = op->addr.family == AF_INET ? DNS_T_A : DNS_T_AAAA;

    op->ptr = NULL;
    if (r->status != DNS_OK) {
        fcrdns_finish(op, r->status, r->reason, NULL);
        return;
    }
    for (size_t i = 0; i < r->count && op->nfwd < FCRDNS_MAX_NAMES; i++) {
        struct fcrdns_fwd *fwd = &op->fwd[op->nfwd++];

        fwd->op = op;
        fwd->name = xstrdup(r->records[i]);
    }
    /* All started before any can answer: answers come from the loop. */
    op->pending = op->nfwd;
    for (size_t i = 0; i < op->nfwd; i++)
        op->fwd[i].req = dns_lookup(t, op->fwd[i].name, fcrdns_forward_done, &op->fwd[i]);
}

struct dns_req *dns_fcrdns(const char *ip, dns_cb cb, void *arg)
{
    struct fcrdns_op *op = xcalloc(1, sizeof *op);
    char name[DNS_MAX_NAME];

    op->req.cancel = fcrdns_cancel;
    op->ip = xstrdup(ip);
    op->cb = cb;
    op->arg = arg;
    if (dns_ip_parse(ip, &op->addr) < 0 || dns_reverse_name(ip, NULL, name, sizeof name) < 0)
        str_copy(name, "invalid..name", sizeof name);
    op->ptr = dns_lookup(DNS_T_PTR, name, fcrdns_ptr_done, op);
    return &op->req;
}

/* ------------------------------------------------------------ blocking */

struct dns_sync {
    bool done;
    struct dns_result *r;
};

static void dns_sync_done(const struct dns_result *r, void *arg)
{
    struct dns_sync *s = arg;

    s->r = dns_result_dup(r);
    s->done = true;
}

/* Run the loop until the request answers (it always does: timers). */
static struct dns_result *dns_sync_wait(struct dns_sync *s, const char *name)
{
    struct event_base *base = dns_base();

    while (!s->done)
        if (event_base_loop(base, EVLOOP_ONCE) != 0)
            break;
    if (!s->done) {
        s->r = xcalloc(1, sizeof *s->r);
        dns_result_set(s->r, DNS_T_A, name, DNS_TEMPFAIL, "event loop failed");
    }
    return s->r;
}

struct dns_result *dns_resolve(enum dns_type type, const char *name)
{
    struct dns_sync s = { false, NULL };
    struct dns_req *req = dns_lookup(type, name, dns_sync_done, &s);
    struct dns_result *r = dns_sync_wait(&s, name);

    if (!s.done)
        dns_cancel(req);
    return r;
}

struct dns_result *dns_resolve_fcrdns(const char *ip)
{
    struct dns_sync s = { false, NULL };
    struct dns_req *req;
    struct dns_result *r;

    if (!dns_base())
        dns_init(NULL, NULL);
    req = dns_fcrdns(ip, dns_sync_done, &s);
    r = dns_sync_wait(&s, ip);
    if (!s.done)
        dns_cancel(req);
    return r;
}

struct dns_result *dns_resolve_dnsbl(const char *ip, const char *spec)
{
    struct dns_sync s = { false, NULL };
    struct dns_req *req;
    struct dns_result *r;

    if (!dns_base())
        dns_init(NULL, NULL);
    req = dns_dnsbl(ip, spec, dns_sync_done, &s);
    r = dns_sync_wait(&s, ip);
    if (!s.done)
        dns_cancel(req);
    return r;
}
