/*
 * qmgr_result - what happens after a delivery attempt (DESIGN §3 step 6).
 *
 * Interface: qmgr_result_reply, qmgr_result_defer_job, qmgr_result_finish,
 * qmgr_result_log_none (qmgr.h).
 *
 * Each recipient's outcome is recorded in the queue file (status byte in
 * place: DELIVERED or FAILED; deferred ones stay PENDING) and the file is
 * synced once per reply BEFORE anything acts on it: a crash after the
 * sync repeats nothing that was recorded, a crash before it repeats the
 * delivery (at least once, never zero times).
 *
 * When every job of a message is over (qmgr_result_finish):
 *   - an administrator's op that waited for the work in flight is applied
 *     (hold/, delete, requeue to incoming/);
 *   - recipients still pending past MaximalQueueLifetime fail with 4.4.7
 *     "message expired";
 *   - failed recipients get one failure report (lib/dsn via
 *     qmgr_bounce.c), then are marked BOUNCED; recipients with
 *     NOTIFY=SUCCESS whose next hop did not take the DSN obligation get a
 *     "relayed" report; pending ones get one delay report per message
 *     after DelayWarningTime (remembered durably as the file's
 *     user-execute bit, so a restart does not repeat it);
 *   - with recipients pending the file goes to deferred/ with its mtime
 *     set to the next retry time (back-off = the message's age, clamped to
 *     MinimalBackoffTime..MaximalBackoffTime, as Postfix), else it is
 *     removed ("ID: removed").  The reasons of the pending recipients go
 *     into the file first (qmgr_notes.c), so queue-list still shows
 *     them after a restart.
 * A report that cannot be queued keeps its recipients FAILED and the
 * message deferred: the next pass tries the report again.
 *
 * Diagnostics: Postfix-shaped lines for recipients that had no attempt
 * ("to=<rcpt>, relay=none, delay=D, delays=D/0/0/0, dsn=X.Y.Z,
 * status=deferred (reason)") and for expiry ("status=expired, returned
 * to sender").  smtp logs the lines of real attempts.
 *
 * Security: smtp's reply is checked (counts, values) before use; text
 * from it only reaches logs and reports (lib/dsn sanitises it).
 */
#include "qmgr.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsn/dsn.h"
#include "proto/proto.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_AGENT_RETRIES 5

static void qmgr_fmt_delay(char *out, size_t n, double d)
{
    if (d < 0)
        d = 0;
    snprintf(out, n, d < 10 ? "%.2g" : "%.0f", d);
}

void qmgr_result_log_none(const struct qmgr_msg *m, const char *rcpt, const char *dsn,
                          const char *status, const char *reason)
{
    char delay[32];

    qmgr_fmt_delay(delay, sizeof delay, (double)(qmgr_now_us() - m->arrival_us) / 1e6);
    log_msg("%s: to=<%s>, relay=none, delay=%s, delays=%s/0/0/0, dsn=%s, status=%s (%s)", m->id,
            rcpt, delay, delay, dsn, status, reason);
}

static void qmgr_result_note(struct qmgr_msg *m, size_t i, const char *relay, const char *dsn,
                             const char *reason)
{
    struct qmgr_rcpt_info *in = &m->info[i];

    free(in->reason);
    in->reason = xstrdup(reason && *reason ? reason : "delivery failed");
    free(in->relay);
    in->relay = relay && *relay && strcmp(relay, "none") != 0 ? xstrdup(relay) : NULL;
    str_copy(in->dsn, dsn && *dsn ? dsn : "", sizeof in->dsn);
}

void qmgr_result_mark(struct qmgr_msg *m, size_t i, uint8_t status)
{
    m->qf.env.rcpts[i].status = status;
    m->info[i].unsaved = true;
    m->unsaved = true;
}

