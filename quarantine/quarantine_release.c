/*
 * quarantine_release - puts a stored message back into the queue
 * (release: without scanning; resend: scanned again) through qmgr's
 * commit protocol on private/qmgr (CONTRACTS.md "qmgr commit protocol").
 *
 * Interface: quar_requeue().
 *
 * Steps: hello {proto="qmgr-commit", version=1}; {op="new",
 * client=NAME[IP]} -> an empty tmp/ID fd; the original envelope (every
 * recipient pending again) and content are written with the lib/queue
 * writer, which ends with END and fsync; {op="commit", id, noscan=1 for a
 * release} -> ok.  On any failure before the commit is answered the
 * connection is closed, and qmgr removes the uncommitted file.  The store
 * entry is kept either way (`mailgw quarantine delete` removes it).
 *
 * Diagnostics: -1 with a static or qmgr-supplied reason (the caller logs
 * and answers).  Every wait on qmgr is bounded (QUAR_QMGR_TIMEOUT_MS).
 */
#include "quarantine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define QUAR_QMGR_TIMEOUT_MS 30000

/* One request/answer; the answer stays in ans.  0 when status=ok. */
static int quar_qmgr_call(int sock, const struct proto_msg *req, struct proto_msg *ans,
                          const char **why)
{
    static char reason[256];
    const char *status, *r;

    if (proto_send(sock, req) < 0) {
        *why = "cannot send to qmgr";
        return -1;
    }
    if (proto_recv(sock, ans, QUAR_QMGR_TIMEOUT_MS, why) < 0)
        return -1;
    status = proto_get_str(ans, "status");
    if (status == NULL || strcmp(status, "ok") != 0) {
        r = proto_get_str(ans, "reason");
        snprintf(reason, sizeof(reason), "qmgr: %s", r ? r : "refused");
        *why = reason;
        return -1;
    }
    return 0;
}

static int quar_qmgr_connect(struct quar *q, const char **why)
{
    char *path = server_queue_file(q->srv, "private/qmgr");
    int sock = proto_connect(path);

    free(path);
    if (sock < 0) {
        *why = "cannot connect to qmgr (private/qmgr)";
        return -1;
    }
    if (proto_hello_call(sock, "qmgr-commit", 1, QUAR_QMGR_TIMEOUT_MS, why) < 0) {
        close(sock);
        return -1;
    }
    return sock;
}

static int quar_write_queue_file(int qfd, int sfd, const struct store_entry *e,
                                 const char **why)
{
    struct queue_writer w;
    struct store_content sc;
    char *chunk = xmalloc(QUEUE_CONTENT_CHUNK);
    ssize_t n = 0;
    int rc = -1;

    store_content_open(&sc, sfd, e);
    if (queue_writer_open(&w, qfd) < 0 || queue_writer_envelope(&w, &e->env) < 0)
        goto out;
    while ((n = store_content_read(&sc, chunk, QUEUE_CONTENT_CHUNK, why)) > 0)
        if (queue_writer_content(&w, chunk, (size_t)n) < 0)
            goto out;
    if (n == 0 && queue_writer_finish(&w) == 0)
        rc = 0;
out:
    if (rc < 0 && n >= 0)
        *why = w.error ? w.error : "cannot write the queue file";
    queue_writer_close(&w);
    free(chunk);
    return rc;
}

static char *quar_client(const struct store_entry *e)
{
    return xasprintf("%s[%s]", e->env.client_name ? e->env.client_name : "unknown",
                     e->env.client_addr ? e->env.client_addr : "127.0.0.1");
}

int quar_requeue(struct quar *q, int fd, const struct store_entry *e, bool noscan, char *newid,
                 size_t idsize, const char **why)
{
    struct proto_msg req, ans;
    char *client = quar_client(e);
    int sock = quar_qmgr_connect(q, why), qfd = -1, rc = -1;

    proto_msg_init(&req);
    proto_msg_init(&ans);
    if (sock < 0)
        goto out;
    proto_put_str(&req, "op", "new");
    proto_put_str(&req, "client", client);
    if (quar_qmgr_call(sock, &req, &ans, why) < 0)
        goto out;
    qfd = proto_take_fd(&ans, 0);
    if (qfd < 0 || proto_get_str(&ans, "id") == NULL) {
        *why = "qmgr gave no queue file";
        goto out;
    }
    str_copy(newid, proto_get_str(&ans, "id"), idsize);
    if (quar_write_queue_file(qfd, fd, e, why) < 0)
        goto out;
    proto_msg_reset(&req);
    proto_msg_reset(&ans);
    proto_put_str(&req, "op", "commit");
    proto_put_str(&req, "id", newid);
    if (noscan)
        proto_put_int(&req, "noscan", 1);
    rc = quar_qmgr_call(sock, &req, &ans, why);
out:
    if (qfd >= 0)
        close(qfd);
    if (sock >= 0)
        close(sock);
    proto_msg_free(&req);
    proto_msg_free(&ans);
    free(client);
    return rc;
}
