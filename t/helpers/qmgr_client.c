/*
 * qmgr_client - test client for qmgr's commit protocol (private/qmgr).
 *
 * Usage: qmgr_client SOCKET COMMAND...
 * Connects, says hello, then runs the commands in order and prints one
 * line per answer on stdout:
 *   new              "new ok ID" | "new error CODE REASON"
 *   write MODE       writes into the fd of the last "new":
 *                    good[:NRCPT[:SIZE]]  a complete file (writer API)
 *                    noend                envelope + content, no END
 *                    norcpt               VERSION ARRIVAL SENDER END
 *                    garbage              bytes that are no queue file
 *                    "write ok" | "write error WHY"
 *   commit           commit the last ID     "commit ok ID" | "commit error CODE REASON"
 *   commit-id ID     commit an arbitrary ID
 *   abort            abort the last ID      "abort ok" | "abort error CODE REASON"
 *   op NAME          a request with op=NAME "op ok" | "op error CODE REASON"
 *   batch K          K more connections each do new + write good, then
 *                    all send commit before any answer is read:
 *                    "batch ok N" (N answers ok) and "batch-id ID" lines
 *   check PATH       validate a queue file written by "write good":
 *                    "check ok nrcpt=N size=N content=match|differs"
 *   pause MS         sleep MS milliseconds (at most 10000), connection open
 *   close            close the connection now and exit 0
 * Exit 0 unless the connection or an argument failed (exit 1, message on
 * stderr).  Every wait is bounded (5 s per answer).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/proto.h"
#include "queue/queue_file.h"
#include "util/buf.h"
#include "util/mem.h"

#define TIMEOUT_MS 5000

static const char *sock_path;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "qmgr_client: %s: %s\n", what, why ? why : "error");
    exit(1);
}

static int client_connect(void)
{
    const char *why = NULL;
    int fd = proto_connect(sock_path);

    if (fd < 0)
        die("connect", sock_path);
    if (proto_hello_call(fd, "qmgr-commit", 1, TIMEOUT_MS, &why) < 0)
        die("hello", why);
    return fd;
}

static void request(int fd, const char *op, const char *id)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "op", op);
    if (id)
        proto_put_str(&m, "id", id);
    if (strcmp(op, "new") == 0)
        proto_put_str(&m, "client", "localhost[127.0.0.1]");
    if (proto_send(fd, &m) < 0)
        die(op, "send");
    proto_msg_free(&m);
}

/* Reads one answer; prints "LABEL ok [ID]" or "LABEL error CODE REASON".
 * Returns 1 for ok; *newfd gets a passed fd when asked for. */
static int answer(int fd, const char *label, char *id, size_t idsize, int *newfd)
{
    struct proto_msg m;
    const char *why = NULL, *status, *aid;
    int64_t code = 0;
    int ok;

    proto_msg_init(&m);
    if (proto_recv(fd, &m, TIMEOUT_MS, &why) < 0)
        die(label, why);
    status = proto_get_str(&m, "status");
    aid = proto_get_str(&m, "id");
    ok = status && strcmp(status, "ok") == 0;
    if (ok) {
        printf("%s ok%s%s\n", label, aid ? " " : "", aid ? aid : "");
        if (aid && id)
            snprintf(id, idsize, "%s", aid);
        if (newfd)
            *newfd = proto_take_fd(&m, 0);
    } else {
        proto_get_int(&m, "code", &code);
        printf("%s error %lld %s\n", label, (long long)code,
               proto_get_str(&m, "reason") ? proto_get_str(&m, "reason") : "");
    }
    fflush(stdout);
    proto_msg_free(&m);
    return ok;
}