int qmgr_result_persist(struct qmgr *q, struct qmgr_msg *m)
{
    int fd, rc = 0;

    if (!m->unsaved || !m->loaded)
        return 0;
    fd = openat(q->dir_fd[m->dir], m->id, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        log_error("%s: cannot open %s/%s to record statuses: %m", m->id,
                  qmgr_dir_names[m->dir], m->id);
        return -1;
    }
    for (size_t i = 0; i < m->ninfo && i < m->qf.env.nrcpts; i++) {
        struct queue_rcpt *r = &m->qf.env.rcpts[i];
        if (!m->info[i].unsaved)
            continue;
        if (queue_rcpt_mark_status(fd, r, r->status) < 0)
            rc = -1;
        m->info[i].unsaved = false;
    }
    if (rc == 0 && queue_file_sync(fd) < 0)
        rc = -1;
    if (rc < 0)
        log_error("%s: cannot record statuses in %s/%s: %m", m->id, qmgr_dir_names[m->dir],
                  m->id);
    close(fd);
    m->unsaved = false;
    return rc;
}

/* The job left the scheduler; the message may be complete. */
static void qmgr_result_job_over(struct qmgr *q, struct qmgr_msg *m)
{
    if (m->jobs_out > 0)
        m->jobs_out--;
    if (m->jobs_out == 0)
        qmgr_result_finish(q, m);
}

void qmgr_result_defer_job(struct qmgr *q, struct qmgr_job *j, const char *dsn,
                           const char *reason)
{
    struct qmgr_msg *m = j->msg;

    for (size_t k = 0; k < j->nrcpt; k++) {
        qmgr_result_note(m, j->rcpt[k], NULL, dsn, reason);
        qmgr_result_log_none(m, m->qf.env.rcpts[j->rcpt[k]].addr, dsn, "deferred", reason);
        q->ctr.deferred_recipients++;
    }
    qmgr_job_free(j);
    qmgr_result_job_over(q, m);
}

/* One recipient of smtp's reply; false when the reply is malformed. */
static bool qmgr_result_rcpt(struct qmgr *q, struct qmgr_msg *m, size_t i,
                             const struct proto_msg *r, size_t k, const char *relay)
{
    const struct proto_attr *st = proto_get_nth(r, "rcpt_status", k);
    const struct proto_attr *dsn = proto_get_nth(r, "rcpt_dsn", k);
    const struct proto_attr *text = proto_get_nth(r, "rcpt_reply", k);
    const struct proto_attr *passed = proto_get_nth(r, "rcpt_dsn_passed", k);
    char sbuf[16], dbuf[16];
    char *reason;

    if (!st || st->type != PROTO_STR || st->len >= sizeof sbuf || !dsn ||
        dsn->type != PROTO_STR || dsn->len >= sizeof dbuf || !text || text->type != PROTO_STR)
        return false;
    memcpy(sbuf, st->value, st->len);
    sbuf[st->len] = 0;
    memcpy(dbuf, dsn->value, dsn->len);
    dbuf[dsn->len] = 0;
    reason = xstrndup((const char *)text->value, text->len);
    qmgr_result_note(m, i, relay, dbuf, reason);
    free(reason);
    if (strcmp(sbuf, "sent") == 0) {
        qmgr_result_mark(m, i, QUEUE_RCPT_DELIVERED);
        q->ctr.sent_recipients++;
        m->info[i].success_report = (m->qf.env.rcpts[i].notify & QUEUE_NOTIFY_SUCCESS) &&
                                    !(passed && passed->type == PROTO_INT && passed->num);
    } else if (strcmp(sbuf, "bounced") == 0) {
        qmgr_result_mark(m, i, QUEUE_RCPT_FAILED);
    } else {
        q->ctr.deferred_recipients++;
    }
    return true;
}

static void qmgr_result_bad_reply(struct qmgr *q, struct qmgr_job *j, const char *why)
{
    log_warn("%s: bad reply from smtp: %s", j->msg->id, why);
    for (size_t k = 0; k < j->nrcpt; k++)
        qmgr_result_note(j->msg, j->rcpt[k], NULL, "4.3.0", "delivery agent error");
}

