/*
 * smtpd_access - access control of the SMTP receiver (reference §1.6):
 * AllowClients / DenyClients, DenyUnresolvedConnect / DenyUnresolvedMailfrom,
 * ConnectRule, HeloRule, MailfromRule, RelayRule (+ the 5.0 Rule) and
 * ProtectedDomains.  Interface and decision semantics: smtpd_access.h.
 *
 * Facts.  A session collects facts through lib/dns: the client's
 * forward-confirmed name (always, at connect: logs need it), its DNSBL
 * state (when a ConnectRule uses in_dnsbl/out_dnsbl), the HELO name's
 * addresses and the sender domain's MX and addresses (when rules use
 * them).  Each fact is TRUE, FALSE or UNKNOWN (DNS failed), except the
 * DNSBL state: a failed DNSBL lookup is "not listed" (Postfix's rule; a
 * dead zone must not tempfail everyone) with a warning naming the zone.
 * Lookups start at the stage that learns the input (connect, HELO, MAIL)
 * and a stage waits only for the facts its own decision needs, so DNSBL
 * and HELO lookups overlap with the dialogue and are usually done by RCPT.
 *
 * Rules.  A rule set is walked top-down; the first rule whose recipient
 * part and condition both match decides.  An UNKNOWN condition decides
 * only when the rest of the set gives the same answer either way;
 * otherwise the result is TEMPFAIL: a DNS failure never becomes a 5xx and
 * never lets a denied recipient through.  Relay: RelayRule then Rule; no
 * match allows only recipients in ProtectedDomains (and bare postmaster).
 *
 * Diagnostics: access_load() reports rule syntax errors, bad masks and
 * unreadable file: lists into diag; log_info "access: ..." lines for DNS
 * failures of rDNS, HELO and sender lookups; "warning: dnsbl ZONE: lookup
 * of REVERSED.ZONE failed: REASON; treating as not listed".
 *
 * Masks: lib/addr (struct addr_masklist: IP masks, address and domain
 * masks with '*' and '?'); rules are split by lib/conf's conf_rule_split
 * and file: lists read by conf_list_file.  Recipient masks keep their
 * older spellings: "*@*" and "any" mean "*", "@domain" means "domain".
 *
 * Security: addresses and HELO names in replies are cut to 200 bytes and
 * non-printable bytes become '?', so replies stay single, short lines.
 * Mask matching (lib/addr) is iterative, never exponential on peer input.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "addr/addr.h"
#include "conf/conf.h"
#include "dns/dns.h"
#include "smtpd_access.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define ACCESS_TEXT_MAX 200

/* ------------------------------------------------------------ config */

/* Masks are lib/addr's (struct addr_masklist): IP masks for the client
 * side of RelayRule and AllowClients/DenyClients, address masks for the
 * recipient side of every rule and ProtectedDomains. */

enum cond {
    C_CLIENT,           /* RelayRule: the from part is an IP list */
    C_ANY,
    C_IN_DNSBL, C_OUT_DNSBL, C_HAS_NAME, C_NO_NAME,
    C_HELO_HAS_IP, C_HELO_NO_IP, C_SAME_IP, C_DIFF_IP,
    C_MAIL_HAS_IP, C_MAIL_NO_IP, C_HAS_MX, C_NO_MX,
};

struct rule {
    bool allow;
    enum cond cond;
    struct addr_masklist from;  /* C_CLIENT only */
    struct addr_masklist to;
};

struct ruleset {
    const char *name;
    struct rule *v;
    size_t n;
};

struct access_ctx {
    int refs;
    struct ruleset relay, connect, helo, mailfrom;
    char **dnsbl;
    size_t ndnsbl;
    struct addr_masklist allow_clients, deny_clients;
    struct addr_masklist protected_domains;
    bool deny_unresolved_connect, deny_unresolved_mailfrom;
};

static const struct { const char *word; enum cond cond; const char *set; } cond_words[] = {
    { "in_dnsbl", C_IN_DNSBL, "ConnectRule" }, { "out_dnsbl", C_OUT_DNSBL, "ConnectRule" },
    { "has_name", C_HAS_NAME, "ConnectRule" }, { "no_name", C_NO_NAME, "ConnectRule" },
    { "has_ip", C_HELO_HAS_IP, "HeloRule" }, { "no_ip", C_HELO_NO_IP, "HeloRule" },
    { "same_ip", C_SAME_IP, "HeloRule" }, { "diff_ip", C_DIFF_IP, "HeloRule" },
    { "has_ip", C_MAIL_HAS_IP, "MailfromRule" }, { "no_ip", C_MAIL_NO_IP, "MailfromRule" },
    { "has_mx", C_HAS_MX, "MailfromRule" }, { "no_mx", C_NO_MX, "MailfromRule" },
};

