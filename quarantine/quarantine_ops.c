/*
 * quarantine_ops - the requests of the "quarantine" protocol, version 1
 * (CONTRACTS.md "quarantine daemon"; the CLI side is
 * cli/mailgw_quarantine.c).
 *
 * Interface: quar_request(), quar_reply_error(), quar_find(),
 * quar_expire().
 *
 * Requests and replies (error replies: {status="error", code=2|3|4,
 * reason}, code being the CLI's exit status):
 *   store   {area, id, group?, status?, names?, reason?} + fd (a queue
 *           file, read-only; private socket only)
 *           -> {status="ok", qid}; the entry is complete and durable
 *           before the answer
 *   list    {area?} -> frames {more=1, entries...} then {status="ok",
 *           count, bytes, entries...}; an entry is the attributes qid,
 *           area, code, verdict (the status word), names, group, queue_id, size, stored,
 *           arrival, client_addr, client_name, sender, nrcpt, then up to
 *           QUAR_LIST_RCPTS rcpt (a new entry starts at each qid)
 *   show    {qid, area?} -> one entry with every rcpt, helo, proto,
 *           reason, and content (DATA, at most QUAR_SHOW_CONTENT bytes;
 *           content_truncated=1 when cut)
 *   release {qid, area?} / resend {qid, area?} -> {status="ok", id}
 *   delete  {qid | qid="ALL", area?} -> {status="ok", count}
 *   expire  {age? (seconds; absent = QuarantineMaxAge)} -> {status="ok",
 *           count}
 *
 * Diagnostics: "QUEUEID: stored area=A qid=ID status=S", "ID: released as
 * QUEUEID", "ID: resent as QUEUEID", "ID: removed from A", "ID: expired
 * from A"; warnings for unreadable entries and failed requests.
 *
 * Security: every ID from a peer passes store_id_valid() before it names
 * a file; strings put into entries are proto STR values (no CR/LF/NUL)
 * and the store writer checks them again.
 */
#include "quarantine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

#define QUAR_LIST_RCPTS 50
#define QUAR_FRAME_BUDGET (512 * 1024)
#define QUAR_SHOW_CONTENT (256 * 1024)
#define QUAR_SHOW_RCPT_BUDGET (384 * 1024)

void quar_reply_error(struct quar_conn *c, int code, const char *fmt, ...)
{
    struct proto_msg m;
    char reason[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    for (char *s = reason; *s; s++)
        if (*s == '\r' || *s == '\n')
            *s = ' ';
    proto_msg_init(&m);
    proto_put_str(&m, "status", "error");
    proto_put_int(&m, "code", code);
    proto_put_str(&m, "reason", reason);
    quar_send(c, &m);
    proto_msg_free(&m);
}

static void quar_reply_ok(struct quar_conn *c, const char *name, const char *sval, long long n)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "status", "ok");
    if (sval != NULL)
        proto_put_str(&m, name, sval);
    else if (name != NULL)
        proto_put_int(&m, name, n);
    quar_send(c, &m);
    proto_msg_free(&m);
}

/* The area named by the request's "area": -1 = every area (absent or
 * "all"), -2 = an unknown name (error already sent). */
static int quar_req_area(struct quar_conn *c, const struct proto_msg *req)
{
    const char *name = proto_get_str(req, "area");
    int a;

    if (name == NULL || strcmp(name, "all") == 0)
        return -1;
    a = store_area_parse(name);
    if (a < 0) {
        quar_reply_error(c, QUAR_E_ACTION, "unknown area \"%s\"", name);
        return -2;
    }
    if (c->q->area_dir[a] == NULL) {
        quar_reply_error(c, QUAR_E_ACTION, "area %s is off (its path is not set)", name);
        return -2;
    }
    return a;
}

