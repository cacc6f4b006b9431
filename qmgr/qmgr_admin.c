/*
 * qmgr_admin - queue administration (CONTRACTS.md "Queue administration";
 * the postqueue/postsuper roles behind mailgwq and `mailgw flush`).
 *
 * Interface: qmgr_admin_command() (qmgr.h), called for master's
 * commands on the status channel.
 *
 * Ops (id=ID or id=ALL where it says so):
 *   flush, queue-flush   every deferred message to active/ now; the
 *                        unreachable cache is forgotten (as Postfix's
 *                        flush resets dead destinations)
 *   queue-deliver id     that message now (deferred or incoming), even
 *                        to a nexthop in the unreachable cache
 *   queue-delete  id|ALL remove ("ID: removed")
 *   queue-hold    id|ALL to hold/ ("ID: placed on hold"); not delivered
 *                        until released
 *   queue-release id|ALL hold/ back to incoming/ ("ID: released from hold")
 *   queue-requeue id|ALL to incoming/ for a fresh pass (scan included)
 *   queue-list [after=ID] per message in arrival order (after ID when
 *                        given): q_id, q_state, q_size, q_arrival,
 *                        q_sender, then per pending recipient q_rcpt,
 *                        q_reason (the last deferral reason, kept in the
 *                        queue file so it outlives a restart); paged: at
 *                        most QMGR_LIST_MAX_MSGS messages and what fits
 *                        in one frame, more=1 when more follow (the
 *                        client asks again with after=<last q_id>)
 *   queue-show id        {status="ok"} + the queue file read-only
 * Answers {status="ok", count=N} or {status="error", reason}.  A message
 * that is busy (being scanned, delivered, or moved) gets the op when the
 * work in flight ends; it is counted at once.
 *
 * Security: master authorises the administrator; IDs are checked with
 * queue_id_valid() before any lookup.
 */
#include "qmgr.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "util/log.h"

/* One page of queue-list, far enough below PROTO_MAX_ATTRS and
 * PROTO_MAX_FRAME for master's relay to add its own attributes. */
#define QMGR_LIST_MAX_MSGS 500
#define QMGR_LIST_MAX_ATTRS 3800
#define QMGR_LIST_MAX_BYTES (768 * 1024)

static bool qmgr_admin_busy(const struct qmgr_msg *m)
{
    return m->scanning || m->syncing || m->jobs_out > 0 || m->loaded;
}

static void qmgr_admin_released(struct qmgr *q, struct qmgr_msg *m, bool ok)
{
    m->next_try = 0;
    qmgr_msg_wait(q, m);
}

static void qmgr_admin_requeued(struct qmgr *q, struct qmgr_msg *m, bool ok)
{
    m->next_try = 0;
    m->noscan = false;
    m->agent_failures = 0;
    qmgr_msg_wait(q, m);
}

/* A busy message gets op when its work ends; jobs still waiting for a
 * slot are taken back at once, so a held or deleted message sends
 * nothing new. */
static void qmgr_admin_later(struct qmgr *q, struct qmgr_msg *m, enum qmgr_admin_op op)
{
    m->admin_op = op;
    if (m->jobs_out > 0 && qmgr_sched_cancel(q, m) && m->jobs_out == 0)
        qmgr_result_finish(q, m);
}

/* One message, one op; true when it counts. */
static bool qmgr_admin_one(struct qmgr *q, struct qmgr_msg *m, const char *op)
{
    bool busy = qmgr_admin_busy(m);

    if (strcmp(op, "queue-delete") == 0) {
        if (busy)
            qmgr_admin_later(q, m, QMGR_OP_DELETE);
        else
            qmgr_msg_delete(q, m);
        return true;
    }
    if (strcmp(op, "queue-hold") == 0) {
        if (m->dir == QMGR_HOLD)
            return false;
        if (busy) {
            qmgr_admin_later(q, m, QMGR_OP_HOLD);
            return true;
        }
        qmgr_msg_unwait(q, m);
        if (qmgr_msg_move(q, m, QMGR_HOLD, NULL) < 0)
            return false;
        log_msg("%s: placed on hold", m->id);
        return true;
    }
    if (strcmp(op, "queue-release") == 0) {
        if (m->dir != QMGR_HOLD || busy)
            return false;
        if (qmgr_msg_move(q, m, QMGR_INCOMING, qmgr_admin_released) < 0)
            return false;
        log_msg("%s: released from hold", m->id);
        return true;
    }
    if (strcmp(op, "queue-requeue") == 0) {
        if (busy) {
            qmgr_admin_later(q, m, QMGR_OP_REQUEUE);
            return true;
        }
        qmgr_msg_unwait(q, m);
        if (m->dir == QMGR_INCOMING) {
            qmgr_admin_requeued(q, m, true);
            return true;
        }
        return qmgr_msg_move(q, m, QMGR_INCOMING, qmgr_admin_requeued) == 0;
    }
    /* queue-deliver: this pass ignores the unreachable cache */
    if (m->dir == QMGR_DEFERRED && !busy) {
        m->force = true;
        qmgr_msg_activate(q, m);
        return true;
    }
    if (m->dir == QMGR_INCOMING) {
        m->force = true;
        m->next_try = 0;
        qmgr_msg_wake(q);
        return true;
    }
    return false;
}

