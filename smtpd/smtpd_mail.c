/*
 * smtpd_mail - MAIL FROM and RCPT TO (RFC 5321 4.1.1.2-3) with their
 * ESMTP parameters: SIZE (RFC 1870), BODY (RFC 6152), RET/ENVID and
 * NOTIFY/ORCPT (RFC 3461), SMTPUTF8 (RFC 6531).
 *
 * MAIL: session checks (HELO first, no nesting, MaximalIncomingMessages-
 * PerSession, MaximalIncomingSessionSize), syntax, SIZE against
 * MaximalIncomingMessageSize, then the access check (MailfromRule,
 * DenyUnresolvedMailfrom) and qmgr's "new" (452 4.3.1 when the queue is
 * short of space) before "250 2.1.0 Ok".
 * RCPT: MaximalIncomingRcptsPerMessage (452 4.5.3), syntax, the access
 * check (relay, connect/helo/mailfrom rules), then "250 2.1.5 Ok".  The
 * first accepted recipient logs "ID: client=NAME[IP]" (as Postfix does
 * when it opens the queue file); rejects before that log NOQUEUE.
 *
 * Addresses and parameters are parsed by lib/addr (addr_path_parse: no
 * control bytes, no CR/LF/NUL, bounded, UTF-8 only with SMTPUTF8).  ENVID
 * and ORCPT are kept in the envelope as xtext (RFC 3461; "utf-8" ORCPTs
 * as utf-8-addr-xtext, RFC 6533), re-encoded from the decoded values.
 */
#include "smtpd.h"
#include "smtpd_access.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr/addr.h"
#include "conf/conf.h"
#include "util/log.h"
#include "util/mem.h"


/* RFC 3461 xtext (or RFC 6533 utf-8-addr-xtext) of a decoded value. */
static char *mail_xtext(const char *v, bool utf8_type)
{
    struct buf b = BUF_INIT;

    if (!utf8_type)
        addr_xtext_encode(&b, v, strlen(v));
    for (const unsigned char *p = (const unsigned char *)v; utf8_type && *p; p++) {
        if (*p > 0x20 && *p != 0x7f && *p != '+' && *p != '=' && *p != '\\')
            buf_append_byte(&b, *p);
        else
            buf_printf(&b, "\\x{%02X}", *p);
    }
    buf_append(&b, "", 0);
    return b.data;
}

static bool mail_has_params(const struct addr_path *p)
{
    return p->has_size || p->body || p->ret || p->has_envid || p->smtputf8 || p->notify ||
           p->has_orcpt;
}

static void mail_fail(struct smtpd_session *s, const char *reply, const char *extra)
{
    smtpd_log_reject(s, "MAIL", reply, NULL, extra);
    smtpd_reply(s, "%s", reply);
    smtpd_txn_reset(s);
}

static void mail_new_cb(struct smtpd_session *s, int code, const char *reason)
{
    if (code == 0) {
        s->txn.active = true;
        smtpd_reply(s, "250 2.1.0 Ok");
    } else if (code == 452) {
        log_warn("%s: queue file space: %s", s->namaddr, reason ? reason : "no space");
        mail_fail(s, "452 4.3.1 Insufficient system storage", NULL);
    } else {
        log_warn("%s: queue manager: %s", s->namaddr, reason ? reason : "error");
        mail_fail(s, "451 4.3.0 Error: queue file write error", NULL);
    }
    smtpd_resume(s);
}

static void mail_access_cb(const struct access_decision *dec, void *arg)
{
    struct smtpd_session *s = arg;

    if (dec->result != ACCESS_ALLOW) {
        s->txn.active = true;           /* for from=<> in the log line */
        smtpd_log_reject(s, "MAIL", dec->reply, NULL, NULL);
        smtpd_reply(s, "%s", dec->reply);
        smtpd_txn_reset(s);
        smtpd_resume(s);
        return;
    }
    smtpd_queue_new(s, mail_new_cb);
}

/* Session-level limits checked at MAIL; false when refused. */
static bool mail_limits(struct smtpd_session *s)
{
    struct smtpd *d = s->d;

    if (s->nmsgs >= d->lim.msgs_per_session) {
        smtpd_count_refused(d, &d->cnt.mta_receivings_refused_for_messages_per_session_limit);
        smtpd_log_reject(s, "MAIL", "452 4.7.0 Error: too many messages in this session", NULL,
                         "limit=MaximalIncomingMessagesPerSession "
                         "counter=mta_receivings_refused_for_messages_per_session_limit");
        smtpd_reply(s, "452 4.7.0 Error: too many messages in this session");
        return false;
    }
    if (s->session_bytes >= d->lim.session_size) {
        smtpd_count_refused(d, &d->cnt.mta_receivings_refused_for_session_size_limit);
        smtpd_log_reject(s, "MAIL", "421 4.7.0 Error: session size limit exceeded", NULL,
                         "limit=MaximalIncomingSessionSize "
                         "counter=mta_receivings_refused_for_session_size_limit");
        smtpd_close_reply(s, "421 4.7.0 %s Error: session size limit exceeded", d->hostname);
        return false;
    }
    return true;
}

