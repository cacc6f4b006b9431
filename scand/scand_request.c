/*
 * scand_request - one qmgr -> scand request (CONTRACTS.md "qmgr -> scand
 * scanning protocol"): hello {proto="scand", version=1}, then
 * {op="scan", id, sender, client_addr, client_name, helo, rcpt...} with
 * fd 0 = the queue file (read-only) and optionally fds 1.. = empty files
 * for rewritten content (scand_policy.c writes them).
 *
 * Interface: scand_request_serve(ctx, shared, sock, timeout).
 *
 * Reply: {status="ok", av_status, names, per object obj_name, obj_type,
 * obj_status, obj_virus, anomalies, then one block per policy group
 * (scand_policy.c, POLICY-REPLY.md)}; or {status="tempfail", reason} when anti-virus is
 * off, the queue file is unreadable or the scan failed.  A bad frame or a
 * peer that says nothing for the timeout gets the connection closed with
 * no reply (qmgr defers the message).
 *
 * Logs: "ID: av-scanned status=STATUS names=\"...\" nrcpt=N" (activity level),
 * "ID: av-tempfail: REASON", and at debug level one line per object.
 */
#include "scand.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "queue/queue_file.h"
#include "util/log.h"
#include "util/mem.h"

#define SCAND_MAX_ID 64

/* Queue IDs are safe in file names and logs; anything else is refused. */
static bool scand_id_ok(const char *id)
{
    size_t n = 0;

    if (id == NULL)
        return false;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return n > 0 && n <= SCAND_MAX_ID;
}

static void scand_reply_tempfail(int sock, struct scand_shared *sh, const char *id,
                                 const char *reason)
{
    struct proto_msg m;

    log_msg("%s: av-tempfail: %s", id, reason);
    scand_count(sh, SC_TEMPFAIL, 1);
    proto_msg_init(&m);
    proto_put_str(&m, "status", "tempfail");
    proto_put_str(&m, "reason", reason);
    if (proto_send(sock, &m) < 0)
        log_warn("%s: cannot send the reply: %m", id);
    proto_msg_free(&m);
}

/* Copy the content records of the queue file into one anonymous file:
 * libclamav and lib/mime want the message as contiguous bytes. */
static int scand_copy_content(int qfd, const struct queue_file *qf, int out,
                              const char **why)
{
    struct queue_content qc;
    char chunk[65536];
    ssize_t n;

    queue_content_open(&qc, qfd, qf);
    while ((n = queue_content_read(&qc, chunk, sizeof(chunk), why)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, chunk + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                *why = "cannot write the temporary copy";
                return -1;
            }
            off += w;
        }
    }
    return n < 0 ? -1 : 0;
}

/* proto STR values must not hold CR/LF/NUL: names from peers are cleaned. */
static void scand_result_sanitize(struct scand_result *r)
{
    for (size_t i = 0; i < r->nobjs; i++) {
        for (char *p = r->objs[i].name; *p; p++) {
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        }
        for (char *p = r->objs[i].type; *p; p++) {
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        }
    }
}

static void scand_log_result(const char *id, const struct scand_result *r, size_t nrcpt)
{
    for (size_t i = 0; i < r->nobjs; i++)
        log_debug("%s: av-object name=\"%s\" type=%s status=%s virus=\"%s\"", id,
                  r->objs[i].name, r->objs[i].type, scand_status_name(r->objs[i].status),
                  r->objs[i].virus);
    log_msg("%s: av-scanned status=%s names=\"%s\" nrcpt=%zu", id,
            scand_status_name(r->status), r->names.len ? r->names.data : "", nrcpt);
}

static void scand_count_result(struct scand_shared *sh, const struct scand_result *r)
{
    scand_count(sh, SC_MESSAGES, 1);
    scand_count(sh, (enum scand_counter)(SC_MSG_CLEAN + r->status), 1);
    scand_count(sh, SC_OBJECTS, (int64_t)r->nobjs);
    scand_count(sh, SC_BYTES, (int64_t)r->bytes);
}

/* Read the queue file, scan, answer.  Returns the tempfail reason or
 * NULL after an ok reply. */
static const char *scand_do_scan(struct scand_ctx *ctx, struct scand_shared *sh, int sock,
                                 const char *id, struct proto_msg *req)
{
    int qfd = req->nfds > 0 ? proto_take_fd(req, 0) : -1;
    struct queue_file qf = { 0 };
    struct scand_result r;
    const char *why = NULL;
    int tfd = -1;

    if (qfd < 0)
        return "no queue file passed";
    if (queue_file_read(qfd, &qf, &why) < 0) {
        close(qfd);
        return why ? why : "unreadable queue file";
    }
    scand_result_init(&r);
    tfd = scand_tmpfile(ctx->tmpdir, qf.content_size);
    if (tfd < 0) {
        log_error("%s: temporary file in %s: %m", id, ctx->tmpdir);
        why = "cannot create a temporary file";
    } else if (scand_copy_content(qfd, &qf, tfd, &why) == 0
               && scand_scan_message(ctx, tfd, qf.content_size, id, &r, &why) == 0) {
        scand_result_sanitize(&r);
        scand_log_result(id, &r, proto_count(req, "rcpt"));
        scand_count_result(sh, &r);
        scand_policy_reply(ctx, sock, id, req, &qf, &r);
        why = NULL;
    }
    if (tfd >= 0)
        close(tfd);
    close(qfd);
    queue_file_free(&qf);
    scand_result_free(&r);
    return why;
}

static int scand_read_request(int sock, unsigned timeout_s, struct proto_msg *req)
{
    struct proto_msg hello;
    const char *why = NULL;
    int tmo = (int)(timeout_s > 0 ? timeout_s * 1000 : 60000);

    proto_msg_init(&hello);
    if (proto_recv(sock, &hello, tmo, &why) < 0
        || proto_check_hello(&hello, "scand", 1, &why) < 0) {
        log_warn("scan request: hello: %s", why ? why : "?");
        proto_msg_free(&hello);
        return -1;
    }
    proto_msg_free(&hello);
    if (proto_recv(sock, req, tmo, &why) < 0) {
        log_warn("scan request: %s", why ? why : "?");
        return -1;
    }
    return 0;
}

void scand_request_serve(struct scand_ctx *ctx, struct scand_shared *sh, int sock,
                         unsigned timeout_s)
{
    struct proto_msg req;
    const char *op, *id, *reason;

    proto_msg_init(&req);
    if (scand_read_request(sock, timeout_s, &req) < 0)
        goto done;
    op = proto_get_str(&req, "op");
    id = proto_get_str(&req, "id");
    if (op == NULL || strcmp(op, "scan") != 0 || !scand_id_ok(id)) {
        log_warn("scan request: bad op or id: closing");
        goto done;
    }
    if (sh->avir_off)
        reason = "anti-virus is off";
    else if (ctx->engine == NULL)
        reason = "anti-virus bases are not loaded";
    else
        reason = scand_do_scan(ctx, sh, sock, id, &req);
    if (reason != NULL)
        scand_reply_tempfail(sock, sh, id, reason);
done:
    proto_msg_free(&req);
}
