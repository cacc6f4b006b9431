/*
 * scand_policy - the verdict per policy group after the scan, and the
 * reply to qmgr (CONTRACTS.md "qmgr -> scand scanning protocol",
 * /work/team/POLICY-REPLY.md; lib/policy does the deciding).
 *
 * Interface: scand_policy_reply() (scand.h).
 *
 * The recipients of the request are split into groups (lib/policy); each
 * group sees the objects with its own IncludeBy/ExcludeBy filter.  The
 * reply carries the message-level result (av_status, names, obj_*,
 * anomalies: the [mailgw.policy] filter's view, as before) and then one
 * block per group, starting with group=NAME.  A group whose delivered
 * content differs from the original (objects cut, X-Anti-Virus,
 * disclaimer) gets a complete new queue file (the envelope of the
 * original with that group's recipients only) written into the next
 * unused rewrite fd of the request (fds 1, 2, ...); with none left it
 * says group_rewrite_needed=1 and qmgr asks again for those recipients.
 * Notifications are expanded here, as complete messages, within the
 * 1 MiB frame: an admin copy that would not fit loses the attached
 * original (its text says so); recipient notices that would not fit are
 * left out (logged).  No notice about one of our notices, none to <>.
 *
 * Logs: "ID: split group=NAME nrcpt=N" per group when there are several;
 * "ID: av-scanned group=NAME nrcpt=N status=S names=\"...\" action=A
 * rewritten=0|1" per group.
 *
 * Security: the reply's text values come from the message (names,
 * addresses): proto carries them as lengths + bytes; notification texts
 * are DATA.  The written queue file goes through the lib/queue writer,
 * which refuses CR/LF in envelope strings.
 */
#include "scand.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "mime/mime.h"
#include "policy/policy.h"
#include "proto/proto.h"
#include "queue/queue_file.h"
#include "util/log.h"
#include "util/mem.h"

#define SCAND_MAX_REPLY_OBJS 1000
#define SCAND_REPLY_RESERVE (32 * 1024)   /* headroom below PROTO_MAX_FRAME */

struct scand_reply {
    struct scand_ctx *ctx;
    const char *id;
    struct proto_msg *req, m;
    const struct queue_file *qf;
    struct scand_result *r;
    const char *sender;
    bool ours;                  /* the message is one of our notices */
    size_t next_fd;             /* next unused rewrite fd of the request */
    const char *fail;           /* tempfail reason */
};

/* Rough encoded size of the reply so far. */
static size_t scand_reply_size(const struct proto_msg *m)
{
    return m->store.len + m->nattrs * (7 + PROTO_MAX_NAME);
}

static size_t scand_reply_room(const struct proto_msg *m)
{
    size_t used = scand_reply_size(m) + SCAND_REPLY_RESERVE;
    return used < PROTO_MAX_FRAME ? PROTO_MAX_FRAME - used : 0;
}

static void scand_reply_objects(struct proto_msg *m, const struct scand_result *r)
{
    size_t shown = 0;

    for (size_t i = 0; i < r->nobjs && shown < SCAND_MAX_REPLY_OBJS; i++) {
        const struct scand_object *o = &r->objs[i];
        if (o->hidden)
            continue;
        proto_put_str(m, "obj_name", o->name);
        proto_put_str(m, "obj_type", o->type);
        proto_put_str(m, "obj_status", scand_status_name(o->status));
        proto_put_str(m, "obj_virus", o->virus);
        shown++;
    }
}

static enum policy_status scand_policy_status(enum scand_status st)
{
    int p = policy_status_parse(scand_status_name(st));
    return p < 0 ? POLICY_ERROR : (enum policy_status)p;
}

/* The raw-message object is explained by the worst part that is at least
 * as bad: its cut goes there, not to the whole message. */
static struct mime_part *scand_raw_part(const struct scand_result *r, enum scand_status av)
{
    struct mime_part *best = NULL;
    enum scand_status bst = SCAND_CLEAN;