void smtpd_cmd_mail(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    struct addr_path p;
    const char *why;
    char reply[300];

    if (!s->helo) {
        smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->txn.active) {
        smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (!mail_limits(s))
        return;
    if (addr_path_parse(c->arg, c->arglen, ADDR_MAIL, ADDR_SMTPUTF8_OK, &p, &why) < 0) {
        snprintf(reply, sizeof(reply), "%d %s", p.code, why);
        smtpd_reply(s, "%s", reply);
        return;
    }
    smtpd_txn_reset(s);
    s->txn.sender = xstrdup(p.addr);
    if (!s->esmtp && mail_has_params(&p)) {
        mail_fail(s, "555 5.5.4 Unsupported parameter (send EHLO first)", NULL);
        return;
    }
    if (p.body == ADDR_BODY_BINARYMIME) {
        mail_fail(s, "555 5.5.4 BODY=BINARYMIME not supported", NULL);
        return;
    }
    s->txn.size_param = p.has_size ? p.size : 0;
    s->txn.body_type = (int)p.body;
    s->txn.ret = (int)p.ret;
    s->txn.smtputf8 = p.smtputf8;
    if (p.has_envid)
        s->txn.envid = mail_xtext(p.envid, false);
    if (s->txn.size_param > s->d->lim.msg_size) {
        smtpd_count_refused(s->d, &s->d->cnt.mta_receivings_refused_for_message_size_limit);
        mail_fail(s, "552 5.3.4 Message size exceeds fixed limit",
                  "limit=MaximalIncomingMessageSize "
                  "counter=mta_receivings_refused_for_message_size_limit");
        return;
    }
    s->busy = true;
    if (s->acc)
        access_mail(s->acc, s->txn.sender, mail_access_cb, s);
    else
        smtpd_queue_new(s, mail_new_cb);
}

/* ---- RCPT ---- */

static void rcpt_accept(struct smtpd_session *s)
{
    struct smtpd_txn *t = &s->txn;

    if (t->nrcpts == t->caprcpts) {
        t->caprcpts = t->caprcpts ? t->caprcpts * 2 : 8;
        t->rcpts = xreallocarray(t->rcpts, t->caprcpts, sizeof(*t->rcpts));
    }
    t->rcpts[t->nrcpts++] = t->pending;
    memset(&t->pending, 0, sizeof(t->pending));
    if (!t->logged_client) {
        t->logged_client = true;
        log_msg("%s: client=%s", t->id, s->namaddr);
    }
    smtpd_reply(s, "250 2.1.5 Ok");
}

static void rcpt_drop_pending(struct smtpd_txn *t)
{
    free((char *)t->pending.addr);
    free((char *)t->pending.orcpt);
    memset(&t->pending, 0, sizeof(t->pending));
}

static void rcpt_access_cb(const struct access_decision *dec, void *arg)
{
    struct smtpd_session *s = arg;

    if (dec->result == ACCESS_ALLOW) {
        rcpt_accept(s);
    } else {
        smtpd_log_reject(s, "RCPT", dec->reply, s->txn.pending.addr, NULL);
        smtpd_count_refused(s->d, NULL);
        smtpd_reply(s, "%s", dec->reply);
        rcpt_drop_pending(&s->txn);
    }
    smtpd_resume(s);
}

static void rcpt_fail(struct smtpd_session *s, const char *reply, const char *to)
{
    smtpd_log_reject(s, "RCPT", reply, to, NULL);
    smtpd_reply(s, "%s", reply);
    rcpt_drop_pending(&s->txn);
}

void smtpd_cmd_rcpt(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    struct smtpd_txn *t = &s->txn;
    struct addr_path p;
    const char *why;
    char reply[300];
    unsigned flags = ADDR_SMTPUTF8_OK | (t->smtputf8 ? ADDR_UTF8 : 0);

    if (!t->active) {
        smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    t->rcpt_tries++;
    if (t->nrcpts >= s->d->lim.rcpts_per_msg) {
        smtpd_count_refused(s->d, NULL);
        smtpd_log_reject(s, "RCPT", "452 4.5.3 Error: too many recipients", NULL,
                         "limit=MaximalIncomingRcptsPerMessage counter=mta_receivings_refused_total");
        smtpd_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (addr_path_parse(c->arg, c->arglen, ADDR_RCPT, flags, &p, &why) < 0) {
        snprintf(reply, sizeof(reply), "%d %s", p.code, why);
        smtpd_reply(s, "%s", reply);
        return;
    }
    if (!s->esmtp && mail_has_params(&p)) {
        rcpt_fail(s, "555 5.5.4 Unsupported parameter (send EHLO first)", p.addr);
        return;
    }
    if (!p.has_domain)      /* RCPT TO:<Postmaster> */
        t->pending.addr = xstrdup(conf_str(s->d->conf, "mailgw.network", "Postmaster"));
    else
        t->pending.addr = xstrdup(p.addr);
    t->pending.notify = p.notify;
    if (p.has_orcpt) {
        bool u8 = strcasecmp(p.orcpt_type, "utf-8") == 0;
        char *x = mail_xtext(p.orcpt, u8);
        t->pending.orcpt = xasprintf("%s;%s", p.orcpt_type, x);
        free(x);
    }
    if (!s->acc) {
        rcpt_accept(s);
        return;
    }
    s->busy = true;
    access_rcpt(s->acc, t->pending.addr, rcpt_access_cb, s);
}
