/*
 * smtpd_fsync - the end of a queue file (END record, flush, fsync) off
 * the event loop, so one session's fsync never stalls the others.
 *
 * A job runs on the shared work pool (lib/server/server_work.c,
 * SMTPD_FSYNC_THREADS threads) and owns what it works on: the session's
 * queue writer (its buffer and state, moved out of the transaction) and
 * the queue file fd.  On a thread it runs queue_writer_finish() (write END
 * and what is buffered, fsync); back on the loop it calls the session's
 * callback, so callbacks always run on the loop, and in order: END
 * written and fsync()ed, then the caller commits to qmgr and only after
 * qmgr's answer says 250.
 *
 * Interface: smtpd_fsync_init() (after the event base exists, before any
 * session), smtpd_fsync_finish(s, cb) (cb(s, 0, NULL) or cb(s, 451,
 * reason) from the loop), smtpd_fsync_forget(s) (the transaction or the
 * session goes away: its callback is dropped; the job still finishes and
 * closes its fd; qmgr removes the file on "abort").
 *
 * Threads: the work touches only the job's writer and fd; job->s is read
 * and written on the loop only.
 *
 * Diagnostics: start-up failures (threads, pipe) are fatal; a failed
 * write or fsync comes back as 451 with the writer's reason and errno.
 */
#include "smtpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server_work.h"
#include "util/mem.h"

#define SMTPD_FSYNC_THREADS 4

struct smtpd_fsync_job {
    struct server_job job;
    struct smtpd_session *s;    /* NULL once forgotten (loop thread only) */
    smtpd_queue_cb cb;
    struct queue_writer w;      /* moved from the transaction */
    int fd;
    int rc, err;                /* queue_writer_finish's result */
    const char *error;
};

static void fsync_work(struct server_job *job)
{
    struct smtpd_fsync_job *j = (struct smtpd_fsync_job *)job;

    j->rc = queue_writer_finish(&j->w);
    j->err = j->rc < 0 ? errno : 0;
    j->error = j->w.error;
}

static void fsync_done(struct server_job *job)
{
    struct smtpd_fsync_job *j = (struct smtpd_fsync_job *)job;
    struct smtpd_session *s = j->s;
    char reason[256];

    queue_writer_close(&j->w);
    close(j->fd);
    if (s) {
        s->txn.fsync_job = NULL;
        if (j->rc == 0) {
            j->cb(s, 0, NULL);
        } else {
            snprintf(reason, sizeof(reason), "%s: %s", j->error ? j->error : "queue file error",
                     strerror(j->err));
            j->cb(s, 451, reason);
        }
    }
    free(j);
}

struct server_work *smtpd_fsync_init(struct event_base *base)
{
    return server_work_new(base, SMTPD_FSYNC_THREADS);
}

void smtpd_fsync_finish(struct smtpd_session *s, smtpd_queue_cb cb)
{
    struct smtpd_txn *t = &s->txn;
    struct smtpd_fsync_job *j = xcalloc(1, sizeof(*j));

    j->job.work = fsync_work;
    j->job.done = fsync_done;
    j->s = s;
    j->cb = cb;
    j->w = t->w;                /* the job owns the writer and the fd now */
    j->fd = t->fd;
    t->writing = false;
    t->fd = -1;
    t->fsync_job = j;
    server_work_run(s->d->fsync, &j->job);
}

void smtpd_fsync_forget(struct smtpd_session *s)
{
    if (s->txn.fsync_job) {
        s->txn.fsync_job->s = NULL;
        s->txn.fsync_job = NULL;
    }
}
