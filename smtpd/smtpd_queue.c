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
 * Files fetched ahead: a MAIL takes a file from a small stock when there
 * is one (answered at once, no round trip to qmgr), and every file taken
 * is fetched again with the next commit: its "new" goes out in the same
 * write as the commit and comes back with the commit's answer, so qmgr
 * and smtpd wake up once per message instead of twice.  With the stock
 * empty a MAIL asks for its own file as before.  A stocked file belongs
 * to the connection that fetched it: when that connection is lost the
 * stock is closed (qmgr removes those files itself); a refused fetch
 * (452: the queue file system is short of space) aborts the stock, so
 * the next MAIL asks qmgr and gets the refusal itself.
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
#define SMTPD_STOCK_MAX 8       /* files fetched ahead */

enum qreq_kind { QREQ_HELLO, QREQ_NEW, QREQ_COMMIT, QREQ_ABORT, QREQ_STOCK };

struct qreq {
    int kind;
    bool failed;
    struct smtpd_session *s;    /* NULL: nobody waits */
    smtpd_queue_cb cb;
};

struct stock_file {
    char id[QUEUE_ID_SIZE];
    int fd;
};

/* A MAIL served from the stock, its callback still to run. */
struct stock_take {
    struct smtpd_session *s;    /* NULL once forgotten */
    smtpd_queue_cb cb;
    struct stock_file f;
    bool stale;                 /* its connection was lost meanwhile */
};