/* One item in lib/addr's spelling: for addresses "any" and "*@*" are
 * "*", "@domain" is the domain mask "domain". */
static char *mask_item(const char *s, unsigned kind)
{
    if (kind == ADDR_LIST_IP)
        return xstrdup(s);
    if (strcasecmp(s, "any") == 0 || strcmp(s, "*@*") == 0)
        return xstrdup("*");
    return xstrdup(s[0] == '@' && s[1] ? s + 1 : s);
}

/* Append item (or, for "file:/PATH", the lines of that file: no nesting)
 * to the NULL-terminated *v of *n entries. */
static int mask_items_add(char ***v, size_t *n, const char *item, unsigned kind, struct buf *err)
{
    char **lines = NULL;
    long nl = 1;

    if (strncmp(item, "file:", 5) == 0 && (nl = conf_list_file(item + 5, &lines, NULL, err)) < 0)
        return -1;
    *v = xreallocarray(*v, *n + (size_t)nl + 1, sizeof **v);
    for (long i = 0; i < nl; i++) {
        const char *s = lines ? lines[i] : item;
        if (lines && strncmp(s, "file:", 5) == 0)
            continue;
        (*v)[(*n)++] = mask_item(s, kind);
    }
    (*v)[*n] = NULL;
    conf_list_file_free(lines);
    return 0;
}

/* Build l from n items of kind ADDR_LIST_IP or ADDR_LIST_ADDR. */
static int masklist_load(struct addr_masklist *l, const char *const *items, size_t n,
                         unsigned kind, struct buf *err)
{
    char **v = NULL;
    size_t nv = 0, bad = 0;
    const char *why = NULL;
    int rc = 0;

    memset(l, 0, sizeof *l);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = mask_items_add(&v, &nv, items[i], kind, err);
    if (rc == 0 && addr_masklist_init(l, (const char *const *)v, kind, &why, &bad) < 0) {
        buf_printf(err, "'%s' is not %s: %s", v[bad],
                   kind == ADDR_LIST_IP ? "any, an IP, IP/NN, IP/MASK or file:/PATH"
                                        : "an address or domain mask",
                   why ? why : "invalid");
        rc = -1;
    }
    for (size_t i = 0; i < nv; i++)
        free(v[i]);
    free(v);
    return rc;
}

static int rule_cond(const char *set, const char *word, enum cond *c)
{
    if (strcasecmp(word, "any") == 0) {
        *c = C_ANY;
        return 0;
    }
    for (size_t i = 0; i < sizeof cond_words / sizeof cond_words[0]; i++)
        if (strcmp(cond_words[i].set, set) == 0 && strcasecmp(cond_words[i].word, word) == 0) {
            *c = cond_words[i].cond;
            return 0;
        }
    return -1;
}

static void rule_free(struct rule *r)
{
    addr_masklist_free(&r->from);
    addr_masklist_free(&r->to);
}

/* "allow|deny from X to Y" (split by lib/conf's conf_rule_split). */
static int rule_parse(const char *set, const char *text, struct rule *r, struct buf *err)
{
    char *tmp = xstrdup(text);
    struct conf_rule cr;
    int rc = -1;

    memset(r, 0, sizeof *r);
    if (conf_rule_split(tmp, &cr) < 0) {
        buf_printf(err, "expected 'allow|deny from CONDITION to RCPTMASK'");
        goto out;
    }
    r->allow = cr.allow;
    if (strcmp(set, "RelayRule") == 0) {
        r->cond = C_CLIENT;
        if (masklist_load(&r->from, &cr.from, 1, ADDR_LIST_IP, err) < 0)
            goto out;
    } else if (rule_cond(set, cr.from, &r->cond) < 0) {
        buf_printf(err, "unknown condition '%s'", cr.from);
        goto out;
    }
    rc = masklist_load(&r->to, &cr.to, 1, ADDR_LIST_ADDR, err);
out:
    if (rc < 0)
        rule_free(r);
    free(tmp);
    return rc;
}

static size_t access_conf_list(const struct conf *conf, const char *section, const char *name,
                               const char *const **items)
{
    if (!conf_param_find(section, name))
        return 0;
    return conf_list(conf, section, name, items);
}

static bool access_conf_bool(const struct conf *conf, const char *name)
{
    return conf_param_find("mailgw.access", name) && conf_bool(conf, "mailgw.access", name);
}

/* Append the rules of parameter name to set. */
static int ruleset_load(struct ruleset *set, const struct conf *conf, const char *name,
                        struct buf *diag)
{
    const char *const *items;
    size_t n = access_conf_list(conf, "mailgw.access", name, &items);
    struct buf err = BUF_INIT;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        struct rule r;

