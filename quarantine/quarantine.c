/*
 * quarantine - the quarantine / backup / archive store daemon (issue 6;
 * CONTRACTS.md "quarantine daemon"; quarantine(8) in mailgw-quarantine(1)).
 *
 * Usage: libexec/quarantine -c CONFIG [-f] [-L N]  (started by master)
 *   fd 4  private/quarantine: qmgr's "store" requests (and every other op)
 *   fd 5  public/quarantine: the CLI's list/show/release/resend/delete/
 *         expire, peers checked with SO_PEERCRED (root, our own uid,
 *         members of [mailgw.options] AdminGroup)
 * When master passes fewer listeners the daemon binds the missing ones
 * itself under QueuePath (a daemon started by hand binds both).
 *
 * Areas: [mailgw.policy] QuarantinePath (default QueuePath/quarantine),
 * BackupPath (default QueuePath/backup), [mailgw.path]
 * IncomingArchivePath / OutgoingArchivePath (empty = that archive off).
 * Every 24 hours, and when asked (op=expire), entries older than
 * [mailgw.policy] QuarantineMaxAge are removed.
 *
 * Diagnostics: one log line per stored, released, resent, removed or
 * expired entry, starting with the queue ID or the store ID; warnings for
 * refused peers, bad frames and unreadable entries.  A bad request fails
 * that request or closes that connection, never the daemon.
 */
#include "quarantine.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define QUAR_EXPIRE_PERIOD 86400
#define QUAR_STOP_GRACE 10

static char *quar_area_path(struct quar *q, const char *section, const char *name,
                            const char *fallback)
{
    const char *v = conf_str(q->srv->conf, section, name);

    if (v != NULL && *v != 0)
        return xstrdup(v);
    return fallback ? xasprintf("%s/%s", q->queue_path, fallback) : NULL;
}

static void quar_configure(struct quar *q)
{
    const struct conf *c = q->srv->conf;
    const char *group = conf_str(c, "mailgw.options", "AdminGroup");

    q->queue_path = server_queue_path(q->srv);
    q->area_dir[STORE_QUARANTINE] =
        quar_area_path(q, "mailgw.policy", "QuarantinePath", "quarantine");
    q->area_dir[STORE_BACKUP] = quar_area_path(q, "mailgw.policy", "BackupPath", "backup");
    q->area_dir[STORE_ARCHIVE_IN] = quar_area_path(q, "mailgw.path", "IncomingArchivePath", NULL);
    q->area_dir[STORE_ARCHIVE_OUT] =
        quar_area_path(q, "mailgw.path", "OutgoingArchivePath", NULL);
    q->max_age = conf_int(c, "mailgw.policy", "QuarantineMaxAge");
    if (group != NULL && *group != 0) {
        struct group *gr = getgrnam(group);
        if (gr == NULL)
            log_warn("[mailgw.options] AdminGroup %s: no such group; only root and the "
                     "mailgw user may use public/quarantine", group);
        else {
            q->have_admin_gid = true;
            q->admin_gid = gr->gr_gid;
        }
    }
    for (int a = 0; a < STORE_NAREAS; a++)
        if (q->area_dir[a] != NULL && store_dir_prepare(q->area_dir[a]) < 0)
            log_warn("%s area %s: cannot create: %m", store_area_name(a), q->area_dir[a]);
}

static void quar_on_expire(evutil_socket_t fd, short what, void *arg)
{
    struct quar *q = arg;
    struct timeval tv = { QUAR_EXPIRE_PERIOD, 0 };

    if (q->max_age > 0) {
        long n = quar_expire(q, q->max_age);
        if (n > 0)
            log_info("daily expiry: %ld entries older than %lld days removed", n,
                     q->max_age / 86400);
    }
    evtimer_add(q->ev_expire, &tv);
}

static void quar_on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    struct quar *q = arg;

    log_debug("stopped with %zu connections open", q->nconns);
    server_exit(q->srv, 0);
}

static void quar_on_stop(struct server *srv, void *arg)
{
    struct quar *q = arg;
    struct timeval tv = { QUAR_STOP_GRACE, 0 };

    q->stopping = true;
    quar_listen_stop(q);
    if (q->nconns == 0)
        server_exit(srv, 0);
    q->ev_stop = evtimer_new(q->base, quar_on_stop_timer, q);
    evtimer_add(q->ev_stop, &tv);
}

static void quar_on_command(struct server *srv, const struct proto_msg *cmd,
                            struct proto_msg *reply, void *arg)
{
    struct quar *q = arg;
    const char *op = proto_get_str(cmd, "op");

    if (op != NULL && strcmp(op, "expire") == 0) {
        proto_put_str(reply, "status", "ok");
        proto_put_int(reply, "count", q->max_age > 0 ? quar_expire(q, q->max_age) : 0);
        return;
    }
    proto_put_str(reply, "status", "error");
    proto_put_str(reply, "reason", "unknown command");
}

int main(int argc, char **argv)
{
    struct quar q;
    struct timeval tv = { QUAR_EXPIRE_PERIOD, 0 };

    memset(&q, 0, sizeof(q));
    q.listen_fd[0] = q.listen_fd[1] = -1;
    q.srv = server_init(argc, argv, "quarantine");
    quar_configure(&q);
    q.base = event_base_new();
    if (q.base == NULL)
        log_fatal("cannot create the event loop");
    quar_listen_start(&q);
    q.ev_expire = evtimer_new(q.base, quar_on_expire, &q);
    evtimer_add(q.ev_expire, &tv);
    server_event_attach(q.srv, q.base, quar_on_command, quar_on_stop, &q);
    log_debug("ready");
    event_base_dispatch(q.base);
    server_exit(q.srv, 0);
}