static int64_t qmgr_admin_ids(struct qmgr *q, const char *op, const char *id, const char **err)
{
    struct qmgr_msg **all, *m;
    size_t n;
    int64_t count = 0;

    if (id == NULL) {
        *err = "id required";
        return -1;
    }
    if (strcmp(id, "ALL") == 0 && strcmp(op, "queue-deliver") != 0) {
        all = qmgr_msg_all(q, &n);
        for (size_t i = 0; i < n; i++)
            count += qmgr_admin_one(q, all[i], op);
        free(all);
        qmgr_msg_wake(q);
        return count;
    }
    if (!queue_id_valid(id) || (m = qmgr_msg_find(q, id)) == NULL) {
        *err = "no such message";
        return -1;
    }
    count = qmgr_admin_one(q, m, op);
    qmgr_msg_wake(q);
    return count;
}

static int64_t qmgr_admin_flush(struct qmgr *q)
{
    struct qmgr_msg **all;
    size_t n;
    int64_t count = 0;

    for (size_t i = 0; i < q->dtab_size; i++) {
        for (struct qmgr_dest *d = q->dtab[i]; d; d = d->hnext)
            d->unreachable_until = 0;
    }
    all = qmgr_msg_all(q, &n);
    for (size_t i = 0; i < n; i++) {
        if (all[i]->dir == QMGR_DEFERRED && !qmgr_admin_busy(all[i])) {
            qmgr_msg_activate(q, all[i]);
            count++;
        }
    }
    free(all);
    q->smtp_retry_at = 0;
    qmgr_msg_wake(q);
    log_info("flush: %lld deferred messages scheduled", (long long)count);
    return count;
}

/* The last deferral reason of recipient i: this pass's note, else the
 * one recorded in the queue file. */
static const char *qmgr_admin_reason(const struct qmgr_msg *m, const struct queue_file *qf,
                                     size_t i)
{
    if (i < m->ninfo && m->info[i].reason)
        return m->info[i].reason;
    if (i < qf->env.nrcpts && qf->env.rcpts[i].reason)
        return qf->env.rcpts[i].reason;
    return "";
}

/* One message's entry of queue-list into r when it fits in the page
 * (*attrs and *bytes: what the page holds so far; an entry that alone
 * exceeds the page is cut to the recipients that fit).  1 listed, 0 not
 * readable (skipped), -1 does not fit (the page ends before it). */