static void quar_store(struct quar_conn *c, struct proto_msg *req)
{
    const char *qid = proto_get_str(req, "id");
    const char *why = NULL;
    int area = quar_req_area(c, req), fd;
    struct queue_file qf;
    struct store_verdict v;
    char sid[STORE_ID_SIZE];

    if (area == -2)
        return;
    if (c->public || area < 0 || qid == NULL || !queue_id_valid(qid) || req->nfds < 1) {
        quar_reply_error(c, QUAR_E_ACTION, "%s", c->public ? "store is not allowed here"
                                                     : "store needs area, id and a queue file");
        return;
    }
    fd = proto_take_fd(req, 0);
    if (queue_file_read(fd, &qf, &why) < 0) {
        log_warn("%s: store refused: queue file: %s", qid, why);
        quar_reply_error(c, QUAR_E_ACTION, "queue file: %s", why);
        close(fd);
        return;
    }
    v = (struct store_verdict){ area, qid, 0, proto_get_str(req, "status"),
                                proto_get_str(req, "names"), proto_get_str(req, "group"),
                                proto_get_str(req, "reason") };
    if (store_put_queue_file(c->q->area_dir[area], &v, fd, &qf, sid, &why) < 0) {
        log_error("%s: cannot store in %s %s: %s: %m", qid, store_area_name(area),
                  c->q->area_dir[area], why ? why : "?");
        quar_reply_error(c, QUAR_E_SYSTEM, "cannot store: %s", why ? why : "error");
    } else {
        log_info("%s: stored area=%s qid=%s status=%s names=\"%s\"", qid,
                 store_area_name(area), sid, v.status ? v.status : "",
                 v.names ? v.names : "");
        quar_reply_ok(c, "qid", sid, 0);
    }
    queue_file_free(&qf);
    close(fd);
}

static void quar_put_entry(struct proto_msg *m, const struct store_entry *e, size_t max_rcpts)
{
    const struct store_verdict *v = &e->verdict;
    const struct queue_envelope *env = &e->env;

    proto_put_str(m, "qid", e->id);
    proto_put_str(m, "area", store_area_name(v->area));
    proto_put_str(m, "code", store_status_code(v->area, v->status));
    proto_put_str(m, "verdict", v->status ? v->status : "");
    proto_put_str(m, "names", v->names ? v->names : "");
    proto_put_str(m, "group", v->group ? v->group : "");
    proto_put_str(m, "queue_id", v->queue_id ? v->queue_id : "");
    proto_put_int(m, "size", (int64_t)e->content_size);
    proto_put_int(m, "stored", (int64_t)(v->stored_us / 1000000));
    proto_put_int(m, "arrival", (int64_t)(env->arrival_us / 1000000));
    proto_put_str(m, "client_addr", env->client_addr ? env->client_addr : "");
    proto_put_str(m, "client_name", env->client_name ? env->client_name : "");
    proto_put_str(m, "sender", env->sender);
    proto_put_int(m, "nrcpt", (int64_t)env->nrcpts);
    for (size_t i = 0; i < env->nrcpts && i < max_rcpts; i++)
        proto_put_str(m, "rcpt", env->rcpts[i].addr);
}

/* List one area into m (flushing full frames); false on an unreadable
 * directory (error sent). */
static bool quar_list_area(struct quar_conn *c, int area, struct proto_msg *m, long *count,
                           long long *bytes)
{
    const char *dir = c->q->area_dir[area], *why = NULL;
    char **ids;
    long n = store_list_ids(dir, &ids);

    if (n < 0) {
        log_warn("%s area %s: cannot read: %m", store_area_name(area), dir);
        quar_reply_error(c, QUAR_E_DIR, "cannot read %s: %s", dir, strerror(errno));
        return false;
    }
    for (long i = 0; i < n; i++) {
        struct store_entry e;
        int fd = store_entry_open(dir, ids[i], &e, &why);
        if (fd < 0) {
            if (errno != ENOENT)
                log_warn("%s: unreadable entry in %s: %s", ids[i], dir, why);
            continue;
        }
        close(fd);
        quar_put_entry(m, &e, QUAR_LIST_RCPTS);
        (*count)++;
        *bytes += (long long)e.content_size;
        store_entry_free(&e);
        if (m->store.len > QUAR_FRAME_BUDGET) {
            proto_put_int(m, "more", 1);
            quar_send(c, m);
            proto_msg_reset(m);
        }
    }
    store_ids_free(ids, n);
    return true;
}

