/*
 * dns_answer - validation and parsing of one DNS answer packet.
 *
 * Interface: dns_answer_parse(wire, len, id, type, qname, r) decides
 * whether the packet answers our question (ID, QR bit, exactly one
 * question with our name, type and class IN) and, when it does, fills r:
 * DNS_OK with the records of our type found by following the CNAME chain
 * from qname inside the answer section, DNS_NXDOMAIN for NXDOMAIN or no
 * data, DNS_TEMPFAIL for any other rcode or a malformed packet.
 * Also the dns_result helpers (add, set, dup, clear, free).
 *
 * Diagnostics: none logged here; r->reason says what went wrong.
 *
 * Security: the packet is hostile.  ldns parses it; every count and rdata
 * size is checked again here before use; at most DNS_MAX_RECORDS records
 * and DNS_MAX_CNAME CNAME hops are used; PTR/MX names are only returned
 * (others are skipped, as if absent) when they are plain (letters,
 * digits, "-", "_", "."); TXT bytes below 0x20 or
 * above 0x7e become '?'.  This file is the fuzz target t/fuzz/dns_answer.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns/dns_int.h"
#include "util/buf.h"
#include "util/mem.h"

const char *dns_type_name(enum dns_type type)
{
    switch (type) {
    case DNS_T_A: return "A";
    case DNS_T_AAAA: return "AAAA";
    case DNS_T_MX: return "MX";
    case DNS_T_PTR: return "PTR";
    case DNS_T_TXT: return "TXT";
    }
    return "?";
}

const char *dns_status_name(enum dns_status status)
{
    switch (status) {
    case DNS_OK: return "OK";
    case DNS_NXDOMAIN: return "NXDOMAIN";
    case DNS_TEMPFAIL: return "TEMPFAIL";
    }
    return "?";
}

bool dns_name_plain(const char *s, bool root_ok)
{
    size_t n = strlen(s);

    if (n == 0)
        return root_ok;
    if (n >= DNS_MAX_NAME || s[0] == '.' || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

void dns_result_set(struct dns_result *r, enum dns_type type, const char *name,
                    enum dns_status status, const char *reason)
{
    r->type = type;
    if (!r->name)
        r->name = xstrdup(name);
    r->status = status;
    r->reason = reason;
}

void dns_result_add(struct dns_result *r, const char *text)
{
    r->records = xreallocarray(r->records, r->count + 1, sizeof *r->records);
    r->records[r->count++] = xstrdup(text);
}

void dns_result_clear(struct dns_result *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->records[i]);
    free(r->records);
    if (r->mx)
        for (size_t i = 0; i < r->count; i++)
            free(r->mx[i].host);
    free(r->mx);
    free(r->name);
    memset(r, 0, sizeof *r);
}

void dns_result_free(struct dns_result *r)
{
    if (!r)
        return;
    dns_result_clear(r);
    free(r);
}

struct dns_result *dns_result_dup(const struct dns_result *r)
{
    struct dns_result *d = xcalloc(1, sizeof *d);

    *d = *r;
    d->name = r->name ? xstrdup(r->name) : NULL;
    d->records = NULL;
    d->mx = NULL;
    d->count = 0;
    for (size_t i = 0; i < r->count; i++)
        dns_result_add(d, r->records[i]);
    if (r->mx) {
        d->mx = xcalloc(r->count ? r->count : 1, sizeof *d->mx);
        for (size_t i = 0; i < r->count; i++) {
            d->mx[i].pref = r->mx[i].pref;
            d->mx[i].host = xstrdup(r->mx[i].host);
        }
    }
    return d;
}

/* A domain name rdf as text without the trailing dot; NULL when it is not
 * a plain host name. */
static char *answer_dname(const ldns_rdf *rdf, bool root_ok)
{
    char *s;
    size_t n;

    if (!rdf || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME)
        return NULL;
    s = ldns_rdf2str(rdf);
    if (!s)
        return NULL;
    n = strlen(s);
    if (n > 0 && s[n - 1] == '.')
        s[--n] = '\0';
    if (!dns_name_plain(s, root_ok)) {
        free(s);
        return NULL;
    }
    return s;
}

