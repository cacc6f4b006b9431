/*
 * qmgr_spare - removed queue files kept for reuse (spare/).
 *
 * Interface: qmgr_spare_keep(), qmgr_spare_take(), qmgr_spare_sync_begin(),
 * qmgr_spare_sync_end(), qmgr_spare_clear() (qmgr.h).
 *
 * A message that is done is renamed into spare/ instead of unlinked, and
 * the next "new" queue file is that inode under a fresh ID
 * (queue_id_recycle) instead of a newly created one.  On ext4 allocating
 * an inode skips every recently deleted one (minutes of them while the
 * inode table is dirty), and freeing one truncates and discards its
 * blocks: under load both cost more than the rest of a commit.  Reuse is
 * a rename each way, and the new message overwrites the old blocks.
 *
 * Durability: a spare is taken only after the fsync of the directory it
 * left (the batch of qmgr_sync_flush that began after it was kept), so
 * after a crash no queue name can still point at an inode that holds
 * another message.  A failed fsync removes the spares that depended on
 * it.  At start spare/ is emptied (qmgr_scan_startup); the pool is
 * bounded (QMGR_SPARE_MAX), beyond it files are unlinked as before.
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
#include <unistd.h>

#include "queue/queue_id.h"
#include "util/log.h"

#define QMGR_SPARE_MAX 512
#define QMGR_SPARE_NAME 24

struct qmgr_spare {
    unsigned n;                 /* spare/.s-N */
    enum qmgr_dir from;         /* whose fsync it waits for */
};

struct qmgr_spares {
    struct qmgr_spare ring[QMGR_SPARE_MAX];
    size_t head, len;           /* ring[head..head+len): oldest first */
    size_t ready;               /* the first `ready` may be taken */
    size_t syncing;             /* the first `syncing` wait for this flush */
    unsigned next;
};

static struct qmgr_spares spares;

static void qmgr_spare_name(char out[QMGR_SPARE_NAME], unsigned n)
{
    snprintf(out, QMGR_SPARE_NAME, ".s-%u", n);
}

static struct qmgr_spare *qmgr_spare_at(size_t i)
{
    return &spares.ring[(spares.head + i) % QMGR_SPARE_MAX];
}

int qmgr_spare_keep(struct qmgr *q, enum qmgr_dir from, const char *id)
{
    char name[QMGR_SPARE_NAME];
    struct qmgr_spare *sp;

    if (spares.len == QMGR_SPARE_MAX)
        return -1;
    qmgr_spare_name(name, spares.next);
    if (renameat(q->dir_fd[from], id, q->dir_fd[QMGR_SPARE], name) < 0)
        return -1;
    sp = qmgr_spare_at(spares.len++);
    sp->n = spares.next++;
    sp->from = from;
    return 0;
}

int qmgr_spare_take(struct qmgr *q, char id[QUEUE_ID_SIZE])
{
    char name[QMGR_SPARE_NAME];

    while (spares.ready > 0) {
        struct qmgr_spare *sp = qmgr_spare_at(0);
        int fd;

        qmgr_spare_name(name, sp->n);
        spares.head = (spares.head + 1) % QMGR_SPARE_MAX;
        spares.len--;
        spares.ready--;
        if (spares.syncing > 0)
            spares.syncing--;
        fd = queue_id_recycle(q->dir_fd[QMGR_SPARE], name, q->dir_fd[QMGR_TMP], id);
        if (fd >= 0)
            return fd;
        log_debug("spare/%s not reused: %m", name);
    }
    return -1;
}

void qmgr_spare_sync_begin(void)
{
    spares.syncing = spares.len;
}

void qmgr_spare_sync_end(struct qmgr *q, const bool ok[QMGR_NDIRS])
{
    char name[QMGR_SPARE_NAME];
    size_t keep = spares.ready;

    /* spares kept during the callbacks stay behind for the next flush */
    for (size_t i = spares.ready; i < spares.syncing; i++) {
        struct qmgr_spare *sp = qmgr_spare_at(i);
        if (ok[sp->from]) {
            *qmgr_spare_at(keep++) = *sp;
            continue;
        }
        qmgr_spare_name(name, sp->n);
        (void)unlinkat(q->dir_fd[QMGR_SPARE], name, 0);
    }
    if (keep < spares.syncing) {
        size_t dropped = spares.syncing - keep;
        for (size_t i = spares.syncing; i < spares.len; i++)
            *qmgr_spare_at(i - dropped) = *qmgr_spare_at(i);
        spares.len -= dropped;
    }
    spares.ready = keep;
    spares.syncing = 0;
}

void qmgr_spare_clear(void)
{
    spares.head = spares.len = spares.ready = spares.syncing = 0;
}