static void quar_list(struct quar_conn *c, const struct proto_msg *req)
{
    int area = quar_req_area(c, req);
    struct proto_msg m;
    long count = 0;
    long long bytes = 0;

    if (area == -2)
        return;
    proto_msg_init(&m);
    for (int a = 0; a < STORE_NAREAS; a++) {
        if ((area >= 0 && a != area) || c->q->area_dir[a] == NULL)
            continue;
        if (!quar_list_area(c, a, &m, &count, &bytes)) {
            proto_msg_free(&m);
            return;
        }
    }
    proto_put_str(&m, "status", "ok");
    proto_put_int(&m, "count", count);
    proto_put_int(&m, "bytes", bytes);
    quar_send(c, &m);
    proto_msg_free(&m);
}

int quar_find(struct quar *q, int area, const char *id, struct store_entry *e, int *found_area,
              const char **why)
{
    *why = "no such entry";
    if (!store_id_valid(id)) {
        *why = "invalid ID";
        return -1;
    }
    for (int a = 0; a < STORE_NAREAS; a++) {
        if ((area >= 0 && a != area) || q->area_dir[a] == NULL)
            continue;
        int fd = store_entry_open(q->area_dir[a], id, e, why);
        if (fd >= 0) {
            *found_area = a;
            return fd;
        }
        if (errno != ENOENT)
            return -1;
    }
    return -1;
}

/* The request's entry, opened; -1 with the error reply sent. */
static int quar_req_entry(struct quar_conn *c, const struct proto_msg *req,
                          struct store_entry *e, int *area)
{
    const char *id = proto_get_str(req, "qid"), *why = NULL;
    int want = quar_req_area(c, req), fd;

    if (want == -2)
        return -1;
    if (id == NULL) {
        quar_reply_error(c, QUAR_E_ACTION, "missing qid");
        return -1;
    }
    fd = quar_find(c->q, want, id, e, area, &why);
    if (fd < 0)
        quar_reply_error(c, QUAR_E_ACTION, "%s: %s", id, why);
    return fd;
}

static void quar_show_content(struct proto_msg *m, int fd, const struct store_entry *e)
{
    struct store_content sc;
    struct buf b = BUF_INIT;
    char chunk[16384];
    const char *why = NULL;
    ssize_t n;

    store_content_open(&sc, fd, e);
    while (b.len < QUAR_SHOW_CONTENT
           && (n = store_content_read(&sc, chunk, sizeof(chunk), &why)) > 0)
        buf_append(&b, chunk, (size_t)n);
    if (b.len > QUAR_SHOW_CONTENT)
        b.len = QUAR_SHOW_CONTENT;
    proto_put_data(m, "content", b.data ? b.data : "", b.len);
    proto_put_int(m, "content_truncated", e->content_size > b.len);
    buf_free(&b);
}

static void quar_show(struct quar_conn *c, const struct proto_msg *req)
{
    struct store_entry e;
    struct proto_msg m;
    int area, fd = quar_req_entry(c, req, &e, &area);
    size_t budget = 0, nr = 0;

    if (fd < 0)
        return;
    proto_msg_init(&m);
    for (; nr < e.env.nrcpts && budget < QUAR_SHOW_RCPT_BUDGET; nr++)
        budget += strlen(e.env.rcpts[nr].addr) + 16;
    quar_put_entry(&m, &e, nr);
    proto_put_str(&m, "helo", e.env.helo ? e.env.helo : "");
    proto_put_str(&m, "proto", e.env.proto ? e.env.proto : "");
    proto_put_str(&m, "reason", e.verdict.reason ? e.verdict.reason : "");
    quar_show_content(&m, fd, &e);
    proto_put_str(&m, "status", "ok");
    quar_send(c, &m);
    proto_msg_free(&m);
    store_entry_free(&e);
    close(fd);
}

static void quar_requeue_op(struct quar_conn *c, const struct proto_msg *req, bool release)
{
    struct store_entry e;
    int area, fd = quar_req_entry(c, req, &e, &area);
    char newid[64];
    const char *why = NULL;

    if (fd < 0)
        return;
    if (quar_requeue(c->q, fd, &e, release, newid, sizeof(newid), &why) < 0) {
        log_warn("%s: %s failed: %s", e.id, release ? "release" : "resend", why);
        quar_reply_error(c, QUAR_E_ACTION, "%s: %s", e.id, why);
    } else {
        log_info("%s: %s as %s", e.id, release ? "released" : "resent", newid);
        quar_reply_ok(c, "id", newid, 0);
    }
    store_entry_free(&e);
    close(fd);
}

