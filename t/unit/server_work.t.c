/*
 * server_work.t - the work pool (lib/server/server_work.c): every job's
 * work runs on a pool thread, its done on the loop thread, each exactly
 * once, also when jobs are queued faster than the threads take them;
 * jobs run in parallel (several fsyncs at once is what the pool is for).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "server/server_work.h"
#include "tap.h"

#define NJOBS 200
#define NTHREADS 4

struct job {
    struct server_job job;
    int index;
    pthread_t worker;           /* set by work */
    int worked, done;
};

static pthread_t loop_thread;
static struct event_base *base;
static int ndone, bad_done_thread, bad_order;
static atomic_int running, most_running;

static void job_work(struct server_job *sj)
{
    struct job *j = (struct job *)sj;
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&most_running);
    struct timespec ts = { 0, 2 * 1000 * 1000 };

    while (now > seen && !atomic_compare_exchange_weak(&most_running, &seen, now))
        ;
    j->worker = pthread_self();
    j->worked++;
    nanosleep(&ts, NULL);       /* a blocking call, as an fsync is */
    atomic_fetch_sub(&running, 1);
}

static void job_done(struct server_job *sj)
{
    struct job *j = (struct job *)sj;

    if (!pthread_equal(pthread_self(), loop_thread))
        bad_done_thread++;
    if (j->worked != 1)
        bad_order++;
    j->done++;
    if (++ndone == NJOBS)
        event_base_loopbreak(base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(base);
}

int main(void)
{
    static struct job jobs[NJOBS];
    struct server_work *pool;
    struct event *guard;
    struct timeval limit = { 30, 0 };
    int on_loop = 0, twice = 0;

    loop_thread = pthread_self();
    base = event_base_new();
    pool = server_work_new(base, NTHREADS);
    ok(pool != NULL, "a pool of %d threads", NTHREADS);
    for (int i = 0; i < NJOBS; i++) {
        jobs[i].index = i;
        jobs[i].job.work = job_work;
        jobs[i].job.done = job_done;
        server_work_run(pool, &jobs[i].job);
    }
    guard = evtimer_new(base, on_timeout, NULL);
    evtimer_add(guard, &limit);
    event_base_dispatch(base);
    is_int(ndone, NJOBS, "every job's done ran");
    for (int i = 0; i < NJOBS; i++) {
        if (pthread_equal(jobs[i].worker, loop_thread))
            on_loop++;
        if (jobs[i].worked != 1 || jobs[i].done != 1)
            twice++;
    }
    is_int(on_loop, 0, "no work ran on the loop thread");
    is_int(twice, 0, "each work and done ran exactly once");
    is_int(bad_order, 0, "done ran only after its work");
    is_int(bad_done_thread, 0, "every done ran on the loop thread");
    ok(atomic_load(&most_running) > 1, "jobs ran in parallel (at most %d at once)",
       atomic_load(&most_running));
    ok(atomic_load(&most_running) <= NTHREADS, "never more than the pool's threads");
    event_free(guard);
    event_base_free(base);
    return tap_done();
}
