/*
 * qmgr_spare - removed queue files kept for reuse (spare/).
 *
 * Interface: qmgr_spare_init(), qmgr_spare_remove(),
 * qmgr_spare_remove_later(), qmgr_spare_replace(), qmgr_spare_new_file(),
 * qmgr_spare_synced(), qmgr_spare_tick() (qmgr.h).
 *
 * A message that is done, or a tmp/ file not used (a scan request's
 * rewrite file the scanner left empty, a report that failed), is renamed
 * into spare/ instead of unlinked, and every new queue file (commit's
 * "new", reports, notices, copies, rewrite files) is such an inode under
 * a fresh ID (queue_id_recycle) instead of a newly created one.  On ext4
 * allocating an inode skips every recently deleted one (minutes of them
 * while the inode table is dirty), and freeing one truncates and
 * discards its blocks: under load both cost more than the rest of a
 * commit.  Reuse is a rename each way, and the new message overwrites
 * the old blocks.
 *
 * Durability: a spare is taken only after the fsync of the directory it
 * left: every keep marks that directory for the next qmgr_sync_flush,
 * whose fsyncs run with no keep in between, so all spares waiting when
 * it calls qmgr_spare_synced were covered.  After a crash no queue name
 * can still point at an inode that holds another message.  A file that
 * a new one replaced (qmgr_spare_replace: renameat2 RENAME_EXCHANGE, the
 * old inode lands in tmp/) waits for the fsync of the directory it was
 * named in.  tmp/ needs no fsync (it is emptied at start), so a spare
 * from tmp/ is ready after the next flush.  A failed fsync removes the
 * spares that depended on it.
 *
 * A message that is done (delivered, bounced, blocked) leaves with
 * qmgr_spare_remove_later: its directory is not fsynced for it alone but
 * once QMGR_SPARE_LAZY such removals wait, or at the next tick (a second
 * at most), whichever comes first; until then its spare is not taken.  A
 * crash in between can bring a done message back (delivered again: a
 * duplicate, never a loss; Postfix never fsyncs a removal at all).  An
 * administrator's delete is fsynced at once.  At start spare/ is emptied
 * (qmgr_scan_startup); the pool is bounded (QMGR_SPARE_MAX), beyond it
 * files are unlinked as before.
 *
 * Security: queue_id_recycle refuses a spare that another process can
 * still write to (a kept fd never reaches a later message); clients get
 * a write-only fd (qmgr_commit), so the old bytes are never theirs to
 * read; the writer truncates to what it wrote and the reader rejects any
 * byte after END.
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "queue/queue_id.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_SPARE_MAX 512
#define QMGR_SPARE_NAME 24
#define QMGR_SPARE_LAZY 32      /* removals whose fsync may wait */

struct qmgr_spare {
    unsigned n;                 /* spare/.s-N */
    enum qmgr_dir from;         /* whose fsync it waits for */
};

struct qmgr_spares {
    struct qmgr_spare ring[QMGR_SPARE_MAX];
    size_t head, len;           /* ring[head..head+len): oldest first */
    size_t ready;               /* the first `ready` may be taken */
    unsigned next;
    size_t lazy;                /* removals since the last flush_lazy */
    bool lazy_dir[QMGR_NDIRS];  /* directories whose fsync they wait for */
};

static void qmgr_spare_name(char out[QMGR_SPARE_NAME], unsigned n)
{
    snprintf(out, QMGR_SPARE_NAME, ".s-%u", n);
}

static struct qmgr_spare *qmgr_spare_at(struct qmgr_spares *sp, size_t i)
{
    return &sp->ring[(sp->head + i) % QMGR_SPARE_MAX];
}

void qmgr_spare_init(struct qmgr *q)
{
    if (q->spares == NULL)
        q->spares = xcalloc(1, sizeof *q->spares);
    q->spares->head = q->spares->len = q->spares->ready = q->spares->lazy = 0;
    memset(q->spares->lazy_dir, 0, sizeof q->spares->lazy_dir);
}

/* at/id -> spare/, waiting for the fsync of dir "wait" */
static int qmgr_spare_keep(struct qmgr *q, enum qmgr_dir at, const char *id, enum qmgr_dir wait)
{
    struct qmgr_spares *sp = q->spares;
    char name[QMGR_SPARE_NAME];
    struct qmgr_spare *s;

    if (sp->len == QMGR_SPARE_MAX)
        return -1;
    qmgr_spare_name(name, sp->next);
    if (renameat(q->dir_fd[at], id, q->dir_fd[QMGR_SPARE], name) < 0)
        return -1;
    s = qmgr_spare_at(sp, sp->len++);
    s->n = sp->next++;
    s->from = wait;
    return 0;
}

/* at/id into the pool (waiting for the fsync of dir "wait"), or gone
 * when the pool is full */
static int qmgr_spare_drop(struct qmgr *q, enum qmgr_dir at, const char *id, enum qmgr_dir wait)
{
    if (qmgr_spare_keep(q, at, id, wait) < 0 && unlinkat(q->dir_fd[at], id, 0) < 0 &&
        errno != ENOENT)
        return -1;
    return 0;
}

