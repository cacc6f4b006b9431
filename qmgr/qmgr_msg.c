/*
 * qmgr_msg - the in-memory table of every queued message, its state
 * changes, and the run loop that moves messages along
 * (DESIGN §3 steps 3-6, §4).
 *
 * Interface: qmgr_msg_init, _find, _add, _forget, _move, _remove, _wait,
 * _wake, _load, _unload, _activate, _all (qmgr.h).
 *
 * States are directories: incoming/ (committed; waits for the scan step
 * and for a delivery slot), active/ (in memory, being delivered),
 * deferred/ (file mtime = next retry time, as Postfix), hold/ (until an
 * administrator releases it).  Every state change is a rename followed
 * by an fsync of the target directory; the renames of one loop round
 * share one fsync per directory (ev_sync), and the step that depends on
 * the move (loading for delivery, answering an administrator) runs only
 * after that fsync.  Moves to active/ skip the fsync (their callback
 * still runs from ev_sync): the file is durably in incoming/ or
 * deferred/ already, and after a crash it is found in either directory
 * and delivered (at least once).  Removal is a rename into spare/ (the
 * inode becomes the next commit's file, qmgr_spare.c), or an unlink when
 * the pool is full; its directory fsync is batched too but nothing waits
 * for it (a lost removal means a second delivery, never a lost message).
 * A message whose recipients are all done is removed without writing
 * their statuses first: the removal is the outcome (qmgr_result_persist).
 *
 * The run loop (ev_run, activated whenever something changes, plus a one
 * second tick for retry times and back-offs) takes incoming/ messages in
 * arrival order: to the scan step when scanning is on and the message
 * was not scanned yet, else to active/ when the delivery agent's socket
 * exists and fewer than QMGR_ACTIVE_MAX messages are loaded.  Without
 * private/smtp (smtp not configured) messages wait in incoming/.
 *
 * Diagnostics: a failed rename or fsync is logged with the path; a file
 * that cannot be parsed at load goes to corrupt/.
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/mem.h"

#define QMGR_ACTIVE_MAX 2000

struct qmgr_sync_item {
    struct qmgr_msg *m;
    enum qmgr_dir dir;
    qmgr_sync_fn fn;
};

time_t qmgr_now(void)
{
    return time(NULL);
}

uint64_t qmgr_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* ---- the table ---- */

static size_t qmgr_msg_hash(const char *id, size_t size)
{
    uint64_t h = 1469598103934665603ull;

    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 1099511628211ull;
    return (size_t)(h & (size - 1));
}

static void qmgr_msg_grow(struct qmgr *q)
{
    size_t nsize = q->mtab_size ? q->mtab_size * 2 : 1024;
    struct qmgr_msg **nt = xcalloc(nsize, sizeof *nt);

    for (size_t i = 0; i < q->mtab_size; i++) {
        struct qmgr_msg *m = q->mtab[i], *next;
        for (; m; m = next) {
            size_t h = qmgr_msg_hash(m->id, nsize);
            next = m->hnext;
            m->hnext = nt[h];
            nt[h] = m;
        }
    }
    free(q->mtab);
    q->mtab = nt;
    q->mtab_size = nsize;
}

struct qmgr_msg *qmgr_msg_find(const struct qmgr *q, const char *id)
{
    if (q->mtab_size == 0 || id == NULL)
        return NULL;
    for (struct qmgr_msg *m = q->mtab[qmgr_msg_hash(id, q->mtab_size)]; m; m = m->hnext) {
        if (strcmp(m->id, id) == 0)
            return m;
    }
    return NULL;
}

struct qmgr_msg *qmgr_msg_add(struct qmgr *q, const char *id, enum qmgr_dir dir)
{
    struct qmgr_msg *m = qmgr_msg_find(q, id);
    size_t h;

    if (m != NULL)
        return m;
    if (q->nmsgs >= q->mtab_size)
        qmgr_msg_grow(q);
    m = xcalloc(1, sizeof *m);
    str_copy(m->id, id, sizeof m->id);
    m->dir = dir;
    m->fd = -1;
    if (queue_id_arrival(id, &m->arrival_us) < 0)
        m->arrival_us = qmgr_now_us();
    h = qmgr_msg_hash(id, q->mtab_size);
    m->hnext = q->mtab[h];
    q->mtab[h] = m;
    q->nmsgs++;
    return m;
}

/* The per-recipient notes outlive a pass (queue-list shows the last
 * deferral reason of a deferred message). */