static int qmgr_admin_list_one(struct qmgr *q, const struct qmgr_msg *m, struct proto_msg *r,
                               size_t *attrs, size_t *bytes)
{
    struct queue_file qf;
    const struct queue_file *use = &m->qf;
    const char *why = NULL;
    size_t na = 5, nb = 256 + strlen(m->id), first = *attrs == 0;
    int fd = -1;

    if (!m->loaded) {
        fd = openat(q->dir_fd[m->dir], m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || queue_file_read(fd, &qf, &why) < 0) {
            if (fd >= 0)
                close(fd);
            return 0;
        }
        use = &qf;
    }
    nb += strlen(use->env.sender);
    for (size_t i = 0; i < use->env.nrcpts; i++) {
        if (use->env.rcpts[i].status == QUEUE_RCPT_PENDING) {
            na += 2;
            nb += 64 + strlen(use->env.rcpts[i].addr) + strlen(qmgr_admin_reason(m, use, i));
        }
    }
    if (!first && (*attrs + na > QMGR_LIST_MAX_ATTRS || *bytes + nb > QMGR_LIST_MAX_BYTES)) {
        if (fd >= 0) {
            queue_file_free(&qf);
            close(fd);
        }
        return -1;
    }
    proto_put_str(r, "q_id", m->id);
    proto_put_str(r, "q_state", qmgr_dir_names[m->dir]);
    proto_put_int(r, "q_size", (int64_t)use->content_size);
    proto_put_int(r, "q_arrival", (int64_t)(use->env.arrival_us / 1000000));
    proto_put_str(r, "q_sender", use->env.sender);
    *attrs += 5;
    *bytes += 256 + strlen(m->id) + strlen(use->env.sender);
    for (size_t i = 0; i < use->env.nrcpts; i++) {
        const struct queue_rcpt *rc = &use->env.rcpts[i];
        const char *reason = qmgr_admin_reason(m, use, i);
        size_t b = 64 + strlen(rc->addr) + strlen(reason);
        if (rc->status != QUEUE_RCPT_PENDING)
            continue;
        if (*attrs + 2 > QMGR_LIST_MAX_ATTRS || *bytes + b > QMGR_LIST_MAX_BYTES)
            break;      /* one huge message: the recipients that fit */
        proto_put_str(r, "q_rcpt", rc->addr);
        proto_put_str(r, "q_reason", reason);
        *attrs += 2;
        *bytes += b;
    }
    if (fd >= 0) {
        queue_file_free(&qf);
        close(fd);
    }
    return 1;
}

/* A page of the listing: the messages after "after" (an ID; IDs sort by
 * arrival) that fit in one frame; more=1 when others follow. */
static void qmgr_admin_list(struct qmgr *q, const char *after, struct proto_msg *reply)
{
    size_t n, attrs = 0, bytes = 0, listed = 0;
    struct qmgr_msg **all = qmgr_msg_all(q, &n);
    int64_t count = 0;
    bool more = false;

    proto_put_str(reply, "status", "ok");
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (after != NULL && strcmp(all[i]->id, after) <= 0)
            continue;
        if (listed >= QMGR_LIST_MAX_MSGS ||
            (rc = qmgr_admin_list_one(q, all[i], reply, &attrs, &bytes)) < 0) {
            more = true;
            break;
        }
        listed++;
        count += rc;
    }
    proto_put_int(reply, "count", count);
    if (more)
        proto_put_int(reply, "more", 1);
    free(all);
}

static void qmgr_admin_show(struct qmgr *q, const char *id, struct proto_msg *reply)
{
    struct qmgr_msg *m = id && queue_id_valid(id) ? qmgr_msg_find(q, id) : NULL;
    int fd = m ? openat(q->dir_fd[m->dir], m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;

    if (fd < 0) {
        proto_put_str(reply, "status", "error");
        proto_put_str(reply, "reason", "no such message");
        return;
    }
    proto_put_str(reply, "status", "ok");
    proto_put_str(reply, "q_state", qmgr_dir_names[m->dir]);
    proto_put_fd(reply, fd);
    close(fd);
}

bool qmgr_admin_command(struct qmgr *q, const char *op, const struct proto_msg *cmd,
                        struct proto_msg *reply)
{
    const char *err = NULL;
    int64_t count;

    if (strcmp(op, "queue-list") == 0) {
        qmgr_admin_list(q, proto_get_str(cmd, "after"), reply);
        return true;
    }
    if (strcmp(op, "queue-show") == 0) {
        qmgr_admin_show(q, proto_get_str(cmd, "id"), reply);
        return true;
    }
    if (strcmp(op, "flush") == 0 || strcmp(op, "queue-flush") == 0)
        count = qmgr_admin_flush(q);
    else if (strcmp(op, "queue-deliver") == 0 || strcmp(op, "queue-delete") == 0 ||
             strcmp(op, "queue-hold") == 0 || strcmp(op, "queue-release") == 0 ||
             strcmp(op, "queue-requeue") == 0)
        count = qmgr_admin_ids(q, op, proto_get_str(cmd, "id"), &err);
    else
        return false;
    if (count < 0) {
        proto_put_str(reply, "status", "error");
        proto_put_str(reply, "reason", err);
        return true;
    }
    proto_put_str(reply, "status", "ok");
    proto_put_int(reply, "count", count);
    return true;
}
