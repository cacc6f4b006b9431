/*
 * smtpd_access - the access-control decisions of smtpd (reference §1.6).
 *
 * One struct access_ctx is built from the config (access_load), one
 * struct access_session per SMTP session.  Each stage call gathers the
 * DNS facts that stage needs (asynchronously, through lib/dns) and then
 * calls back with a decision:
 *
 *   access_connect  AllowClients / DenyClients (session level), the
 *                   forward-confirmed client name (always looked up, for
 *                   logs: "unknown" when there is none), DenyUnresolvedConnect
 *                   (session level), and the DNSBL facts when a ConnectRule
 *                   uses in_dnsbl/out_dnsbl.
 *                   DENY -> 554 (smtpd sends it instead of the 220 greeting),
 *                   TEMPFAIL -> 421 (smtpd sends it and closes).
 *   access_helo     HELO/EHLO facts for HeloRule (has_ip/no_ip/same_ip/
 *                   diff_ip).  Always ALLOW: HeloRule is per recipient.
 *   access_mail     MAIL FROM facts for MailfromRule (has_ip/no_ip/has_mx/
 *                   no_mx) and DenyUnresolvedMailfrom (session level:
 *                   "550 5.1.8" / "450 4.1.8").  The null sender "" passes.
 *   access_rcpt     per recipient, with the facts cached in the session:
 *                   ConnectRule, HeloRule, MailfromRule (each: the first
 *                   rule whose condition and recipient part both match
 *                   decides; no match = allow), then RelayRule (the first
 *                   rule matching the (client, recipient) pair decides; no
 *                   match = allow only when the recipient's domain is in
 *                   ProtectedDomains, so an empty rule set is not an open
 *                   relay).
 *
 * A fact DNS could not establish (timeout, SERVFAIL) never turns into a
 * 5xx: a rule depending on it yields TEMPFAIL (4xx) unless every possible
 * value of the fact gives the same answer.  DNSBL lookups are the
 * exception (as in Postfix): a failed lookup counts as "not listed", so a
 * dead DNSBL zone does not tempfail every client; each failure is logged
 * "warning: dnsbl ZONE: lookup of REVERSED.ZONE failed: REASON; treating
 * as not listed".
 *
 * Callbacks always run from the event loop, never from inside the
 * access_* call.  One stage call at a time per session (SMTP commands are
 * handled in order); access_session_free() cancels a pending one (its
 * callback is then never called).  The decision passed to a callback is
 * valid only during the callback: copy what you keep.
 *
 * Prerequisite: dns_init(base, conf) (lib/dns/dns.h) was called.
 */
#ifndef MAILGW_SMTPD_ACCESS_H
#define MAILGW_SMTPD_ACCESS_H

#include <stdbool.h>

struct conf;
struct buf;

enum access_result {
    ACCESS_ALLOW = 0,
    ACCESS_DENY,        /* permanent: 5xx */
    ACCESS_TEMPFAIL,    /* temporary: 4xx (DNS failure) */
};

struct access_decision {
    enum access_result result;
    int code;               /* 0 for ALLOW, else 554, 550, 450, 421 ... */
    /* The complete reply line without CRLF, e.g.
     * "554 5.7.1 <bob@other.test>: Relay access denied"; "" for ALLOW.
     * smtpd sends it as is and logs it after "NOQUEUE: reject: RCPT from
     * NAME[IP]: ". */
    const char *reply;
    /* Which check decided, for logs/counters: "RelayRule", "ConnectRule",
     * "HeloRule", "MailfromRule", "DenyClients", "DenyUnresolvedConnect",
     * "DenyUnresolvedMailfrom", or "" when no rule matched. */
    const char *rule;
};

typedef void (*access_cb)(const struct access_decision *d, void *arg);

struct access_ctx;
struct access_session;

/* Parse the [mailgw.access] rules and lists (and ProtectedDomains).
 * Syntax errors go to diag ("RelayRule: 'allow form any to *': expected
 * 'from'") and give NULL. */
struct access_ctx *access_load(const struct conf *conf, struct buf *diag);
/* Drop the creator's reference; sessions keep the ctx alive until freed. */
void access_free(struct access_ctx *ctx);

/* client_ip: the peer address as text ("192.0.2.1", "2001:db8::1"). */
struct access_session *access_session_new(struct access_ctx *ctx, const char *client_ip);
/* Cancels a pending stage call. */
void access_session_free(struct access_session *s);
/* Forget the MAIL facts (RSET, end of a transaction). */
void access_session_reset(struct access_session *s);

/* Client name once access_connect has called back: the forward-confirmed
 * PTR name, or "unknown".  "unknown" before. */
const char *access_client_name(const struct access_session *s);

void access_connect(struct access_session *s, access_cb cb, void *arg);
void access_helo(struct access_session *s, const char *helo, access_cb cb, void *arg);
/* sender: the address without <> ("" = null sender). */
void access_mail(struct access_session *s, const char *sender, access_cb cb, void *arg);
/* rcpt: the address without <>. */
void access_rcpt(struct access_session *s, const char *rcpt, access_cb cb, void *arg);

#endif
