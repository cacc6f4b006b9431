/*
 * scand_pool - the parent's side of the scanning pool: spawning,
 * reaping, the watchdog and worker rotation.
 *
 * Interface: scand_pool_new(), scand_pool_set_engine(), scand_pool_engine(),
 * scand_pool_start(), scand_pool_rotate(), scand_pool_stop(),
 * scand_pool_workers().
 *
 * Sizing: at least [mailgw.ave] MinWorkers workers of the current
 * generation run; when none of them is idle another is started, up to
 * MaxWorkers capped by [mailgw.limits] AntiviralSessions (workers of an
 * older generation still finishing a message count too).  Workers report
 * busy / idle through the notes pipe.
 *
 * Watchdog: a worker busy for longer than ScanTimeout + a margin is
 * killed with SIGKILL ("watchdog" in the log); its connection closes
 * without a reply, so qmgr defers the message and retries it.  A worker
 * that dies on a signal or exits non-zero is logged and replaced; many
 * deaths in a row slow respawning to one per second.
 *
 * Each worker gets a private 0700 directory (TMPDIR or /tmp,
 * "mailgw-scand.XXXXXX") for decoded parts and libclamav's temporary
 * files; it is removed when the worker is reaped, whatever it left.
 */
#include "scand.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define SCAND_WATCHDOG_MARGIN 5

struct scand_slot {
    pid_t pid;
    unsigned gen;
    bool busy;
    bool killed;                /* by the watchdog */
    time_t busy_since;
    char *tmpdir;
};

struct scand_pool {
    struct server *srv;
    struct scand_shared *sh;
    struct scand_engine *engine;
    unsigned gen;
    int note_r, note_w;
    struct event *ev_note, *ev_tick, *ev_chld;
    struct scand_slot *slots;
    size_t nslots, cap;
    unsigned min, max, max_messages, max_idle, scan_timeout;
    uint64_t mem_limit;
    bool stopping;
    time_t hold_until;          /* respawn back-off after a crash */
    char tmpbase[1024];
};

static struct scand_slot *scand_pool_find(struct scand_pool *p, pid_t pid)
{
    for (size_t i = 0; i < p->nslots; i++) {
        if (p->slots[i].pid == pid)
            return &p->slots[i];
    }
    return NULL;
}

