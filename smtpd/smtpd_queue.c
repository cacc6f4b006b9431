/*
 * smtpd_queue - the qmgr commit client (CONTRACTS.md "qmgr commit
 * protocol"): one unix-socket connection per smtpd process, shared by all
 * sessions, requests answered in order.
 *
 *   hello {proto="qmgr-commit", version=1}      -> {status="ok"}
 *   {op="new", client="NAME[IP]"}               -> {status, id} + 1 fd
 *   {op="commit", id}                           -> {status, id}
 *   {op="abort", id}                            -> {status}
 *
 * Interface: smtpd_queue_new/commit (asynchronous: the callback runs from
 * the event loop, never inside the call), smtpd_queue_abort (fire and
 * forget), smtpd_queue_forget (a session went away: its callbacks are
 * dropped; a file handed out for it afterwards is aborted).
 *
 * Failures: a lost connection, a bad frame or no answer within
 * QMGR_REPLY_TIMEOUT fails every pending request with 451 (qmgr removes
 * the uncommitted files of a closed connection itself); the next request
 * connects again.  Diagnostics: "warning: qmgr: ..." lines.
 */
#include "smtpd.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "proto/proto.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_REPLY_TIMEOUT 120

enum qreq_kind { QREQ_HELLO, QREQ_NEW, QREQ_COMMIT, QREQ_ABORT };

struct qreq {
    int kind;
    bool failed;
    struct smtpd_session *s;    /* NULL: nobody waits */
    smtpd_queue_cb cb;
};

struct smtpd_qmgr {
    struct smtpd *d;
    char *path;
    bool connected;
    struct proto_conn conn;
    struct event *ev_read, *ev_write, *ev_fail, *ev_timeout;
    struct qreq *q;             /* FIFO: q[head..tail) */
    size_t head, tail, cap;
};

static void queue_read_cb(evutil_socket_t fd, short what, void *arg);
static void queue_write_cb(evutil_socket_t fd, short what, void *arg);

static void queue_push(struct smtpd_qmgr *q, int kind, struct smtpd_session *s,
                       smtpd_queue_cb cb, bool failed)
{
    if (q->head > 0 && q->head == q->tail)
        q->head = q->tail = 0;
    if (q->tail == q->cap) {
        if (q->head > 0) {
            memmove(q->q, q->q + q->head, (q->tail - q->head) * sizeof(*q->q));
            q->tail -= q->head;
            q->head = 0;
        } else {
            q->cap = q->cap ? q->cap * 2 : 16;
            q->q = xreallocarray(q->q, q->cap, sizeof(*q->q));
        }
    }
    q->q[q->tail++] = (struct qreq){kind, failed, s, cb};
    if (failed)
        event_active(q->ev_fail, EV_TIMEOUT, 0);
}

/* Fail everything pending (callbacks from the deferred event). */
static void queue_drop_connection(struct smtpd_qmgr *q, const char *why)
{
    if (q->connected) {
        log_warn("qmgr: %s: %s", q->path, why);
        event_del(q->ev_read);
        event_del(q->ev_write);
        event_del(q->ev_timeout);
        proto_conn_close(&q->conn);
        q->connected = false;
    }
    for (size_t i = q->head; i < q->tail; i++)
        q->q[i].failed = true;
    if (q->tail > q->head)
        event_active(q->ev_fail, EV_TIMEOUT, 0);
}

static void queue_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_qmgr *q = arg;

    while (q->head < q->tail && q->q[q->head].failed) {
        struct qreq r = q->q[q->head++];
        if (r.s && r.cb)
            r.cb(r.s, 451, "queue manager unavailable");
    }
}

static void queue_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    queue_drop_connection(arg, "no answer in time");
}

static void queue_flush(struct smtpd_qmgr *q)
{
    int r = proto_conn_flush(&q->conn);

    if (r < 0)
        queue_drop_connection(q, "write failed");
    else if (r == 0)
        event_add(q->ev_write, NULL);
}

static int queue_connect(struct smtpd_qmgr *q)
{
    struct proto_msg m;
    int fd;

    if (q->connected)
        return 0;
    fd = proto_connect(q->path);
    if (fd < 0) {
        log_warn("qmgr: connect to %s: %m", q->path);
        return -1;
    }
    proto_conn_init(&q->conn, fd);
    q->connected = true;
    event_assign(q->ev_read, q->d->base, fd, EV_READ | EV_PERSIST, queue_read_cb, q);
    event_assign(q->ev_write, q->d->base, fd, EV_WRITE, queue_write_cb, q);
    event_add(q->ev_read, NULL);
    proto_msg_init(&m);
    proto_put_str(&m, "proto", "qmgr-commit");
    proto_put_int(&m, "version", 1);
    proto_conn_queue(&q->conn, &m);
    proto_msg_free(&m);
    queue_push(q, QREQ_HELLO, NULL, NULL, false);
    return 0;
}

/* Queue one request frame; the callback comes with the answer. */
static void queue_request(struct smtpd_qmgr *q, int kind, struct smtpd_session *s,
                          smtpd_queue_cb cb, struct proto_msg *m)
{
    if (queue_connect(q) < 0) {
        queue_push(q, kind, s, cb, true);
        return;
    }
    if (proto_conn_queue(&q->conn, m) < 0) {
        queue_push(q, kind, s, cb, true);
        return;
    }
    queue_push(q, kind, s, cb, false);
    if (!event_pending(q->ev_timeout, EV_TIMEOUT, NULL))
        event_add(q->ev_timeout, &(struct timeval){QMGR_REPLY_TIMEOUT, 0});
    queue_flush(q);
}