static void qmgr_msg_free_info(struct qmgr_msg *m)
{
    for (size_t i = 0; i < m->ninfo; i++) {
        free(m->info[i].reason);
        free(m->info[i].relay);
    }
    free(m->info);
    m->info = NULL;
    m->ninfo = 0;
}

void qmgr_msg_forget(struct qmgr *q, struct qmgr_msg *m)
{
    struct qmgr_msg **pp = &q->mtab[qmgr_msg_hash(m->id, q->mtab_size)];

    while (*pp && *pp != m)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = m->hnext;
    qmgr_msg_unwait(q, m);
    qmgr_msg_unload(q, m);
    qmgr_msg_free_info(m);
    q->nmsgs--;
    free(m);
}

static int qmgr_msg_cmp(const void *a, const void *b)
{
    return strcmp((*(struct qmgr_msg *const *)a)->id, (*(struct qmgr_msg *const *)b)->id);
}

struct qmgr_msg **qmgr_msg_all(const struct qmgr *q, size_t *n)
{
    struct qmgr_msg **all = xcalloc(q->nmsgs + 1, sizeof *all);
    size_t k = 0;

    for (size_t i = 0; i < q->mtab_size; i++) {
        for (struct qmgr_msg *m = q->mtab[i]; m && k < q->nmsgs; m = m->hnext)
            all[k++] = m;
    }
    qsort(all, k, sizeof *all, qmgr_msg_cmp);
    *n = k;
    return all;
}

/* ---- state changes ---- */

static void qmgr_sync_flush(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    struct qmgr_sync_item *items = q->sync;
    size_t n = q->nsync;
    bool synced[QMGR_NDIRS], failed[QMGR_NDIRS];

    q->sync = NULL;         /* callbacks may start a new batch */
    q->nsync = q->capsync = 0;
    for (int d = 0; d < QMGR_NDIRS; d++) {
        synced[d] = failed[d] = false;
        if (!q->dir_dirty[d])
            continue;
        q->dir_dirty[d] = false;
        if (fsync(q->dir_fd[d]) < 0) {
            log_error("fsync %s/%s: %m", q->queue_path, qmgr_dir_names[d]);
            failed[d] = true;
        } else
            synced[d] = true;
    }
    qmgr_spare_synced(q, synced, failed);
    for (size_t i = 0; i < n; i++) {
        struct qmgr_msg *m = items[i].m;
        m->syncing = false;
        if (items[i].fn)
            items[i].fn(q, m, !failed[items[i].dir]);
        else if (m->admin_op != QMGR_OP_NONE && !m->scanning && m->jobs_out == 0)
            qmgr_result_finish(q, m);   /* an op that waited for this move */
    }
    free(items);
}

/* fn after the round's sync flush; sync: that flush fsyncs dir */
static void qmgr_msg_sync_item(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir to,
                               qmgr_sync_fn fn, bool sync)
{
    struct qmgr_sync_item *it;

    if (q->nsync == q->capsync) {
        q->capsync = q->capsync ? q->capsync * 2 : 64;
        q->sync = xreallocarray(q->sync, q->capsync, sizeof *q->sync);
    }
    it = &q->sync[q->nsync++];
    it->m = m;
    it->dir = to;
    it->fn = fn;
    m->syncing = true;
    if (sync)
        q->dir_dirty[to] = true;
    event_active(q->ev_sync, EV_TIMEOUT, 0);
}

void qmgr_msg_after_sync(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir dir, qmgr_sync_fn fn)
{
    qmgr_msg_sync_item(q, m, dir, fn, true);
}

static int qmgr_msg_move_how(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir to,
                             qmgr_sync_fn fn, bool sync)
{
    if (renameat(q->dir_fd[m->dir], m->id, q->dir_fd[to], m->id) < 0) {
        log_error("%s: cannot move %s/%s to %s/: %m", m->id, qmgr_dir_names[m->dir], m->id,
                  qmgr_dir_names[to]);
        return -1;
    }
    if (q->count[m->dir] > 0)
        q->count[m->dir]--;
    q->count[to]++;
    m->dir = to;
    qmgr_msg_sync_item(q, m, to, fn, sync);
    return 0;
}

int qmgr_msg_move(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir to, qmgr_sync_fn fn)
{
    return qmgr_msg_move_how(q, m, to, fn, true);
}

