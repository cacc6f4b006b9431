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
 * {op="scan", id, sender, client_addr, client_name, helo, rcpt...} (the
 * recipients still pending) with the queue file read-only as fd 0 and
 * min(recipients, 7) empty tmp/NEWID files (O_RDWR) where scand writes a
 * complete new queue file per group whose content changed.  At most
 * AntiviralSessions scans run at once.  Before the first scan of a
 * received message the incoming archive and blind copy are made
 * (qmgr_archive_intake).
 *
 * The verdict, one block per policy group, is acted on by qmgr_verdict.c
 * (quarantine/backup copies, blocked recipients dropped, rewritten groups
 * committed as new messages or replacing the original, notices queued).
 * A message with no recipient left is removed; one whose groups need more
 * rewrite files than were passed is scanned again for those recipients;
 * otherwise the message goes on to delivery.
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
    struct qmgr_scan_req req;
    bool hello_ok;
};

static int qmgr_scan_logged = -1;   /* last logged state: 0 off, 1 on */

static void qmgr_scan_begin(struct qmgr *q, struct qmgr_msg *m,
                            const struct qmgr_scan_req *carry);

/* Checked at most once a second (the run loop asks often). */
bool qmgr_scanstep_enabled(struct qmgr *q)
{
    static time_t checked;
    struct stat st;
    time_t now = qmgr_now();
    bool on;

    if (now == checked && qmgr_scan_logged >= 0)
        return q->scan_enabled;
    checked = now;
    on = stat(q->scand_path, &st) == 0 && S_ISSOCK(st.st_mode);

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
    qmgr_archive_init(q);
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
    qmgr_verdict_req_free(q, &s->req);
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

/* m is scanned again after a back-off that doubles per failure. */
static void qmgr_scan_backoff(struct qmgr_msg *m, const char *reason)
{
    m->scan_backoff = m->scan_backoff ? m->scan_backoff * 2 : QMGR_SCAN_BACKOFF_MIN;
    if (m->scan_backoff > QMGR_SCAN_BACKOFF_MAX)
        m->scan_backoff = QMGR_SCAN_BACKOFF_MAX;
    m->next_try = qmgr_now() + m->scan_backoff;
    log_msg("%s: scan deferred: %s", m->id, reason);
}

static void qmgr_scan_defer(struct qmgr_scan *s, const char *reason)
{
    struct qmgr *q = s->q;
    struct qmgr_msg *m = s->m;

    qmgr_scan_backoff(m, reason);
    qmgr_scan_free(s);
    qmgr_scan_next(q, m);
}

/* The rewritten copy that replaced m's file is durable (ok), or the
 * fsync failed: then it is scanned again (what is in incoming/ now). */
static void qmgr_scan_replaced(struct qmgr *q, struct qmgr_msg *m, bool ok)
{
    if (!ok) {
        m->noscan = false;
        qmgr_scan_backoff(m, "cannot fsync incoming/");
    }
    qmgr_scan_next(q, m);
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
    if ((rc = qmgr_verdict_apply(q, m, &s->req, v, &why)) < 0) {
        qmgr_scan_defer(s, why);
        return;
    }
    if (rc == 2) {              /* group_rewrite_needed: ask again */
        struct qmgr_scan_req next = { .only = s->req.only, .nonly = s->req.nonly };
        s->req.only = NULL;
        s->req.nonly = 0;
        qmgr_scan_free(s);
        log_info("%s: scanning again for %zu recipients", m->id, next.nonly);
        qmgr_scan_begin(q, m, &next);
        return;
    }
    qmgr_scan_free(s);
    m->noscan = true;   /* scanned: on to delivery */
    m->scan_backoff = 0;
    if (rc == 3)
        qmgr_msg_after_sync(q, m, QMGR_INCOMING, qmgr_scan_replaced);
    else if (rc == 1 && m->admin_op == QMGR_OP_NONE)
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

/* The request frames; 1 when no recipient is left to scan, -1 with *why. */
static int qmgr_scan_request(struct qmgr_scan *s, const char **why)
{
    struct qmgr *q = s->q;
    struct proto_msg h, r;
    struct queue_file qf;
    int fd = openat(q->dir_fd[QMGR_INCOMING], s->m->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = -1;
    size_t n = 0;

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
    for (size_t i = 0; i < qf.env.nrcpts; i++) {
        if (qmgr_verdict_wanted(&s->req, &qf.env.rcpts[i]) && ++n)
            proto_put_str(&r, "rcpt", qf.env.rcpts[i].addr);
    }
    proto_put_fd(&r, fd);
    if (n == 0)
        rc = 1;                 /* nothing left to scan */
    else if (qmgr_verdict_req_open(q, &s->req, n) < 0)
        *why = "cannot create a file for the rewritten message";
    else {
        size_t i = 0;
        for (; i < s->req.nfd; i++) {
            /* write-only: a recycled file's old bytes are not scand's */
            int wfd = openat(q->dir_fd[QMGR_TMP], s->req.id[i], O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
            if (wfd < 0)
                break;
            proto_give_fd(&r, wfd);
        }
        if (i < s->req.nfd)
            *why = "cannot open a file for the rewritten message";
        else if (proto_conn_queue(&s->pc, &h) == 0 && proto_conn_queue(&s->pc, &r) == 0)
            rc = 0;
        else
            *why = "request too large";
    }
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

/* No recipient left to ask about: done, or on with the others. */
static void qmgr_scan_nothing(struct qmgr_scan *s)
{
    struct qmgr *q = s->q;
    struct qmgr_msg *m = s->m;
    bool again = s->req.only != NULL;

    qmgr_scan_free(s);
    if (again) {                /* those recipients are done: the rest */
        qmgr_scan_begin(q, m, NULL);
        return;
    }
    m->noscan = true;
    m->scan_backoff = 0;
    if (m->admin_op == QMGR_OP_NONE)
        qmgr_msg_remove(q, m);
    else
        qmgr_scan_next(q, m);
}

void qmgr_scanstep_start(struct qmgr *q, struct qmgr_msg *m)
{
    qmgr_scan_begin(q, m, NULL);
}

/* A scan request; carry (NULL for the first) gives the recipients. */
static void qmgr_scan_begin(struct qmgr *q, struct qmgr_msg *m, const struct qmgr_scan_req *carry)
{
    struct qmgr_scan *s = xcalloc(1, sizeof *s);
    struct timeval tmo = { QMGR_SCAN_TIMEOUT, 0 };
    const char *why = NULL;
    int fd, rc;

    s->q = q;
    s->m = m;
    if (carry != NULL) {
        s->req.only = carry->only;
        s->req.nonly = carry->nonly;
    }
    m->scanning = true;
    q->nscanning++;
    proto_conn_init(&s->pc, -1);
    if (carry == NULL && qmgr_archive_intake(q, m, &why) < 0) {
        qmgr_scan_defer(s, why ? why : "cannot make the archive copy");
        return;
    }
    if ((fd = qmgr_scan_connect(q)) < 0) {
        qmgr_scan_defer(s, "cannot connect to the scanner");
        return;
    }
    proto_conn_init(&s->pc, fd);
    s->ev_read = event_new(q->base, fd, EV_READ | EV_PERSIST, qmgr_scan_on_read, s);
    s->ev_write = event_new(q->base, fd, EV_WRITE, qmgr_scan_on_write, s);
    s->ev_timeout = event_new(q->base, -1, 0, qmgr_scan_on_timeout, s);
    if (!s->ev_read || !s->ev_write || !s->ev_timeout)
        log_fatal("cannot create scan events");
    if ((rc = qmgr_scan_request(s, &why)) < 0) {
        qmgr_scan_defer(s, why);
        return;
    }
    if (rc == 1) {
        qmgr_scan_nothing(s);
        return;
    }
    event_add(s->ev_read, NULL);
    event_add(s->ev_timeout, &tmo);
    qmgr_scan_on_write(fd, EV_WRITE, s);
}
