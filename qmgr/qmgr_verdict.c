/*
 * qmgr_verdict - acting on scand's reply, one block per policy group
 * (/work/team/POLICY-REPLY.md "What qmgr does with a block"; issue 6).
 *
 * Interface (qmgr.h): qmgr_verdict_req_open(), qmgr_verdict_req_free(),
 * qmgr_verdict_wanted(), qmgr_verdict_apply().
 *
 * The scan request carries min(recipients, QMGR_SCAN_FDS) rewrite files
 * tmp/NEWID (qmgr_verdict_req_open: spares, qmgr_spare.c; scand gets them
 * write-only, so a recycled file's old bytes are not its to read, and its
 * writer truncates to what it wrote); unused ones go back to the pool
 * (qmgr_verdict_req_free).  Only recipients still pending are sent, and
 * after group_rewrite_needed only those of the groups that asked for it.
 *
 * qmgr_verdict_apply(), in this order so that a crash at any point
 * repeats work but never loses mail:
 *   1. group_save: the original is stored through the quarantine daemon
 *      (area quarantine or backup) before anything else; failure = retry;
 *   2. new messages, each complete, fsynced, renamed into incoming/ with
 *      scanning skipped (QUEUE_FLAG_NOSCAN): the rewritten file of each
 *      delivered group when the message has several groups (or the group
 *      does not cover every pending recipient), and every notice;
 *      then one fsync of incoming/;
 *   3. the original's recipients are marked: blocked ones DROPPED
 *      ("ID: to=<R>, status=blocked (group=G av status=S names=N)"),
 *      those moved to a new message DROPPED too ("ID: split group=G
 *      nrcpt=N newid=NEWID"); fdatasync;
 *   4. a single rewritten group covering every pending recipient
 *      replaces the original (exchanged with incoming/ID; the fsync of
 *      incoming/ is left to the next sync flush, which the caller waits
 *      for; the original's inode then joins the spare pool).
 * Recipients of deliver groups that were not rewritten stay pending in
 * the original, which goes on to delivery.
 *
 * Returns 1 when no recipient is left (the caller removes the original),
 * 0 when it goes on, 3 when it goes on once incoming/ is fsynced (step 4
 * happened), 2 when a group needs a second scan (req->only holds its
 * recipients), -1 with *why when the reply cannot be used or a step
 * failed (the caller defers and scans again).
 *
 * Security: the reply is checked against our own envelope (every
 * recipient in exactly one block, fd numbers in range and used once);
 * rewritten files are re-validated and must keep the sender and name
 * only recipients of their block.
 */
#include "qmgr.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "util/log.h"
#include "util/mem.h"

struct qmgr_vblock {
    const char *group, *status, *names, *save, *from;
    bool block, rewritten, rewrite_needed;
    int64_t wfd;
    size_t first, end;          /* its attributes: [first, end) */
    size_t nrcpt;               /* original recipients it owns */
    struct qmgr_newmsg nm;      /* its rewritten copy, when split */
};

struct qmgr_vstate {
    struct qmgr *q;
    struct qmgr_msg *m;
    struct qmgr_scan_req *req;
    const struct proto_msg *v;
    int fd;                     /* the original, O_RDWR */
    struct queue_file qf;
    struct qmgr_vblock *b;
    size_t nb;
    int *owner;                 /* per original recipient: block or -1 */
    struct qmgr_newmsg *notes;  /* queued notices */
    const char **note_kind;
    size_t nnotes;
};

/* ---- the request's files ---- */

int qmgr_verdict_req_open(struct qmgr *q, struct qmgr_scan_req *r, size_t nrcpt)
{
    size_t want = nrcpt == 0 ? 1 : nrcpt < QMGR_SCAN_FDS ? nrcpt : QMGR_SCAN_FDS;

    for (r->nfd = 0; r->nfd < want; r->nfd++) {
        r->fd[r->nfd] = qmgr_spare_new_file(q, r->id[r->nfd]);
        if (r->fd[r->nfd] < 0)
            return -1;
    }
    return 0;
}

void qmgr_verdict_req_files_free(struct qmgr *q, struct qmgr_scan_req *r)
{
    for (size_t i = 0; i < r->nfd; i++) {
        if (r->fd[i] >= 0)
            close(r->fd[i]);
        if (r->id[i][0])
            (void)qmgr_spare_remove(q, QMGR_TMP, r->id[i]);
        r->fd[i] = -1;
        r->id[i][0] = 0;
    }
    r->nfd = 0;
}

