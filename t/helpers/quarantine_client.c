/*
 * quarantine_client - test client of the quarantine daemon's protocol
 * (CONTRACTS.md "quarantine daemon").
 *
 * Usage: quarantine_client SOCKET COMMAND ARGS...
 *   store AREA STATUS NAMES SENDER RCPTS [CONTENT_FILE]
 *       writes a queue file with the lib/queue writer (RCPTS comma
 *       separated; the content is CONTENT_FILE, or a small message whose
 *       Subject is "quarantine test"), then sends {op="store", area, id,
 *       group="policy", status, names, reason="test"} with the file as a
 *       read-only fd.  Prints "store ok QID" or "store error CODE REASON".
 *   store-garbage AREA
 *       the same with a file that is no queue file
 *   raw OP [NAME=VALUE...]
 *       any request (VALUE all digits = INT); prints "status=..." and
 *       every attribute of the reply as NAME=VALUE lines
 * Exit 0 when the exchange happened (whatever the answer), 1 when the
 * connection failed.  Every wait is bounded (10 s).
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "util/buf.h"
#include "util/mem.h"

#define TIMEOUT_MS 10000

static void die(const char *what, const char *why)
{
    fprintf(stderr, "quarantine_client: %s: %s\n", what, why ? why : "error");
    exit(1);
}

static int client_connect(const char *path)
{
    const char *why = NULL;
    int fd = proto_connect(path);

    if (fd < 0)
        die("connect", path);
    if (proto_hello_call(fd, "quarantine", 1, TIMEOUT_MS, &why) < 0)
        die("hello", why);
    return fd;
}

static void read_file(const char *path, struct buf *b)
{
    char chunk[8192];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        die("open", path);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_append(b, chunk, (size_t)n);
    close(fd);
}

/* A queue file in a temp file; returns a read-only fd and its ID. */
static int make_queue_file(const char *sender, char *rcpts, const char *content_path,
                           char id[QUEUE_ID_SIZE])
{
    char tmpl[] = "/tmp/quarantine-client-XXXXXX";
    int fd = mkstemp(tmpl), ro;
    struct queue_rcpt r[64];
    struct queue_envelope env = { 0 };
    struct queue_writer w;
    struct buf c = BUF_INIT;
    struct timeval tv;
    struct stat st;
    size_t n = 0;

    if (fd < 0)
        die("mkstemp", "/tmp");
    for (char *save = NULL, *a = strtok_r(rcpts, ",", &save); a && n < 64;
         a = strtok_r(NULL, ",", &save))
        r[n++] = (struct queue_rcpt){ .addr = a };
    gettimeofday(&tv, NULL);
    env = (struct queue_envelope){ .arrival_us = (uint64_t)tv.tv_sec * 1000000u,
                                   .client_addr = "192.0.2.7", .client_name = "client.example",
                                   .helo = "client.example", .proto = "ESMTP",
                                   .sender = sender, .rcpts = r, .nrcpts = n };
    if (content_path)
        read_file(content_path, &c);
    else
        buf_append_str(&c, "From: <sender@example.org>\r\nSubject: quarantine test\r\n"
                           "Message-ID: <q1@example.org>\r\n\r\nbody line\r\n");
    if (queue_writer_open(&w, fd) < 0 || queue_writer_envelope(&w, &env) < 0
        || queue_writer_content(&w, c.data, c.len) < 0 || queue_writer_finish(&w) < 0)
        die("queue writer", w.error);
    queue_writer_close(&w);
    buf_free(&c);
    fstat(fd, &st);
    queue_id_make(id, (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec, st.st_ino);
    ro = open(tmpl, O_RDONLY);
    unlink(tmpl);
    close(fd);
    return ro;
}

static int make_garbage(void)
{
    char tmpl[] = "/tmp/quarantine-client-XXXXXX";
    int fd = mkstemp(tmpl), ro;

    if (fd < 0 || write(fd, "not a queue file\n", 17) != 17)
        die("mkstemp", "/tmp");
    ro = open(tmpl, O_RDONLY);
    unlink(tmpl);
    close(fd);
    return ro;
}

static void print_reply(const char *label, const struct proto_msg *m)
{
    const char *status = proto_get_str(m, "status");
    int64_t code = 0;

    if (label == NULL) {
        for (size_t i = 0; i < m->nattrs; i++) {
            const struct proto_attr *a = &m->attrs[i];
            if (a->type == PROTO_INT)
                printf("%s=%lld\n", a->name, (long long)a->num);
            else
                printf("%s=%.*s\n", a->name, (int)a->len, (const char *)a->value);
        }
        return;
    }
    if (status && strcmp(status, "ok") == 0) {
        printf("%s ok %s\n", label, proto_get_str(m, "qid") ? proto_get_str(m, "qid") : "");
        return;
    }
    proto_get_int(m, "code", &code);
    printf("%s error %lld %s\n", label, (long long)code,
           proto_get_str(m, "reason") ? proto_get_str(m, "reason") : "");
}

static void exchange(int sock, struct proto_msg *req, const char *label)
{
    struct proto_msg ans;
    const char *why = NULL;

    proto_msg_init(&ans);
    if (proto_send(sock, req) < 0)
        die("send", label ? label : "raw");
    if (proto_recv(sock, &ans, TIMEOUT_MS, &why) < 0)
        die("answer", why);
    print_reply(label, &ans);
    proto_msg_free(&ans);
}

static void put_raw(struct proto_msg *m, const char *nv)
{
    const char *eq = strchr(nv, '=');
    char name[PROTO_MAX_NAME + 1];
    bool digits = eq && eq[1] != 0;

    if (eq == NULL || (size_t)(eq - nv) > PROTO_MAX_NAME)
        die("attribute", nv);
    snprintf(name, sizeof(name), "%.*s", (int)(eq - nv), nv);
    for (const char *p = eq + 1; *p; p++)
        digits = digits && isdigit((unsigned char)*p);
    if (digits)
        proto_put_int(m, name, strtoll(eq + 1, NULL, 10));
    else
        proto_put_str(m, name, eq + 1);
}

int main(int argc, char **argv)
{
    struct proto_msg req;
    char id[QUEUE_ID_SIZE];
    int sock, fd;

    if (argc < 3)
        die("usage", "quarantine_client SOCKET store|store-garbage|raw ...");
    sock = client_connect(argv[1]);
    proto_msg_init(&req);
    if (strcmp(argv[2], "store") == 0 && argc >= 8) {
        fd = make_queue_file(argv[6], argv[7], argc > 8 ? argv[8] : NULL, id);
        proto_put_str(&req, "op", "store");
        proto_put_str(&req, "area", argv[3]);
        proto_put_str(&req, "id", id);
        proto_put_str(&req, "group", "policy");
        proto_put_str(&req, "status", argv[4]);
        proto_put_str(&req, "names", argv[5]);
        proto_put_str(&req, "reason", "test");
        proto_put_fd(&req, fd);
        close(fd);
        exchange(sock, &req, "store");
    } else if (strcmp(argv[2], "store-garbage") == 0 && argc >= 4) {
        fd = make_garbage();
        queue_id_make(id, 1700000000000000ULL, 4242);
        proto_put_str(&req, "op", "store");
        proto_put_str(&req, "area", argv[3]);
        proto_put_str(&req, "id", id);
        proto_put_fd(&req, fd);
        close(fd);
        exchange(sock, &req, "store");
    } else if (strcmp(argv[2], "raw") == 0 && argc >= 4) {
        proto_put_str(&req, "op", argv[3]);
        for (int i = 4; i < argc; i++)
            put_raw(&req, argv[i]);
        exchange(sock, &req, NULL);
    } else {
        die("usage", argv[2]);
    }
    proto_msg_free(&req);
    close(sock);
    return 0;
}
