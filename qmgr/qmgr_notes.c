/*
 * qmgr_notes - what qmgr remembers about a message in its queue file
 * (lib/queue post records): the last deferral reason of each pending
 * recipient (REASON) and the "released from quarantine, never scan" flag
 * (FLAGS, QUEUE_FLAG_NOSCAN).
 *
 * Interface: qmgr_notes_load(), qmgr_notes_save(), qmgr_notes_commit()
 * (qmgr.h).
 *
 * Reasons are saved when a message goes to deferred/ and only when they
 * changed since the file was written: a fresh copy tmp/NEWID (records up
 * to the old post records, then the new ones, END, fsync, same mode) is
 * renamed over the file, so a crash leaves the old or the new file, both
 * complete; the move to deferred/ and its directory fsync follow as
 * before.  The copy and its fsync run on qmgr's work pool (q->work), the
 * loop going on meanwhile: the message is busy (m->syncing) until the
 * rename, back on the loop, which then calls the caller's continuation.
 * The file replaced is exchanged into tmp/ and joins the spare pool.
 * Reasons come back at load (a restart keeps them for queue-list,
 * mailgwq -p and the expiry report).  The flag is written at commit time
 * into the file not yet committed (qmgr_commit.c), and fsync()ed with it
 * (queue_file_append), before the rename into incoming/.
 *
 * Diagnostics: a failed save is a warning (the reasons are lost, the
 * message is not: the old file stays).
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/server_work.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

void qmgr_notes_load(struct qmgr_msg *m)
{
    m->released = (m->qf.flags & QUEUE_FLAG_NOSCAN) != 0;
    for (size_t i = 0; i < m->ninfo && i < m->qf.env.nrcpts; i++) {
        const struct queue_rcpt *r = &m->qf.env.rcpts[i];
        if (m->info[i].reason != NULL || r->reason == NULL)
            continue;
        m->info[i].reason = xstrdup(r->reason);
        str_copy(m->info[i].dsn, r->reason_dsn ? r->reason_dsn : "", sizeof m->info[i].dsn);
    }
}

static bool qmgr_notes_same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Do the file's records say what m knows now? */
static bool qmgr_notes_current(const struct qmgr_msg *m)
{
    if (((m->qf.flags & QUEUE_FLAG_NOSCAN) != 0) != m->released)
        return false;
    for (size_t i = 0; i < m->ninfo && i < m->qf.env.nrcpts; i++) {
        const struct queue_rcpt *r = &m->qf.env.rcpts[i];
        bool want = r->status == QUEUE_RCPT_PENDING && m->info[i].reason != NULL;
        if (!want && r->reason == NULL)
            continue;
        if (!want || r->reason == NULL || !qmgr_notes_same(m->info[i].reason, r->reason) ||
            !qmgr_notes_same(m->info[i].dsn, r->reason_dsn))
            return false;
    }
    return true;
}

static void qmgr_notes_records(const struct qmgr_msg *m, struct buf *post)
{
    if (m->released)
        (void)queue_post_flags(post, QUEUE_FLAG_NOSCAN);
    for (size_t i = 0; i < m->ninfo && i < m->qf.env.nrcpts; i++) {
        const char *dsn = m->info[i].dsn;
        if (m->qf.env.rcpts[i].status != QUEUE_RCPT_PENDING || m->info[i].reason == NULL)
            continue;
        if (queue_post_reason(post, (uint32_t)i, dsn, m->info[i].reason) < 0)
            (void)queue_post_reason(post, (uint32_t)i, "", m->info[i].reason);
    }
}

struct qmgr_notes_job {
    struct server_job job;
    struct qmgr *q;
    struct qmgr_msg *m;
    qmgr_notes_fn fn;
    char newid[QUEUE_ID_SIZE];
    int fd;                     /* the copy, O_RDWR */
    struct buf post;            /* the records to write */
    struct queue_file nqf;      /* the copy, read back */
    const char *why;            /* NULL when the copy is good */
    int err;
};