static void qmgr_verdict_only_free(struct qmgr_scan_req *r)
{
    for (size_t i = 0; i < r->nonly; i++)
        free(r->only[i]);
    free(r->only);
    r->only = NULL;
    r->nonly = 0;
}

void qmgr_verdict_req_free(struct qmgr *q, struct qmgr_scan_req *r)
{
    qmgr_verdict_req_files_free(q, r);
    qmgr_verdict_only_free(r);
}

bool qmgr_verdict_wanted(const struct qmgr_scan_req *r, const struct queue_rcpt *rc)
{
    if (rc->status != QUEUE_RCPT_PENDING)
        return false;
    if (r->only == NULL)
        return true;
    for (size_t i = 0; i < r->nonly; i++) {
        if (strcmp(r->only[i], rc->addr) == 0)
            return true;
    }
    return false;
}

/* ---- reading the reply ---- */

static const char *qmgr_verdict_str(const struct proto_attr *a)
{
    if (a->type != PROTO_STR || strlen((const char *)a->value) != a->len)
        return NULL;
    return (const char *)a->value;
}

static void qmgr_verdict_field(struct qmgr_vblock *b, const struct proto_attr *a)
{
    const char *s = qmgr_verdict_str(a);

    if (strcmp(a->name, "group_status") == 0)
        b->status = s;
    else if (strcmp(a->name, "group_names") == 0)
        b->names = s;
    else if (strcmp(a->name, "group_action") == 0)
        b->block = s != NULL && strcmp(s, "block") == 0;
    else if (strcmp(a->name, "group_save") == 0)
        b->save = s;
    else if (strcmp(a->name, "group_notify_from") == 0)
        b->from = s;
    else if (a->type == PROTO_INT && strcmp(a->name, "group_rewritten") == 0)
        b->rewritten = a->num == 1;
    else if (a->type == PROTO_INT && strcmp(a->name, "group_rewritten_fd") == 0)
        b->wfd = a->num;
    else if (a->type == PROTO_INT && strcmp(a->name, "group_rewrite_needed") == 0)
        b->rewrite_needed = a->num == 1;
}

static void qmgr_verdict_blocks(struct qmgr_vstate *st)
{
    const struct proto_msg *v = st->v;

    st->b = xcalloc(proto_count(v, "group") + 1, sizeof *st->b);
    for (size_t i = 0; i < v->nattrs; i++) {
        const struct proto_attr *a = &v->attrs[i];
        if (strcmp(a->name, "group") == 0) {
            struct qmgr_vblock *b = &st->b[st->nb++];
            b->group = qmgr_verdict_str(a);
            b->first = i;
            b->wfd = -1;
        }
        if (st->nb > 0) {
            st->b[st->nb - 1].end = i + 1;
            qmgr_verdict_field(&st->b[st->nb - 1], a);
        }
    }
}

/* Give block k the recipients named by its group_rcpt; -1 when one is
 * not ours (or not asked for) or already in another block. */
static int qmgr_verdict_own(struct qmgr_vstate *st, size_t k, const char **why)
{
    struct qmgr_vblock *b = &st->b[k];

    for (size_t i = b->first; i < b->end; i++) {
        const struct proto_attr *a = &st->v->attrs[i];
        const char *addr = qmgr_verdict_str(a);
        bool found = false;
        if (strcmp(a->name, "group_rcpt") != 0)
            continue;
        for (size_t r = 0; addr && r < st->qf.env.nrcpts; r++) {
            if (strcmp(st->qf.env.rcpts[r].addr, addr) != 0 ||
                !qmgr_verdict_wanted(st->req, &st->qf.env.rcpts[r]))
                continue;
            if (st->owner[r] >= 0 && st->owner[r] != (int)k) {
                *why = "a recipient is in two groups";
                return -1;
            }
            if (st->owner[r] < 0)
                b->nrcpt++;
            st->owner[r] = (int)k;
            found = true;
        }
        if (!found) {
            *why = "the verdict names a recipient we did not ask for";
            return -1;
        }
    }
    return 0;
}