        buf_reset(&err);
        if (rule_parse(set->name, items[i], &r, &err) < 0) {
            buf_printf(diag, "%s: '%s': %s\n", name, items[i], err.data ? err.data : "invalid");
            rc = -1;
            continue;
        }
        set->v = xreallocarray(set->v, set->n + 1, sizeof *set->v);
        set->v[set->n++] = r;
    }
    buf_free(&err);
    return rc;
}

/* A list parameter (section.name) as a mask list. */
static int masklist_conf(struct addr_masklist *l, const struct conf *conf, const char *section,
                         const char *name, unsigned kind, struct buf *diag)
{
    const char *const *items;
    size_t n = access_conf_list(conf, section, name, &items);
    struct buf err = BUF_INIT;
    int rc = masklist_load(l, items, n, kind, &err);

    if (rc < 0)
        buf_printf(diag, "%s: %s\n", name, err.data ? err.data : "invalid");
    buf_free(&err);
    return rc;
}

static int access_load_lists(struct access_ctx *ctx, const struct conf *conf, struct buf *diag)
{
    const char *const *items;
    size_t n;
    int rc = 0;

    if (masklist_conf(&ctx->allow_clients, conf, "mailgw.access", "AllowClients", ADDR_LIST_IP,
                      diag) < 0
        || masklist_conf(&ctx->deny_clients, conf, "mailgw.access", "DenyClients", ADDR_LIST_IP,
                         diag) < 0
        || masklist_conf(&ctx->protected_domains, conf, "mailgw.network", "ProtectedDomains",
                         ADDR_LIST_ADDR, diag) < 0)
        rc = -1;
    n = access_conf_list(conf, "mailgw.access", "DNSBlackList", &items);
    for (size_t i = 0; i < n; i++) {
        ctx->dnsbl = xreallocarray(ctx->dnsbl, ctx->ndnsbl + 1, sizeof *ctx->dnsbl);
        ctx->dnsbl[ctx->ndnsbl++] = xstrdup(items[i]);
    }
    return rc;
}

struct access_ctx *access_load(const struct conf *conf, struct buf *diag)
{
    struct access_ctx *ctx = xcalloc(1, sizeof *ctx);
    int rc = 0;

    ctx->refs = 1;
    ctx->relay.name = "RelayRule";
    ctx->connect.name = "ConnectRule";
    ctx->helo.name = "HeloRule";
    ctx->mailfrom.name = "MailfromRule";
    /* The 5.0 "Rule" relay table is checked after RelayRule. */
    if (ruleset_load(&ctx->relay, conf, "RelayRule", diag) < 0
        || ruleset_load(&ctx->relay, conf, "Rule", diag) < 0
        || ruleset_load(&ctx->connect, conf, "ConnectRule", diag) < 0
        || ruleset_load(&ctx->helo, conf, "HeloRule", diag) < 0
        || ruleset_load(&ctx->mailfrom, conf, "MailfromRule", diag) < 0
        || access_load_lists(ctx, conf, diag) < 0)
        rc = -1;
    ctx->deny_unresolved_connect = access_conf_bool(conf, "DenyUnresolvedConnect");
    ctx->deny_unresolved_mailfrom = access_conf_bool(conf, "DenyUnresolvedMailfrom");
    if (rc < 0) {
        access_free(ctx);
        return NULL;
    }
    return ctx;
}

static void ruleset_free(struct ruleset *set)
{
    for (size_t i = 0; i < set->n; i++)
        rule_free(&set->v[i]);
    free(set->v);
}

static void access_unref(struct access_ctx *ctx)
{
    if (!ctx || --ctx->refs > 0)
        return;
    ruleset_free(&ctx->relay);
    ruleset_free(&ctx->connect);
    ruleset_free(&ctx->helo);
    ruleset_free(&ctx->mailfrom);
    for (size_t i = 0; i < ctx->ndnsbl; i++)
        free(ctx->dnsbl[i]);
    free(ctx->dnsbl);
    addr_masklist_free(&ctx->allow_clients);
    addr_masklist_free(&ctx->deny_clients);
    addr_masklist_free(&ctx->protected_domains);
    free(ctx);
}

void access_free(struct access_ctx *ctx)
{
    access_unref(ctx);
}

static bool ruleset_uses(const struct ruleset *set, enum cond a, enum cond b)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->v[i].cond == a || set->v[i].cond == b)
            return true;
    return false;
}

/* ------------------------------------------------------------ sessions */

enum fact { F_NONE, F_PENDING, F_TRUE, F_FALSE, F_UNKNOWN };
enum stage { ST_NONE, ST_CONNECT, ST_HELO, ST_MAIL, ST_RCPT };
enum group { G_NAME, G_DNSBL, G_HELO, G_MAIL, G_COUNT };
enum { SLOT_MX = 0, SLOT_A = 1, SLOT_AAAA = 2 };   /* G_HELO / G_MAIL */