void qmgr_result_reply(struct qmgr *q, struct qmgr_job *j, const struct proto_msg *r)
{
    struct qmgr_msg *m = j->msg;
    const char *st = r ? proto_get_str(r, "status") : NULL;
    int64_t unreachable = 0;

    if (r == NULL && ++m->agent_failures <= QMGR_AGENT_RETRIES && !q->stopping) {
        log_info("%s: delivery agent failed; will try again", m->id);
        qmgr_sched_job_retry(q, j);
        return;
    }
    if (r == NULL)
        qmgr_result_bad_reply(q, j, "the delivery agent failed repeatedly");
    else if (st == NULL || strcmp(st, "done") != 0)
        qmgr_result_bad_reply(q, j, proto_get_str(r, "reason") ? proto_get_str(r, "reason")
                                                                  : "status is not done");
    else if (proto_count(r, "rcpt_status") != j->nrcpt)
        qmgr_result_bad_reply(q, j, "recipient count differs");
    else {
        const char *relay = proto_get_str(r, "relay");
        for (size_t k = 0; k < j->nrcpt; k++) {
            if (!qmgr_result_rcpt(q, m, j->rcpt[k], r, k, relay)) {
                qmgr_result_bad_reply(q, j, "bad recipient result");
                break;
            }
        }
        if (m->jobs_out > 1)        /* another job goes on: durable now */
            (void)qmgr_result_persist(q, m);
        if (proto_get_int(r, "unreachable", &unreachable) == 0 && unreachable)
            qmgr_sched_unreachable(q, j->dest, m->info[j->rcpt[0]].reason);
    }
    qmgr_sched_job_done(q, j);
    qmgr_result_job_over(q, m);
    qmgr_sched_dispatch(q);
}

/* ---- the end of a pass ---- */

static void qmgr_result_requeued(struct qmgr *q, struct qmgr_msg *m, bool ok)
{
    m->next_try = 0;
    m->noscan = false;
    m->agent_failures = 0;
    qmgr_msg_wait(q, m);
}

/* An administrator's op that waited for the work in flight. */
static void qmgr_result_admin(struct qmgr *q, struct qmgr_msg *m)
{
    enum qmgr_admin_op op = m->admin_op;

    m->admin_op = QMGR_OP_NONE;
    if (op == QMGR_OP_DELETE)
        m->unsaved = false;     /* nothing to keep */
    qmgr_msg_unload(q, m);
    if (op == QMGR_OP_DELETE)
        qmgr_msg_delete(q, m);
    else if (op == QMGR_OP_HOLD) {
        if (qmgr_msg_move(q, m, QMGR_HOLD, NULL) == 0)
            log_msg("%s: placed on hold", m->id);
    } else if (op == QMGR_OP_REQUEUE)
        (void)qmgr_msg_move(q, m, QMGR_INCOMING, qmgr_result_requeued);
}

static size_t qmgr_result_collect(struct qmgr_msg *m, uint8_t status, size_t *idx)
{
    size_t n = 0;

    for (size_t i = 0; i < m->qf.env.nrcpts; i++) {
        if (m->qf.env.rcpts[i].status == status)
            idx[n++] = i;
    }
    return n;
}

static void qmgr_result_expire(struct qmgr *q, struct qmgr_msg *m, const size_t *idx, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        char *why = xasprintf("message expired%s%s", m->info[i].reason ? ": " : "",
                              m->info[i].reason ? m->info[i].reason : "");
        log_msg("%s: to=<%s>, relay=none, delay=%.0f, delays=%.0f/0/0/0, dsn=4.4.7, "
                "status=expired, returned to sender (%s)",
                m->id, m->qf.env.rcpts[i].addr, (double)(qmgr_now_us() - m->arrival_us) / 1e6,
                (double)(qmgr_now_us() - m->arrival_us) / 1e6, why);
        char *relay = m->info[i].relay ? xstrdup(m->info[i].relay) : NULL;
        qmgr_result_note(m, i, relay, "4.4.7", why);
        free(relay);
        free(why);
        qmgr_result_mark(m, i, QUEUE_RCPT_FAILED);
    }
}

/* Failure report, then FAILED -> BOUNCED; false when it must wait. */
static bool qmgr_result_bounce(struct qmgr *q, struct qmgr_msg *m, size_t *idx)
{
    size_t n = qmgr_result_collect(m, QUEUE_RCPT_FAILED, idx);

    if (n == 0)
        return true;
    (void)qmgr_result_persist(q, m);    /* FAILED durable before the report */
    if (qmgr_bounce_send(q, m, DSN_ACTION_FAILED, idx, n) < 0)
        return false;
    for (size_t k = 0; k < n; k++)
        qmgr_result_mark(m, idx[k], QUEUE_RCPT_BOUNCED);
    q->ctr.bounced_recipients += n;
    (void)qmgr_result_persist(q, m);
    return true;
}