    for (size_t i = 0; i < r->nobjs; i++) {
        const struct scand_object *o = &r->objs[i];
        if (o->part != NULL && o->av >= av && o->av > bst) {
            best = o->part;
            bst = o->av;
        }
    }
    return best;
}

/* The objects as group g sees them (filter 1 + g); returns the count. */
static size_t scand_group_objects(const struct scand_result *r, int g,
                                  struct policy_object *po)
{
    size_t n = 0, k = (size_t)(g + 1);

    for (size_t i = 0; i < r->nobjs; i++) {
        const struct scand_object *o = &r->objs[i];
        bool filtered = o->filt != NULL && k < r->nfilters && o->filt[k];
        /* The raw message's scan sees the attachments as members too;
         * the parts themselves carry the filter's verdict. */
        if (o->part == NULL && o->av == SCAND_CLEAN)
            filtered = false;
        if (o->hidden && !filtered)
            continue;
        enum scand_status st = o->av;
        if (filtered && st < SCAND_FILTERED)
            st = SCAND_FILTERED;
        struct mime_part *part = o->part;
        if (part == NULL && i == 0 && st != SCAND_CLEAN)
            part = scand_raw_part(r, o->av);
        po[n++] = (struct policy_object){ o->name, o->type, o->virus, scand_policy_status(st),
                                          part };
    }
    return n;
}

static void scand_facts(const struct scand_reply *x, const struct policy_set *set,
                        struct policy_facts *f)
{
    const struct conf *c = x->ctx->conf;

    memset(f, 0, sizeof *f);
    f->queue_id = x->id;
    f->sender = x->sender;
    f->rcpts = set->rcpts;
    f->nrcpts = set->nrcpts;
    f->client_ip = proto_get_str(x->req, "client_addr");
    f->client_name = proto_get_str(x->req, "client_name");
    f->helo = proto_get_str(x->req, "helo");
    f->arrival_us = x->qf->env.arrival_us;
    f->size = x->qf->content_size;
    f->hostname = conf_str(c, "mailgw.network", "Hostname");
    f->postmaster = conf_str(c, "mailgw.network", "Postmaster");
    f->bases_time = x->ctx->engine ? x->ctx->engine->db_time : 0;
    f->bases_records = x->ctx->engine ? x->ctx->engine->sigs : 0;
    f->now = time(NULL);
}

static int scand_sink_queue(void *arg, const void *p, size_t n)
{
    return queue_writer_content(arg, p, n);
}

/* The original's recipient entry for addr (orcpt, notify), or a bare one. */
static struct queue_rcpt scand_rcpt_of(const struct queue_file *qf, const char *addr)
{
    for (size_t i = 0; i < qf->env.nrcpts; i++) {
        if (strcmp(qf->env.rcpts[i].addr, addr) == 0) {
            struct queue_rcpt q = qf->env.rcpts[i];
            q.status = QUEUE_RCPT_PENDING;
            return q;
        }
    }
    return (struct queue_rcpt){ .addr = addr };
}

/* A complete new queue file for the group into fd; 0 / -1. */
static int scand_write_rewrite(struct scand_reply *x, int fd, const struct policy_set *set,
                               const struct policy_verdict *v, const struct policy_object *po,
                               const struct policy_facts *f)
{
    struct queue_writer w;
    struct queue_envelope env = x->qf->env;
    int rc = -1;

    env.rcpts = xcalloc(set->nrcpts, sizeof *env.rcpts);
    env.nrcpts = set->nrcpts;
    for (size_t i = 0; i < set->nrcpts; i++)
        env.rcpts[i] = scand_rcpt_of(x->qf, set->rcpts[i]);
    if (ftruncate(fd, 0) == 0 && queue_writer_open(&w, fd) == 0) {
        if (queue_writer_envelope(&w, &env) == 0 &&
            policy_rewrite(x->ctx->conf, v, po, x->r->msg, f, scand_sink_queue, &w) == 0 &&
            queue_writer_finish(&w) == 0)
            rc = 0;
        else
            log_warn("%s: writing the rewritten message: %s", x->id,
                     w.error ? w.error : "failed");
        queue_writer_close(&w);
    }
    free(env.rcpts);
    return rc;
}

