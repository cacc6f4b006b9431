/*
 * server_work - blocking work (an fsync) off a daemon's event loop.
 *
 * A small pool of threads takes jobs from a FIFO and runs job->work on
 * a thread, then job->done on the loop (in the order the threads finish),
 * so whatever done touches stays single-threaded.  The caller embeds
 * struct server_job in its own job and owns it until done has run: work
 * must touch only what the job owns; done frees it.
 *
 * Threads block every signal (signals reach the loop thread).  Start-up
 * failures are fatal.  Jobs still queued or running when the daemon
 * exits are abandoned: callers keep their on-disk state such that an
 * unfinished job only repeats work (a tmp/ file, an unanswered client).
 */
#ifndef MAILGW_SERVER_WORK_H
#define MAILGW_SERVER_WORK_H

struct event_base;
struct server_work;

struct server_job {
    void (*work)(struct server_job *j);     /* on a pool thread */
    void (*done)(struct server_job *j);     /* then on the loop */
    struct server_job *next;                /* the pool's */
};

struct server_work *server_work_new(struct event_base *base, unsigned nthreads);
void server_work_run(struct server_work *p, struct server_job *j);

#endif
