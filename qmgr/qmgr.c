/*
 * qmgr - the queue manager daemon (DESIGN §2, §4).
 *
 * Usage: libexec/qmgr -c CONFIG [-f] [-L N]   (started by master; fd 4 is
 * the listener private/qmgr; by hand without -L it binds
 * QueuePath/private/qmgr itself).
 *
 * Start-up: server skeleton (config, log, privileges), queue tree opened
 * and recovered (qmgr_scan.c), then the commit protocol (qmgr_commit.c)
 * in one libevent loop.
 *
 * Master commands on the status channel:
 *   {op="stats"} or {op="status"}
 *                 -> counts per queue directory: incoming, active,
 *                    deferred, hold, corrupt (INT attributes), plus
 *                    in_progress (tmp files handed out, not committed),
 *                    committed (since start), send ("on"/"off")
 *   {op="send-off"}, {op="send-on"}
 *                 -> sets q->send_suspended, the switch the delivery
 *                    stage obeys (mail is still accepted and queued)
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
#include "proto/proto.h"
#include "server/server.h"
#include "util/log.h"

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
        return;
    }
    proto_put_str(reply, "status", "error");
    proto_put_str(reply, "reason", "unknown command");
}

static void qmgr_on_stop(struct server *srv, void *arg)
{
    struct qmgr *q = arg;

    q->stopping = true;
    qmgr_commit_stop(q);
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
    q.base = event_base_new();
    if (q.base == NULL)
        log_fatal("cannot create the event loop");
    qmgr_scan_open_dirs(&q);
    qmgr_scan_startup(&q);
    qmgr_commit_start(&q);
    server_event_attach(q.srv, q.base, qmgr_on_command, qmgr_on_stop, &q);
    log_debug("ready");
    event_base_dispatch(q.base);
    server_exit(q.srv, 0);
}
