/*
 * scand - the scanning daemon (DESIGN §7): a pre-fork pool in the style of
 * mailgw-process-server / ap-mailfilter.  This file is the parent: it
 * loads and compiles the anti-virus engine once, starts the pool and
 * answers master's commands.
 *
 * Usage: libexec/scand -c CONFIG [-f] [-L 1]; fd 4 = the listener
 * private/scand (master binds it), where workers accept() directly.
 *
 * Commands on the status channel (mailgw avir-off | avir-on |
 * reload-bases | stats):
 *   avir-off     scan requests get status=tempfail reason="anti-virus is
 *                off": messages wait in the queue, never pass unscanned
 *   avir-on      scanning again
 *   reload-bases a new engine is built from BasesPath first; on failure the
 *                old one stays and the reason is logged and answered; on
 *                success workers rotate (old ones finish their message)
 *   stats        the antiviral_* counters as name=value
 *
 * Diagnostics: bases that cannot be loaded at start are an error in the
 * log; scand then runs without an engine and every request gets a
 * temporary failure until reload-bases succeeds (scanning never runs
 * without an engine, and mail never passes unscanned).
 *
 * Security: runs as [mailgw.options] User (lib/server drops root); workers
 * are confined further (scand_worker.c).  scand never opens the queue: it
 * reads the fds qmgr passes.
 */
#include "scand.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

bool scand_started_as_root;

struct scand_main {
    struct server *srv;
    struct scand_shared *sh;
    struct scand_pool *pool;
    unsigned reloads;
};

static struct scand_shared *scand_shared_new(void)
{
    void *p = mmap(NULL, sizeof(struct scand_shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        log_fatal("mmap of the shared counters: %m");
    memset(p, 0, sizeof(struct scand_shared));
    return p;
}

static struct scand_engine *scand_load(const struct conf *c, const char *what)
{
    struct buf why = BUF_INIT;
    struct scand_engine *e = scand_engine_build(c, &why);

    if (e != NULL)
        log_info("anti-virus bases %s from %s: %u signatures", what,
                 conf_str(c, "path", "BasesPath"), e->sigs);
    else
        log_error("anti-virus bases not %s: %s", what, why.data ? why.data : "?");
    buf_free(&why);
    return e;
}

static void scand_cmd_reload(struct scand_main *m, struct proto_msg *reply)
{
    struct buf why = BUF_INIT;
    struct scand_engine *e = scand_engine_build(m->srv->conf, &why);
    struct scand_engine *old = scand_pool_engine(m->pool);

    if (e == NULL) {
        log_error("reload-bases failed: %s; %s", why.data ? why.data : "?",
                  old ? "keeping the old bases" : "still no bases loaded");
        proto_put_str(reply, "status", "error");
        proto_put_str(reply, "reason", why.data ? why.data : "reload failed");
        buf_free(&why);
        return;
    }
    buf_free(&why);
    scand_pool_set_engine(m->pool, e);
    scand_pool_rotate(m->pool);
    /* The workers have their own copy-on-write image of the old engine. */
    scand_engine_free(old);
    m->reloads++;
    log_info("anti-virus bases reloaded from %s: %u signatures; workers rotate",
             conf_str(m->srv->conf, "path", "BasesPath"), e->sigs);
    proto_put_int(reply, "signatures", e->sigs);
}

static void scand_cmd_stats(struct scand_main *m, struct proto_msg *reply)
{
    struct scand_engine *e = scand_pool_engine(m->pool);

    for (int i = 0; i < SC_NCOUNTERS; i++)
        proto_put_int(reply, scand_counter_names[i], (int64_t)m->sh->counters[i]);
    proto_put_int(reply, "antiviral_workers_current", (int64_t)scand_pool_workers(m->pool));
    proto_put_int(reply, "antiviral_bases_signatures", e ? (int64_t)e->sigs : 0);
    proto_put_int(reply, "antiviral_bases_reloads", m->reloads);
    proto_put_str(reply, "antiviral_state", m->sh->avir_off ? "off" : "on");
}

static void scand_on_command(struct server *srv, const struct proto_msg *cmd,
                             struct proto_msg *reply, void *arg)
{
    struct scand_main *m = arg;
    const char *op = proto_get_str(cmd, "op");

    if (strcmp(op, "avir-off") == 0) {
        m->sh->avir_off = 1;
        log_info("anti-virus off: scan requests get a temporary failure");
    } else if (strcmp(op, "avir-on") == 0) {
        m->sh->avir_off = 0;
        log_info("anti-virus on");
    } else if (strcmp(op, "reload-bases") == 0) {
        scand_cmd_reload(m, reply);
    } else if (strcmp(op, "stats") == 0) {
        scand_cmd_stats(m, reply);
    } else {
        proto_put_str(reply, "status", "error");
        proto_put_str(reply, "reason", "unknown command");
    }
}

static void scand_on_stop(struct server *srv, void *arg)
{
    struct scand_main *m = arg;

    log_info("stopping: workers finish their messages");
    scand_pool_stop(m->pool);
}

static void scand_check_listener(struct server *srv)
{
    int fl;

    if (srv->nlisten < 1)
        log_fatal("no listener: scand expects private/scand as fd 4 (from master, or -L 1)");
    fl = fcntl(srv->listen_fds[0], F_GETFL);
    if (fl < 0 || fcntl(srv->listen_fds[0], F_SETFL, fl | O_NONBLOCK) < 0)
        log_fatal("listener: %m");
}

int main(int argc, char **argv)
{
    struct scand_main m;
    struct event_base *base;

    scand_started_as_root = geteuid() == 0;
    memset(&m, 0, sizeof(m));
    m.srv = server_init(argc, argv, "scand");
    scand_check_listener(m.srv);
    m.sh = scand_shared_new();
    m.pool = scand_pool_new(m.srv, m.sh);
    scand_pool_set_engine(m.pool, scand_load(m.srv->conf, "loaded"));
    base = event_base_new();
    if (base == NULL)
        log_fatal("event_base_new failed");
    server_event_attach(m.srv, base, scand_on_command, scand_on_stop, &m);
    scand_pool_start(m.pool);
    event_base_dispatch(base);
    server_exit(m.srv, 0);
}
