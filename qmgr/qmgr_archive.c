/*
 * qmgr_archive - qmgr's side of the quarantine daemon (CONTRACTS.md
 * "quarantine daemon"; issue 6): storing originals in the quarantine and
 * backup areas for the scan verdict, the incoming and outgoing archives,
 * blind copies of received mail, and the daily expiry request.
 *
 * Interface (qmgr.h): qmgr_archive_init(), qmgr_archive_store(),
 * qmgr_archive_intake(), qmgr_archive_out().
 *
 * The daemon is reached on QueuePath/private/quarantine with one
 * connection kept open ({proto="quarantine", version=1}); a request that
 * fails on a kept connection is tried once more on a fresh one.  Calls
 * are blocking with bounded waits (QMGR_ARCHIVE_TIMEOUT).
 *
 * Intake (before the first scan of a received message, from the scan
 * step): with [mailgw.path] IncomingArchivePath set the queue file is
 * stored in area archive-in; with [mailgw.options] BlindCopyTo set a copy
 * (the same envelope sender and content, the BlindCopyTo addresses as
 * recipients) is queued as a new message that is scanned like any other.
 * Both happen once per message: when done the file gets the mode bit
 * S_IXGRP (fchmod + fsync; smtpd creates 0600, qmgr_notes keeps the mode),
 * and blind copies and qmgr's own messages are created with it.  A
 * failure (daemon down, disk) returns -1: the scan step defers the
 * message and tries again later, so nothing passes without its copy.
 *
 * Outgoing archive: when a message is removed after delivery with at
 * least one recipient delivered, it is stored in area archive-out (a
 * failure is an error line: the mail is already gone).
 *
 * Expiry: once a day qmgr sends {op="expire"} (the daemon applies
 * QuarantineMaxAge; it also expires by itself).
 *
 * Diagnostics: "ID: archived area=A qid=STOREID", "ID: blind copy
 * newid=NEWID nrcpt=N", errors with the daemon's reason.
 *
 * Security: the daemon gets the queue file read-only; nothing it answers
 * is used but status, qid and reason (logged as proto STR values).
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "proto/proto.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_ARCHIVE_TIMEOUT 60     /* seconds for one request */
#define QMGR_ARCHIVE_EXPIRE 86400   /* daily expiry request */

struct qmgr_archive {
    char *path;
    int fd;
    struct event *ev_expire;
};

static void qmgr_archive_close(struct qmgr_archive *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
}

static int qmgr_archive_connect(struct qmgr_archive *a, const char **why)
{
    struct timeval tv = { QMGR_ARCHIVE_TIMEOUT, 0 };
    struct proto_msg m;
    const char *st;
    int rc = -1;

    if (a->fd >= 0)
        return 0;
    if ((a->fd = proto_connect(a->path)) < 0) {
        *why = "quarantine daemon not running";
        return -1;
    }
    (void)setsockopt(a->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    proto_msg_init(&m);
    if (proto_send_hello(a->fd, "quarantine", 1) < 0)
        *why = "cannot talk to the quarantine daemon";
    else if (proto_recv(a->fd, &m, QMGR_ARCHIVE_TIMEOUT * 1000, why) < 0)
        ;
    else if ((st = proto_get_str(&m, "status")) == NULL || strcmp(st, "ok") != 0)
        *why = "the quarantine daemon refused the hello";
    else
        rc = 0;
    proto_msg_free(&m);
    if (rc < 0)
        qmgr_archive_close(a);
    return rc;
}

/* One request, one reply (status ok); -1 with *why. */
static int qmgr_archive_call(struct qmgr *q, const struct proto_msg *req, struct proto_msg *reply,
                             const char **why)
{
    struct qmgr_archive *a = q->archive;

    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = a->fd < 0;
        const char *st;
        if (qmgr_archive_connect(a, why) < 0)
            return -1;
        proto_msg_reset(reply);
        if (proto_send(a->fd, req) == 0 &&
            proto_recv(a->fd, reply, QMGR_ARCHIVE_TIMEOUT * 1000, why) == 0) {
            st = proto_get_str(reply, "status");
            if (st != NULL && strcmp(st, "ok") == 0)
                return 0;
            *why = proto_get_str(reply, "reason") ? proto_get_str(reply, "reason")
                                                  : "refused by the quarantine daemon";
            return -1;
        }
        if (*why == NULL)
            *why = "lost the connection to the quarantine daemon";
        qmgr_archive_close(a);
        if (fresh)
            break;
    }
    return -1;
}

int qmgr_archive_store(struct qmgr *q, const char *area, const char *id, int fd,
                       const char *group, const char *status, const char *names,
                       const char *reason, const char **why)
{
    struct proto_msg req, reply;
    int rc;

    proto_msg_init(&req);
    proto_msg_init(&reply);
    proto_put_str(&req, "op", "store");
    proto_put_str(&req, "area", area);
    proto_put_str(&req, "id", id);
    proto_put_str(&req, "group", group ? group : "");
    proto_put_str(&req, "status", status ? status : "");
    proto_put_str(&req, "names", names ? names : "");
    proto_put_str(&req, "reason", reason ? reason : "");
    proto_put_fd(&req, fd);
    rc = qmgr_archive_call(q, &req, &reply, why);
    if (rc == 0)
        log_info("%s: archived area=%s qid=%s", id, area,
                 proto_get_str(&reply, "qid") ? proto_get_str(&reply, "qid") : "?");
    else
        log_error("%s: cannot store in area %s: %s", id, area, *why ? *why : "?");
    proto_msg_free(&req);
    proto_msg_free(&reply);
    return rc;
}

