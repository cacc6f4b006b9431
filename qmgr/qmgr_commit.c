/*
 * qmgr_commit - the durable commit protocol on private/qmgr
 * (CONTRACTS.md "qmgr commit protocol").
 *
 * Interface: qmgr_commit_start(), qmgr_commit_stop(),
 * qmgr_commit_in_progress(), qmgr_commit_space_ok().
 *
 * Clients (smtpd processes) connect to the listeners master passed us (or
 * that qmgr bound itself when started by hand), say hello
 * {proto="qmgr-commit", version=1}, then send requests answered one by
 * one, in order:
 *   new     -> a fresh tmp/ID (0600; a new or a recycled inode, see
 *              qmgr_spare.c) passed back as a write-only fd
 *   commit  -> (the client has written and fsync()ed the file) re-read
 *              tmp/ID through qmgr's own fd with the queue file reader;
 *              rename tmp/ID -> incoming/ID; fsync incoming/;
 *              only then {status="ok"} and the "from=<...>" log line.
 *              With noscan=1 (the quarantine daemon's "release") a FLAGS
 *              record QUEUE_FLAG_NOSCAN is added to the file first (so a
 *              restart keeps it) and the message is never scanned.
 *   abort   -> unlink tmp/ID
 * A client may commit or abort only IDs that "new" gave it on the same
 * connection.  When a connection closes, its uncommitted tmp files go.
 *
 * Durability and batching: a commit is renamed at once, put in the batch
 * and the flush event activated; libevent runs that event after the
 * other callbacks already active in this loop round, so every commit that
 * arrived in the round shares one fsync(incoming/), also several commits
 * pipelined on one connection (smtpd shares one connection between its
 * sessions).  Answers stay in request order: those that follow a commit
 * still waiting for the fsync are queued behind it.
 * If the fsync fails, the batch's files are removed and every client gets
 * 451: the sender retries (at least once, never zero times).
 *
 * Diagnostics: "ID: from=<SENDER>, size=N, nrcpt=N (queue active)" per
 * commit; warnings for malformed commits and protocol errors (with the
 * reason); a bad frame closes that connection only.
 *
 * Security: IDs from clients are checked with queue_id_valid() and must
 * belong to the connection before any path is built; queue files are
 * re-validated here, never trusted because smtpd wrote them.
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "proto/proto.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_PROTO "qmgr-commit"
#define QMGR_PROTO_VERSION 1
#define QMGR_MAX_CONNS 4096
#define QMGR_MAX_FILES_PER_CONN 1024
#define QMGR_MAX_LISTEN 16

struct qmgr_tmpfile {
    char id[QUEUE_ID_SIZE];
    int fd;
};

struct qmgr_conn {
    struct qmgr *q;
    struct proto_conn pc;
    struct event *ev_read, *ev_write;
    bool hello_done;
    bool closing;
    /* answers in request order: those after a commit that awaits the
     * batch fsync wait behind it (slots[head..n)) */
    struct qmgr_slot *slots;
    size_t head, nslots, capslots;
    uint64_t seq;               /* requests answered or queued so far */
    struct qmgr_tmpfile *files;
    size_t nfiles, capfiles;
    struct qmgr_conn *prev, *next;
};

struct qmgr_slot {
    struct proto_msg m;
    bool ready;
};

struct qmgr_batch_item {
    struct qmgr_conn *conn;     /* NULL when the client went away */
    uint64_t slot;              /* its answer's place (conn->seq) */
    char id[QUEUE_ID_SIZE];
    char *sender;
    uint64_t size;
    size_t nrcpt;
    bool noscan;                /* released from quarantine */
};

struct qmgr_commit {
    struct event *ev_listen[QMGR_MAX_LISTEN];
    size_t nlisten;
    struct qmgr_conn *conns;
    size_t nconns;
    struct qmgr_batch_item *batch;
    size_t nbatch, capbatch;
    struct event *ev_flush;
    size_t in_progress;
    time_t space_warned;
};

