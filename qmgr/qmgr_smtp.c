/*
 * qmgr_smtp - qmgr's side of the delivery protocol (CONTRACTS.md
 * "qmgr -> smtp delivery protocol") on private/smtp.
 *
 * Interface: qmgr_smtp_send(), qmgr_smtp_idle_count() (qmgr.h).
 *
 * One request at a time per connection; concurrency comes from several
 * connections (at most OutgoingSessions, the scheduler's limit).  A new
 * connection sends its hello and its first request together; finished
 * connections stay open and idle for the next request.  The request
 * carries the envelope and one fd: the queue file, read-only (the fd
 * qmgr loaded the message with).
 * The reply goes to qmgr_result_reply(); a connection that closes or
 * stays silent past QMGR_SMTP_TIMEOUT during a request counts as a
 * delivery agent failure (reply NULL: the job is retried).
 *
 * Diagnostics: connect failures at debug level (the scheduler retries a
 * second later); protocol errors from smtp are warnings.
 *
 * Security: smtp is less trusted than qmgr (it talks to the network):
 * replies are checked by qmgr_result_reply(); it gets read-only fds.
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "proto/proto.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_SMTP_PROTO "smtp-deliver"
#define QMGR_SMTP_VERSION 1
/* smtp's own timeouts end a delivery long before this */
#define QMGR_SMTP_TIMEOUT 7200

struct qmgr_smtp {
    struct qmgr *q;
    struct proto_conn pc;
    struct event *ev_read, *ev_write, *ev_timeout;
    bool hello_ok;
    struct qmgr_job *job;
    struct qmgr_smtp *next;     /* idle list */
};

static const char *const qmgr_body_names[] = { "", "7BIT", "8BITMIME", "BINARYMIME" };

static void qmgr_smtp_unidle(struct qmgr *q, struct qmgr_smtp *c)
{
    struct qmgr_smtp **pp = &q->idle;

    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    c->next = NULL;
}

static void qmgr_smtp_free(struct qmgr_smtp *c, const char *why)
{
    struct qmgr *q = c->q;
    struct qmgr_job *j = c->job;

    log_debug("private/smtp: connection closed: %s", why);
    qmgr_smtp_unidle(q, c);
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_timeout);
    proto_conn_close(&c->pc);
    q->nconns--;
    free(c);
    if (j)
        qmgr_result_reply(q, j, NULL);
}

static void qmgr_smtp_watch(struct qmgr_smtp *c)
{
    if (proto_conn_outlen(&c->pc) > 0)
        event_add(c->ev_write, NULL);
    else
        event_del(c->ev_write);
}

static void qmgr_smtp_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_smtp *c = arg;

    if (proto_conn_flush(&c->pc) < 0) {
        qmgr_smtp_free(c, "write error");
        return;
    }
    qmgr_smtp_watch(c);
}

static void qmgr_smtp_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_smtp *c = arg;

    log_warn("%s: no answer from smtp in %d s", c->job ? c->job->msg->id : "?",
             QMGR_SMTP_TIMEOUT);
    qmgr_smtp_free(c, "timeout");
}

/* One frame from smtp: 0 fine, -1 close the connection. */
static int qmgr_smtp_frame(struct qmgr_smtp *c, struct proto_msg *m)
{
    struct qmgr *q = c->q;
    const char *st = proto_get_str(m, "status");
    struct qmgr_job *j = c->job;

    if (!c->hello_ok) {
        if (st == NULL || strcmp(st, "ok") != 0) {
            log_warn("private/smtp: hello refused");
            return -1;
        }
        c->hello_ok = true;
        return 0;
    }
    if (j == NULL) {
        log_warn("private/smtp: unexpected frame");
        return -1;
    }
    c->job = NULL;
    event_del(c->ev_timeout);
    if (!q->stopping) {
        c->next = q->idle;
        q->idle = c;
    }
    qmgr_result_reply(q, j, m);
    return q->stopping ? -1 : 0;
}

static void qmgr_smtp_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_smtp *c = arg;
    const char *why = NULL;
    int rc = proto_conn_read(&c->pc, &why);

    for (;;) {
        struct proto_msg m;
        int n;
        proto_msg_init(&m);
        n = proto_conn_next(&c->pc, &m, &why);
        if (n == 1 && qmgr_smtp_frame(c, &m) < 0)
            n = -1;
        proto_msg_free(&m);
        if (n == 0)
            break;
        if (n < 0) {
            qmgr_smtp_free(c, why ? why : "protocol error");
            return;
        }
    }
    if (rc < 0)
        qmgr_smtp_free(c, why ? why : "closed");
}

