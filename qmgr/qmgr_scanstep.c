/*
 * qmgr_scanstep - the scan hand-off (DESIGN §3 steps 3-4; CONTRACTS.md
 * "qmgr -> scand scanning protocol").
 *
 * Interface: qmgr_scanstep_init, qmgr_scanstep_enabled,
 * qmgr_scanstep_start (qmgr.h).
 *
 * Scanning is on when QueuePath/private/scand exists (master binds it for
 * a configured scand); without it messages go straight to delivery and
 * qmgr says once "scanning disabled: no scand".  When on, no message
 * leaves incoming/ unscanned.
 *
 * Per message one connection: {proto="scand", version=1} then
 * {op="scan", id, sender, client_addr, client_name, helo, rcpt...} with
 * two fds: the queue file read-only and an empty tmp/NEWID (O_RDWR) where
 * scand writes a complete new queue file when the content changed.  At
 * most AntiviralSessions scans run at once.
 *
 * The verdict, per group: group_action=block drops the group's recipients
 * (status DROPPED, "ID: to=<rcpt>, status=blocked (av status=S names=N)";
 * nothing is bounced for them); deliver goes on, and with
 * group_rewritten=1 the new file (validated with the queue file reader,
 * dropped recipients marked in it) replaces the old one by rename over it
 * plus an fsync of incoming/.  A message with no recipient left is
 * removed.  Then the message goes on to delivery.
 *
 * A connection that fails, closes without a verdict, times out, or an
 * answer status=tempfail: "ID: scan deferred: REASON", the message stays
 * in incoming/ and is scanned again after a back-off (5 s doubling to 5
 * minutes).  Never treated as clean.
 *
 * Security: scand handles hostile content; its answer is checked
 * (types, recipient names matched against our own envelope) and the file
 * it wrote is re-validated before it replaces anything.
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "proto/proto.h"
#include "util/log.h"
#include "util/mem.h"

#define QMGR_SCAN_TIMEOUT 900
#define QMGR_SCAN_BACKOFF_MIN 5
#define QMGR_SCAN_BACKOFF_MAX 300

struct qmgr_scan {
    struct qmgr *q;
    struct qmgr_msg *m;
    struct proto_conn pc;
    struct event *ev_read, *ev_write, *ev_timeout;
    char tmpid[QUEUE_ID_SIZE];
    int tmpfd;
    bool hello_ok;
};

static int qmgr_scan_logged = -1;   /* last logged state: 0 off, 1 on */

bool qmgr_scanstep_enabled(struct qmgr *q)
{
    struct stat st;
    bool on = stat(q->scand_path, &st) == 0 && S_ISSOCK(st.st_mode);

    if ((int)on != qmgr_scan_logged) {
        if (on)
            log_info("scanning enabled: %s", q->scand_path);
        else
            log_info("scanning disabled: no scand");
        qmgr_scan_logged = on;
    }
    q->scan_enabled = on;
    return on;
}

void qmgr_scanstep_init(struct qmgr *q)
{
    q->scand_path = xasprintf("%s/private/scand", q->queue_path);
    (void)qmgr_scanstep_enabled(q);
}

static void qmgr_scan_free(struct qmgr_scan *s)
{
    struct qmgr *q = s->q;

    if (s->ev_read)
        event_free(s->ev_read);
    if (s->ev_write)
        event_free(s->ev_write);
    if (s->ev_timeout)
        event_free(s->ev_timeout);
    proto_conn_close(&s->pc);
    if (s->tmpfd >= 0) {
        close(s->tmpfd);
        (void)unlinkat(q->dir_fd[QMGR_TMP], s->tmpid, 0);
    }
    s->m->scanning = false;
    q->nscanning--;
    free(s);
}

/* The message goes on (scanned, deferred, or an administrator's op). */
static void qmgr_scan_next(struct qmgr *q, struct qmgr_msg *m)
{
    if (m->admin_op != QMGR_OP_NONE)
        qmgr_result_finish(q, m);
    else
        qmgr_msg_wait(q, m);
}

static void qmgr_scan_defer(struct qmgr_scan *s, const char *reason)
{
    struct qmgr *q = s->q;
    struct qmgr_msg *m = s->m;

    m->scan_backoff = m->scan_backoff ? m->scan_backoff * 2 : QMGR_SCAN_BACKOFF_MIN;
    if (m->scan_backoff > QMGR_SCAN_BACKOFF_MAX)
        m->scan_backoff = QMGR_SCAN_BACKOFF_MAX;
    m->next_try = qmgr_now() + m->scan_backoff;
    log_msg("%s: scan deferred: %s", m->id, reason);
    qmgr_scan_free(s);
    qmgr_scan_next(q, m);
}

