/*
 * server_work - a thread pool for blocking work, results on the loop
 * (server_work.h).
 *
 * Interface: server_work_new(), server_work_run().
 *
 * A worker pops a job from the todo list (mutex + condition variable),
 * runs its work, pushes it on the done list and writes one byte to a
 * pipe whose read end is a persistent event on the loop; that event
 * takes the whole done list and runs each job's done callback.
 *
 * Diagnostics: start-up failures (pipe, event, threads) are fatal.
 */
#include "server/server_work.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/mem.h"

#define SERVER_WORK_MAX_THREADS 16

struct job_list {
    struct server_job *head, *tail;
};

struct server_work {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job_list todo, done;
    int pipe[2];
    struct event *ev;
};

static void list_push(struct job_list *l, struct server_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static struct server_job *list_pop(struct job_list *l)
{
    struct server_job *j = l->head;

    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
    }
    return j;
}

static void *server_work_thread(void *arg)
{
    struct server_work *p = arg;

    for (;;) {
        struct server_job *j;

        pthread_mutex_lock(&p->mu);
        while ((j = list_pop(&p->todo)) == NULL)
            pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        j->work(j);
        pthread_mutex_lock(&p->mu);
        list_push(&p->done, j);
        pthread_mutex_unlock(&p->mu);
        /* EAGAIN: the pipe is full, so the loop wakes up anyway. */
        (void)!write(p->pipe[1], "", 1);
    }
    return NULL;
}

static void server_work_on_done(evutil_socket_t fd, short what, void *arg)
{
    struct server_work *p = arg;
    struct job_list done;
    struct server_job *j;
    char drain[256];

    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    done = p->done;
    p->done.head = p->done.tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while ((j = list_pop(&done)) != NULL)
        j->done(j);
}

struct server_work *server_work_new(struct event_base *base, unsigned nthreads)
{
    struct server_work *p = xcalloc(1, sizeof(*p));
    sigset_t all, old;
    pthread_t t;

    if (nthreads == 0 || nthreads > SERVER_WORK_MAX_THREADS)
        log_fatal("work pool: %u threads", nthreads);
    if (pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        log_fatal("work pool: pipe: %m");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->ev = event_new(base, p->pipe[0], EV_READ | EV_PERSIST, server_work_on_done, p);
    if (!p->ev || event_add(p->ev, NULL) < 0)
        log_fatal("work pool: cannot watch the completion pipe");
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < nthreads; i++) {
        int err = pthread_create(&t, NULL, server_work_thread, p);
        if (err != 0)
            log_fatal("work pool: pthread_create: %s", strerror(err));
        pthread_detach(t);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

void server_work_run(struct server_work *p, struct server_job *j)
{
    pthread_mutex_lock(&p->mu);
    list_push(&p->todo, j);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