static void qmgr_result_success(struct qmgr *q, struct qmgr_msg *m, size_t *idx)
{
    size_t n = 0;

    for (size_t i = 0; i < m->qf.env.nrcpts; i++) {
        if (m->info[i].success_report)
            idx[n++] = i;
        m->info[i].success_report = false;
    }
    if (n > 0) {
        (void)qmgr_result_persist(q, m);    /* DELIVERED before the report */
        (void)qmgr_bounce_send(q, m, DSN_ACTION_RELAYED, idx, n);
    }
}

static void qmgr_result_delay(struct qmgr *q, struct qmgr_msg *m, const size_t *idx, size_t n)
{
    time_t age = qmgr_now() - (time_t)(m->arrival_us / 1000000);

    if (q->set.delay_warning <= 0 || m->delay_warned || age < q->set.delay_warning)
        return;
    if (qmgr_bounce_send(q, m, DSN_ACTION_DELAYED, idx, n) < 0)
        return;
    m->delay_warned = true;
    if (fchmod(m->fd, 0700) < 0 || fsync(m->fd) < 0)
        log_warn("%s: cannot record the delay report: %m", m->id);
}

/* The reasons are in the file (or could not be): retry time, deferred/. */
static void qmgr_result_deferred(struct qmgr *q, struct qmgr_msg *m)
{
    time_t now = qmgr_now();
    time_t age = now - (time_t)(m->arrival_us / 1000000);
    time_t backoff = age < q->set.min_backoff   ? q->set.min_backoff
                     : age > q->set.max_backoff ? q->set.max_backoff
                                                : age;
    struct timespec ts[2] = { { now + backoff, 0 }, { now + backoff, 0 } };

    if (futimens(m->fd, ts) < 0)
        log_warn("%s: cannot set the retry time: %m", m->id);
    m->next_try = now + backoff;
    m->agent_failures = 0;
    qmgr_msg_unload(q, m);
    if (qmgr_msg_move(q, m, QMGR_DEFERRED, NULL) < 0)
        m->next_try = now + q->set.min_backoff;
    else
        log_debug("%s: deferred, next attempt in %lld s", m->id, (long long)backoff);
    qmgr_msg_wake(q);
}

static void qmgr_result_defer(struct qmgr *q, struct qmgr_msg *m)
{
    (void)qmgr_result_persist(q, m);
    /* the reasons outlive this pass; their copy is written off the loop */
    if (!qmgr_notes_save(q, m, qmgr_result_deferred))
        qmgr_result_deferred(q, m);
}

void qmgr_result_finish(struct qmgr *q, struct qmgr_msg *m)
{
    size_t *idx, npending;
    bool reported;

    if (m->admin_op != QMGR_OP_NONE) {
        qmgr_result_admin(q, m);
        return;
    }
    if (!m->loaded)
        return;
    m->force = false;           /* "deliver now" lasts one pass */
    idx = xcalloc(m->qf.env.nrcpts, sizeof *idx);
    npending = qmgr_result_collect(m, QUEUE_RCPT_PENDING, idx);
    if (npending > 0 &&
        qmgr_now() - (time_t)(m->arrival_us / 1000000) >= q->set.lifetime) {
        qmgr_result_expire(q, m, idx, npending);
        npending = 0;
    }
    reported = qmgr_result_bounce(q, m, idx);
    qmgr_result_success(q, m, idx);
    npending = qmgr_result_collect(m, QUEUE_RCPT_PENDING, idx);
    if (npending > 0)
        qmgr_result_delay(q, m, idx, npending);
    free(idx);
    if (npending > 0 || !reported)
        qmgr_result_defer(q, m);
    else {
        qmgr_archive_out(q, m);     /* OutgoingArchivePath (qmgr_archive.c) */
        qmgr_msg_remove(q, m);
    }
    qmgr_msg_wake(q);
}