static int scand_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (remove(path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %m", path);
    return 0;
}

static void scand_rm_tree(const char *dir)
{
    nftw(dir, scand_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void scand_pool_spawn(struct scand_pool *p)
{
    char dir[1100];
    struct scand_worker_args a;
    pid_t pid;

    snprintf(dir, sizeof(dir), "%s/mailgw-scand.XXXXXX", p->tmpbase);
    if (mkdtemp(dir) == NULL) {
        log_error("cannot create a worker directory in %s: %m", p->tmpbase);
        p->hold_until = time(NULL) + 1;
        return;
    }
    memset(&a, 0, sizeof(a));
    a.srv = p->srv;
    a.sh = p->sh;
    a.engine = p->engine;
    a.listen_fd = p->srv->listen_fds[0];
    a.note_fd = p->note_w;
    a.tmpdir = dir;
    a.chroot = scand_started_as_root;
    a.max_messages = p->max_messages;
    a.max_idle = p->max_idle;
    a.scan_timeout = p->scan_timeout;
    a.mem_limit = p->mem_limit;
    pid = fork();
    if (pid < 0) {
        log_error("cannot fork a worker: %m");
        rmdir(dir);
        p->hold_until = time(NULL) + 1;
        return;
    }
    if (pid == 0)
        scand_worker_main(&a);
    if (p->nslots == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->slots = xreallocarray(p->slots, p->cap, sizeof(*p->slots));
    }
    p->slots[p->nslots++] = (struct scand_slot){ pid, p->gen, false, false, 0, xstrdup(dir) };
    scand_count(p->sh, SC_WORKERS_STARTED, 1);
    log_debug("worker %ld started (generation %u)", (long)pid, p->gen);
}

/* Start workers while there are fewer than MinWorkers current ones or
 * none of them is idle, within MaxWorkers. */
static void scand_pool_maintain(struct scand_pool *p)
{
    size_t cur = 0, idle = 0;

    if (p->stopping) {
        if (p->nslots == 0)
            server_exit(p->srv, 0);
        return;
    }
    if (time(NULL) < p->hold_until)
        return;
    for (size_t i = 0; i < p->nslots; i++) {
        if (p->slots[i].gen != p->gen)
            continue;
        cur++;
        if (!p->slots[i].busy)
            idle++;
    }
    while (p->nslots < p->max && (cur < p->min || idle == 0)) {
        size_t before = p->nslots;
        scand_pool_spawn(p);
        if (p->nslots == before)
            break;
        cur++;
        idle++;
    }
}

static void scand_pool_reaped(struct scand_pool *p, pid_t pid, int status)
{
    struct scand_slot *s = scand_pool_find(p, pid);

    if (s == NULL)
        return;
    if (WIFSIGNALED(status) && !s->killed) {
        log_warn("worker %ld killed by signal %d%s", (long)pid, WTERMSIG(status),
                 s->busy ? " while scanning: that message gets no verdict and is retried" : "");
        scand_count(p->sh, SC_WORKERS_CRASHED, 1);
        p->hold_until = time(NULL) + 1;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        log_warn("worker %ld exited with status %d", (long)pid, WEXITSTATUS(status));
        scand_count(p->sh, SC_WORKERS_CRASHED, 1);
        p->hold_until = time(NULL) + 1;
    }
    if (s->busy)
        scand_count(p->sh, SC_SESSIONS_CURRENT, -1);
    scand_rm_tree(s->tmpdir);
    free(s->tmpdir);
    *s = p->slots[--p->nslots];
}

static void scand_pool_on_chld(evutil_socket_t sig, short what, void *arg)
{
    struct scand_pool *p = arg;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        scand_pool_reaped(p, pid, status);
    scand_pool_maintain(p);
}

static void scand_pool_note_maximum(struct scand_pool *p)
{
    uint64_t busy = 0;

    for (size_t i = 0; i < p->nslots; i++)
        busy += p->slots[i].busy;
    if (busy > p->sh->counters[SC_SESSIONS_MAXIMUM])
        p->sh->counters[SC_SESSIONS_MAXIMUM] = busy;
}

static void scand_pool_on_note(evutil_socket_t fd, short what, void *arg)
{
    struct scand_pool *p = arg;
    struct scand_note n[64];
    ssize_t got;

    while ((got = read(p->note_r, n, sizeof(n))) > 0) {
        for (size_t i = 0; i < (size_t)got / sizeof(n[0]); i++) {
            struct scand_slot *s = scand_pool_find(p, n[i].pid);
            if (s == NULL)
                continue;
            s->busy = n[i].kind == SCAND_NOTE_BUSY;
            s->busy_since = time(NULL);
            log_debug("worker %ld %s", (long)s->pid, s->busy ? "busy" : "idle");
        }
    }
    scand_pool_note_maximum(p);
    scand_pool_maintain(p);
}

static void scand_pool_watchdog(struct scand_pool *p)
{
    time_t now = time(NULL);
    time_t limit = (time_t)p->scan_timeout + SCAND_WATCHDOG_MARGIN;

    for (size_t i = 0; i < p->nslots; i++) {
        struct scand_slot *s = &p->slots[i];
        if (!s->busy || s->killed || now - s->busy_since <= limit)
            continue;
        log_warn("worker %ld busy for %ld s (ScanTimeout %u s): killed by the watchdog; "
                 "the message gets no verdict and is retried",
                 (long)s->pid, (long)(now - s->busy_since), p->scan_timeout);
        kill(s->pid, SIGKILL);
        s->killed = true;
        scand_count(p->sh, SC_WORKERS_KILLED, 1);
    }
}

static void scand_pool_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct scand_pool *p = arg;

    scand_pool_watchdog(p);
    scand_pool_maintain(p);
}

static void scand_pool_limits(struct scand_pool *p, const struct conf *c)
{
    long long maxw = conf_int(c, "mailgw.ave", "MaxWorkers");
    long long cap = conf_int(c, "mailgw.limits", "AntiviralSessions");
    long long minw = conf_int(c, "mailgw.ave", "MinWorkers");

    if (cap < maxw)
        maxw = cap;
    if (minw > maxw)
        minw = maxw;
    p->min = (unsigned)minw;
    p->max = (unsigned)maxw;
    p->max_messages = (unsigned)conf_int(c, "mailgw.ave", "MaxMessagesPerProcess");
    p->max_idle = (unsigned)conf_int(c, "mailgw.ave", "MaxIdleTime");
    p->scan_timeout = (unsigned)conf_int(c, "mailgw.ave", "ScanTimeout");
    p->mem_limit = (uint64_t)conf_int(c, "mailgw.ave", "WorkerMemoryLimit");
}

struct scand_pool *scand_pool_new(struct server *srv, struct scand_shared *sh)
{
    struct scand_pool *p = xcalloc(1, sizeof(*p));
    const char *tmp = getenv("TMPDIR");
    int fds[2];

    p->srv = srv;
    p->sh = sh;
    p->gen = 1;
    scand_pool_limits(p, srv->conf);
    snprintf(p->tmpbase, sizeof(p->tmpbase), "%s", tmp != NULL && *tmp == '/' ? tmp : "/tmp");
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        log_fatal("pipe: %m");
    p->note_r = fds[0];
    p->note_w = fds[1];
    return p;
}

void scand_pool_set_engine(struct scand_pool *p, struct scand_engine *e)
{
    p->engine = e;
}

struct scand_engine *scand_pool_engine(struct scand_pool *p)
{
    return p->engine;
}

void scand_pool_start(struct scand_pool *p)
{
    struct timeval tick = { 1, 0 };

    p->ev_note = event_new(p->srv->base, p->note_r, EV_READ | EV_PERSIST, scand_pool_on_note, p);
    p->ev_tick = event_new(p->srv->base, -1, EV_PERSIST, scand_pool_on_tick, p);
    p->ev_chld = evsignal_new(p->srv->base, SIGCHLD, scand_pool_on_chld, p);
    if (p->ev_note == NULL || p->ev_tick == NULL || p->ev_chld == NULL)
        log_fatal("cannot create the pool events");
    event_add(p->ev_note, NULL);
    event_add(p->ev_tick, &tick);
    event_add(p->ev_chld, NULL);
    log_info("pool: %u to %u workers, %u messages per worker, scan timeout %u s", p->min,
             p->max, p->max_messages, p->scan_timeout);
    scand_pool_maintain(p);
}

void scand_pool_rotate(struct scand_pool *p)
{
    p->gen++;
    for (size_t i = 0; i < p->nslots; i++) {
        if (p->slots[i].gen != p->gen)
            kill(p->slots[i].pid, SIGTERM);
    }
    scand_pool_maintain(p);
}

void scand_pool_stop(struct scand_pool *p)
{
    p->stopping = true;
    for (size_t i = 0; i < p->nslots; i++)
        kill(p->slots[i].pid, SIGTERM);
    scand_pool_maintain(p);
}

size_t scand_pool_workers(const struct scand_pool *p)
{
    return p->nslots;
}