static int qmgr_verdict_check(struct qmgr_vstate *st, const char **why)
{
    bool used[QMGR_SCAN_FDS] = { false };

    if (st->nb == 0) {
        *why = "the verdict has no group";
        return -1;
    }
    st->owner = xcalloc(st->qf.env.nrcpts ? st->qf.env.nrcpts : 1, sizeof *st->owner);
    for (size_t r = 0; r < st->qf.env.nrcpts; r++)
        st->owner[r] = -1;
    for (size_t k = 0; k < st->nb; k++) {
        struct qmgr_vblock *b = &st->b[k];
        if (b->group == NULL) {
            *why = "bad group name";
            return -1;
        }
        if (qmgr_verdict_own(st, k, why) < 0)
            return -1;
        if (b->block || !b->rewritten)
            continue;
        if (b->wfd < 1 || (size_t)b->wfd > st->req->nfd || used[b->wfd - 1] ||
            st->req->fd[b->wfd - 1] < 0) {
            *why = "bad group_rewritten_fd";
            return -1;
        }
        used[b->wfd - 1] = true;
    }
    for (size_t k = 0; k < st->nb; k++) {
        /* scand fills the files in order: a rewrite it could not place
         * while one was left is a broken reply (and would loop). */
        if (st->b[k].rewrite_needed && !used[st->req->nfd ? st->req->nfd - 1 : 0]) {
            *why = "group_rewrite_needed with a rewrite file left";
            return -1;
        }
    }
    for (size_t r = 0; r < st->qf.env.nrcpts; r++) {
        if (st->owner[r] < 0 && qmgr_verdict_wanted(st->req, &st->qf.env.rcpts[r])) {
            *why = "a recipient is missing from the verdict";
            return -1;
        }
    }
    return 0;
}

/* ---- 1. quarantine / backup ---- */

static int qmgr_verdict_saves(struct qmgr_vstate *st, const char **why)
{
    for (size_t k = 0; k < st->nb; k++) {
        const struct qmgr_vblock *b = &st->b[k];
        if (b->save == NULL || (strcmp(b->save, "quarantine") != 0 &&
                                strcmp(b->save, "backup") != 0))
            continue;
        if (qmgr_archive_store(st->q, b->save, st->m->id, st->fd, b->group, b->status, b->names,
                               b->block ? "blocked" : "delivered", why) < 0)
            return -1;
    }
    return 0;
}

/* ---- 2. new messages ---- */

/* Does block k own every pending recipient of the original? */
static bool qmgr_verdict_covers_all(const struct qmgr_vstate *st, size_t k)
{
    for (size_t r = 0; r < st->qf.env.nrcpts; r++) {
        if (st->qf.env.rcpts[r].status == QUEUE_RCPT_PENDING && st->owner[r] != (int)k)
            return false;
    }
    return true;
}

/* Read block k's rewritten file and check its envelope. */
static int qmgr_verdict_read_rewrite(struct qmgr_vstate *st, size_t k, struct queue_file *nqf,
                                     const char **why)
{
    const struct qmgr_vblock *b = &st->b[k];
    int fd = st->req->fd[b->wfd - 1];

    if (queue_file_read(fd, nqf, why) < 0) {
        *why = "the rewritten message is malformed";
        return -1;
    }
    if (strcmp(nqf->env.sender, st->qf.env.sender) != 0) {
        queue_file_free(nqf);
        *why = "the rewritten message has another sender";
        return -1;
    }
    for (size_t i = 0; i < nqf->env.nrcpts; i++) {
        bool ok = false;
        for (size_t r = 0; r < st->qf.env.nrcpts && !ok; r++)
            ok = st->owner[r] == (int)k && strcmp(st->qf.env.rcpts[r].addr,
                                                  nqf->env.rcpts[i].addr) == 0;
        if (!ok) {
            queue_file_free(nqf);
            *why = "the rewritten message has a recipient of another group";
            return -1;
        }
    }
    return 0;
}

/* Commit the rewritten file of block k as a new message. */
static int qmgr_verdict_split(struct qmgr_vstate *st, size_t k, const char **why)
{
    struct qmgr_vblock *b = &st->b[k];
    struct queue_file nqf;
    size_t i = (size_t)(b->wfd - 1);

    if (qmgr_verdict_read_rewrite(st, k, &nqf, why) < 0)
        return -1;
    if (qmgr_notify_adopt(st->q, st->req->fd[i], st->req->id[i], NULL, &nqf, &b->nm, why) < 0)
        return -1;
    close(st->req->fd[i]);
    st->req->fd[i] = -1;
    st->req->id[i][0] = 0;
    return 0;
}