struct slot {
    struct access_session *s;
    enum group g;
    size_t idx;
    struct dns_req *req;
    enum dns_status status;
    bool match;             /* HELO: contains the client IP; DNSBL: listed */
    bool used;
};

struct lookup {
    struct slot *slots;
    size_t n, pending;
};

struct access_session {
    struct access_ctx *ctx;
    char ip[INET6_ADDRSTRLEN + 8];
    struct addr_ip addr;                /* family 0 when ip is not one */
    char name[DNS_MAX_NAME];
    bool allowed_client, denied_client;
    enum fact has_name, in_dnsbl, helo_has_ip, same_ip, mail_has_ip, mail_has_mx;
    const char *dnsbl_zone;             /* first listing zone (ctx string) */
    char *helo, *sender;
    struct lookup lk[G_COUNT];
    enum stage stage;                   /* waiting stage, ST_NONE if idle */
    access_cb cb;
    void *cbarg;
    char *rcpt;
    struct event *ev_ready;
    struct buf reply;
};

static void access_check(struct access_session *s);

static enum fact fact_not(enum fact f)
{
    return f == F_TRUE ? F_FALSE : f == F_FALSE ? F_TRUE : f;
}

static enum fact fact_from_status(enum dns_status st)
{
    return st == DNS_OK ? F_TRUE : st == DNS_NXDOMAIN ? F_FALSE : F_UNKNOWN;
}

/* Over the used slots of a group: TRUE if any has the property, else
 * UNKNOWN if any failed, else FALSE. */
static enum fact lookup_any(const struct lookup *lk, size_t from, size_t to, bool by_match)
{
    bool failed = false;

    for (size_t i = from; i < to && i < lk->n; i++) {
        const struct slot *sl = &lk->slots[i];
        if (!sl->used)
            continue;
        if (by_match ? sl->match : sl->status == DNS_OK)
            return F_TRUE;
        if (sl->status == DNS_TEMPFAIL)
            failed = true;
    }
    return failed ? F_UNKNOWN : F_FALSE;
}

static void lookup_cancel(struct lookup *lk)
{
    for (size_t i = 0; i < lk->n; i++)
        dns_cancel(lk->slots[i].req);
    free(lk->slots);
    memset(lk, 0, sizeof *lk);
}

static bool ip_equal(const struct addr_ip *a, const struct addr_ip *b)
{
    return a->family != 0 && a->family == b->family
           && memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16) == 0;
}

static bool result_has_client(const struct access_session *s, const struct dns_result *r)
{
    struct addr_ip a;

    for (size_t i = 0; i < r->count; i++)
        if (addr_ip_parse(r->records[i], &a) == 0 && ip_equal(&a, &s->addr))
            return true;
    return false;
}

/* A group finished: turn its slots into facts. */
static void lookup_finish(struct access_session *s, enum group g)
{
    struct lookup *lk = &s->lk[g];

    switch (g) {
    case G_NAME:
        break;
    case G_DNSBL:
        s->in_dnsbl = lookup_any(lk, 0, lk->n, true);
        for (size_t i = 0; i < lk->n && !s->dnsbl_zone; i++)
            if (lk->slots[i].match)
                s->dnsbl_zone = s->ctx->dnsbl[i];
        break;
    case G_HELO:
        s->helo_has_ip = lookup_any(lk, SLOT_A, SLOT_AAAA + 1, false);
        s->same_ip = lookup_any(lk, SLOT_A, SLOT_AAAA + 1, true);
        break;
    case G_MAIL:
        s->mail_has_mx = lk->slots[SLOT_MX].used ? fact_from_status(lk->slots[SLOT_MX].status) : F_NONE;
        s->mail_has_ip = lookup_any(lk, SLOT_A, SLOT_AAAA + 1, false);
        break;
    default:
        break;
    }
}

/* A DNSBL lookup that failed (timeout, SERVFAIL) counts as "not listed",
 * as in Postfix: a dead DNSBL zone must not tempfail every client. */
static void dnsbl_failed(struct access_session *s, struct slot *sl, const struct dns_result *r)
{
    const char *spec = s->ctx->dnsbl[sl->idx];

    log_warn("dnsbl %.*s: lookup of %s failed: %s; treating as not listed",
             (int)strcspn(spec, "="), spec, r->name ? r->name : "?",
             r->reason ? r->reason : "temporary failure");
    sl->status = DNS_NXDOMAIN;
}

