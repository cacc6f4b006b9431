/*
 * qmgr_sched - delivery scheduling per destination (DESIGN §3 step 5).
 *
 * Interface: qmgr_sched_init, qmgr_sched_message, qmgr_sched_dispatch,
 * qmgr_sched_job_done, qmgr_sched_job_retry, qmgr_sched_unreachable,
 * qmgr_job_free (qmgr.h).
 *
 * A loaded message's pending recipients are grouped by nexthop (lib/route:
 * ForwardRoute, else the recipient's domain); each group is one job, one
 * delivery request to smtp.  Jobs wait in their destination's FIFO.
 * Destinations that have jobs and a free slot (fewer than
 * MaximalOutgoingSessionsPerHost requests in flight) sit in a ring;
 * dispatch takes the ring's head, sends one job and puts the destination
 * back at the tail, so destinations take turns: a slow or dead one holds
 * at most its own slots and never starves the others.  OutgoingSessions
 * bounds the requests in flight in total.
 *
 * Unreachable cache: when smtp reports that a nexthop could not be
 * reached at all, the destination is skipped for UnreachableTTL seconds:
 * its jobs are deferred without an attempt ("host X unreachable
 * (cached)"), counted as mta_outgoing_connections_failed_through_cache;
 * a message an administrator delivers now (queue-deliver) still tries.
 *
 * Diagnostics: a recipient without a usable route fails (5.1.2).
 */
#include "qmgr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/route.h"
#include "server/server.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

/* Recipients per delivery request (keeps requests far below the frame
 * limit; a larger group becomes several jobs). */
#define QMGR_JOB_MAX_RCPT 1000

static size_t qmgr_dest_hash(const char *s, size_t size)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)(h % size);
}

static struct qmgr_dest *qmgr_dest_get(struct qmgr *q, const char *nexthop)
{
    size_t h = qmgr_dest_hash(nexthop, q->dtab_size);
    struct qmgr_dest *d;

    for (d = q->dtab[h]; d; d = d->hnext) {
        if (strcmp(d->nexthop, nexthop) == 0)
            return d;
    }
    d = xcalloc(1, sizeof *d);
    d->nexthop = xstrdup(nexthop);
    TAILQ_INIT(&d->jobs);
    d->hnext = q->dtab[h];
    q->dtab[h] = d;
    return d;
}

/* An idle destination with nothing to remember is dropped. */
static void qmgr_dest_maybe_free(struct qmgr *q, struct qmgr_dest *d)
{
    struct qmgr_dest **pp;

    if (d->njobs || d->active || d->in_ring || d->unreachable_until > qmgr_now())
        return;
    pp = &q->dtab[qmgr_dest_hash(d->nexthop, q->dtab_size)];
    while (*pp && *pp != d)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = d->hnext;
    free(d->unreachable_reason);
    free(d->nexthop);
    free(d);
}

/* In the ring exactly when it has jobs and a free slot. */
static void qmgr_dest_ring(struct qmgr *q, struct qmgr_dest *d)
{
    bool want = d->njobs > 0 && d->active < q->set.per_host;

    if (want && !d->in_ring)
        TAILQ_INSERT_TAIL(&q->ring, d, ring);
    else if (!want && d->in_ring)
        TAILQ_REMOVE(&q->ring, d, ring);
    d->in_ring = want;
}

void qmgr_job_free(struct qmgr_job *j)
{
    free(j->rcpt);
    free(j);
}

static void qmgr_sched_fail_route(struct qmgr *q, struct qmgr_msg *m, size_t i)
{
    struct queue_rcpt *r = &m->qf.env.rcpts[i];

    free(m->info[i].reason);
    m->info[i].reason = xstrdup("no route to the recipient's domain");
    str_copy(m->info[i].dsn, "5.1.2", sizeof m->info[i].dsn);
    qmgr_result_mark(m, i, QUEUE_RCPT_FAILED);
    (void)qmgr_result_persist(q, m);
    qmgr_result_log_none(m, r->addr, "5.1.2", "bounced", m->info[i].reason);
}

/* The job of m for nexthop among jobs[0..n), or a new one. */
static struct qmgr_job *qmgr_sched_job_for(struct qmgr *q, struct qmgr_msg *m,
                                           struct qmgr_job ***jobs, size_t *n,
                                           const char *nexthop)
{
    struct qmgr_job *j;

    for (size_t k = 0; k < *n; k++) {
        if ((*jobs)[k]->nrcpt < QMGR_JOB_MAX_RCPT && strcmp((*jobs)[k]->dest->nexthop, nexthop) == 0)
            return (*jobs)[k];
    }
    j = xcalloc(1, sizeof *j);
    j->msg = m;
    j->dest = qmgr_dest_get(q, nexthop);
    j->rcpt = xcalloc(m->qf.env.nrcpts, sizeof *j->rcpt);
    *jobs = xreallocarray(*jobs, *n + 1, sizeof **jobs);
    (*jobs)[(*n)++] = j;
    return j;
}