static int answer_addr(const ldns_rr *rr, int family, struct dns_result *r)
{
    const ldns_rdf *rdf = ldns_rr_rd_count(rr) == 1 ? ldns_rr_rdf(rr, 0) : NULL;
    size_t want = family == AF_INET ? 4 : 16;
    char text[INET6_ADDRSTRLEN];

    if (!rdf || ldns_rdf_size(rdf) != want)
        return -1;
    if (!inet_ntop(family, ldns_rdf_data(rdf), text, sizeof text))
        return -1;
    dns_result_add(r, text);
    return 0;
}

/* One TXT record: its character-strings joined. */
static int answer_txt(const ldns_rr *rr, struct dns_result *r)
{
    struct buf b = BUF_INIT;
    size_t n = ldns_rr_rd_count(rr);

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const ldns_rdf *rdf = ldns_rr_rdf(rr, i);
        const uint8_t *d = rdf ? ldns_rdf_data(rdf) : NULL;
        size_t sz = rdf ? ldns_rdf_size(rdf) : 0;

        /* A character-string rdf is a length octet and the bytes. */
        if (!d || sz < 1 || (size_t)d[0] + 1 != sz) {
            buf_free(&b);
            return -1;
        }
        for (size_t j = 1; j < sz; j++)
            buf_append_byte(&b, d[j] >= 0x20 && d[j] < 0x7f ? d[j] : '?');
    }
    dns_result_add(r, b.data ? b.data : "");
    buf_free(&b);
    return 0;
}

static int answer_mx(const ldns_rr *rr, struct dns_result *r)
{
    const ldns_rdf *pref, *host;
    char *name;

    if (ldns_rr_rd_count(rr) != 2)
        return -1;
    pref = ldns_rr_rdf(rr, 0);
    host = ldns_rr_rdf(rr, 1);
    if (!pref || ldns_rdf_size(pref) != 2 || !host
        || ldns_rdf_get_type(host) != LDNS_RDF_TYPE_DNAME)
        return -1;
    name = answer_dname(host, true);
    if (!name)
        return 0;               /* not a plain host name: skipped */
    r->mx = xreallocarray(r->mx, r->count + 1, sizeof *r->mx);
    r->mx[r->count].pref = ldns_rdf2native_int16(pref);
    r->mx[r->count].host = name;
    dns_result_add(r, name);
    return 0;
}

static int answer_record(const ldns_rr *rr, enum dns_type type, struct dns_result *r)
{
    char *name;

    switch (type) {
    case DNS_T_A: return answer_addr(rr, AF_INET, r);
    case DNS_T_AAAA: return answer_addr(rr, AF_INET6, r);
    case DNS_T_TXT: return answer_txt(rr, r);
    case DNS_T_MX: return answer_mx(rr, r);
    case DNS_T_PTR:
        if (ldns_rr_rd_count(rr) != 1 || !ldns_rr_rdf(rr, 0)
            || ldns_rdf_get_type(ldns_rr_rdf(rr, 0)) != LDNS_RDF_TYPE_DNAME)
            return -1;
        name = answer_dname(ldns_rr_rdf(rr, 0), false);
        if (!name)
            return 0;           /* not a plain host name: skipped */
        dns_result_add(r, name);
        free(name);
        return 0;
    }
    return -1;
}

static int mx_cmp(const void *a, const void *b)
{
    const struct dns_mx *x = a, *y = b;

    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    return strcmp(x->host, y->host);
}

/* MX: sort by preference, keep records[] in the same order, detect the
 * null MX of RFC 7505. */
static void answer_mx_finish(struct dns_result *r)
{
    qsort(r->mx, r->count, sizeof *r->mx, mx_cmp);
    for (size_t i = 0; i < r->count; i++) {
        free(r->records[i]);
        r->records[i] = xstrdup(r->mx[i].host);
    }
    if (r->count == 1 && r->mx[0].host[0] == '\0') {
        r->null_mx = true;
        r->status = DNS_NXDOMAIN;
        r->reason = "null MX";
    }
}

/* Walk the answer section from qname along CNAMEs; collect our type. */
static int answer_collect(const ldns_pkt *pkt, const ldns_rdf *qname,
                          enum dns_type type, struct dns_result *r)
{
    const ldns_rr_list *an = ldns_pkt_answer(pkt);
    size_t n = an ? ldns_rr_list_rr_count(an) : 0;
    const ldns_rdf *cur = qname;
    uint32_t ttl = UINT32_MAX;