/* Was addr named in a group_rcpt of a block group? */
static bool qmgr_scan_blocked(const struct proto_msg *v, const char *addr)
{
    bool block = false;
    size_t start = 0;

    for (size_t i = 0; i <= v->nattrs; i++) {
        const struct proto_attr *a = i < v->nattrs ? &v->attrs[i] : NULL;
        if (a && strcmp(a->name, "group_action") == 0 && a->type == PROTO_STR)
            block = a->len == 5 && memcmp(a->value, "block", 5) == 0;
        if (a && strcmp(a->name, "group") != 0)
            continue;
        /* end of the group [start, i): does it list addr? */
        for (size_t k = start; block && k < i; k++) {
            const struct proto_attr *r = &v->attrs[k];
            if (strcmp(r->name, "group_rcpt") == 0 && r->type == PROTO_STR &&
                r->len == strlen(addr) && strncasecmp((const char *)r->value, addr, r->len) == 0)
                return true;
        }
        start = i;
        block = false;
    }
    return false;
}

static bool qmgr_scan_rewritten(const struct proto_msg *v)
{
    for (size_t i = 0; i < v->nattrs; i++) {
        if (strcmp(v->attrs[i].name, "group_rewritten") == 0 &&
            v->attrs[i].type == PROTO_INT && v->attrs[i].num == 1)
            return true;
    }
    return false;
}

/* Mark blocked recipients DROPPED in fd; returns those still pending. */
static size_t qmgr_scan_drop(struct qmgr *q, struct qmgr_msg *m, int fd, struct queue_file *qf,
                             const struct proto_msg *v)
{
    const char *st = proto_get_str(v, "av_status"), *names = proto_get_str(v, "names");
    size_t left = 0, dropped = 0;

    for (size_t i = 0; i < qf->env.nrcpts; i++) {
        struct queue_rcpt *r = &qf->env.rcpts[i];
        if (r->status != QUEUE_RCPT_PENDING)
            continue;
        if (!qmgr_scan_blocked(v, r->addr)) {
            left++;
            continue;
        }
        if (queue_rcpt_mark_status(fd, r, QUEUE_RCPT_DROPPED) < 0)
            log_error("%s: cannot record a status: %m", m->id);
        log_msg("%s: to=<%s>, status=blocked (av status=%s names=%s)", m->id, r->addr,
                st ? st : "unknown", names ? names : "");
        dropped++;
    }
    q->ctr.dropped_recipients += dropped;
    if (dropped && queue_file_sync(fd) < 0)
        log_error("%s: fsync: %m", m->id);
    return left;
}

/* Apply a verdict; -1 with *why when it must be retried. */
static int qmgr_scan_apply(struct qmgr_scan *s, const struct proto_msg *v, const char **why)
{
    struct qmgr *q = s->q;
    struct qmgr_msg *m = s->m;
    bool rewritten = qmgr_scan_rewritten(v);
    int fd = rewritten ? s->tmpfd
                       : openat(q->dir_fd[QMGR_INCOMING], m->id, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    struct queue_file qf;
    size_t left;

    if (fd < 0) {
        *why = "cannot open the queue file";
        return -1;
    }
    if (queue_file_read(fd, &qf, why) < 0) {
        if (!rewritten)
            close(fd);
        *why = rewritten ? "the rewritten message is malformed" : *why;
        return -1;
    }
    left = qmgr_scan_drop(q, m, fd, &qf, v);
    queue_file_free(&qf);
    if (!rewritten)
        close(fd);
    else if (renameat(q->dir_fd[QMGR_TMP], s->tmpid, q->dir_fd[QMGR_INCOMING], m->id) < 0 ||
             fsync(q->dir_fd[QMGR_INCOMING]) < 0) {
        *why = "cannot replace the queue file with the rewritten one";
        return -1;
    } else {
        close(s->tmpfd);
        s->tmpfd = -1;
        log_info("%s: content rewritten by the scanner", m->id);
    }
    return left == 0 ? 1 : 0;
}

static void qmgr_scan_verdict(struct qmgr_scan *s, const struct proto_msg *v)
{
    struct qmgr *q = s->q;
    struct qmgr_msg *m = s->m;
    const char *st = proto_get_str(v, "status"), *why = NULL;
    int rc;

    if (st == NULL || strcmp(st, "ok") != 0) {
        const char *r = proto_get_str(v, "reason");
        qmgr_scan_defer(s, st && strcmp(st, "tempfail") == 0 && r ? r : "scanner temporary failure");
        return;
    }
    if ((rc = qmgr_scan_apply(s, v, &why)) < 0) {
        qmgr_scan_defer(s, why);
        return;
    }
    qmgr_scan_free(s);
    m->noscan = true;   /* scanned: on to delivery */
    m->scan_backoff = 0;
    if (rc == 1 && m->admin_op == QMGR_OP_NONE)
        qmgr_msg_remove(q, m);
    else
        qmgr_scan_next(q, m);
}

static void qmgr_scan_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_scan *s = arg;
    const char *why = NULL;
    int rc = proto_conn_read(&s->pc, &why);

    for (;;) {
        struct proto_msg v;
        int n;
        proto_msg_init(&v);
        n = proto_conn_next(&s->pc, &v, &why);
        if (n == 1 && !s->hello_ok && !proto_get_str(&v, "av_status") &&
            proto_count(&v, "group") == 0 && proto_get_str(&v, "status") &&
            strcmp(proto_get_str(&v, "status"), "ok") == 0) {
            s->hello_ok = true;     /* the answer to our hello */
            proto_msg_free(&v);
            continue;
        }
        if (n == 1) {
            qmgr_scan_verdict(s, &v);
            proto_msg_free(&v);
            return;
        }
        proto_msg_free(&v);
        if (n < 0) {
            qmgr_scan_defer(s, why ? why : "bad answer from the scanner");
            return;
        }
        break;
    }
    if (rc < 0)
        qmgr_scan_defer(s, "scanner closed the connection without a verdict");
}

