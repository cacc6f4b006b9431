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
 * before.  They come back at load (a restart keeps them for queue-list,
 * mailgwq -p and the expiry report).  The flag is written at commit time
 * into the file not yet committed (qmgr_commit.c), and fsync()ed with it
 * (queue_file_append), before the rename into incoming/.
 *
 * Diagnostics: a failed save is a warning (the reasons are lost, the
 * message is not: the old file stays).
 */
#include "qmgr.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Write the copy into tmp/NEWID; its fd (read back as *nqf), or -1. */
static int qmgr_notes_copy(struct qmgr *q, struct qmgr_msg *m, char newid[QUEUE_ID_SIZE],
                           struct queue_file *nqf, const char **why)
{
    struct buf post = BUF_INIT;
    struct stat st;
    /* maybe a recycled file (qmgr_spare.c): the rewrite starts at offset
     * 0 and truncates after END, as such a file needs */
    int fd = qmgr_spare_new_file(q, newid);

    if (fd < 0) {
        *why = "cannot create a file in tmp/";
        return -1;
    }
    qmgr_notes_records(m, &post);
    if (fstat(m->fd, &st) < 0 || fchmod(fd, st.st_mode & 07777) < 0 ||
        queue_file_rewrite(m->fd, &m->qf, fd, &post) < 0)
        *why = "cannot write the copy";
    else if (queue_file_read(fd, nqf, why) == 0) {
        buf_free(&post);
        return fd;
    }
    buf_free(&post);
    close(fd);
    (void)unlinkat(q->dir_fd[QMGR_TMP], newid, 0);
    return -1;
}

void qmgr_notes_save(struct qmgr *q, struct qmgr_msg *m)
{
    char newid[QUEUE_ID_SIZE];
    struct queue_file nqf;
    const char *why = NULL;
    int fd;

    if (!m->loaded || qmgr_notes_current(m))
        return;
    if ((fd = qmgr_notes_copy(q, m, newid, &nqf, &why)) < 0) {
        log_warn("%s: cannot record the deferral reasons: %s: %m", m->id, why ? why : "?");
        return;
    }
    if (renameat(q->dir_fd[QMGR_TMP], newid, q->dir_fd[m->dir], m->id) < 0) {
        log_warn("%s: cannot record the deferral reasons: rename tmp/%s to %s/%s: %m", m->id,
                 newid, qmgr_dir_names[m->dir], m->id);
        queue_file_free(&nqf);
        close(fd);
        (void)unlinkat(q->dir_fd[QMGR_TMP], newid, 0);
        return;
    }
    close(m->fd);
    queue_file_free(&m->qf);
    m->fd = fd;
    m->qf = nqf;
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