static void content_bytes(struct buf *b, size_t size)
{
    static const char head[] = "Subject: qmgr test\r\n\r\n";

    buf_reset(b);
    buf_append(b, head, sizeof head - 1);
    for (size_t i = 0; b->len < size; i++)
        buf_append_byte(b, (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (uint8_t)('a' + i % 26));
}

static int write_good(int fd, size_t nrcpt, size_t size)
{
    struct queue_rcpt *r = xcalloc(nrcpt, sizeof *r);
    struct queue_envelope env = {
        .arrival_us = 1700000000000000ULL, .client_addr = "127.0.0.1",
        .client_name = "localhost", .helo = "client.test", .proto = "ESMTP",
        .sender = "sender@example.org", .rcpts = r, .nrcpts = nrcpt,
    };
    struct queue_writer w;
    struct buf c = BUF_INIT;
    int rc;

    for (size_t i = 0; i < nrcpt; i++)
        r[i].addr = xasprintf("rcpt%zu@example.test", i);
    content_bytes(&c, size);
    rc = queue_writer_open(&w, fd) < 0 || queue_writer_envelope(&w, &env) < 0 ||
         queue_writer_content(&w, c.data, c.len) < 0 || queue_writer_finish(&w) < 0 ? -1 : 0;
    queue_writer_close(&w);
    for (size_t i = 0; i < nrcpt; i++)
        free((void *)r[i].addr);
    free(r);
    buf_free(&c);
    return rc;
}

static void rec(struct buf *b, int type, const void *p, size_t n)
{
    buf_put_u8(b, (uint8_t)type);
    buf_put_u32(b, (uint32_t)n);
    buf_append(b, p, n);
}

static int write_mode(int fd, const char *mode)
{
    struct buf b = BUF_INIT;
    unsigned long nrcpt = 1, size = 1000;
    int rc;

    if (strncmp(mode, "good", 4) == 0) {
        sscanf(mode, "good:%lu:%lu", &nrcpt, &size);
        return write_good(fd, nrcpt ? nrcpt : 1, size);
    }
    if (strcmp(mode, "garbage") == 0)
        buf_append_str(&b, "this is not a queue file\r\n");
    else {
        buf_put_u8(&b, QREC_VERSION), buf_put_u32(&b, 4), buf_put_u32(&b, QUEUE_FILE_VERSION);
        buf_put_u8(&b, QREC_ARRIVAL), buf_put_u32(&b, 8), buf_put_u64(&b, 1);
        rec(&b, QREC_SENDER, "s@example.org", 13);
        if (strcmp(mode, "noend") == 0) {
            rec(&b, QREC_RCPT, "\0\0\0\0\0\3r@x\0\0\0\0", 13);
            rec(&b, QREC_CONTENT, "Subject: x\r\n\r\n", 14);
        } else {
            rec(&b, QREC_END, NULL, 0);
        }
    }
    rc = write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0 ? 0 : -1;
    buf_free(&b);
    return rc;
}

static void check_file(const char *path)
{
    struct queue_file qf;
    struct queue_content qc;
    struct buf want = BUF_INIT, got = BUF_INIT;
    const char *why = NULL;
    char tmp[8192];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || queue_file_read(fd, &qf, &why) < 0) {
        printf("check error %s\n", fd < 0 ? "cannot open" : why);
        if (fd >= 0)
            close(fd);
        return;
    }
    queue_content_open(&qc, fd, &qf);
    while ((n = queue_content_read(&qc, tmp, sizeof tmp, &why)) > 0)
        buf_append(&got, tmp, (size_t)n);
    content_bytes(&want, (size_t)qf.content_size);
    printf("check ok nrcpt=%zu size=%llu content=%s\n", qf.env.nrcpts,
           (unsigned long long)qf.content_size,
           n == 0 && got.len == want.len && memcmp(got.data, want.data, got.len) == 0 ? "match"
                                                                                     : "differs");
    queue_file_free(&qf);
    buf_free(&want);
    buf_free(&got);
    close(fd);
}

static void batch(int k)
{
    int *fds = xcalloc((size_t)k, sizeof *fds);
    char (*ids)[64] = xcalloc((size_t)k, 64);
    int nok = 0;

    for (int i = 0; i < k; i++) {
        int qfd = -1;
        fds[i] = client_connect();
        request(fds[i], "new", NULL);
        if (!answer(fds[i], "batch-new", ids[i], 64, &qfd) || write_good(qfd, 2, 5000) < 0)
            die("batch", "new/write failed");
        close(qfd);
    }
    for (int i = 0; i < k; i++)
        request(fds[i], "commit", ids[i]);
    for (int i = 0; i < k; i++)
        nok += answer(fds[i], "batch-id", NULL, 0, NULL);
    printf("batch ok %d\n", nok);
    for (int i = 0; i < k; i++)
        close(fds[i]);
    free(fds);
    free(ids);
}

int main(int argc, char **argv)
{
    char id[64] = "";
    int sock, qfd = -1;

    if (argc < 2)
        die("usage", "qmgr_client SOCKET COMMAND...");
    setvbuf(stdout, NULL, _IOLBF, 0);
    sock_path = argv[1];
    sock = client_connect();
    for (int i = 2; i < argc; i++) {
        const char *cmd = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(cmd, "new") == 0) {
            if (qfd >= 0)
                close(qfd);
            qfd = -1;
            request(sock, "new", NULL);
            answer(sock, "new", id, sizeof id, &qfd);
        } else if (strcmp(cmd, "write") == 0 && arg) {
            printf(qfd >= 0 && write_mode(qfd, arg) == 0 ? "write ok\n" : "write error\n");
            i++;
        } else if (strcmp(cmd, "commit") == 0) {
            request(sock, "commit", id);
            answer(sock, "commit", NULL, 0, NULL);
        } else if (strcmp(cmd, "commit-id") == 0 && arg) {
            request(sock, "commit", arg);
            answer(sock, "commit", NULL, 0, NULL);
            i++;
        } else if (strcmp(cmd, "abort") == 0) {
            request(sock, "abort", id);
            answer(sock, "abort", NULL, 0, NULL);
        } else if (strcmp(cmd, "op") == 0 && arg) {
            request(sock, arg, NULL);
            answer(sock, "op", NULL, 0, NULL);
            i++;
        } else if (strcmp(cmd, "batch") == 0 && arg) {
            batch(atoi(arg));
            i++;
        } else if (strcmp(cmd, "check") == 0 && arg) {
            check_file(arg);
            i++;
        } else if (strcmp(cmd, "pause") == 0 && arg) {
            int ms = atoi(arg);
            usleep((useconds_t)(ms < 0 ? 0 : ms > 10000 ? 10000 : ms) * 1000);
            i++;
        } else if (strcmp(cmd, "close") == 0) {
            break;
        } else {
            die("unknown command", cmd);
        }
    }
    if (qfd >= 0)
        close(qfd);
    close(sock);
    return 0;
}
