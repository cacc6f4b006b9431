/*
 * qmgr_bounce - delivery status notifications queued as new messages
 * (RFC 3461-3464; the report itself comes from lib/dsn).
 *
 * Interface: qmgr_bounce_send() (qmgr.h).
 *
 * One report per call: failure ("failed"), delay ("delayed") or success
 * ("relayed") for the recipients given whose NOTIFY asks for that action
 * (no NOTIFY: failures and delays yes, successes no).  Never a report to
 * the null sender <> nor about a report (dsn_should_bounce).  The report
 * is made like qmgr's other new messages (qmgr_notify_new_with): a fresh
 * tmp/NEWID, dsn_queue_write (envelope + content, END, fsync), re-read
 * with the queue file reader, the FLAGS record "no scan" (it is ours,
 * also after a restart), renamed into incoming/, incoming/ fsynced; only
 * then does the caller mark the original recipients BOUNCED.
 *
 * The report honours RET (full original or headers only), ENVID and
 * ORCPT (lib/dsn); DsnTemplate gives the text part, BounceSizeLimit the
 * bytes of the original returned.
 *
 * Diagnostics: "ID: sender non-delivery notification: NEWID" (delay:
 * "sender delay notification", success: "sender delivery status
 * notification"), then "NEWID: from=<>, size=N, nrcpt=1 (queue active)";
 * mta_dsn_generated counts them.  A report that cannot be built or queued
 * is an error line and -1 (the caller keeps the recipients for a retry).
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn/dsn.h"
#include "util/log.h"
#include "util/mem.h"

static const char *qmgr_bounce_kind(enum dsn_action a)
{
    switch (a) {
    case DSN_ACTION_FAILED: return "sender non-delivery notification";
    case DSN_ACTION_DELAYED: return "sender delay notification";
    default: return "sender delivery status notification";
    }
}

struct qmgr_bounce_write {
    struct dsn_envelope de;
    const struct dsn_message *msg;
};

static int qmgr_bounce_write(int fd, void *arg, const char **why)
{
    struct qmgr_bounce_write *b = arg;

    return dsn_queue_write(fd, &b->de, b->msg, why);
}

/* Write, check and commit the report (qmgr_notify_new_with, then the
 * incoming/ fsync); 0 with nm filled for qmgr_notify_ready, or -1. */
static int qmgr_bounce_queue(struct qmgr *q, struct qmgr_msg *m, const struct dsn_message *msg,
                             struct qmgr_newmsg *nm)
{
    struct qmgr_bounce_write b = { .msg = msg };
    const char *why = NULL;
    int rc;

    dsn_envelope_make(&b.de, &m->qf.env, msg, qmgr_now_us());
    rc = qmgr_notify_new_with(q, qmgr_bounce_write, &b, QMGR_NEW_NOSCAN, nm, &why);
    dsn_envelope_free(&b.de);
    if (rc < 0) {
        log_error("%s: cannot queue a report: %s: %m", m->id, why ? why : "?");
        return -1;
    }
    if (qmgr_notify_sync(q) < 0) {
        qmgr_notify_undo(q, nm);
        return -1;
    }
    return 0;
}

/* The remote server's own reply out of smtp's "host X said: REPLY (in
 * reply to RCPT TO command)", so Diagnostic-Code is "smtp; REPLY" as
 * Postfix writes it; other texts ("message expired: ...", connection
 * errors) stay as they are.  Returns a copy. */
static char *qmgr_bounce_diagnostic(const char *reason)
{
    const char *p = reason && strncmp(reason, "host ", 5) == 0 ? strstr(reason, " said: ") : NULL;
    const char *end;

    if (p == NULL)
        return reason ? xstrdup(reason) : NULL;
    p += 7;
    end = strstr(p, " (in reply to ");
    return end ? xstrndup(p, (size_t)(end - p)) : xstrdup(p);
}

static size_t qmgr_bounce_reports(const struct qmgr_msg *m, enum dsn_action action,
                                  const size_t *idx, size_t n, struct dsn_rcpt_report *out)
{
    size_t k = 0;
    time_t now = qmgr_now();

    for (size_t i = 0; i < n; i++) {
        const struct queue_rcpt *r = &m->qf.env.rcpts[idx[i]];
        const struct qmgr_rcpt_info *in = &m->info[idx[i]];
        if (!dsn_rcpt_wants(r->notify, action))
            continue;
        out[k].final_rcpt = r->addr;
        out[k].orcpt = r->orcpt;
        out[k].action = action;
        /* An expired message keeps its 4.4.7 with Action failed, as
         * Postfix reports it (lib/dsn accepts class 4 for failed). */
        out[k].status = in->dsn[0] ? in->dsn : NULL;
        out[k].remote_mta = in->relay;
        out[k].diagnostic = qmgr_bounce_diagnostic(in->reason);
        out[k].last_attempt = now;
        out[k].will_retry_until = 0;
        k++;
    }
    return k;
}

int qmgr_bounce_send(struct qmgr *q, struct qmgr_msg *m, int action, const size_t *idx,
                     size_t n)
{
    struct dsn_rcpt_report *reports;
    struct dsn_request req;
    struct dsn_message msg;
    const char *why = NULL;
    struct qmgr_newmsg nm;
    size_t nrep;
    int rc = -1;

    if (dsn_should_bounce(&m->qf.env, m->fd, &m->qf, &why) != DSN_SEND) {
        log_info("%s: %s", m->id, why ? why : "no report");
        return 0;
    }
    reports = xcalloc(n ? n : 1, sizeof *reports);
    nrep = qmgr_bounce_reports(m, (enum dsn_action)action, idx, n, reports);
    if (nrep == 0) {
        free(reports);
        return 0;
    }
    memset(&req, 0, sizeof req);
    req.fd = m->fd;
    req.qf = &m->qf;
    req.hostname = q->set.hostname;
    req.queue_id = m->id;
    req.template_text = q->set.dsn_template;
    req.template_len = q->set.dsn_template_len;
    req.content_limit = q->set.bounce_size_limit;
    req.reports = reports;
    req.nreports = nrep;
    if (dsn_build(&req, &msg, &why) < 0)
        log_error("%s: cannot build a report: %s", m->id, why ? why : "?");
    else if (qmgr_bounce_queue(q, m, &msg, &nm) == 0) {
        rc = 0;
        q->ctr.dsn_generated++;
        log_msg("%s: %s: %s", m->id, qmgr_bounce_kind((enum dsn_action)action), nm.id);
        qmgr_notify_ready(q, &nm);      /* "NEWID: from=<>, ..." and on */
    }
    dsn_message_free(&msg);
    for (size_t k = 0; k < nrep; k++)
        free((char *)reports[k].diagnostic);
    free(reports);
    return rc;
}