/* Remove ids of area older than cutoff_s (0 = every one); the count. */
static long quar_remove_area(struct quar *q, int area, uint64_t cutoff_us, const char *verb)
{
    char **ids;
    long n = store_list_ids(q->area_dir[area], &ids), removed = 0;
    uint64_t t;

    for (long i = 0; i < n; i++) {
        if (cutoff_us && (queue_id_arrival(ids[i], &t) < 0 || t >= cutoff_us))
            continue;
        if (store_remove(q->area_dir[area], ids[i]) < 0) {
            if (errno != ENOENT)
                log_warn("%s: cannot remove from %s: %m", ids[i], q->area_dir[area]);
            continue;
        }
        log_info("%s: %s from %s", ids[i], verb, store_area_name(area));
        removed++;
    }
    if (n > 0)
        store_ids_free(ids, n);
    return n < 0 ? -1 : removed;
}

long quar_expire(struct quar *q, long long age)
{
    struct timeval tv;
    uint64_t now_us, age_us = (uint64_t)(age < 0 ? 0 : age) * 1000000u, cutoff;
    long total = 0;

    gettimeofday(&tv, NULL);
    now_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    cutoff = now_us > age_us ? now_us - age_us : 1;
    for (int a = 0; a < STORE_NAREAS; a++) {
        if (q->area_dir[a] == NULL)
            continue;
        long n = quar_remove_area(q, a, cutoff + 1, "expired");
        if (n > 0)
            total += n;
    }
    return total;
}

static void quar_delete(struct quar_conn *c, const struct proto_msg *req)
{
    const char *id = proto_get_str(req, "qid");
    int want = quar_req_area(c, req), area;
    long count = 0;

    if (want == -2)
        return;
    if (id != NULL && strcmp(id, "ALL") == 0) {
        for (int a = 0; a < STORE_NAREAS; a++) {
            if ((want >= 0 && a != want) || c->q->area_dir[a] == NULL)
                continue;
            long n = quar_remove_area(c->q, a, 0, "removed");
            if (n < 0) {
                quar_reply_error(c, QUAR_E_DIR, "cannot read %s: %s", c->q->area_dir[a],
                                 strerror(errno));
                return;
            }
            count += n;
        }
        quar_reply_ok(c, "count", NULL, count);
        return;
    }
    struct store_entry e;
    int fd = quar_req_entry(c, req, &e, &area);
    if (fd < 0)
        return;
    close(fd);
    if (store_remove(c->q->area_dir[area], e.id) < 0) {
        quar_reply_error(c, QUAR_E_SYSTEM, "%s: cannot remove: %s", e.id, strerror(errno));
    } else {
        log_info("%s: removed from %s", e.id, store_area_name(area));
        quar_reply_ok(c, "count", NULL, 1);
    }
    store_entry_free(&e);
}

static void quar_expire_op(struct quar_conn *c, const struct proto_msg *req)
{
    int64_t age;

    if (proto_get_int(req, "age", &age) < 0)
        age = c->q->max_age;
    else if (age < 0) {
        quar_reply_error(c, QUAR_E_ACTION, "negative age");
        return;
    }
    if (age == 0 && proto_get_int(req, "age", &age) < 0) {
        quar_reply_ok(c, "count", NULL, 0);     /* QuarantineMaxAge=0: keep */
        return;
    }
    quar_reply_ok(c, "count", NULL, quar_expire(c->q, age));
}

void quar_request(struct quar_conn *c, struct proto_msg *req)
{
    const char *op = proto_get_str(req, "op");

    if (op == NULL)
        quar_reply_error(c, QUAR_E_ACTION, "request without op");
    else if (strcmp(op, "store") == 0)
        quar_store(c, req);
    else if (strcmp(op, "list") == 0)
        quar_list(c, req);
    else if (strcmp(op, "show") == 0)
        quar_show(c, req);
    else if (strcmp(op, "release") == 0 || strcmp(op, "resend") == 0)
        quar_requeue_op(c, req, strcmp(op, "release") == 0);
    else if (strcmp(op, "delete") == 0)
        quar_delete(c, req);
    else if (strcmp(op, "expire") == 0)
        quar_expire_op(c, req);
    else
        quar_reply_error(c, QUAR_E_ACTION, "unknown op \"%s\"", op);
}