int qmgr_msg_move_nosync(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir to, qmgr_sync_fn fn)
{
    return qmgr_msg_move_how(q, m, to, fn, false);
}

/* A message that is done; delete: an administrator's, fsynced at once */
static void qmgr_msg_remove_how(struct qmgr *q, struct qmgr_msg *m, bool delete)
{
    if ((delete ? qmgr_spare_remove(q, m->dir, m->id)
                : qmgr_spare_remove_later(q, m->dir, m->id)) < 0) {
        log_error("%s: cannot remove %s/%s: %m", m->id, qmgr_dir_names[m->dir], m->id);
        return;
    }
    if (q->count[m->dir] > 0)
        q->count[m->dir]--;
    log_msg("%s: removed", m->id);
    q->ctr.removed++;
    m->unsaved = false;         /* the removal is the outcome */
    qmgr_msg_forget(q, m);
}

void qmgr_msg_remove(struct qmgr *q, struct qmgr_msg *m)
{
    qmgr_msg_remove_how(q, m, false);
}

void qmgr_msg_delete(struct qmgr *q, struct qmgr_msg *m)
{
    qmgr_msg_remove_how(q, m, true);
}

void qmgr_msg_wake(struct qmgr *q)
{
    event_active(q->ev_run, EV_TIMEOUT, 0);
}

void qmgr_msg_wait(struct qmgr *q, struct qmgr_msg *m)
{
    if (m->admin_op != QMGR_OP_NONE && !m->scanning && !m->syncing && m->jobs_out == 0) {
        qmgr_result_finish(q, m);       /* an op that waited for the work */
        return;
    }
    if (m->in_wait && m->wait_scan != !m->noscan)
        qmgr_msg_unwait(q, m);  /* requeued: to be scanned again */
    if (!m->in_wait) {
        m->wait_scan = !m->noscan;
        TAILQ_INSERT_TAIL(m->wait_scan ? &q->waiting_scan : &q->waiting, m, wait);
        m->in_wait = true;
    }
    qmgr_msg_wake(q);
}

void qmgr_msg_unwait(struct qmgr *q, struct qmgr_msg *m)
{
    if (m->in_wait) {
        TAILQ_REMOVE(m->wait_scan ? &q->waiting_scan : &q->waiting, m, wait);
        m->in_wait = false;
    }
}

/* ---- loading for delivery ---- */

void qmgr_msg_unload(struct qmgr *q, struct qmgr_msg *m)
{
    if (!m->loaded)
        return;
    if (m->unsaved)
        (void)qmgr_result_persist(q, m);
    queue_file_free(&m->qf);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->loaded = false;
    q->nloaded--;
}