static int qmgr_verdict_notice(struct qmgr_vstate *st, const struct qmgr_vblock *b,
                               const struct proto_attr *to, const struct proto_attr *msg,
                               const char *kind, const char **why)
{
    const char *target = qmgr_verdict_str(to);
    size_t n = st->nnotes;

    if (target == NULL || *target == 0 || b->from == NULL)
        return 0;                       /* never to <> */
    st->notes = xreallocarray(st->notes, n + 1, sizeof *st->notes);
    st->note_kind = xreallocarray(st->note_kind, n + 1, sizeof *st->note_kind);
    if (qmgr_notify_notice(st->q, st->m->id, b->from, target, msg->value, msg->len,
                           &st->notes[n], why) < 0)
        return -1;
    st->note_kind[n] = kind;
    st->nnotes++;
    return 0;
}

/* Every notify_KIND_to followed by its notify_KIND_msg in block b. */
static int qmgr_verdict_notices(struct qmgr_vstate *st, const struct qmgr_vblock *b,
                                const char **why)
{
    static const char *const kinds[] = { "admin", "sender", "recipient" };
    const struct proto_attr *to = NULL;

    for (size_t i = b->first; i < b->end; i++) {
        const struct proto_attr *a = &st->v->attrs[i];
        for (size_t k = 0; k < 3; k++) {
            char tn[40], mn[40];
            snprintf(tn, sizeof tn, "notify_%s_to", kinds[k]);
            snprintf(mn, sizeof mn, "notify_%s_msg", kinds[k]);
            if (strcmp(a->name, tn) == 0)
                to = a;
            else if (strcmp(a->name, mn) == 0 && a->type == PROTO_DATA && to != NULL &&
                     strcmp(to->name, tn) == 0) {
                if (qmgr_verdict_notice(st, b, to, a, kinds[k], why) < 0)
                    return -1;
                to = NULL;
            }
        }
    }
    return 0;
}

static void qmgr_verdict_undo(struct qmgr_vstate *st)
{
    for (size_t k = 0; k < st->nb; k++)
        qmgr_notify_undo(st->q, &st->b[k].nm);
    for (size_t n = 0; n < st->nnotes; n++)
        qmgr_notify_undo(st->q, &st->notes[n]);
}

/* Step 2; *replace gets the block that replaces the original, or -1. */
static int qmgr_verdict_new(struct qmgr_vstate *st, int *replace, const char **why)
{
    bool any = false;

    *replace = -1;
    for (size_t k = 0; k < st->nb; k++) {
        const struct qmgr_vblock *b = &st->b[k];
        if (b->block || !b->rewritten)
            continue;
        if (st->nb == 1 && qmgr_verdict_covers_all(st, k)) {
            *replace = (int)k;
            continue;
        }
        if (qmgr_verdict_split(st, k, why) < 0)
            goto fail;
        any = true;
    }
    for (size_t k = 0; k < st->nb; k++) {
        if (qmgr_verdict_notices(st, &st->b[k], why) < 0)
            goto fail;
    }
    if ((any || st->nnotes > 0) && qmgr_notify_sync(st->q) < 0) {
        *why = "cannot fsync incoming/";
        goto fail;
    }
    return 0;
fail:
    qmgr_verdict_undo(st);
    return -1;
}

/* After the fsync: log and hand the new messages on. */
static void qmgr_verdict_announce(struct qmgr_vstate *st)
{
    for (size_t k = 0; k < st->nb; k++) {
        struct qmgr_vblock *b = &st->b[k];
        if (b->nm.id[0] == 0)
            continue;
        if (st->nb > 1)
            log_msg("%s: split group=%s nrcpt=%zu newid=%s", st->m->id, b->group, b->nrcpt,
                    b->nm.id);
        else
            log_msg("%s: group=%s nrcpt=%zu rewritten as newid=%s", st->m->id, b->group,
                    b->nrcpt, b->nm.id);
        qmgr_notify_ready(st->q, &b->nm);
    }
    for (size_t n = 0; n < st->nnotes; n++) {
        log_msg("%s: notification %s to=<%s> newid=%s", st->m->id, st->note_kind[n],
                st->notes[n].rcpt, st->notes[n].id);
        qmgr_notify_ready(st->q, &st->notes[n]);
    }
}

/* ---- 3. the original's recipients ---- */