static void qmgr_conn_process(struct qmgr_conn *c);

/* ---- replies and connection life ---- */

static void qmgr_conn_watch(struct qmgr_conn *c)
{
    if (proto_conn_outlen(&c->pc) > 0)
        event_add(c->ev_write, NULL);
    else
        event_del(c->ev_write);
}

/* Answers that are ready, from the head of the slots, in order. */
static void qmgr_conn_drain(struct qmgr_conn *c)
{
    bool sent = false;

    while (c->head < c->nslots && c->slots[c->head].ready) {
        struct qmgr_slot *sl = &c->slots[c->head++];
        if (!c->closing && proto_conn_queue(&c->pc, &sl->m) < 0)
            c->closing = true;
        proto_msg_free(&sl->m);
        sent = true;
    }
    if (c->head == c->nslots)
        c->head = c->nslots = 0;
    if (sent && !c->closing && proto_conn_flush(&c->pc) < 0)
        c->closing = true;
    if (!c->closing)
        qmgr_conn_watch(c);
}

/* A slot for the next answer; m (may be NULL: filled in later) is taken
 * over.  Returns its sequence number. */
static uint64_t qmgr_conn_slot(struct qmgr_conn *c, struct proto_msg *m)
{
    struct qmgr_slot *sl;

    if (c->nslots == c->capslots) {
        c->capslots = c->capslots ? c->capslots * 2 : 8;
        c->slots = xreallocarray(c->slots, c->capslots, sizeof *c->slots);
    }
    sl = &c->slots[c->nslots++];
    if (m != NULL)
        sl->m = *m;
    else
        proto_msg_init(&sl->m);
    sl->ready = m != NULL;
    return c->seq++;
}

static struct qmgr_slot *qmgr_conn_slot_at(struct qmgr_conn *c, uint64_t seq)
{
    uint64_t first = c->seq - (c->nslots - c->head);

    if (seq < first || seq >= c->seq)
        return NULL;
    return &c->slots[c->head + (size_t)(seq - first)];
}

/* Takes m over: sent now, or after the answers queued before it. */
static void qmgr_conn_send(struct qmgr_conn *c, struct proto_msg *m)
{
    (void)qmgr_conn_slot(c, m);
    qmgr_conn_drain(c);
}

static void qmgr_conn_error(struct qmgr_conn *c, int code, const char *reason)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "status", "error");
    proto_put_int(&m, "code", code);
    proto_put_str(&m, "reason", reason);
    qmgr_conn_send(c, &m);
}

/* fd (or -1) goes with the answer and is closed after it. */
static void qmgr_conn_ok(struct qmgr_conn *c, const char *id, int fd)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "status", "ok");
    if (id)
        proto_put_str(&m, "id", id);
    if (fd >= 0)
        proto_give_fd(&m, fd);
    qmgr_conn_send(c, &m);
}

static void qmgr_tmpfile_drop(struct qmgr *q, struct qmgr_tmpfile *f, const char *why)
{
    if (unlinkat(q->dir_fd[QMGR_TMP], f->id, 0) < 0 && errno != ENOENT)
        log_warn("%s: cannot remove tmp/%s: %m", f->id, f->id);
    else
        log_debug("%s: removed tmp/%s (%s)", f->id, f->id, why);
    close(f->fd);
}

static void qmgr_conn_free(struct qmgr_conn *c, const char *why)
{
    struct qmgr_commit *cm = c->q->commit;

    for (size_t i = 0; i < c->nfiles; i++)
        qmgr_tmpfile_drop(c->q, &c->files[i], why);
    cm->in_progress -= c->nfiles;
    for (size_t i = 0; i < cm->nbatch; i++) {
        if (cm->batch[i].conn == c)
            cm->batch[i].conn = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        cm->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    cm->nconns--;
    event_free(c->ev_read);
    event_free(c->ev_write);
    proto_conn_close(&c->pc);
    for (size_t i = c->head; i < c->nslots; i++)
        proto_msg_free(&c->slots[i].m);
    free(c->slots);
    free(c->files);
    free(c);
}

static void qmgr_conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_conn *c = arg;

    if (proto_conn_flush(&c->pc) < 0) {
        qmgr_conn_free(c, "write error");
        return;
    }
    qmgr_conn_watch(c);
}