void qmgr_sched_message(struct qmgr *q, struct qmgr_msg *m)
{
    struct buf nh = BUF_INIT;
    struct qmgr_job **jobs = NULL;
    size_t njobs = 0;

    for (size_t i = 0; i < m->qf.env.nrcpts; i++) {
        struct queue_rcpt *r = &m->qf.env.rcpts[i];
        struct qmgr_job *j;
        if (r->status != QUEUE_RCPT_PENDING)
            continue;
        if (route_lookup(q->routes, r->addr, &nh) < 0) {
            qmgr_sched_fail_route(q, m, i);
            continue;
        }
        buf_append_byte(&nh, 0);
        j = qmgr_sched_job_for(q, m, &jobs, &njobs, nh.data);
        j->rcpt[j->nrcpt++] = i;
    }
    buf_free(&nh);
    m->jobs_out += njobs;
    for (size_t k = 0; k < njobs; k++) {
        TAILQ_INSERT_TAIL(&jobs[k]->dest->jobs, jobs[k], link);
        jobs[k]->dest->njobs++;
        qmgr_dest_ring(q, jobs[k]->dest);
    }
    free(jobs);
    if (njobs == 0)
        qmgr_result_finish(q, m);
}

/* Jobs of a cached-unreachable destination are deferred without an
 * attempt, except those of messages an administrator asked to deliver
 * now (queue-deliver): they try.  True when such a job is left. */
static bool qmgr_sched_flush_cached(struct qmgr *q, struct qmgr_dest *d)
{
    char reason[512];
    struct qmgr_job *j, *next;

    snprintf(reason, sizeof reason, "host %s unreachable (cached)%s%s", d->nexthop,
             d->unreachable_reason ? ": " : "",
             d->unreachable_reason ? d->unreachable_reason : "");
    for (j = TAILQ_FIRST(&d->jobs); j != NULL; j = next) {
        next = TAILQ_NEXT(j, link);
        if (j->msg->force)
            continue;
        TAILQ_REMOVE(&d->jobs, j, link);
        d->njobs--;
        q->ctr.failed_through_cache++;
        qmgr_result_defer_job(q, j, "4.4.1", reason);
    }
    return d->njobs > 0;
}

void qmgr_sched_dispatch(struct qmgr *q)
{
    time_t now = qmgr_now();
    struct qmgr_dest *d;

    if (q->send_suspended || q->stopping || q->smtp_retry_at > now)
        return;
    while ((d = TAILQ_FIRST(&q->ring)) != NULL) {
        struct qmgr_job *j;
        TAILQ_REMOVE(&q->ring, d, ring);
        d->in_ring = false;
        if (d->unreachable_until > now && !qmgr_sched_flush_cached(q, d)) {
            qmgr_dest_maybe_free(q, d);
            continue;
        }
        if (q->sessions >= q->set.out_sessions) {
            TAILQ_INSERT_HEAD(&q->ring, d, ring);
            d->in_ring = true;
            break;
        }
        j = TAILQ_FIRST(&d->jobs);      /* a forced one if cached */
        TAILQ_REMOVE(&d->jobs, j, link);
        d->njobs--;
        if (qmgr_smtp_send(q, j) < 0) {
            TAILQ_INSERT_HEAD(&d->jobs, j, link);
            d->njobs++;
            qmgr_dest_ring(q, d);
            q->smtp_retry_at = now + 1;
            break;
        }
        d->active++;
        q->sessions++;
        qmgr_dest_ring(q, d);       /* back at the tail: round-robin */
    }
}

size_t qmgr_sched_cancel(struct qmgr *q, struct qmgr_msg *m)
{
    size_t n = 0;

    for (size_t i = 0; i < q->dtab_size; i++) {
        for (struct qmgr_dest *d = q->dtab[i]; d; d = d->hnext) {
            struct qmgr_job *j, *next;
            for (j = TAILQ_FIRST(&d->jobs); j; j = next) {
                next = TAILQ_NEXT(j, link);
                if (j->msg != m)
                    continue;
                TAILQ_REMOVE(&d->jobs, j, link);
                d->njobs--;
                qmgr_job_free(j);
                m->jobs_out--;
                n++;
            }
            qmgr_dest_ring(q, d);
        }
    }
    return n;
}

void qmgr_sched_job_done(struct qmgr *q, struct qmgr_job *j)
{
    struct qmgr_dest *d = j->dest;

    d->active--;
    q->sessions--;
    qmgr_job_free(j);
    qmgr_dest_ring(q, d);
    qmgr_dest_maybe_free(q, d);
}

void qmgr_sched_job_retry(struct qmgr *q, struct qmgr_job *j)
{
    struct qmgr_dest *d = j->dest;

    d->active--;
    q->sessions--;
    TAILQ_INSERT_HEAD(&d->jobs, j, link);
    d->njobs++;
    qmgr_dest_ring(q, d);
    q->smtp_retry_at = qmgr_now() + 1;  /* master restarts smtp meanwhile */
}

void qmgr_sched_unreachable(struct qmgr *q, struct qmgr_dest *d, const char *reason)
{
    if (q->set.unreachable_ttl <= 0)
        return;
    d->unreachable_until = qmgr_now() + q->set.unreachable_ttl;
    free(d->unreachable_reason);
    d->unreachable_reason = reason && *reason ? xstrdup(reason) : NULL;
    log_info("%s: unreachable, skipped for %lld s", d->nexthop,
             (long long)q->set.unreachable_ttl);
}

void qmgr_sched_init(struct qmgr *q)
{
    struct buf diag = BUF_INIT;

    TAILQ_INIT(&q->ring);
    q->dtab_size = 1021;
    q->dtab = xcalloc(q->dtab_size, sizeof *q->dtab);
    q->routes = route_table_from_conf(q->srv->conf, &diag);
    if (q->routes == NULL) {
        buf_append_byte(&diag, 0);
        log_fatal("ForwardRoute: %s", diag.data ? diag.data : "invalid");
    }
    buf_free(&diag);
}
