/*
 * qmgr - the queue manager daemon (DESIGN §2, §4).
 *
 * Usage: libexec/qmgr -c CONFIG [-f] [-L N]   (started by master; fd 4 is
 * the listener private/qmgr; by hand without -L it binds
 * QueuePath/private/qmgr itself).
 *
 * Start-up: server skeleton (config, log, privileges), settings, queue
 * tree opened and recovered (qmgr_scan.c), the delivery side (qmgr_msg.c,
 * qmgr_sched.c, qmgr_scanstep.c), then the commit protocol
 * (qmgr_commit.c), all in one libevent loop.
 *
 * Master commands on the status channel:
 *   {op="stats"} or {op="status"}
 *                 -> counts per queue directory: incoming, active,
 *                    deferred, hold, corrupt (INT attributes), plus
 *                    in_progress (tmp files handed out, not committed),
 *                    committed (since start), send ("on"/"off"),
 *                    sessions (requests in flight to smtp), scanning,
 *                    and the counters mta_dsn_generated,
 *                    mta_outgoing_connections_failed_through_cache
 *   {op="send-off"}, {op="send-on"}
 *                 -> pause / resume delivery: nothing new goes to smtp
 *                    while off (mail is still accepted, scanned, queued)
 *   {op="flush"} and the queue-* ops -> qmgr_admin.c
 *   {op="stop"}   -> stop accepting, answer the commits already renamed,
 *                    remove uncommitted tmp files, exit 0
 * Anything else gets status="error".
 *
 * Diagnostics: start-up problems are fatal; the rest is in the modules.
 */
#include "qmgr.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "dsn/dsn.h"
#include "proto/proto.h"
#include "server/server.h"
#include "server/server_work.h"
#include "util/log.h"

/* fsyncs off the loop (deferral reasons): parallel fsyncs share device
 * flushes, so a few threads keep up with a burst of deferrals. */
#define QMGR_WORK_THREADS 4

static void qmgr_status(struct qmgr *q, struct proto_msg *reply)
{
    static const enum qmgr_dir dirs[] = { QMGR_INCOMING, QMGR_ACTIVE, QMGR_DEFERRED, QMGR_HOLD,
                                          QMGR_CORRUPT };

    proto_put_str(reply, "status", "ok");
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        proto_put_int(reply, qmgr_dir_names[dirs[i]], (int64_t)q->count[dirs[i]]);
    proto_put_int(reply, "in_progress", (int64_t)qmgr_commit_in_progress(q));
    proto_put_int(reply, "committed", (int64_t)q->committed);
    proto_put_str(reply, "send", q->send_suspended ? "off" : "on");
    proto_put_int(reply, "sessions", q->sessions);
    proto_put_int(reply, "scanning", (int64_t)q->nscanning);
    proto_put_int(reply, "mta_dsn_generated", (int64_t)q->ctr.dsn_generated);
    proto_put_int(reply, "mta_outgoing_connections_failed_through_cache",
                  (int64_t)q->ctr.failed_through_cache);
}

static void qmgr_settings(struct qmgr *q)
{
    const struct conf *c = q->srv->conf;
    struct qmgr_settings *s = &q->set;
    const char *tmpl = conf_str(c, "mailgw.path", "DsnTemplate");

    s->out_sessions = (unsigned)conf_int(c, "mailgw.limits", "OutgoingSessions");
    s->per_host = (unsigned)conf_int(c, "mailgw.limits", "MaximalOutgoingSessionsPerHost");
    s->scan_sessions = (unsigned)conf_int(c, "mailgw.limits", "AntiviralSessions");
    s->min_backoff = conf_int(c, "mailgw.timeouts", "MinimalBackoffTime");
    s->max_backoff = conf_int(c, "mailgw.timeouts", "MaximalBackoffTime");
    if (s->max_backoff < s->min_backoff)
        s->max_backoff = s->min_backoff;
    s->lifetime = conf_int(c, "mailgw.timeouts", "MaximalQueueLifetime");
    s->delay_warning = conf_int(c, "mailgw.timeouts", "DelayWarningTime");
    s->unreachable_ttl = conf_int(c, "mailgw.resolve", "UnreachableTTL");
    s->hostname = conf_str(c, "mailgw.network", "Hostname");
    s->bounce_size_limit = (size_t)conf_int(c, "mailgw.limits", "BounceSizeLimit");
    if (tmpl && *tmpl) {
        struct buf t = BUF_INIT;
        const char *why = NULL;
        if (dsn_template_load(tmpl, &t, &why) < 0)
            log_fatal("DsnTemplate %s: %s", tmpl, why ? why : "cannot load");
        s->dsn_template = t.data;
        s->dsn_template_len = t.len;
    }
}

static void qmgr_on_command(struct server *srv, const struct proto_msg *cmd,
                            struct proto_msg *reply, void *arg)
{
    struct qmgr *q = arg;
    const char *op = proto_get_str(cmd, "op");

    if (op != NULL && (strcmp(op, "stats") == 0 || strcmp(op, "status") == 0)) {
        qmgr_status(q, reply);
        return;
    }
    if (op != NULL && (strcmp(op, "send-off") == 0 || strcmp(op, "send-on") == 0)) {
        q->send_suspended = strcmp(op, "send-off") == 0;
        log_info("sending %s by the administrator", q->send_suspended ? "suspended" : "resumed");
        proto_put_str(reply, "status", "ok");
        qmgr_msg_wake(q);
        return;
    }
    if (op != NULL && qmgr_admin_command(q, op, cmd, reply))
        return;
    proto_put_str(reply, "status", "error");
    proto_put_str(reply, "reason", "unknown command");
}

static void qmgr_on_stop(struct server *srv, void *arg)
{
    struct qmgr *q = arg;

    q->stopping = true;
    qmgr_commit_stop(q);
    /* Requests in flight to smtp or scand are dropped: their files stay
     * in active/ or incoming/ and are taken up again at the next start
     * (at least once). */
    log_debug("stopped: %llu commits", (unsigned long long)q->committed);
    server_exit(srv, 0);
}

int main(int argc, char **argv)
{
    struct qmgr q;

    memset(&q, 0, sizeof q);
    q.srv = server_init(argc, argv, "qmgr");
    q.queue_path = server_queue_path(q.srv);
    q.min_free_bytes =
        (uint64_t)conf_int(q.srv->conf, "mailgw.limits", "MinimalQueueFreeSpaceSize");
    qmgr_settings(&q);
    q.base = server_event_base();
    q.work = server_work_new(q.base, QMGR_WORK_THREADS);
    qmgr_scan_open_dirs(&q);
    qmgr_msg_init(&q);
    qmgr_sched_init(&q);
    qmgr_scanstep_init(&q);
    qmgr_scan_startup(&q);
    qmgr_commit_start(&q);
    server_event_attach(q.srv, q.base, qmgr_on_command, qmgr_on_stop, &q);
    log_debug("ready");
    event_base_dispatch(q.base);
    server_exit(q.srv, 0);
}