static void qmgr_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_conn *c = arg;
    const char *why = NULL;

    if (proto_conn_read(&c->pc, &why) < 0) {
        qmgr_conn_free(c, why ? why : "closed");
        return;
    }
    qmgr_conn_process(c);
}

/* ---- requests ---- */

static struct qmgr_tmpfile *qmgr_conn_find(struct qmgr_conn *c, const char *id)
{
    if (!queue_id_valid(id))
        return NULL;
    for (size_t i = 0; i < c->nfiles; i++) {
        if (strcmp(c->files[i].id, id) == 0)
            return &c->files[i];
    }
    return NULL;
}

/* Remove f from the connection's list (the caller owns it now). */
static struct qmgr_tmpfile qmgr_conn_take(struct qmgr_conn *c, struct qmgr_tmpfile *f)
{
    struct qmgr_tmpfile copy = *f;

    *f = c->files[--c->nfiles];
    c->q->commit->in_progress--;
    return copy;
}

bool qmgr_commit_space_ok(const struct qmgr *q)
{
    struct statvfs sv;

    if (q->min_free_bytes == 0)
        return true;
    if (statvfs(q->queue_path, &sv) < 0) {
        log_warn("statvfs %s: %m", q->queue_path);
        return true;
    }
    return (uint64_t)sv.f_bavail * sv.f_frsize >= q->min_free_bytes;
}