/* The blind copy: one new message, scanned like any other. */
static int qmgr_archive_bcc(struct qmgr *q, const struct qmgr_msg *m, int fd,
                            const struct queue_file *qf, const char *const *to, size_t n,
                            const char **why)
{
    struct queue_envelope env = qf->env;
    struct qmgr_newmsg nm;
    int rc;

    env.rcpts = xcalloc(n, sizeof *env.rcpts);
    env.nrcpts = n;
    for (size_t i = 0; i < n; i++)
        env.rcpts[i] = (struct queue_rcpt){ .addr = to[i] };
    rc = qmgr_notify_new(q, &env, fd, qf, NULL, 0, QMGR_NEW_INTAKE_DONE, &nm, why);
    free(env.rcpts);
    if (rc < 0) {
        log_error("%s: cannot queue the blind copy: %s: %m", m->id, *why);
        return -1;
    }
    if (qmgr_notify_sync(q) < 0) {
        qmgr_notify_undo(q, &nm);
        *why = "cannot fsync incoming/";
        return -1;
    }
    log_msg("%s: blind copy newid=%s nrcpt=%zu", m->id, nm.id, n);
    qmgr_notify_ready(q, &nm);
    return 0;
}

static int qmgr_archive_intake_fd(struct qmgr *q, struct qmgr_msg *m, int fd, bool arch,
                                  const char *const *bcc, size_t nbcc, const char **why)
{
    struct queue_file qf;
    struct stat st;
    int rc = -1;

    if (fstat(fd, &st) < 0) {
        *why = "cannot stat the queue file";
        return -1;
    }
    if (st.st_mode & S_IXGRP)
        return 0;                       /* done before (or one of ours) */
    if (queue_file_read(fd, &qf, why) < 0)
        return -1;
    if ((!arch || qmgr_archive_store(q, "archive-in", m->id, fd, "", "received", "", "",
                                     why) == 0) &&
        (nbcc == 0 || qmgr_archive_bcc(q, m, fd, &qf, bcc, nbcc, why) == 0)) {
        if (fchmod(fd, (st.st_mode & 07777) | S_IXGRP) < 0 || fsync(fd) < 0)
            log_warn("%s: cannot mark the archive copy as made: %m", m->id);
        rc = 0;
    }
    queue_file_free(&qf);
    return rc;
}

int qmgr_archive_intake(struct qmgr *q, struct qmgr_msg *m, const char **why)
{
    const struct conf *c = q->srv->conf;
    const char *path = conf_str(c, "mailgw.path", "IncomingArchivePath");
    const char *const *bcc = NULL;
    size_t nbcc = conf_list(c, "mailgw.options", "BlindCopyTo", &bcc);
    bool arch = path != NULL && *path != 0;
    int fd, rc;

    if (!arch && nbcc == 0)
        return 0;
    fd = openat(q->dir_fd[QMGR_INCOMING], m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *why = "cannot open the queue file";
        return -1;
    }
    rc = qmgr_archive_intake_fd(q, m, fd, arch, bcc, nbcc, why);
    close(fd);
    return rc;
}

void qmgr_archive_out(struct qmgr *q, struct qmgr_msg *m)
{
    const char *path = conf_str(q->srv->conf, "mailgw.path", "OutgoingArchivePath");
    const char *why = NULL;
    bool sent = false;

    if (path == NULL || *path == 0 || !m->loaded || m->fd < 0)
        return;
    for (size_t i = 0; i < m->qf.env.nrcpts && !sent; i++)
        sent = m->qf.env.rcpts[i].status == QUEUE_RCPT_DELIVERED;
    if (sent)
        (void)qmgr_archive_store(q, "archive-out", m->id, m->fd, "", "sent", "", "", &why);
}

static void qmgr_archive_on_expire(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    struct proto_msg req, reply;
    const char *why = NULL;
    int64_t n = 0;

    proto_msg_init(&req);
    proto_msg_init(&reply);
    proto_put_str(&req, "op", "expire");
    if (qmgr_archive_call(q, &req, &reply, &why) < 0)
        log_warn("daily quarantine expiry: %s", why ? why : "failed");
    else if (proto_get_int(&reply, "count", &n) == 0 && n > 0)
        log_info("daily quarantine expiry: %lld entries removed", (long long)n);
    proto_msg_free(&req);
    proto_msg_free(&reply);
}

void qmgr_archive_init(struct qmgr *q)
{
    struct qmgr_archive *a = xcalloc(1, sizeof *a);
    struct timeval day = { QMGR_ARCHIVE_EXPIRE, 0 };

    a->fd = -1;
    a->path = xasprintf("%s/private/quarantine", q->queue_path);
    a->ev_expire = event_new(q->base, -1, EV_PERSIST, qmgr_archive_on_expire, q);
    if (a->ev_expire == NULL)
        log_fatal("cannot create the expiry event");
    event_add(a->ev_expire, &day);
    q->archive = a;
}