static int qmgr_verdict_mark(struct qmgr_vstate *st, size_t *left, const char **why)
{
    size_t dropped = 0, marked = 0;

    *left = 0;
    for (size_t r = 0; r < st->qf.env.nrcpts; r++) {
        struct queue_rcpt *rc = &st->qf.env.rcpts[r];
        const struct qmgr_vblock *b = st->owner[r] >= 0 ? &st->b[st->owner[r]] : NULL;
        if (rc->status != QUEUE_RCPT_PENDING)
            continue;
        if (b == NULL || (!b->block && b->nm.id[0] == 0)) {
            (*left)++;
            continue;
        }
        if (queue_rcpt_mark_status(st->fd, rc, QUEUE_RCPT_DROPPED) < 0) {
            *why = "cannot record a recipient status";
            return -1;
        }
        marked++;
        if (!b->block)
            continue;
        log_msg("%s: to=<%s>, status=blocked (group=%s av status=%s names=%s)", st->m->id,
                rc->addr, b->group, b->status ? b->status : "unknown", b->names ? b->names : "");
        dropped++;
    }
    if (marked > 0 && queue_file_sync(st->fd) < 0) {
        *why = "cannot fsync the queue file";
        return -1;
    }
    st->q->ctr.dropped_recipients += dropped;
    return 0;
}

/* ---- 4. one rewritten group replaces the original ---- */

static int qmgr_verdict_replace(struct qmgr_vstate *st, size_t k, const char **why)
{
    struct qmgr_vblock *b = &st->b[k];
    struct qmgr_newmsg nm;
    struct queue_file nqf;
    size_t i = (size_t)(b->wfd - 1);

    if (qmgr_verdict_read_rewrite(st, k, &nqf, why) < 0)
        return -1;
    if (qmgr_notify_adopt(st->q, st->req->fd[i], st->req->id[i], st->m->id, &nqf, &nm,
                          why) < 0)
        return -1;
    close(st->req->fd[i]);
    st->req->fd[i] = -1;
    free(nm.sender);
    free(nm.rcpt);
    /* the fsync of incoming/ is the next sync flush's, shared with the
     * round's other renames (the caller waits for it); the original's
     * inode is a spare only after it (qmgr_spare_replace) */
    st->req->id[i][0] = 0;
    log_info("%s: content rewritten by the scanner", st->m->id);
    return 0;
}

/* Recipients of the groups that must be scanned again. */
static void qmgr_verdict_rescan(struct qmgr_vstate *st)
{
    struct qmgr_scan_req *r = st->req;

    qmgr_verdict_only_free(r);
    r->only = xcalloc(st->qf.env.nrcpts + 1, sizeof *r->only);
    for (size_t i = 0; i < st->qf.env.nrcpts; i++) {
        int k = st->owner[i];
        if (k >= 0 && st->b[k].rewrite_needed && !st->b[k].block &&
            st->qf.env.rcpts[i].status == QUEUE_RCPT_PENDING)
            r->only[r->nonly++] = xstrdup(st->qf.env.rcpts[i].addr);
    }
    if (r->nonly == 0)
        qmgr_verdict_only_free(r);
}

static int qmgr_verdict_run(struct qmgr_vstate *st, const char **why)
{
    size_t left = 0;
    int replace = -1;

    qmgr_verdict_blocks(st);
    if (qmgr_verdict_check(st, why) < 0 || qmgr_verdict_saves(st, why) < 0 ||
        qmgr_verdict_new(st, &replace, why) < 0)
        return -1;
    qmgr_verdict_announce(st);
    if (qmgr_verdict_mark(st, &left, why) < 0)
        return -1;
    if (replace >= 0)
        return qmgr_verdict_replace(st, (size_t)replace, why) < 0 ? -1 : 3;
    qmgr_verdict_rescan(st);
    if (st->req->only != NULL)
        return 2;
    return left == 0 ? 1 : 0;
}

int qmgr_verdict_apply(struct qmgr *q, struct qmgr_msg *m, struct qmgr_scan_req *req,
                       const struct proto_msg *v, const char **why)
{
    struct qmgr_vstate st = { .q = q, .m = m, .req = req, .v = v };
    int rc;

    st.fd = openat(q->dir_fd[QMGR_INCOMING], m->id, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (st.fd < 0) {
        *why = "cannot open the queue file";
        return -1;
    }
    if (queue_file_read(st.fd, &st.qf, why) < 0) {
        close(st.fd);
        return -1;
    }
    rc = qmgr_verdict_run(&st, why);
    if (rc != 2)
        qmgr_verdict_only_free(req);
    for (size_t k = 0; k < st.nb; k++) {
        free(st.b[k].nm.sender);
        free(st.b[k].nm.rcpt);
    }
    for (size_t n = 0; n < st.nnotes; n++) {
        free(st.notes[n].sender);
        free(st.notes[n].rcpt);
    }
    free(st.notes);
    free(st.note_kind);
    free(st.owner);
    free(st.b);
    queue_file_free(&st.qf);
    close(st.fd);
    return rc;
}
