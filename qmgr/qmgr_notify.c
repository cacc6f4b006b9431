/*
 * qmgr_notify - new messages qmgr queues itself after a scan: the
 * policy notices scand wrote (notify_*_msg), the blind copies of
 * received mail, and the per-group rewritten files of a split message
 * (POLICY-REPLY.md "What qmgr does with a block").
 *
 * Interface (qmgr.h): qmgr_notify_new(), qmgr_notify_new_with(),
 * qmgr_notify_adopt(),
 * qmgr_notify_ready(), qmgr_notify_undo(), qmgr_notify_notice(),
 * qmgr_notify_sync().
 *
 * Every new message is made like a commit (DSN reports too, through
 * qmgr_notify_new_with from qmgr_bounce.c): a fresh tmp/NEWID written
 * with the lib/queue writer (END +
 * fsync), re-read with the queue file reader, optionally given the
 * FLAGS record QUEUE_FLAG_NOSCAN (so it skips scanning also after a
 * restart) and the intake mark (file mode bit S_IXGRP: no archive-in, no
 * blind copy), renamed into incoming/.  The caller then fsyncs incoming/
 * once for all the messages of one step (qmgr_notify_sync) and only then
 * hands them on (qmgr_notify_ready) and marks the original's recipients
 * done: a crash in between repeats the step (at least once), it never
 * loses mail.
 *
 * Diagnostics: "NEWID: from=<SENDER>, size=N, nrcpt=N (queue active)" per
 * new message; "ID: notification KIND to=<ADDR> newid=NEWID" per notice;
 * failures are error lines with the reason, the tmp file is removed and
 * -1 returned (the caller retries the whole step).
 *
 * Security: notice texts and rewritten files come from scand, which
 * handles hostile content: envelope strings go through the queue writer
 * (no CR/LF, bounded), rewritten files are re-validated here and must
 * keep the original's sender (qmgr_verdict.c).
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

/* Copy the content of src into the writer. */
static int qmgr_notify_copy(struct queue_writer *w, int src_fd, const struct queue_file *src_qf,
                            const char **why)
{
    struct queue_content c;
    char buf[65536];
    ssize_t n;

    queue_content_open(&c, src_fd, src_qf);
    while ((n = queue_content_read(&c, buf, sizeof buf, why)) > 0) {
        if (queue_writer_content(w, buf, (size_t)n) < 0) {
            *why = w->error;
            return -1;
        }
    }
    return n < 0 ? -1 : 0;
}

static int qmgr_notify_write(int fd, const struct queue_envelope *env, int src_fd,
                             const struct queue_file *src_qf, const void *data, size_t len,
                             const char **why)
{
    struct queue_writer w;
    int rc = -1;

    if (queue_writer_open(&w, fd) < 0) {
        *why = w.error ? w.error : "cannot start the queue file";
        return -1;
    }
    if (queue_writer_envelope(&w, env) < 0)
        *why = w.error ? w.error : "bad envelope";
    else if (data != NULL && len > 0 && queue_writer_content(&w, data, len) < 0)
        *why = w.error ? w.error : "write error";
    else if (data == NULL && src_qf != NULL && qmgr_notify_copy(&w, src_fd, src_qf, why) < 0)
        ;   /* *why set by the copy */
    else if (queue_writer_finish(&w) < 0)
        *why = w.error ? w.error : "write error";
    else
        rc = 0;
    queue_writer_close(&w);
    return rc;
}

/* tmp/tmpid -> incoming/target (a new name, or one it replaces). */
static int qmgr_notify_rename(struct qmgr *q, const char *tmpid, const char *target)
{
    if (strcmp(tmpid, target) != 0)
        return qmgr_spare_replace(q, tmpid, QMGR_INCOMING, target);
    return renameat(q->dir_fd[QMGR_TMP], tmpid, q->dir_fd[QMGR_INCOMING], target);
}

/* Flags, intake mark, rename into incoming/ of a complete, fsynced tmp
 * file (qf read from it, freed here). */
static int qmgr_notify_place(struct qmgr *q, int fd, const char *tmpid, const char *target,
                             struct queue_file *qf, unsigned how, struct qmgr_newmsg *out,
                             const char **why)
{
    int rc = -1;

    if ((how & QMGR_NEW_NOSCAN) && qmgr_notes_commit(fd, qf) < 0)
        *why = "cannot record noscan";
    else if ((how & QMGR_NEW_INTAKE_DONE) && (fchmod(fd, 0600 | S_IXGRP) < 0 || fsync(fd) < 0))
        *why = "cannot mark the copy";
    else if (qmgr_notify_rename(q, tmpid, target) < 0)
        *why = "cannot rename into incoming/";
    else {
        str_copy(out->id, target, sizeof out->id);
        out->size = qf->content_size;
        out->nrcpt = qf->env.nrcpts;
        out->sender = xstrdup(qf->env.sender);
        out->rcpt = xstrdup(qf->env.rcpts[0].addr);
        out->scan = !(how & QMGR_NEW_NOSCAN);
        rc = 0;
    }
    queue_file_free(qf);
    return rc;
}