static void queue_answer_new(struct smtpd_qmgr *q, struct qreq *r, struct proto_msg *m)
{
    const char *status = proto_get_str(m, "status"), *id = proto_get_str(m, "id");
    int64_t code = 451;
    int fd;

    if (status && strcmp(status, "ok") == 0 && id && queue_id_valid(id) &&
        (fd = proto_take_fd(m, 0)) >= 0) {
        if (!r->s) {
            close(fd);
            smtpd_queue_abort(q->d, id);
            return;
        }
        str_copy(r->s->txn.id, id, sizeof(r->s->txn.id));
        r->s->txn.fd = fd;
        r->cb(r->s, 0, NULL);
        return;
    }
    if (status && strcmp(status, "ok") == 0) {
        log_warn("qmgr: answer to new without a valid id and fd");
        if (id && queue_id_valid(id))
            smtpd_queue_abort(q->d, id);
    }
    proto_get_int(m, "code", &code);
    if (r->s)
        r->cb(r->s, code == 452 ? 452 : 451, proto_get_str(m, "reason"));
}

static void queue_answer(struct smtpd_qmgr *q, struct proto_msg *m)
{
    struct qreq r;
    const char *status = proto_get_str(m, "status");
    bool ok = status && strcmp(status, "ok") == 0;

    if (q->head == q->tail) {
        queue_drop_connection(q, "unexpected frame");
        return;
    }
    r = q->q[q->head++];
    if (q->head == q->tail)
        event_del(q->ev_timeout);
    else
        event_add(q->ev_timeout, &(struct timeval){QMGR_REPLY_TIMEOUT, 0});
    switch (r.kind) {
    case QREQ_HELLO:
        if (!ok)
            queue_drop_connection(q, "hello refused");
        break;
    case QREQ_NEW:
        queue_answer_new(q, &r, m);
        break;
    case QREQ_COMMIT:
        if (r.s)
            r.cb(r.s, ok ? 0 : 451, ok ? NULL : proto_get_str(m, "reason"));
        break;
    default:
        break;
    }
}

static void queue_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_qmgr *q = arg;
    const char *why = NULL;
    int r = proto_conn_read(&q->conn, &why);

    if (r < 0) {
        queue_drop_connection(q, why ? why : "connection closed");
        return;
    }
    for (;;) {
        struct proto_msg m;
        proto_msg_init(&m);
        r = proto_conn_next(&q->conn, &m, &why);
        if (r == 1)
            queue_answer(q, &m);
        proto_msg_free(&m);
        if (r < 0)
            queue_drop_connection(q, why ? why : "bad frame");
        if (r != 1 || !q->connected)
            break;
    }
}

static void queue_write_cb(evutil_socket_t fd, short what, void *arg)
{
    queue_flush(arg);
}

struct smtpd_qmgr *smtpd_queue_init(struct smtpd *d, const char *socket_path)
{
    struct smtpd_qmgr *q = xcalloc(1, sizeof(*q));

    q->d = d;
    q->path = xstrdup(socket_path);
    q->ev_read = event_new(d->base, -1, 0, queue_read_cb, q);
    q->ev_write = event_new(d->base, -1, 0, queue_write_cb, q);
    q->ev_fail = event_new(d->base, -1, 0, queue_fail_cb, q);
    q->ev_timeout = evtimer_new(d->base, queue_timeout_cb, q);
    return q;
}

void smtpd_queue_free(struct smtpd_qmgr *q)
{
    if (!q)
        return;
    if (q->connected)
        proto_conn_close(&q->conn);
    event_free(q->ev_read);
    event_free(q->ev_write);
    event_free(q->ev_fail);
    event_free(q->ev_timeout);
    free(q->q);
    free(q->path);
    free(q);
}

void smtpd_queue_new(struct smtpd_session *s, smtpd_queue_cb cb)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "op", "new");
    proto_put_str(&m, "client", s->namaddr);
    queue_request(s->d->qmgr, QREQ_NEW, s, cb, &m);
    proto_msg_free(&m);
}

void smtpd_queue_commit(struct smtpd_session *s, smtpd_queue_cb cb)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "op", "commit");
    proto_put_str(&m, "id", s->txn.id);
    queue_request(s->d->qmgr, QREQ_COMMIT, s, cb, &m);
    proto_msg_free(&m);
}

void smtpd_queue_abort(struct smtpd *d, const char *id)
{
    struct proto_msg m;

    if (!d->qmgr || !d->qmgr->connected)
        return;             /* qmgr dropped the connection's files itself */
    proto_msg_init(&m);
    proto_put_str(&m, "op", "abort");
    proto_put_str(&m, "id", id);
    queue_request(d->qmgr, QREQ_ABORT, NULL, NULL, &m);
    proto_msg_free(&m);
}

void smtpd_queue_forget(struct smtpd *d, struct smtpd_session *s)
{
    struct smtpd_qmgr *q = d->qmgr;

    if (!q)
        return;
    for (size_t i = q->head; i < q->tail; i++)
        if (q->q[i].s == s)
            q->q[i].s = NULL;
}
