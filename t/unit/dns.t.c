/*
 * dns.t - lib/dns without a server: answer validation (ID, QR, question,
 * rcodes, CNAME chains, foreign owners, MX order, null MX, bad rdata),
 * reverse names, DNSBL code matching, and that a lookup of an invalid
 * name ends with a callback from the loop, never inside the call.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <ldns/ldns.h>

#include "dns/dns.h"
#include "tap.h"
#include "util/log.h"

/* An answer packet: question (qname, type), rcode, flags, answer RRs. */
static uint8_t *mkpkt(uint16_t id, const char *qname, ldns_rr_type qtype, ldns_pkt_rcode rc,
                      bool qr, const char *const *rrs, size_t *len)
{
    ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str(qname), qtype, LDNS_RR_CLASS_IN, 0);
    uint8_t *wire = NULL;

    ldns_pkt_set_id(p, id);
    ldns_pkt_set_qr(p, qr);
    ldns_pkt_set_rcode(p, rc);
    for (; rrs && *rrs; rrs++) {
        ldns_rr *rr = NULL;
        if (ldns_rr_new_frm_str(&rr, *rrs, 300, NULL, NULL) == LDNS_STATUS_OK)
            ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    ldns_pkt2wire(&wire, p, len);
    ldns_pkt_free(p);
    return wire;
}

static int parse(uint16_t id, enum dns_type t, const char *qname, const uint8_t *w, size_t n,
                 struct dns_result *r)
{
    return dns_answer_parse(w, n, id, t, qname, r);
}

static void test_validation(void)
{
    static const char *const a[] = { "host.example.test. 60 IN A 192.0.2.1", NULL };
    struct dns_result r;
    size_t n;
    uint8_t *w = mkpkt(4660, "host.example.test", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, true, a, &n);

    is_int(parse(4660, DNS_T_A, "host.example.test", w, n, &r), 0, "our answer accepted");
    is_int(r.status, DNS_OK, "OK");
    ok(r.count == 1 && strcmp(r.records[0], "192.0.2.1") == 0, "address text");
    is_int(r.ttl, 60, "TTL");
    dns_result_clear(&r);
    is_int(parse(4661, DNS_T_A, "host.example.test", w, n, &r), -1, "wrong ID ignored");
    is_int(parse(4660, DNS_T_A, "other.example.test", w, n, &r), -1, "wrong question name ignored");
    is_int(parse(4660, DNS_T_AAAA, "host.example.test", w, n, &r), -1, "wrong question type ignored");
    is_int(parse(4660, DNS_T_A, "HOST.example.TEST", w, n, &r), 0, "question name case-insensitive");
    dns_result_clear(&r);
    is_int(parse(4660, DNS_T_A, "host.example.test", w, 11, &r), -1, "short packet ignored");
    is_int(parse(4660, DNS_T_A, "host.example.test", w, n - 3, &r), 0, "truncated packet is ours...");
    is_int(r.status, DNS_TEMPFAIL, "...and a temporary failure (malformed)");
    dns_result_clear(&r);
    free(w);
    w = mkpkt(4660, "host.example.test", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, a, &n);
    is_int(parse(4660, DNS_T_A, "host.example.test", w, n, &r), -1, "a query (QR=0) is not an answer");
    free(w);
}

static void test_rcodes(void)
{
    struct dns_result r;
    size_t n;
    uint8_t *w = mkpkt(1, "x.test", LDNS_RR_TYPE_A, LDNS_RCODE_SERVFAIL, true, NULL, &n);

    parse(1, DNS_T_A, "x.test", w, n, &r);
    ok(r.status == DNS_TEMPFAIL && strcmp(r.reason, "SERVFAIL") == 0, "SERVFAIL is TEMPFAIL");
    dns_result_clear(&r);
    free(w);
    w = mkpkt(1, "x.test", LDNS_RR_TYPE_A, LDNS_RCODE_REFUSED, true, NULL, &n);
    parse(1, DNS_T_A, "x.test", w, n, &r);
    is_int(r.status, DNS_TEMPFAIL, "REFUSED is TEMPFAIL");
    dns_result_clear(&r);
    free(w);
    w = mkpkt(1, "x.test", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, true, NULL, &n);
    parse(1, DNS_T_A, "x.test", w, n, &r);
    is_int(r.status, DNS_NXDOMAIN, "NXDOMAIN");
    dns_result_clear(&r);
    free(w);
    w = mkpkt(1, "x.test", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, true, NULL, &n);
    parse(1, DNS_T_A, "x.test", w, n, &r);
    is_int(r.status, DNS_NXDOMAIN, "NOERROR without data is NXDOMAIN (no data)");
    dns_result_clear(&r);
    free(w);
}