static void scand_group_rewrite(struct scand_reply *x, const struct policy_set *set,
                                const struct policy_verdict *v, const struct policy_object *po,
                                const struct policy_facts *f)
{
    if (!v->rewrite || x->r->msg == NULL) {
        proto_put_int(&x->m, "group_rewritten", 0);
        return;
    }
    if (x->next_fd >= x->req->nfds) {
        proto_put_int(&x->m, "group_rewritten", 0);
        proto_put_int(&x->m, "group_rewrite_needed", 1);
        return;
    }
    size_t k = x->next_fd++;
    int fd = proto_take_fd(x->req, k);
    if (fd < 0 || scand_write_rewrite(x, fd, set, v, po, f) < 0) {
        x->fail = "cannot write the rewritten message";
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    proto_put_int(&x->m, "group_rewritten", 1);
    proto_put_int(&x->m, "group_rewritten_fd", (int64_t)k);
}

static void scand_put_notice(struct scand_reply *x, const struct policy_verdict *v,
                             const struct policy_object *po, const struct policy_facts *f,
                             enum policy_notify kind, const char *target)
{
    char name[40];
    struct buf msg = BUF_INIT;
    const void *orig = NULL;
    size_t olen = 0, room = scand_reply_room(&x->m);

    if (kind == POLICY_NOTIFY_ADMIN && conf_group_bool(x->ctx->conf, v->group,
                                                       "AttachOriginalToAdmin"))
        mime_msg_raw(x->r->msg, &orig, &olen);
    policy_notification(x->ctx->conf, v, po, x->r->msg, f, kind, target, orig, olen,
                        room > 1024 ? room - 1024 : 0, &msg);
    if (msg.len + 1024 > room) {
        log_warn("%s: %s notification to <%s> left out: the reply would pass 1 MiB", x->id,
                 policy_notify_name(kind), target);
        buf_free(&msg);
        return;
    }
    snprintf(name, sizeof name, "notify_%s_to", policy_notify_name(kind));
    proto_put_str(&x->m, name, target);
    snprintf(name, sizeof name, "notify_%s_msg", policy_notify_name(kind));
    proto_put_data(&x->m, name, msg.data, msg.len);
    buf_free(&msg);
}

static void scand_group_notices(struct scand_reply *x, const struct policy_set *set,
                                const struct policy_verdict *v, const struct policy_object *po,
                                const struct policy_facts *f)
{
    bool admin = v->notify[POLICY_NOTIFY_ADMIN] && !x->ours;
    bool sender = v->notify[POLICY_NOTIFY_SENDER] && !x->ours && *x->sender != 0;
    bool rcpt = v->notify[POLICY_NOTIFY_RECIPIENT] && !x->ours;

    proto_put_int(&x->m, "group_notify_admin", admin);
    proto_put_int(&x->m, "group_notify_sender", sender);
    proto_put_int(&x->m, "group_notify_recipient", rcpt);
    proto_put_str(&x->m, "group_notify_from", policy_notify_from(x->ctx->conf, v->group));
    if (admin)
        scand_put_notice(x, v, po, f, POLICY_NOTIFY_ADMIN,
                         policy_admin_address(x->ctx->conf, v->group));
    if (sender)
        scand_put_notice(x, v, po, f, POLICY_NOTIFY_SENDER, x->sender);
    for (size_t i = 0; rcpt && i < set->nrcpts; i++)
        scand_put_notice(x, v, po, f, POLICY_NOTIFY_RECIPIENT, set->rcpts[i]);
}

static void scand_group_log(const struct scand_reply *x, const struct policy_set *set,
                            const struct policy_verdict *v, size_t nsets)
{
    const char *name = policy_group_name(x->ctx->conf, set->group);

    if (nsets > 1)
        log_msg("%s: split group=%s nrcpt=%zu", x->id, name, set->nrcpts);
    log_msg("%s: av-scanned group=%s nrcpt=%zu status=%s names=\"%s\" action=%s%s", x->id,
            name, set->nrcpts, v->checked ? policy_status_name(v->status) : "not_checked",
            v->names.len ? v->names.data : "", v->block ? "block" : "deliver",
            v->save != POLICY_SAVE_NONE ? (v->save == POLICY_SAVE_QUARANTINE
                                               ? " save=quarantine" : " save=backup") : "");
}

static void scand_group(struct scand_reply *x, const struct policy_set *set, size_t nsets)
{
    struct policy_object *po = xcalloc(x->r->nobjs ? x->r->nobjs : 1, sizeof *po);
    size_t n = scand_group_objects(x->r, set->group, po);
    struct policy_verdict v;
    struct policy_facts f;

    policy_decide(x->ctx->conf, set->group, true, po, n, &v);
    scand_facts(x, set, &f);
    scand_group_log(x, set, &v, nsets);
    proto_put_str(&x->m, "group", policy_group_name(x->ctx->conf, set->group));
    for (size_t i = 0; i < set->nrcpts; i++)
        proto_put_str(&x->m, "group_rcpt", set->rcpts[i]);
    proto_put_int(&x->m, "group_checked", v.checked);
    proto_put_str(&x->m, "group_status", v.checked ? policy_status_name(v.status) : "clean");
    proto_put_str(&x->m, "group_names", v.names.len ? v.names.data : "");
    proto_put_str(&x->m, "group_action", v.block ? "block" : "deliver");
    proto_put_str(&x->m, "group_save", policy_save_name(v.save));
    scand_group_rewrite(x, set, &v, po, &f);
    scand_group_notices(x, set, &v, po, &f);
    policy_verdict_free(&v);
    free(po);
}

/* The request's recipients (already checked to be proto STR values). */
static size_t scand_req_rcpts(const struct proto_msg *req, char ***out)
{
    size_t n = proto_count(req, "rcpt");
    char **v = xcalloc(n ? n : 1, sizeof *v);
    const struct proto_attr *a;

    for (size_t i = 0; i < n && (a = proto_get_nth(req, "rcpt", i)) != NULL; i++)
        v[i] = xstrndup((const char *)a->value, a->len);
    *out = v;
    return n;
}

void scand_policy_reply(struct scand_ctx *ctx, int sock, const char *id, struct proto_msg *req,
                        const struct queue_file *qf, struct scand_result *r)
{
    struct scand_reply x = { ctx, id, req, { 0 }, qf, r, qf->env.sender, false, 1, NULL };
    struct policy_set *sets;
    char **rcpts;
    size_t n = scand_req_rcpts(req, &rcpts);
    size_t nsets = policy_split(ctx->conf, x.sender, (const char *const *)rcpts, n, &sets);

    x.ours = r->msg != NULL && policy_is_notification(r->msg);
    proto_msg_init(&x.m);
    proto_put_str(&x.m, "status", "ok");
    proto_put_str(&x.m, "av_status", scand_status_name(r->status));
    proto_put_str(&x.m, "names", r->names.len ? r->names.data : "");
    scand_reply_objects(&x.m, r);
    proto_put_int(&x.m, "anomalies", r->anomalies);
    for (size_t i = 0; i < nsets && x.fail == NULL; i++)
        scand_group(&x, &sets[i], nsets);
    if (x.fail != NULL) {
        proto_msg_reset(&x.m);
        log_msg("%s: av-tempfail: %s", id, x.fail);
        proto_put_str(&x.m, "status", "tempfail");
        proto_put_str(&x.m, "reason", x.fail);
    }
    if (proto_send(sock, &x.m) < 0)
        log_warn("%s: cannot send the reply: %m", id);
    proto_msg_free(&x.m);
    policy_sets_free(sets, nsets);
    for (size_t i = 0; i < n; i++)
        free(rcpts[i]);
    free(rcpts);
}