static void qmgr_req_new(struct qmgr_conn *c)
{
    struct qmgr *q = c->q;
    struct qmgr_tmpfile f;
    int client_fd;

    if (q->stopping || c->nfiles >= QMGR_MAX_FILES_PER_CONN) {
        qmgr_conn_error(c, 451, q->stopping ? "4.3.0 queue manager is stopping"
                                            : "4.3.0 too many unfinished queue files");
        return;
    }
    if (!qmgr_commit_space_ok(q)) {
        if (time(NULL) - q->commit->space_warned >= 60) {
            log_warn("queue file system %s: less than MinimalQueueFreeSpaceSize available: "
                     "new mail refused with 452", q->queue_path);
            q->commit->space_warned = time(NULL);
        }
        qmgr_conn_error(c, 452, "4.3.1 Insufficient system storage");
        return;
    }
    if ((f.fd = qmgr_spare_new_file(q, f.id)) < 0) {
        log_warn("cannot create a queue file in %s/tmp: %m", q->queue_path);
        qmgr_conn_error(c, 451, "4.3.0 cannot create queue file");
        return;
    }
    /* the client writes only: a recycled file's old bytes are not its to
     * read, and qmgr validates through its own fd */
    if ((client_fd = openat(q->dir_fd[QMGR_TMP], f.id, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        log_warn("cannot open %s/tmp/%s: %m", q->queue_path, f.id);
        qmgr_tmpfile_drop(q, &f, "open failed");
        qmgr_conn_error(c, 451, "4.3.0 cannot create queue file");
        return;
    }
    if (c->nfiles == c->capfiles) {
        c->capfiles = c->capfiles ? c->capfiles * 2 : 4;
        c->files = xreallocarray(c->files, c->capfiles, sizeof *c->files);
    }
    c->files[c->nfiles++] = f;
    q->commit->in_progress++;
    qmgr_conn_ok(c, f.id, client_fd);
}

static void qmgr_batch_add(struct qmgr_conn *c, const char *id, const struct queue_file *qf,
                           bool noscan)
{
    struct qmgr_commit *cm = c->q->commit;
    struct qmgr_batch_item *it;

    if (cm->nbatch == cm->capbatch) {
        cm->capbatch = cm->capbatch ? cm->capbatch * 2 : 16;
        cm->batch = xreallocarray(cm->batch, cm->capbatch, sizeof *cm->batch);
    }
    it = &cm->batch[cm->nbatch++];
    it->conn = c;
    str_copy(it->id, id, sizeof it->id);
    it->sender = xstrdup(qf->env.sender);
    it->size = qf->content_size;
    it->nrcpt = qf->env.nrcpts;
    it->noscan = noscan;
    it->slot = qmgr_conn_slot(c, NULL);     /* answered by the flush */
    event_active(cm->ev_flush, EV_TIMEOUT, 0);
}

/* Validate and rename; the answer comes from the batch flush. */
static void qmgr_req_commit(struct qmgr_conn *c, const char *id, bool noscan)
{
    struct qmgr *q = c->q;
    struct qmgr_tmpfile *fp = qmgr_conn_find(c, id), f;
    struct queue_file qf;
    const char *why = NULL;
    char reason[256];

    if (fp == NULL) {
        qmgr_conn_error(c, 451, "4.3.0 unknown queue ID");
        return;
    }
    f = qmgr_conn_take(c, fp);
    /* The client fsync()ed the file before "commit" (queue_writer_finish):
     * that is its part of the protocol, as the 250 is its answer.  A second
     * fsync here would cost a device flush per message and protect against
     * nothing: a client that skipped its fsync could as well answer 250
     * without committing at all. */
    if (queue_file_read(f.fd, &qf, &why) < 0) {
        log_warn("%s: commit refused: malformed queue file: %s", f.id, why);
        snprintf(reason, sizeof reason, "4.3.0 malformed queue file: %s", why);
    } else if (noscan && qmgr_notes_commit(f.fd, &qf) < 0) {
        log_warn("%s: commit failed: cannot record noscan in tmp/%s: %m", f.id, f.id);
        snprintf(reason, sizeof reason, "4.3.0 queue file write error");
        queue_file_free(&qf);
    } else if (renameat(q->dir_fd[QMGR_TMP], f.id, q->dir_fd[QMGR_INCOMING], f.id) < 0) {
        log_warn("%s: commit failed: rename tmp/%s to incoming/: %m", f.id, f.id);
        snprintf(reason, sizeof reason, "4.3.0 queue file rename failed");
        queue_file_free(&qf);
    } else {
        close(f.fd);
        qmgr_batch_add(c, f.id, &qf, noscan);
        queue_file_free(&qf);
        return;
    }
    qmgr_tmpfile_drop(q, &f, "commit failed");
    qmgr_conn_error(c, 451, reason);
}

static void qmgr_req_abort(struct qmgr_conn *c, const char *id)
{
    struct qmgr_tmpfile *fp = qmgr_conn_find(c, id), f;

    if (fp == NULL) {
        qmgr_conn_error(c, 451, "4.3.0 unknown queue ID");
        return;
    }
    f = qmgr_conn_take(c, fp);
    qmgr_tmpfile_drop(c->q, &f, "aborted");
    qmgr_conn_ok(c, NULL, -1);
}

static void qmgr_conn_request(struct qmgr_conn *c, const struct proto_msg *m)
{
    const char *op, *why = NULL;

    if (!c->hello_done) {
        if (proto_check_hello(m, QMGR_PROTO, QMGR_PROTO_VERSION, &why) < 0) {
            log_warn("private/qmgr: bad hello: %s", why ? why : "?");
            c->closing = true;
            return;
        }
        c->hello_done = true;
        qmgr_conn_ok(c, NULL, -1);
        return;
    }
    op = proto_get_str(m, "op");
    if (op != NULL && strcmp(op, "new") == 0)
        qmgr_req_new(c);
    else if (op != NULL && strcmp(op, "commit") == 0) {
        int64_t noscan = 0;
        (void)proto_get_int(m, "noscan", &noscan);
        qmgr_req_commit(c, proto_get_str(m, "id"), noscan == 1);
    }
    else if (op != NULL && strcmp(op, "abort") == 0)
        qmgr_req_abort(c, proto_get_str(m, "id"));
    else {
        log_warn("private/qmgr: unknown request \"%s\"", op ? op : "(none)");
        qmgr_conn_error(c, 451, "4.3.0 unknown request");
    }
}

static void qmgr_conn_process(struct qmgr_conn *c)
{
    const char *why = NULL;

    while (!c->closing) {
        struct proto_msg m;
        int n;
        proto_msg_init(&m);
        n = proto_conn_next(&c->pc, &m, &why);
        if (n == 1)
            qmgr_conn_request(c, &m);
        proto_msg_free(&m);
        if (n == 0)
            break;
        if (n < 0) {
            log_warn("private/qmgr: bad frame: %s", why ? why : "?");
            c->closing = true;
        }
    }
    if (c->closing)
        qmgr_conn_free(c, "protocol error");
}

/* ---- the batch ---- */

/* Fill the commit's answer slot (sent in order by the flush). */
static void qmgr_batch_reply(struct qmgr_batch_item *it, bool ok)
{
    struct qmgr_slot *sl = qmgr_conn_slot_at(it->conn, it->slot);

    if (sl == NULL)
        return;
    proto_put_str(&sl->m, "status", ok ? "ok" : "error");
    if (ok)
        proto_put_str(&sl->m, "id", it->id);
    else {
        proto_put_int(&sl->m, "code", 451);
        proto_put_str(&sl->m, "reason", "4.3.0 queue write error");
    }
    sl->ready = true;
}

static void qmgr_batch_answer(struct qmgr *q, struct qmgr_batch_item *it, bool synced)
{
    if (synced) {
        q->count[QMGR_INCOMING]++;
        q->committed++;
        log_msg("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", it->id, it->sender,
                (unsigned long long)it->size, it->nrcpt);
        if (it->conn)
            qmgr_batch_reply(it, true);
        if (it->noscan)
            qmgr_incoming_ready_released(q, it->id);
        else
            qmgr_incoming_ready(q, it->id);
    } else {
        (void)unlinkat(q->dir_fd[QMGR_INCOMING], it->id, 0);
        log_error("%s: commit failed: fsync of incoming/ failed; message removed", it->id);
        if (it->conn)
            qmgr_batch_reply(it, false);
    }
    free(it->sender);
}

static void qmgr_batch_flush(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    struct qmgr_commit *cm = q->commit;
    struct qmgr_batch_item *items = cm->batch;
    size_t n = cm->nbatch;
    bool synced;

    if (n == 0)
        return;
    cm->batch = NULL;           /* resumed clients start a new batch */
    cm->nbatch = cm->capbatch = 0;
    synced = fsync(q->dir_fd[QMGR_INCOMING]) == 0;
    if (!synced)
        log_error("fsync %s/incoming: %m", q->queue_path);
    log_debug("commit batch of %zu: one fsync of incoming/", n);
    for (size_t i = 0; i < n; i++)
        qmgr_batch_answer(q, &items[i], synced);
    /* A connection may have several commits here: send what is ready
     * (in order) once per connection; one that failed is freed and
     * forgotten by the later items. */
    for (size_t i = 0; i < n; i++) {
        struct qmgr_conn *c = items[i].conn;
        if (c == NULL)
            continue;
        for (size_t k = i; k < n; k++) {
            if (items[k].conn == c)
                items[k].conn = NULL;
        }
        qmgr_conn_drain(c);
        if (c->closing)
            qmgr_conn_free(c, "write error");
    }
    free(items);
}

/* ---- listeners ---- */

static void qmgr_conn_new(struct qmgr *q, int fd)
{
    struct qmgr_commit *cm = q->commit;
    struct qmgr_conn *c = xcalloc(1, sizeof *c);

    c->q = q;
    proto_conn_init(&c->pc, fd);
    c->ev_read = event_new(q->base, fd, EV_READ | EV_PERSIST, qmgr_conn_on_read, c);
    c->ev_write = event_new(q->base, fd, EV_WRITE, qmgr_conn_on_write, c);
    if (c->ev_read == NULL || c->ev_write == NULL)
        log_fatal("cannot create connection events");
    event_add(c->ev_read, NULL);
    c->next = cm->conns;
    if (cm->conns)
        cm->conns->prev = c;
    cm->conns = c;
    cm->nconns++;
}

static void qmgr_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct qmgr *q = arg;

    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_warn("private/qmgr: accept: %m");
            return;
        }
        if (q->commit->nconns >= QMGR_MAX_CONNS) {
            log_warn("private/qmgr: %d connections: refusing more", QMGR_MAX_CONNS);
            close(fd);
            continue;
        }
        qmgr_conn_new(q, fd);
    }
}