static struct qmgr_smtp *qmgr_smtp_open(struct qmgr *q)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct qmgr_smtp *c;
    struct proto_msg hello;
    int fd;

    if (str_copy(sun.sun_path, q->smtp_path, sizeof sun.sun_path) >= sizeof sun.sun_path)
        return NULL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 && errno != EINPROGRESS) {
        log_debug("connect %s: %m", q->smtp_path);
        close(fd);
        return NULL;
    }
    c = xcalloc(1, sizeof *c);
    c->q = q;
    proto_conn_init(&c->pc, fd);
    c->ev_read = event_new(q->base, fd, EV_READ | EV_PERSIST, qmgr_smtp_on_read, c);
    c->ev_write = event_new(q->base, fd, EV_WRITE, qmgr_smtp_on_write, c);
    c->ev_timeout = event_new(q->base, -1, 0, qmgr_smtp_on_timeout, c);
    if (!c->ev_read || !c->ev_write || !c->ev_timeout)
        log_fatal("cannot create connection events");
    event_add(c->ev_read, NULL);
    q->nconns++;
    proto_msg_init(&hello);
    proto_put_str(&hello, "proto", QMGR_SMTP_PROTO);
    proto_put_int(&hello, "version", QMGR_SMTP_VERSION);
    (void)proto_conn_queue(&c->pc, &hello);
    proto_msg_free(&hello);
    return c;
}

static void qmgr_smtp_request(struct proto_msg *r, const struct qmgr_job *j)
{
    const struct qmgr_msg *m = j->msg;
    const struct queue_envelope *env = &m->qf.env;

    proto_put_str(r, "op", "deliver");
    proto_put_str(r, "id", m->id);
    proto_put_str(r, "nexthop", j->dest->nexthop);
    proto_put_str(r, "sender", env->sender);
    if (env->envid)
        proto_put_str(r, "envid", env->envid);
    if (env->ret == QUEUE_RET_FULL || env->ret == QUEUE_RET_HDRS)
        proto_put_str(r, "ret", env->ret == QUEUE_RET_FULL ? "FULL" : "HDRS");
    if (env->body_type > QUEUE_BODY_NONE && env->body_type <= QUEUE_BODY_BINARYMIME)
        proto_put_str(r, "body_type", qmgr_body_names[env->body_type]);
    proto_put_int(r, "smtputf8", env->smtputf8);
    proto_put_int(r, "size", (int64_t)m->qf.content_size);
    proto_put_int(r, "arrival_us", (int64_t)env->arrival_us);
    for (size_t k = 0; k < j->nrcpt; k++) {
        const struct queue_rcpt *rc = &env->rcpts[j->rcpt[k]];
        proto_put_str(r, "rcpt", rc->addr);
        proto_put_str(r, "rcpt_orcpt", rc->orcpt ? rc->orcpt : "");
        proto_put_int(r, "rcpt_notify", rc->notify);
    }
}

int qmgr_smtp_send(struct qmgr *q, struct qmgr_job *j)
{
    struct qmgr_smtp *c = q->idle;
    struct timeval tmo = { QMGR_SMTP_TIMEOUT, 0 };
    struct proto_msg r;

    if (c != NULL)
        q->idle = c->next;
    else if ((c = qmgr_smtp_open(q)) == NULL)
        return -1;
    c->next = NULL;
    proto_msg_init(&r);
    qmgr_smtp_request(&r, j);
    proto_put_fd(&r, j->msg->fd);      /* read-only (qmgr_msg_load) */
    c->job = j;
    if (proto_conn_queue(&c->pc, &r) < 0) {
        log_error("%s: delivery request too large", j->msg->id);
        c->job = NULL;
        proto_msg_free(&r);
        qmgr_smtp_free(c, "request too large");
        return -1;
    }
    proto_msg_free(&r);
    (void)proto_conn_flush(&c->pc);     /* errors show up as a read EOF */
    qmgr_smtp_watch(c);
    event_add(c->ev_timeout, &tmo);
    return 0;
}

size_t qmgr_smtp_idle_count(const struct qmgr *q)
{
    size_t n = 0;

    for (const struct qmgr_smtp *c = q->idle; c; c = c->next)
        n++;
    return n;
}