/* at/id leaves for the pool; reused after the next fsync of dir "wait" */
static int qmgr_spare_remove_after(struct qmgr *q, enum qmgr_dir at, const char *id,
                                   enum qmgr_dir wait)
{
    if (qmgr_spare_drop(q, at, id, wait) < 0)
        return -1;
    if (wait != QMGR_TMP)
        q->dir_dirty[wait] = true;
    event_active(q->ev_sync, EV_TIMEOUT, 0);
    return 0;
}

int qmgr_spare_remove(struct qmgr *q, enum qmgr_dir from, const char *id)
{
    return qmgr_spare_remove_after(q, from, id, from);
}

/* The waiting removals' directories into the next sync flush. */
static void qmgr_spare_flush_lazy(struct qmgr *q)
{
    struct qmgr_spares *sp = q->spares;

    for (int d = 0; d < QMGR_NDIRS; d++) {
        if (sp->lazy_dir[d])
            q->dir_dirty[d] = true;
        sp->lazy_dir[d] = false;
    }
    sp->lazy = 0;
    event_active(q->ev_sync, EV_TIMEOUT, 0);
}

int qmgr_spare_remove_later(struct qmgr *q, enum qmgr_dir from, const char *id)
{
    struct qmgr_spares *sp = q->spares;

    if (from == QMGR_TMP)
        return qmgr_spare_remove(q, from, id);
    if (qmgr_spare_drop(q, from, id, from) < 0)
        return -1;
    sp->lazy_dir[from] = true;
    if (++sp->lazy >= QMGR_SPARE_LAZY)
        qmgr_spare_flush_lazy(q);
    return 0;
}

/* Does a removal wait for its directory's fsync? */
static bool qmgr_spare_lazy_waits(const struct qmgr_spares *sp)
{
    for (int d = 0; d < QMGR_NDIRS; d++) {
        if (sp->lazy_dir[d])
            return true;
    }
    return false;
}

void qmgr_spare_tick(struct qmgr *q)
{
    if (qmgr_spare_lazy_waits(q->spares))
        qmgr_spare_flush_lazy(q);
}

int qmgr_spare_replace(struct qmgr *q, const char *tmpid, enum qmgr_dir dir, const char *id)
{
    int tmp = q->dir_fd[QMGR_TMP];

    if (renameat2(tmp, tmpid, q->dir_fd[dir], id, RENAME_EXCHANGE) < 0 &&
        renameat(tmp, tmpid, q->dir_fd[dir], id) < 0)
        return -1;
    /* the replaced file, now tmp/tmpid (nothing there after a rename) */
    (void)qmgr_spare_remove_after(q, QMGR_TMP, tmpid, dir);
    return 0;
}

int qmgr_spare_new_file(struct qmgr *q, char id[QUEUE_ID_SIZE])
{
    struct qmgr_spares *sp = q->spares;
    char name[QMGR_SPARE_NAME];

    while (sp->ready > 0) {
        int fd;

        qmgr_spare_name(name, qmgr_spare_at(sp, 0)->n);
        sp->head = (sp->head + 1) % QMGR_SPARE_MAX;
        sp->len--;
        sp->ready--;
        fd = queue_id_recycle(q->dir_fd[QMGR_SPARE], name, q->dir_fd[QMGR_TMP], id);
        if (fd >= 0)
            return fd;
        log_debug("spare/%s not reused: %m", name);
    }
    return queue_id_create(q->dir_fd[QMGR_TMP], id);
}

void qmgr_spare_synced(struct qmgr *q, const bool synced[QMGR_NDIRS],
                       const bool failed[QMGR_NDIRS])
{
    struct qmgr_spares *sp = q->spares;
    struct qmgr_spare wait[QMGR_SPARE_MAX];
    char name[QMGR_SPARE_NAME];
    size_t keep = sp->ready, nwait = 0;

    /* ready ones first, in order; those whose directory did not sync this
     * time wait behind them; those whose fsync failed go */
    for (size_t i = sp->ready; i < sp->len; i++) {
        struct qmgr_spare *s = qmgr_spare_at(sp, i);
        if (s->from == QMGR_TMP || synced[s->from])
            *qmgr_spare_at(sp, keep++) = *s;
        else if (!failed[s->from])
            wait[nwait++] = *s;
        else {
            qmgr_spare_name(name, s->n);
            (void)unlinkat(q->dir_fd[QMGR_SPARE], name, 0);
        }
    }
    sp->ready = keep;
    for (size_t i = 0; i < nwait; i++)
        *qmgr_spare_at(sp, keep++) = wait[i];
    sp->len = keep;
    for (int d = 0; d < QMGR_NDIRS; d++) {
        if (synced[d] || failed[d])
            sp->lazy_dir[d] = false;
    }
    if (!qmgr_spare_lazy_waits(sp))
        sp->lazy = 0;
}