int qmgr_msg_load(struct qmgr *q, struct qmgr_msg *m)
{
    const char *why = NULL;
    struct stat st;

    if (m->loaded)
        return 0;
    m->fd = openat(q->dir_fd[m->dir], m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (m->fd < 0) {
        log_error("%s: cannot open %s/%s: %m", m->id, qmgr_dir_names[m->dir], m->id);
        return -1;
    }
    if (queue_file_read(m->fd, &m->qf, &why) < 0) {
        close(m->fd);
        m->fd = -1;
        if (qmgr_scan_to_corrupt(q, m->dir, m->id, why) == 0) {
            if (q->count[m->dir] > 0)
                q->count[m->dir]--;
            qmgr_msg_forget(q, m);
        }
        return -1;
    }
    m->loaded = true;
    q->nloaded++;
    m->arrival_us = m->qf.env.arrival_us;
    m->size = m->qf.content_size;
    if (m->ninfo != m->qf.env.nrcpts) {   /* first load, or rewritten */
        qmgr_msg_free_info(m);
        m->info = xcalloc(m->qf.env.nrcpts, sizeof *m->info);
        m->ninfo = m->qf.env.nrcpts;
    }
    m->delay_warned = fstat(m->fd, &st) == 0 && (st.st_mode & S_IXUSR);
    qmgr_notes_load(m);
    return 0;
}

/* After the fsync of active/: read the file and queue its jobs. */
static void qmgr_msg_on_active(struct qmgr *q, struct qmgr_msg *m, bool ok)
{
    if (m->admin_op != QMGR_OP_NONE) {
        qmgr_result_finish(q, m);   /* applies the administrator's op */
        return;
    }
    if (qmgr_msg_load(q, m) < 0)
        return;
    qmgr_sched_message(q, m);
    qmgr_sched_dispatch(q);
}

void qmgr_msg_activate(struct qmgr *q, struct qmgr_msg *m)
{
    if (m->dir == QMGR_ACTIVE || m->syncing || m->scanning)
        return;
    qmgr_msg_unwait(q, m);
    m->next_try = 0;
    if (qmgr_msg_move_nosync(q, m, QMGR_ACTIVE, qmgr_msg_on_active) < 0)
        m->next_try = qmgr_now() + 60;
}

/* ---- the run loop ---- */

/* Checked at most once a second (the run loop runs often). */
static bool qmgr_smtp_available(struct qmgr *q)
{
    static time_t checked;
    static bool ok;
    time_t now = qmgr_now();
    struct stat st;

    if (now != checked) {
        ok = stat(q->smtp_path, &st) == 0 && S_ISSOCK(st.st_mode);
        checked = now;
    }
    return ok;
}

/* Messages to scan, while a scan slot is free.  A released one skips
 * the scan: it moves to the delivery list. */
static void qmgr_msg_run_scans(struct qmgr *q, time_t now)
{
    struct qmgr_msg *m, *next;

    for (m = TAILQ_FIRST(&q->waiting_scan); m && !q->stopping; m = next) {
        next = TAILQ_NEXT(m, wait);
        if (q->nscanning >= q->set.scan_sessions)
            break;
        if (m->next_try > now || m->syncing)
            continue;
        qmgr_msg_unwait(q, m);
        if (m->released) {
            log_msg("%s: scanning skipped (released from quarantine)", m->id);
            m->noscan = true;
            qmgr_msg_wait(q, m);
            continue;
        }
        qmgr_scanstep_start(q, m);
    }
}

/* Messages to deliver (also those waiting for a scan when scanning is
 * off), while smtp can take more. */
static void qmgr_msg_run_list(struct qmgr *q, struct qmgr_msg_list *list, time_t now)
{
    struct qmgr_msg *m, *next;

    if (!qmgr_smtp_available(q))
        return;
    for (m = TAILQ_FIRST(list); m && !q->stopping; m = next) {
        next = TAILQ_NEXT(m, wait);
        if (q->nloaded >= QMGR_ACTIVE_MAX)
            break;
        if (m->next_try <= now && !m->syncing)
            qmgr_msg_activate(q, m);
    }
}

/* The run loop: each list is walked only while its next step has room,
 * never a backlog of thousands once per commit. */
static void qmgr_msg_run(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    time_t now = qmgr_now();

    if (qmgr_scanstep_enabled(q))
        qmgr_msg_run_scans(q, now);
    else
        qmgr_msg_run_list(q, &q->waiting_scan, now);
    qmgr_msg_run_list(q, &q->waiting, now);
    qmgr_sched_dispatch(q);
}

/* Once a second: deferred messages whose time came, back-offs over. */
static void qmgr_msg_tick(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    time_t now = qmgr_now();

    for (size_t i = 0; i < q->mtab_size && !q->stopping; i++) {
        struct qmgr_msg *m, *next;
        for (m = q->mtab[i]; m; m = next) {
            next = m->hnext;
            if (m->dir == QMGR_DEFERRED && m->next_try <= now && !m->syncing &&
                q->nloaded < QMGR_ACTIVE_MAX && qmgr_smtp_available(q))
                qmgr_msg_activate(q, m);
        }
    }
    if (!TAILQ_EMPTY(&q->waiting) || !TAILQ_EMPTY(&q->waiting_scan) || !TAILQ_EMPTY(&q->ring))
        qmgr_msg_wake(q);
    qmgr_spare_tick(q);
}

void qmgr_msg_init(struct qmgr *q)
{
    struct timeval one = { 1, 0 };

    TAILQ_INIT(&q->waiting);
    TAILQ_INIT(&q->waiting_scan);
    qmgr_msg_grow(q);
    q->smtp_path = xasprintf("%s/private/smtp", q->queue_path);
    q->ev_run = event_new(q->base, -1, 0, qmgr_msg_run, q);
    q->ev_sync = event_new(q->base, -1, 0, qmgr_sync_flush, q);
    q->ev_tick = event_new(q->base, -1, EV_PERSIST, qmgr_msg_tick, q);
    if (q->ev_run == NULL || q->ev_sync == NULL || q->ev_tick == NULL)
        log_fatal("cannot create the queue events");
    event_add(q->ev_tick, &one);
}