static void slot_done(const struct dns_result *r, void *arg)
{
    struct slot *sl = arg;
    struct access_session *s = sl->s;

    sl->req = NULL;
    sl->status = r->status;
    if (sl->g == G_NAME) {
        s->has_name = fact_from_status(r->status);
        if (r->status == DNS_OK && r->count > 0)
            str_copy(s->name, r->records[0], sizeof s->name);
    } else if (sl->g == G_DNSBL) {
        sl->match = r->status == DNS_OK;
        if (r->status == DNS_TEMPFAIL)
            dnsbl_failed(s, sl, r);
    } else {
        sl->match = r->status == DNS_OK && result_has_client(s, r);
    }
    if (sl->status == DNS_TEMPFAIL)
        log_info("access: %s[%s]: %s %s: temporary DNS failure (%s)", s->name, s->ip,
                 sl->g == G_NAME ? "lookup" : dns_type_name(r->type),
                 r->name ? r->name : "?", r->reason ? r->reason : "?");
    if (--s->lk[sl->g].pending == 0)
        lookup_finish(s, sl->g);
    access_check(s);
}

/* Start the lookups of group g: kinds[i] = dns type, 0 = slot unused,
 * DNS_T_PTR for FCrDNS, DNS_T_A with a spec for DNSBL. */
static void lookup_start(struct access_session *s, enum group g, size_t n,
                         const enum dns_type *types, const char *name)
{
    struct lookup *lk = &s->lk[g];

    lookup_cancel(lk);
    lk->slots = xcalloc(n ? n : 1, sizeof *lk->slots);
    lk->n = n;
    for (size_t i = 0; i < n; i++) {
        struct slot *sl = &lk->slots[i];

        *sl = (struct slot){ .s = s, .g = g, .idx = i };
        if (g != G_DNSBL && types[i] == 0)
            continue;
        sl->used = true;
        lk->pending++;
    }
    for (size_t i = 0; i < n; i++) {
        struct slot *sl = &lk->slots[i];
        if (!sl->used)
            continue;
        if (g == G_NAME)
            sl->req = dns_fcrdns(s->ip, slot_done, sl);
        else if (g == G_DNSBL)
            sl->req = dns_dnsbl(s->ip, s->ctx->dnsbl[i], slot_done, sl);
        else
            sl->req = dns_lookup(types[i], name, slot_done, sl);
    }
}

