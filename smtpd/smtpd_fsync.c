/*
 * smtpd_fsync - the end of a queue file (END record, flush, fsync) off
 * the event loop, so one session's fsync never stalls the others.
 *
 * A small pool of worker threads (SMTPD_FSYNC_THREADS) takes jobs from a
 * FIFO; each job owns what it works on: the session's queue writer (its
 * buffer and state, moved out of the transaction) and the queue file fd.
 * A worker runs queue_writer_finish() (write END and what is buffered,
 * fsync) and puts the job on a done list, then writes one byte to a pipe
 * whose read end is an event on the loop.  The loop takes the done list
 * and calls the session's callback, so callbacks always run on the loop,
 * and in order: END written and fsync()ed, then the caller commits to
 * qmgr and only after qmgr's answer says 250.
 *
 * Interface: smtpd_fsync_init() (after the event base exists, before any
 * session), smtpd_fsync_finish(s, cb) (cb(s, 0, NULL) or cb(s, 451,
 * reason) from the loop), smtpd_fsync_forget(s) (the transaction or the
 * session goes away: its callback is dropped; the job still finishes and
 * closes its fd; qmgr removes the file on "abort").
 *
 * Threads: workers touch only the job's writer and fd and the pool's
 * lists (under the mutex); job->s is read and written on the loop only.
 * Workers block every signal, so signals reach the loop thread.
 *
 * Diagnostics: start-up failures (threads, pipe) are fatal; a failed
 * write or fsync comes back as 451 with the writer's reason and errno.
 */
#include "smtpd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/mem.h"

#define SMTPD_FSYNC_THREADS 4

struct smtpd_fsync_job {
    struct smtpd_session *s;    /* NULL once forgotten (loop thread only) */
    smtpd_queue_cb cb;
    struct queue_writer w;      /* moved from the transaction */
    int fd;
    int rc, err;                /* queue_writer_finish's result */
    const char *error;
    struct smtpd_fsync_job *next;
};

struct job_list {
    struct smtpd_fsync_job *head, *tail;
};

struct smtpd_fsync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job_list todo, done;
    pthread_t threads[SMTPD_FSYNC_THREADS];
    int pipe[2];
    struct event *ev;
};

static void list_push(struct job_list *l, struct smtpd_fsync_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static struct smtpd_fsync_job *list_pop(struct job_list *l)
{
    struct smtpd_fsync_job *j = l->head;

    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
    }
    return j;
}

static void *fsync_worker(void *arg)
{
    struct smtpd_fsync *p = arg;

    for (;;) {
        struct smtpd_fsync_job *j;

        pthread_mutex_lock(&p->mu);
        while ((j = list_pop(&p->todo)) == NULL)
            pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        j->rc = queue_writer_finish(&j->w);
        j->err = j->rc < 0 ? errno : 0;
        j->error = j->w.error;
        pthread_mutex_lock(&p->mu);
        list_push(&p->done, j);
        pthread_mutex_unlock(&p->mu);
        /* EAGAIN: the pipe is full, so the loop wakes up anyway. */
        (void)!write(p->pipe[1], "", 1);
    }
    return NULL;
}

static void fsync_complete(struct smtpd_fsync_job *j)
{
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

static void fsync_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_fsync *p = arg;
    struct job_list done;
    struct smtpd_fsync_job *j;
    char drain[256];

    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    done = p->done;
    p->done.head = p->done.tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while ((j = list_pop(&done)) != NULL)
        fsync_complete(j);
}

struct smtpd_fsync *smtpd_fsync_init(struct event_base *base)
{
    struct smtpd_fsync *p = xcalloc(1, sizeof(*p));
    sigset_t all, old;
    int err;

    if (pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        log_fatal("fsync pool: pipe: %m");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->ev = event_new(base, p->pipe[0], EV_READ | EV_PERSIST, fsync_done_cb, p);
    if (!p->ev || event_add(p->ev, NULL) < 0)
        log_fatal("fsync pool: cannot watch the completion pipe");
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < SMTPD_FSYNC_THREADS; i++) {
        err = pthread_create(&p->threads[i], NULL, fsync_worker, p);
        if (err != 0)
            log_fatal("fsync pool: pthread_create: %s", strerror(err));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

void smtpd_fsync_finish(struct smtpd_session *s, smtpd_queue_cb cb)
{
    struct smtpd_fsync *p = s->d->fsync;
    struct smtpd_txn *t = &s->txn;
    struct smtpd_fsync_job *j = xcalloc(1, sizeof(*j));

    j->s = s;
    j->cb = cb;
    j->w = t->w;                /* the job owns the writer and the fd now */
    j->fd = t->fd;
    t->writing = false;
    t->fd = -1;
    t->fsync_job = j;
    pthread_mutex_lock(&p->mu);
    list_push(&p->todo, j);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void smtpd_fsync_forget(struct smtpd_session *s)
{
    if (s->txn.fsync_job) {
        s->txn.fsync_job->s = NULL;
        s->txn.fsync_job = NULL;
    }
}