static void test_records(void)
{
    static const char *const cname[] = {
        "evil.test. 60 IN A 6.6.6.6",                   /* not on the chain */
        "a.test. 60 IN CNAME b.test.", "b.test. 30 IN CNAME c.test.",
        "c.test. 60 IN A 192.0.2.7", NULL };
    static const char *const mx[] = {
        "d.test. 60 IN MX 20 mx2.d.test.", "d.test. 60 IN MX 10 mx1.d.test.", NULL };
    static const char *const nullmx[] = { "d.test. 60 IN MX 0 .", NULL };
    static const char *const badptr[] = { "1.test. 60 IN PTR bad\\032name.test.", NULL };
    struct dns_result r;
    size_t n;
    uint8_t *w = mkpkt(2, "a.test", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, true, cname, &n);

    parse(2, DNS_T_A, "a.test", w, n, &r);
    ok(r.status == DNS_OK && r.count == 1 && strcmp(r.records[0], "192.0.2.7") == 0,
       "CNAME chain followed, foreign owner ignored");
    is_int(r.ttl, 30, "TTL is the chain's minimum");
    dns_result_clear(&r);
    free(w);
    w = mkpkt(3, "d.test", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, true, mx, &n);
    parse(3, DNS_T_MX, "d.test", w, n, &r);
    ok(r.count == 2 && r.mx[0].pref == 10 && strcmp(r.mx[0].host, "mx1.d.test") == 0
       && strcmp(r.records[1], "mx2.d.test") == 0, "MX sorted by preference");
    dns_result_clear(&r);
    free(w);
    w = mkpkt(3, "d.test", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, true, nullmx, &n);
    parse(3, DNS_T_MX, "d.test", w, n, &r);
    ok(r.status == DNS_NXDOMAIN && r.null_mx, "null MX");
    dns_result_clear(&r);
    free(w);
    w = mkpkt(4, "1.test", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, true, badptr, &n);
    parse(4, DNS_T_PTR, "1.test", w, n, &r);
    ok(r.status == DNS_NXDOMAIN && r.count == 0, "PTR name with a space is skipped (no name)");
    dns_result_clear(&r);
    free(w);
}

static void test_helpers(void)
{
    char name[DNS_MAX_NAME];

    ok(dns_reverse_name("192.0.2.1", NULL, name, sizeof name) == 0
       && strcmp(name, "1.2.0.192.in-addr.arpa") == 0, "reverse IPv4");
    ok(dns_reverse_name("192.0.2.1", "bl.test", name, sizeof name) == 0
       && strcmp(name, "1.2.0.192.bl.test") == 0, "DNSBL name");
    ok(dns_reverse_name("::ffff:192.0.2.1", NULL, name, sizeof name) == 0
       && strcmp(name, "1.2.0.192.in-addr.arpa") == 0, "IPv4-mapped as IPv4");
    ok(dns_reverse_name("2001:db8::1", NULL, name, sizeof name) == 0
       && strncmp(name, "1.0.0.0.", 8) == 0 && strstr(name, "8.b.d.0.1.0.0.2.ip6.arpa"), "reverse IPv6");
    is_int(dns_reverse_name("nonsense", NULL, name, sizeof name), -1, "not an address");
    is_int(dns_reverse_name("192.0.2.1", NULL, name, 8), -1, "too small a buffer");
    ok(dns_dnsbl_match("bl.test", "127.0.0.2"), "127.0.0.2 listed");
    ok(!dns_dnsbl_match("bl.test", "127.255.255.254"), "127.255.255.254 never listed");
    ok(!dns_dnsbl_match("bl.test=127.255.255.254", "127.255.255.254"), "not even when named");
    ok(!dns_dnsbl_match("bl.test", "10.0.0.1"), "outside 127/8 never listed");
    ok(!dns_dnsbl_match("bl.test=127.0.0.2,127.0.0.4", "127.0.0.3"), "not among the codes");
    ok(dns_dnsbl_match("bl.test=127.0.0.2, 127.0.0.4", "127.0.0.4"), "among the codes");
}

static int invalid_called;

static void invalid_cb(const struct dns_result *r, void *arg)
{
    invalid_called = r->status == DNS_NXDOMAIN ? 1 : 2;
}

static void test_async_invalid(void)
{
    struct event_base *base = event_base_new();
    const char *servers[] = { "127.0.0.1:9" };

    dns_init(base, NULL);
    dns_configure(servers, 1, 1, 60);
    dns_lookup(DNS_T_A, "bad name", invalid_cb, NULL);
    is_int(invalid_called, 0, "no callback inside dns_lookup");
    event_base_loop(base, EVLOOP_ONCE);
    is_int(invalid_called, 1, "invalid name: NXDOMAIN from the loop");
    log_set_level(LOG_LEVEL_ERROR);
    is_int(dns_configure((const char *[]){ "300.1.1.1" }, 1, 1, 60), -1, "bad server refused");
    dns_shutdown();
    event_base_free(base);
}

int main(void)
{
    test_validation();
    test_rcodes();
    test_records();
    test_helpers();
    test_async_invalid();
    return tap_done();
}