/* Peer text for a reply: printable, short. */
static void reply_text(struct buf *b, const char *s)
{
    size_t n = 0;

    for (; *s && n < ACCESS_TEXT_MAX; s++, n++)
        buf_append_byte(b, (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?');
}

/* "CODE X.Y.Z " then a format where %s stands for peer text. */
static void reply_set(struct buf *b, const char *head, const char *peer, const char *tail)
{
    buf_reset(b);
    buf_append_str(b, head);
    if (peer) {
        reply_text(b, peer);
        buf_append_str(b, tail);
    }
}

static enum fact rule_fact(const struct access_session *s, const struct rule *r)
{
    switch (r->cond) {
    case C_CLIENT: return addr_masklist_match_ipbin(&r->from, &s->addr) ? F_TRUE : F_FALSE;
    case C_ANY: return F_TRUE;
    case C_HAS_NAME: return s->has_name;
    case C_NO_NAME: return fact_not(s->has_name);
    case C_IN_DNSBL: return s->in_dnsbl;
    case C_OUT_DNSBL: return fact_not(s->in_dnsbl);
    case C_HELO_HAS_IP: return s->helo_has_ip;
    case C_HELO_NO_IP: return fact_not(s->helo_has_ip);
    case C_SAME_IP: return s->same_ip;
    case C_DIFF_IP:
        if (s->helo_has_ip == F_FALSE || s->same_ip == F_TRUE)
            return F_FALSE;
        return s->helo_has_ip == F_TRUE && s->same_ip == F_FALSE ? F_TRUE : s->same_ip;
    case C_MAIL_HAS_IP: return s->mail_has_ip;
    case C_MAIL_NO_IP: return fact_not(s->mail_has_ip);
    case C_HAS_MX: return s->mail_has_mx;
    case C_NO_MX: return fact_not(s->mail_has_mx);
    }
    return F_FALSE;
}

/* First rule (from i) whose recipient part and condition match decides.
 * An UNKNOWN condition decides only if the rest agrees (see top). */
static enum access_result ruleset_walk(const struct access_session *s, const struct ruleset *set,
                                       size_t i, const char *rcpt, const struct rule **decider)
{
    for (; i < set->n; i++) {
        const struct rule *r = &set->v[i];
        enum fact f;
        enum access_result rest;

        if (!addr_masklist_match_addr(&r->to, rcpt))
            continue;
        f = rule_fact(s, r);
        if (f == F_TRUE) {
            *decider = r;
            return r->allow ? ACCESS_ALLOW : ACCESS_DENY;
        }
        if (f != F_UNKNOWN)
            continue;
        rest = ruleset_walk(s, set, i + 1, rcpt, decider);
        if (rest == (r->allow ? ACCESS_ALLOW : ACCESS_DENY))
            return rest;
        *decider = r;
        return ACCESS_TEMPFAIL;
    }
    *decider = NULL;
    return ACCESS_ALLOW;
}

static void connect_reply(struct access_session *s, enum access_result res,
                          const struct rule *r, struct buf *b)
{
    buf_reset(b);
    if (res == ACCESS_TEMPFAIL) {
        buf_printf(b, "450 4.7.1 Client host rejected: temporary DNS failure, [%s]", s->ip);
    } else if (r && r->cond == C_IN_DNSBL && s->dnsbl_zone) {
        size_t n = strcspn(s->dnsbl_zone, "=");
        buf_printf(b, "554 5.7.1 Service unavailable; Client host [%s] blocked using %.*s",
                   s->ip, (int)n, s->dnsbl_zone);
    } else if (r && r->cond == C_NO_NAME) {
        buf_printf(b, "550 5.7.1 Client host rejected: cannot find your hostname, [%s]", s->ip);
    } else {
        buf_printf(b, "554 5.7.1 <%s[%s]>: Client host rejected: Access denied", s->name, s->ip);
    }
}

static void helo_reply(struct access_session *s, enum access_result res,
                       const struct rule *r, struct buf *b)
{
    const char *tail = "Access denied", *head = "554 5.7.1 <";

    if (res == ACCESS_TEMPFAIL) {
        head = "450 4.7.1 <";
        tail = "temporary DNS failure";
    } else if (r && r->cond == C_HELO_NO_IP) {
        head = "550 5.7.1 <";
        tail = "Host not found";
    } else if (r && r->cond == C_DIFF_IP) {
        head = "550 5.7.1 <";
        tail = "Host address is not the client address";
    }
    reply_set(b, head, s->helo ? s->helo : "", ">: Helo command rejected: ");
    buf_append_str(b, tail);
}

static void mail_reply(struct access_session *s, enum access_result res,
                       const struct rule *r, struct buf *b)
{
    const char *tail = "Access denied", *head = "554 5.7.1 <";

    if (res == ACCESS_TEMPFAIL) {
        head = "450 4.1.8 <";
        tail = "temporary DNS failure";
    } else if (!r || r->cond == C_MAIL_NO_IP || r->cond == C_NO_MX) {
        head = "550 5.1.8 <";
        tail = "Domain not found";
    }
    reply_set(b, head, s->sender ? s->sender : "", ">: Sender address rejected: ");
    buf_append_str(b, tail);
}

static bool rcpt_protected(const struct access_session *s, const char *rcpt)
{
    if (strcasecmp(rcpt, "postmaster") == 0)
        return true;
    return strchr(rcpt, '@') && addr_masklist_match_addr(&s->ctx->protected_domains, rcpt);
}

/* Everything that decides a recipient, in Postfix's order: client, HELO,
 * sender, then relay. */
static enum access_result access_eval_rcpt(struct access_session *s, const char *rcpt,
                                           const char **which)
{
    struct access_ctx *ctx = s->ctx;
    const struct rule *r;
    enum access_result res;

    if (!s->allowed_client
        && (res = ruleset_walk(s, &ctx->connect, 0, rcpt, &r)) != ACCESS_ALLOW) {
        *which = "ConnectRule";
        connect_reply(s, res, r, &s->reply);
        return res;
    }
    if ((res = ruleset_walk(s, &ctx->helo, 0, rcpt, &r)) != ACCESS_ALLOW) {
        *which = "HeloRule";
        helo_reply(s, res, r, &s->reply);
        return res;
    }
    if ((res = ruleset_walk(s, &ctx->mailfrom, 0, rcpt, &r)) != ACCESS_ALLOW) {
        *which = "MailfromRule";
        mail_reply(s, res, r, &s->reply);
        return res;
    }
    res = ruleset_walk(s, &ctx->relay, 0, rcpt, &r);
    if (r == NULL && !rcpt_protected(s, rcpt))
        res = ACCESS_DENY;
    *which = r || res == ACCESS_DENY ? "RelayRule" : "";
    if (res == ACCESS_DENY)
        reply_set(&s->reply, "554 5.7.1 <", rcpt, ">: Relay access denied");
    return res;
}

static bool stage_ready(const struct access_session *s)
{
    switch (s->stage) {
    case ST_CONNECT: return s->lk[G_NAME].pending == 0;
    case ST_MAIL:
        return !s->ctx->deny_unresolved_mailfrom || s->lk[G_MAIL].pending == 0;
    case ST_RCPT:
        for (int g = 0; g < G_COUNT; g++)
            if (s->lk[g].pending)
                return false;
        return true;
    default:
        return true;
    }
}

static enum access_result connect_decide(struct access_session *s, const char **which)
{
    if (s->allowed_client)
        return ACCESS_ALLOW;
    if (s->denied_client) {
        *which = "DenyClients";
        buf_reset(&s->reply);
        buf_printf(&s->reply, "554 5.7.1 <%s[%s]>: Client host rejected: Access denied",
                   s->name, s->ip);
        return ACCESS_DENY;
    }
    if (!s->ctx->deny_unresolved_connect || s->has_name == F_TRUE)
        return ACCESS_ALLOW;
    *which = "DenyUnresolvedConnect";
    buf_reset(&s->reply);
    if (s->has_name == F_UNKNOWN) {
        /* Before the greeting only 220, 554 or 421 may be said. */
        buf_printf(&s->reply, "421 4.7.1 Client host rejected: cannot find your hostname, [%s]"
                   " (temporary DNS failure)", s->ip);
        return ACCESS_TEMPFAIL;
    }
    buf_printf(&s->reply, "554 5.7.1 Client host rejected: cannot find your hostname, [%s]", s->ip);
    return ACCESS_DENY;
}

static enum access_result mail_decide(struct access_session *s, const char **which)
{
    if (!s->ctx->deny_unresolved_mailfrom || !s->sender || !s->sender[0]
        || s->mail_has_mx == F_TRUE || s->mail_has_ip == F_TRUE)
        return ACCESS_ALLOW;
    *which = "DenyUnresolvedMailfrom";
    if (s->mail_has_mx == F_UNKNOWN || s->mail_has_ip == F_UNKNOWN) {
        reply_set(&s->reply, "450 4.1.8 <", s->sender,
                  ">: Sender address rejected: Domain not found (temporary DNS failure)");
        return ACCESS_TEMPFAIL;
    }
    reply_set(&s->reply, "550 5.1.8 <", s->sender, ">: Sender address rejected: Domain not found");
    return ACCESS_DENY;
}

/* The waiting stage's decision, when its facts are in. */
static void access_check(struct access_session *s)
{
    enum access_result res = ACCESS_ALLOW;
    const char *which = "";
    char reply[512];
    struct access_decision d;
    access_cb cb = s->cb;
    void *cbarg = s->cbarg;

    if (s->stage == ST_NONE || !stage_ready(s))
        return;
    buf_reset(&s->reply);
    if (s->stage == ST_CONNECT)
        res = connect_decide(s, &which);
    else if (s->stage == ST_MAIL)
        res = mail_decide(s, &which);
    else if (s->stage == ST_RCPT)
        res = access_eval_rcpt(s, s->rcpt, &which);
    /* A copy: the callback may free the session. */
    str_copy(reply, res == ACCESS_ALLOW || !s->reply.data ? "" : s->reply.data, sizeof reply);
    d.result = res;
    d.code = res == ACCESS_ALLOW ? 0 : atoi(reply);
    d.reply = reply;
    d.rule = which;
    s->stage = ST_NONE;
    s->cb = NULL;
    cb(&d, cbarg);
}

static void access_ready_cb(evutil_socket_t fd, short what, void *arg)
{
    access_check(arg);
}

static void access_stage(struct access_session *s, enum stage st, access_cb cb, void *arg)
{
    struct timeval zero = { 0, 0 };

    s->stage = st;
    s->cb = cb;
    s->cbarg = arg;
    evtimer_add(s->ev_ready, &zero);
}

struct access_session *access_session_new(struct access_ctx *ctx, const char *client_ip)
{
    struct access_session *s = xcalloc(1, sizeof *s);

    s->ctx = ctx;
    ctx->refs++;
    str_copy(s->ip, client_ip, sizeof s->ip);
    str_copy(s->name, "unknown", sizeof s->name);
    if (addr_ip_parse(client_ip, &s->addr) < 0)
        memset(&s->addr, 0, sizeof s->addr);
    s->allowed_client = addr_masklist_match_ipbin(&ctx->allow_clients, &s->addr);
    s->denied_client = addr_masklist_match_ipbin(&ctx->deny_clients, &s->addr);
    s->ev_ready = evtimer_new(dns_base(), access_ready_cb, s);
    if (!s->ev_ready)
        log_fatal("access: evtimer_new failed");
    return s;
}

void access_session_free(struct access_session *s)
{
    if (!s)
        return;
    for (int g = 0; g < G_COUNT; g++)
        lookup_cancel(&s->lk[g]);
    event_free(s->ev_ready);
    buf_free(&s->reply);
    free(s->helo);
    free(s->sender);
    free(s->rcpt);
    access_unref(s->ctx);
    free(s);
}

const char *access_client_name(const struct access_session *s)
{
    return s->name;
}

void access_connect(struct access_session *s, access_cb cb, void *arg)
{
    struct access_ctx *ctx = s->ctx;
    static const enum dns_type ptr[1] = { DNS_T_PTR };

    s->has_name = F_PENDING;
    lookup_start(s, G_NAME, 1, ptr, s->ip);
    s->in_dnsbl = F_FALSE;
    if (!s->allowed_client && ctx->ndnsbl > 0
        && ruleset_uses(&ctx->connect, C_IN_DNSBL, C_OUT_DNSBL)) {
        s->in_dnsbl = F_PENDING;
        lookup_start(s, G_DNSBL, ctx->ndnsbl, NULL, NULL);
    }
    access_stage(s, ST_CONNECT, cb, arg);
}

/* "[192.0.2.1]", "[IPv6:2001:db8::1]" or a bare address. */
static int literal_ip(const char *s, struct addr_ip *ip)
{
    char tmp[INET6_ADDRSTRLEN + 8];
    size_t n = strlen(s);

    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
        if (n > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
            s += 5;
            n -= 5;
        }
    }
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return addr_ip_parse(tmp, ip);
}

/* has_ip / same_ip of an address literal, without DNS. */
static void helo_literal(struct access_session *s, const struct addr_ip *ip)
{
    s->helo_has_ip = F_TRUE;
    s->same_ip = ip_equal(ip, &s->addr) ? F_TRUE : F_FALSE;
}

void access_helo(struct access_session *s, const char *helo, access_cb cb, void *arg)
{
    struct access_ctx *ctx = s->ctx;
    static const enum dns_type types[3] = { 0, DNS_T_A, DNS_T_AAAA };
    struct addr_ip ip;

    free(s->helo);
    s->helo = xstrdup(helo);
    lookup_cancel(&s->lk[G_HELO]);
    s->helo_has_ip = s->same_ip = F_NONE;
    if (ruleset_uses(&ctx->helo, C_HELO_HAS_IP, C_HELO_NO_IP)
        || ruleset_uses(&ctx->helo, C_SAME_IP, C_DIFF_IP)) {
        if (literal_ip(helo, &ip) == 0) {
            helo_literal(s, &ip);
        } else {
            s->helo_has_ip = s->same_ip = F_PENDING;
            lookup_start(s, G_HELO, 3, types, helo);
        }
    }
    access_stage(s, ST_HELO, cb, arg);
}

static void mail_facts_clear(struct access_session *s)
{
    lookup_cancel(&s->lk[G_MAIL]);
    s->mail_has_ip = s->mail_has_mx = F_NONE;
    free(s->sender);
    s->sender = NULL;
}

/* Start the MX / address lookups the rules need for the sender domain. */
static void mail_lookups(struct access_session *s, const char *domain)
{
    struct access_ctx *ctx = s->ctx;
    enum dns_type types[3] = { 0, 0, 0 };
    struct addr_ip ip;

    if (*domain == '\0') {
        s->mail_has_ip = s->mail_has_mx = F_FALSE;
        return;
    }
    if (domain[0] == '[') {
        s->mail_has_ip = literal_ip(domain, &ip) == 0 ? F_TRUE : F_FALSE;
        s->mail_has_mx = F_FALSE;
        return;
    }
    if (ctx->deny_unresolved_mailfrom || ruleset_uses(&ctx->mailfrom, C_HAS_MX, C_NO_MX)) {
        types[SLOT_MX] = DNS_T_MX;
        s->mail_has_mx = F_PENDING;
    }
    if (ctx->deny_unresolved_mailfrom || ruleset_uses(&ctx->mailfrom, C_MAIL_HAS_IP, C_MAIL_NO_IP)) {
        types[SLOT_A] = DNS_T_A;
        types[SLOT_AAAA] = DNS_T_AAAA;
        s->mail_has_ip = F_PENDING;
    }
    if (types[SLOT_MX] || types[SLOT_A])
        lookup_start(s, G_MAIL, 3, types, domain);
}

void access_mail(struct access_session *s, const char *sender, access_cb cb, void *arg)
{
    const char *at;

    mail_facts_clear(s);
    s->sender = xstrdup(sender);
    if (sender[0] != '\0') {
        at = strrchr(sender, '@');
        mail_lookups(s, at ? at + 1 : "");
    }
    access_stage(s, ST_MAIL, cb, arg);
}

void access_session_reset(struct access_session *s)
{
    struct timeval zero = { 0, 0 };

    mail_facts_clear(s);
    /* A stage waiting for the lookups just cancelled is ready now. */
    if (s->stage != ST_NONE)
        evtimer_add(s->ev_ready, &zero);
}

void access_rcpt(struct access_session *s, const char *rcpt, access_cb cb, void *arg)
{
    free(s->rcpt);
    s->rcpt = xstrdup(rcpt);
    access_stage(s, ST_RCPT, cb, arg);
}