    for (int hop = 0; hop <= DNS_MAX_CNAME; hop++) {
        const ldns_rdf *next = NULL;

        for (size_t i = 0; i < n; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(an, i);

            if (!rr || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN
                || ldns_dname_compare(ldns_rr_owner(rr), cur) != 0)
                continue;
            if (ldns_rr_get_type(rr) == (ldns_rr_type)type) {
                if (r->count >= DNS_MAX_RECORDS)
                    continue;
                if (answer_record(rr, type, r) < 0)
                    return -1;
                if (ldns_rr_ttl(rr) < ttl)
                    ttl = ldns_rr_ttl(rr);
            } else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && !next
                       && ldns_rr_rd_count(rr) == 1) {
                next = ldns_rr_rdf(rr, 0);
                if (ldns_rr_ttl(rr) < ttl)
                    ttl = ldns_rr_ttl(rr);
            }
        }
        if (r->count > 0 || !next
            || ldns_rdf_get_type(next) != LDNS_RDF_TYPE_DNAME)
            break;
        cur = next;
    }
    r->ttl = r->count > 0 ? ttl : 0;
    return 0;
}

static const char *answer_rcode_name(ldns_pkt_rcode rc)
{
    switch (rc) {
    case LDNS_RCODE_SERVFAIL: return "SERVFAIL";
    case LDNS_RCODE_REFUSED: return "REFUSED";
    case LDNS_RCODE_FORMERR: return "FORMERR";
    case LDNS_RCODE_NOTIMPL: return "NOTIMPL";
    default: return "bad rcode";
    }
}

/* Exactly our question, or not an answer to us. */
static bool answer_question_ok(const ldns_pkt *pkt, const ldns_rdf *qname,
                               enum dns_type type)
{
    const ldns_rr_list *q = ldns_pkt_question(pkt);
    const ldns_rr *rr;

    if (ldns_pkt_qdcount(pkt) != 1 || !q || ldns_rr_list_rr_count(q) != 1)
        return false;
    rr = ldns_rr_list_rr(q, 0);
    return rr && ldns_rr_get_type(rr) == (ldns_rr_type)type
           && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN
           && ldns_dname_compare(ldns_rr_owner(rr), qname) == 0;
}

static void answer_fill(const ldns_pkt *pkt, const ldns_rdf *qdname,
                        enum dns_type type, struct dns_result *r)
{
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(pkt);

    if (rc == LDNS_RCODE_NXDOMAIN) {
        r->status = DNS_NXDOMAIN;
        r->reason = "NXDOMAIN";
    } else if (rc != LDNS_RCODE_NOERROR) {
        r->status = DNS_TEMPFAIL;
        r->reason = answer_rcode_name(rc);
    } else if (answer_collect(pkt, qdname, type, r) < 0) {
        dns_result_clear(r);
        r->status = DNS_TEMPFAIL;
        r->reason = "malformed answer";
    } else if (r->count == 0) {
        r->status = DNS_NXDOMAIN;
        r->reason = "no data";
    } else {
        r->status = DNS_OK;
        if (type == DNS_T_MX)
            answer_mx_finish(r);
    }
}

int dns_answer_parse(const uint8_t *wire, size_t len, uint16_t id,
                     enum dns_type type, const char *qname, struct dns_result *r)
{
    ldns_pkt *pkt = NULL;
    ldns_rdf *qdname;
    int rc = -1;

    memset(r, 0, sizeof *r);
    /* Header: ID, then QR must be set (an answer, not a query). */
    if (len < 12 || get_u16(wire) != id || !(wire[2] & 0x80))
        return -1;
    qdname = ldns_dname_new_frm_str(qname);
    if (!qdname)
        return -1;
    if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK) {
        /* Ours by ID but unparseable: a failure of this server. */
        dns_result_set(r, type, qname, DNS_TEMPFAIL, "malformed answer");
        rc = 0;
    } else if (answer_question_ok(pkt, qdname, type)) {
        answer_fill(pkt, qdname, type, r);
        if (!r->name)
            r->name = xstrdup(qname);
        r->type = type;
        rc = 0;
    }
    if (pkt)
        ldns_pkt_free(pkt);
    ldns_rdf_deep_free(qdname);
    return rc;
}