/* Started by hand without listeners: bind QueuePath/private/qmgr. */
static int qmgr_commit_bind(struct qmgr *q)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    if (mkdirat(q->queue_fd, "private", 0700) < 0 && errno != EEXIST)
        log_fatal("cannot create %s/private: %m", q->queue_path);
    if ((size_t)snprintf(sun.sun_path, sizeof sun.sun_path, "%s/private/qmgr", q->queue_path) >=
        sizeof sun.sun_path)
        log_fatal("socket path %s/private/qmgr too long", q->queue_path);
    (void)unlink(sun.sun_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 128) < 0)
        log_fatal("cannot listen on %s: %m", sun.sun_path);
    log_info("listening on %s", sun.sun_path);
    return fd;
}

void qmgr_commit_start(struct qmgr *q)
{
    struct qmgr_commit *cm = xcalloc(1, sizeof *cm);
    int fds[QMGR_MAX_LISTEN];
    size_t n = q->srv->nlisten;

    q->commit = cm;
    for (size_t i = 0; i < n && i < QMGR_MAX_LISTEN; i++)
        fds[i] = q->srv->listen_fds[i];
    if (n == 0)
        fds[n++] = qmgr_commit_bind(q);
    for (size_t i = 0; i < n && i < QMGR_MAX_LISTEN; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0)
            log_fatal("listener fd %d: %m", fds[i]);
        cm->ev_listen[i] = event_new(q->base, fds[i], EV_READ | EV_PERSIST, qmgr_on_accept, q);
        if (cm->ev_listen[i] == NULL)
            log_fatal("cannot create listener events");
        event_add(cm->ev_listen[i], NULL);
        cm->nlisten++;
    }
    cm->ev_flush = event_new(q->base, -1, 0, qmgr_batch_flush, q);
    if (cm->ev_flush == NULL)
        log_fatal("cannot create the commit batch event");
}

void qmgr_commit_stop(struct qmgr *q)
{
    struct qmgr_commit *cm = q->commit;

    if (cm == NULL)
        return;
    for (size_t i = 0; i < cm->nlisten; i++)
        event_del(cm->ev_listen[i]);
    /* Commits already renamed get their fsync and answer (answering
     * resumes clients, whose queued commits form a new batch). */
    while (cm->nbatch > 0)
        qmgr_batch_flush(-1, 0, q);
    while (cm->conns) {
        struct qmgr_conn *c = cm->conns;
        (void)proto_conn_flush(&c->pc);     /* best effort, never blocks */
        qmgr_conn_free(c, "stopping");
    }
}

size_t qmgr_commit_in_progress(const struct qmgr *q)
{
    return q->commit ? q->commit->in_progress : 0;
}