struct smtpd_qmgr {
    struct smtpd *d;
    char *path;
    bool connected;
    struct proto_conn conn;
    struct event *ev_read, *ev_write, *ev_fail, *ev_timeout, *ev_taken;
    struct qreq *q;             /* FIFO: q[head..tail) */
    size_t head, tail, cap;
    struct stock_file stock[SMTPD_STOCK_MAX];
    size_t nstock;
    unsigned want;              /* to fetch with the next commit */
    struct stock_take taken[SMTPD_STOCK_MAX];
    size_t ntaken;
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

/* The stock's files closed: their connection is gone (qmgr removed
 * them), or qmgr refused one (abort: the files go now; the next MAIL
 * asks for itself). */
static void queue_stock_drop(struct smtpd_qmgr *q, bool abort)
{
    while (q->nstock > 0) {
        struct stock_file *f = &q->stock[--q->nstock];
        close(f->fd);
        if (abort)
            smtpd_queue_abort(q->d, f->id);
    }
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
    queue_stock_drop(q, false);     /* qmgr removes their files itself */
    q->want = 0;
    for (size_t i = 0; i < q->ntaken; i++)
        q->taken[i].stale = true;
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

/* The file an answer to "new" hands over: 1 with f filled, 0 refused,
 * -1 malformed (warned; an id it names is aborted). */
static int queue_new_file(struct smtpd_qmgr *q, struct proto_msg *m, struct stock_file *f)
{
    const char *status = proto_get_str(m, "status"), *id = proto_get_str(m, "id");

    if (!status || strcmp(status, "ok") != 0)
        return 0;
    if (id && queue_id_valid(id) && (f->fd = proto_take_fd(m, 0)) >= 0) {
        str_copy(f->id, id, sizeof(f->id));
        return 1;
    }
    log_warn("qmgr: answer to new without a valid id and fd");
    if (id && queue_id_valid(id))
        smtpd_queue_abort(q->d, id);
    return -1;
}

static void queue_answer_new(struct smtpd_qmgr *q, struct qreq *r, struct proto_msg *m)
{
    struct stock_file f;
    int64_t code = 451;

    if (queue_new_file(q, m, &f) == 1) {
        if (!r->s) {
            close(f.fd);
            smtpd_queue_abort(q->d, f.id);
            return;
        }
        str_copy(r->s->txn.id, f.id, sizeof(r->s->txn.id));
        r->s->txn.fd = f.fd;
        r->cb(r->s, 0, NULL);
        return;
    }
    proto_get_int(m, "code", &code);
    if (r->s)
        r->cb(r->s, code == 452 ? 452 : 451, proto_get_str(m, "reason"));
}

static void queue_answer_stock(struct smtpd_qmgr *q, struct proto_msg *m)
{
    struct stock_file f;
    int rc = queue_new_file(q, m, &f);

    if (rc == 0) {
        queue_stock_drop(q, true);  /* refused: MAIL asks (and hears why) */
        q->want = 0;
    } else if (rc == 1 && q->nstock == SMTPD_STOCK_MAX) {
        close(f.fd);
        smtpd_queue_abort(q->d, f.id);
    } else if (rc == 1)
        q->stock[q->nstock++] = f;
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
    case QREQ_STOCK:
        queue_answer_stock(q, m);
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

/* MAILs served from the stock: their callbacks, from the loop.  A file
 * whose session went away goes back to the stock. */
static void queue_taken_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_qmgr *q = arg;
    struct stock_take taken[SMTPD_STOCK_MAX];
    size_t n = q->ntaken;

    memcpy(taken, q->taken, n * sizeof(*taken));
    q->ntaken = 0;
    for (size_t i = 0; i < n; i++) {
        struct stock_take *t = &taken[i];
        if (t->s) {
            str_copy(t->s->txn.id, t->f.id, sizeof(t->s->txn.id));
            t->s->txn.fd = t->f.fd;
            t->cb(t->s, 0, NULL);
        } else if (!t->stale && q->connected && q->nstock < SMTPD_STOCK_MAX) {
            q->stock[q->nstock++] = t->f;
        } else {
            close(t->f.fd);
            if (!t->stale)
                smtpd_queue_abort(q->d, t->f.id);
        }
    }
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
    q->ev_taken = event_new(d->base, -1, 0, queue_taken_cb, q);
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
    event_free(q->ev_taken);
    queue_stock_drop(q, false);
    for (size_t i = 0; i < q->ntaken; i++)
        close(q->taken[i].f.fd);
    free(q->q);
    free(q->path);
    free(q);
}

/* One more file to fetch with the next commit, as far as the stock has
 * room for it. */
static void queue_want(struct smtpd_qmgr *q)
{
    size_t fetching = 0;

    for (size_t i = q->head; i < q->tail; i++)
        fetching += q->q[i].kind == QREQ_STOCK;
    if (q->nstock + fetching + q->want + q->ntaken < SMTPD_STOCK_MAX)
        q->want++;
}

void smtpd_queue_new(struct smtpd_session *s, smtpd_queue_cb cb)
{
    struct smtpd_qmgr *q = s->d->qmgr;
    struct proto_msg m;

    queue_want(q);
    if (q->nstock > 0 && q->connected && q->ntaken < SMTPD_STOCK_MAX) {
        q->taken[q->ntaken++] = (struct stock_take){s, cb, q->stock[--q->nstock], false};
        event_active(q->ev_taken, EV_TIMEOUT, 0);
        return;
    }
    proto_msg_init(&m);
    proto_put_str(&m, "op", "new");
    proto_put_str(&m, "client", s->namaddr);
    queue_request(s->d->qmgr, QREQ_NEW, s, cb, &m);
    proto_msg_free(&m);
}

/* The wanted files, asked for behind the commit just queued: the same
 * write, answered with it. */
static void queue_fetch(struct smtpd_qmgr *q)
{
    struct proto_msg m;

    while (q->want > 0 && q->connected) {
        q->want--;
        proto_msg_init(&m);
        proto_put_str(&m, "op", "new");
        queue_request(q, QREQ_STOCK, NULL, NULL, &m);
        proto_msg_free(&m);
    }
}

void smtpd_queue_commit(struct smtpd_session *s, smtpd_queue_cb cb)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "op", "commit");
    proto_put_str(&m, "id", s->txn.id);
    queue_request(s->d->qmgr, QREQ_COMMIT, s, cb, &m);
    proto_msg_free(&m);
    queue_fetch(s->d->qmgr);
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
    for (size_t i = 0; i < q->ntaken; i++)
        if (q->taken[i].s == s)
            q->taken[i].s = NULL;
}