int qmgr_notify_new_with(struct qmgr *q, qmgr_write_fn write, void *arg, unsigned how,
                         struct qmgr_newmsg *out, const char **why)
{
    char tmpid[QUEUE_ID_SIZE];
    struct queue_file qf;
    int fd = qmgr_spare_new_file(q, tmpid);
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (fd < 0) {
        *why = "cannot create a file in tmp/";
        return -1;
    }
    if (write(fd, arg, why) == 0 && queue_file_read(fd, &qf, why) == 0)
        rc = qmgr_notify_place(q, fd, tmpid, tmpid, &qf, how, out, why);
    close(fd);
    if (rc < 0)
        (void)qmgr_spare_remove(q, QMGR_TMP, tmpid);
    return rc;
}

struct qmgr_notify_src {
    const struct queue_envelope *env;
    int src_fd;
    const struct queue_file *src_qf;
    const void *data;
    size_t len;
};

static int qmgr_notify_write_src(int fd, void *arg, const char **why)
{
    const struct qmgr_notify_src *a = arg;

    return qmgr_notify_write(fd, a->env, a->src_fd, a->src_qf, a->data, a->len, why);
}

int qmgr_notify_new(struct qmgr *q, const struct queue_envelope *env, int src_fd,
                    const struct queue_file *src_qf, const void *data, size_t len, unsigned how,
                    struct qmgr_newmsg *out, const char **why)
{
    struct qmgr_notify_src a = { env, src_fd, src_qf, data, len };

    return qmgr_notify_new_with(q, qmgr_notify_write_src, &a, how, out, why);
}

int qmgr_notify_adopt(struct qmgr *q, int fd, const char *tmpid, const char *target,
                      struct queue_file *qf, struct qmgr_newmsg *out, const char **why)
{
    memset(out, 0, sizeof *out);
    return qmgr_notify_place(q, fd, tmpid, target ? target : tmpid, qf,
                             QMGR_NEW_NOSCAN | QMGR_NEW_INTAKE_DONE, out, why);
}

int qmgr_notify_sync(struct qmgr *q)
{
    if (fsync(q->dir_fd[QMGR_INCOMING]) == 0)
        return 0;
    log_error("fsync %s/incoming: %m", q->queue_path);
    return -1;
}

void qmgr_notify_ready(struct qmgr *q, struct qmgr_newmsg *nm)
{
    q->count[QMGR_INCOMING]++;
    log_msg("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", nm->id,
            nm->sender ? nm->sender : "", (unsigned long long)nm->size, nm->nrcpt);
    if (nm->scan)
        qmgr_incoming_ready(q, nm->id);
    else
        qmgr_incoming_ready_noscan(q, nm->id);
    free(nm->sender);
    free(nm->rcpt);
    nm->sender = nm->rcpt = NULL;
}

void qmgr_notify_undo(struct qmgr *q, struct qmgr_newmsg *nm)
{
    if (nm->id[0] && unlinkat(q->dir_fd[QMGR_INCOMING], nm->id, 0) < 0 && errno != ENOENT)
        log_error("%s: cannot remove incoming/%s: %m", nm->id, nm->id);
    free(nm->sender);
    free(nm->rcpt);
    nm->sender = nm->rcpt = NULL;
    nm->id[0] = 0;
}

static bool qmgr_notify_8bit(const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++) {
        if (s[i] & 0x80)
            return true;
    }
    return false;
}

int qmgr_notify_notice(struct qmgr *q, const char *id, const char *from, const char *to,
                       const void *msg, size_t len, struct qmgr_newmsg *out, const char **why)
{
    struct queue_rcpt r = { .addr = to };
    struct queue_envelope env = { 0 };

    if (to == NULL || *to == 0 || from == NULL) {
        *why = "notice without a target";     /* never to <> */
        return -1;
    }
    env.arrival_us = qmgr_now_us();
    env.proto = "local";
    env.client_addr = "127.0.0.1";
    env.client_name = "localhost";
    env.sender = from;
    env.body_type = qmgr_notify_8bit(msg, len) ? QUEUE_BODY_8BITMIME : QUEUE_BODY_7BIT;
    env.smtputf8 = qmgr_notify_8bit(from, strlen(from)) || qmgr_notify_8bit(to, strlen(to));
    env.rcpts = &r;
    env.nrcpts = 1;
    if (qmgr_notify_new(q, &env, -1, NULL, msg, len, QMGR_NEW_NOSCAN | QMGR_NEW_INTAKE_DONE,
                        out, why) < 0) {
        log_error("%s: cannot queue a notification to <%s>: %s: %m", id, to, *why);
        return -1;
    }
    return 0;
}