static void qmgr_scan_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr_scan *s = arg;

    if (proto_conn_flush(&s->pc) < 0) {
        qmgr_scan_defer(s, "cannot send to the scanner");
        return;
    }
    if (proto_conn_outlen(&s->pc) > 0)
        event_add(s->ev_write, NULL);
}

static void qmgr_scan_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    qmgr_scan_defer(arg, "scanner timeout");
}

/* The request frames; -1 with *why. */
static int qmgr_scan_request(struct qmgr_scan *s, const char **why)
{
    struct qmgr *q = s->q;
    struct proto_msg h, r;
    struct queue_file qf;
    int fd = openat(q->dir_fd[QMGR_INCOMING], s->m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = -1;

    if (fd < 0) {
        *why = "cannot open the queue file";
        return -1;
    }
    if (queue_file_read(fd, &qf, why) < 0) {
        close(fd);
        return -1;
    }
    proto_msg_init(&h);
    proto_put_str(&h, "proto", "scand");
    proto_put_int(&h, "version", 1);
    proto_msg_init(&r);
    proto_put_str(&r, "op", "scan");
    proto_put_str(&r, "id", s->m->id);
    proto_put_str(&r, "sender", qf.env.sender);
    proto_put_str(&r, "client_addr", qf.env.client_addr ? qf.env.client_addr : "");
    proto_put_str(&r, "client_name", qf.env.client_name ? qf.env.client_name : "");
    proto_put_str(&r, "helo", qf.env.helo ? qf.env.helo : "");
    for (size_t i = 0; i < qf.env.nrcpts; i++)
        proto_put_str(&r, "rcpt", qf.env.rcpts[i].addr);
    proto_put_fd(&r, fd);
    proto_put_fd(&r, s->tmpfd);
    if (proto_conn_queue(&s->pc, &h) == 0 && proto_conn_queue(&s->pc, &r) == 0)
        rc = 0;
    else
        *why = "request too large";
    proto_msg_free(&h);
    proto_msg_free(&r);
    queue_file_free(&qf);
    close(fd);
    return rc;
}

static int qmgr_scan_connect(struct qmgr *q)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    if (str_copy(sun.sun_path, q->scand_path, sizeof sun.sun_path) >= sizeof sun.sun_path)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

void qmgr_scanstep_start(struct qmgr *q, struct qmgr_msg *m)
{
    struct qmgr_scan *s = xcalloc(1, sizeof *s);
    struct timeval tmo = { QMGR_SCAN_TIMEOUT, 0 };
    const char *why = NULL;
    int fd;

    s->q = q;
    s->m = m;
    s->tmpfd = -1;
    m->scanning = true;
    q->nscanning++;
    proto_conn_init(&s->pc, -1);
    if ((fd = qmgr_scan_connect(q)) < 0) {
        qmgr_scan_defer(s, "cannot connect to the scanner");
        return;
    }
    proto_conn_init(&s->pc, fd);
    if ((s->tmpfd = queue_id_create(q->dir_fd[QMGR_TMP], s->tmpid)) < 0) {
        qmgr_scan_defer(s, "cannot create a file for the rewritten message");
        return;
    }
    s->ev_read = event_new(q->base, fd, EV_READ | EV_PERSIST, qmgr_scan_on_read, s);
    s->ev_write = event_new(q->base, fd, EV_WRITE, qmgr_scan_on_write, s);
    s->ev_timeout = event_new(q->base, -1, 0, qmgr_scan_on_timeout, s);
    if (!s->ev_read || !s->ev_write || !s->ev_timeout)
        log_fatal("cannot create scan events");
    if (qmgr_scan_request(s, &why) < 0) {
        qmgr_scan_defer(s, why);
        return;
    }
    event_add(s->ev_read, NULL);
    event_add(s->ev_timeout, &tmo);
    qmgr_scan_on_write(fd, EV_WRITE, s);
}