/* On a pool thread: the copy (old records, the new ones, END, fsync),
 * read back.  Touches the job, m->fd and m->qf (neither changes while
 * m->syncing) only. */
static void qmgr_notes_work(struct server_job *job)
{
    struct qmgr_notes_job *j = (struct qmgr_notes_job *)job;

    const char *why = NULL;

    if (queue_file_rewrite(j->m->fd, &j->m->qf, j->fd, &j->post) < 0)
        j->why = "cannot write the copy";
    else if (queue_file_read(j->fd, &j->nqf, &why) < 0)
        j->why = why ? why : "cannot read the copy back";
    j->err = errno;
}

/* Back on the loop: the copy replaces the file (the old inode becomes a
 * spare once m's directory is fsynced), then fn. */
static void qmgr_notes_done(struct server_job *job)
{
    struct qmgr_notes_job *j = (struct qmgr_notes_job *)job;
    struct qmgr *q = j->q;
    struct qmgr_msg *m = j->m;

    m->syncing = false;
    if (j->why != NULL) {
        errno = j->err;
        log_warn("%s: cannot record the deferral reasons: %s: %m", m->id, j->why);
    } else if (qmgr_spare_replace(q, j->newid, m->dir, m->id) < 0) {
        log_warn("%s: cannot record the deferral reasons: rename tmp/%s to %s/%s: %m", m->id,
                 j->newid, qmgr_dir_names[m->dir], m->id);
        queue_file_free(&j->nqf);
    } else {
        close(m->fd);
        queue_file_free(&m->qf);
        m->fd = j->fd;
        m->qf = j->nqf;
        j->fd = -1;
    }
    if (j->fd >= 0) {           /* the copy failed: back to the pool */
        close(j->fd);
        (void)qmgr_spare_remove(q, QMGR_TMP, j->newid);
    }
    buf_free(&j->post);
    j->fn(q, m);
    free(j);
}

bool qmgr_notes_save(struct qmgr *q, struct qmgr_msg *m, qmgr_notes_fn fn)
{
    struct qmgr_notes_job *j;
    struct stat st;

    if (!m->loaded || qmgr_notes_current(m))
        return false;
    j = xcalloc(1, sizeof *j);
    j->job.work = qmgr_notes_work;
    j->job.done = qmgr_notes_done;
    j->q = q;
    j->m = m;
    j->fn = fn;
    /* maybe a recycled file (qmgr_spare.c): the rewrite starts at offset
     * 0 and truncates after END, as such a file needs */
    if ((j->fd = qmgr_spare_new_file(q, j->newid)) < 0) {
        log_warn("%s: cannot record the deferral reasons: cannot create a file in tmp/: %m",
                 m->id);
        free(j);
        return false;
    }
    if (fstat(m->fd, &st) < 0 || fchmod(j->fd, st.st_mode & 07777) < 0) {
        log_warn("%s: cannot record the deferral reasons: cannot copy the mode: %m", m->id);
        close(j->fd);
        (void)unlinkat(q->dir_fd[QMGR_TMP], j->newid, 0);
        free(j);
        return false;
    }
    qmgr_notes_records(m, &j->post);
    m->syncing = true;
    server_work_run(q->work, &j->job);
    return true;
}

int qmgr_notes_commit(int fd, struct queue_file *qf)
{
    struct buf post = BUF_INIT;
    const char *why = NULL;
    int rc;

    if (qf->flags & QUEUE_FLAG_NOSCAN)
        return 0;
    (void)queue_post_flags(&post, qf->flags | QUEUE_FLAG_NOSCAN);
    rc = queue_file_append(fd, qf, &post);
    buf_free(&post);
    queue_file_free(qf);
    if (rc == 0)
        rc = queue_file_read(fd, qf, &why);
    return rc;
}
