/*
 * qmgr_inject - queue one message through qmgr's commit protocol with an
 * envelope the test chooses (relay tests: lifetime expiry, delay reports).
 *
 * Usage: qmgr_inject [-n COUNT] [-N] SOCKET AGE_SECONDS SENDER NOTIFY RCPT...
 *   -n COUNT     queue COUNT such messages over one connection (default 1;
 *                one "ok ID" line each)
 *   -N           commit with noscan=1 (as the quarantine daemon's release)
 *   SOCKET       QueuePath/private/qmgr
 *   AGE_SECONDS  the ARRIVAL record is this far in the past
 *   SENDER       envelope sender ("" = <>)
 *   NOTIFY       DSN NOTIFY bits for every recipient (0 = not given,
 *                1 NEVER, 2 SUCCESS, 4 FAILURE, 8 DELAY)
 *   RCPT...      recipients
 * The content is a small message with a Subject naming the age.  Prints
 * "ok ID" and exits 0, or a reason on stderr and exits 1.  Every wait is
 * bounded (5 s per answer).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "queue/queue_file.h"
#include "util/mem.h"

static void die(const char *what, const char *why)
{
    fprintf(stderr, "qmgr_inject: %s: %s\n", what, why ? why : "error");
    exit(1);
}

static void call(int fd, struct proto_msg *req, struct proto_msg *ans, const char *what)
{
    const char *why = NULL, *st;

    if (proto_send(fd, req) < 0)
        die(what, "send");
    proto_msg_init(ans);
    if (proto_recv(fd, ans, 5000, &why) < 0)
        die(what, why);
    st = proto_get_str(ans, "status");
    if (st == NULL || strcmp(st, "ok") != 0)
        die(what, proto_get_str(ans, "reason"));
}

static void write_file(int qfd, long age, const char *sender, unsigned notify, char **rcpts,
                       size_t n)
{
    struct queue_writer w;
    struct queue_envelope env;
    struct timeval tv;
    char body[256];

    gettimeofday(&tv, NULL);
    memset(&env, 0, sizeof env);
    env.arrival_us = ((uint64_t)tv.tv_sec - (uint64_t)age) * 1000000u;
    env.client_addr = "127.0.0.1";
    env.client_name = "localhost";
    env.helo = "inject.example.org";
    env.proto = "ESMTP";
    env.sender = sender;
    env.rcpts = xcalloc(n, sizeof *env.rcpts);
    env.nrcpts = n;
    for (size_t i = 0; i < n; i++) {
        env.rcpts[i].addr = rcpts[i];
        env.rcpts[i].notify = notify;
    }
    snprintf(body, sizeof body,
             "From: <%s>\r\nSubject: injected, %ld seconds old\r\nMessage-ID: <inject-%ld@example.org>\r\n"
             "\r\ntoken-inject-%ld\r\n", sender, age, (long)tv.tv_usec, age);
    if (queue_writer_open(&w, qfd) < 0 || queue_writer_envelope(&w, &env) < 0 ||
        queue_writer_content(&w, body, strlen(body)) < 0 || queue_writer_finish(&w) < 0)
        die("write", w.error);
    queue_writer_close(&w);
    free(env.rcpts);
}

/* new, write, commit: one message; prints "ok ID". */
static void inject_one(int fd, char **argv, int argc, bool noscan)
{
    struct proto_msg req, ans;
    char *id;
    int qfd;

    proto_msg_init(&req);
    proto_put_str(&req, "op", "new");
    proto_put_str(&req, "client", "localhost[127.0.0.1]");
    call(fd, &req, &ans, "new");
    proto_msg_free(&req);
    id = xstrdup(proto_get_str(&ans, "id") ? proto_get_str(&ans, "id") : "");
    if ((qfd = proto_take_fd(&ans, 0)) < 0)
        die("new", "no fd");
    proto_msg_free(&ans);
    write_file(qfd, atol(argv[1]), argv[2], (unsigned)atoi(argv[3]), argv + 4, (size_t)(argc - 4));
    close(qfd);
    proto_msg_init(&req);
    proto_put_str(&req, "op", "commit");
    proto_put_str(&req, "id", id);
    if (noscan)
        proto_put_int(&req, "noscan", 1);
    call(fd, &req, &ans, "commit");
    proto_msg_free(&req);
    proto_msg_free(&ans);
    printf("ok %s\n", id);
    free(id);
}

int main(int argc, char **argv)
{
    const char *why = NULL;
    long count = 1;
    bool noscan = false;
    int fd, opt;

    while ((opt = getopt(argc, argv, "+n:N")) != -1) {
        if (opt == 'n')
            count = atol(optarg);
        else if (opt == 'N')
            noscan = true;
        else
            die("usage", "qmgr_inject [-n COUNT] [-N] SOCKET AGE_SECONDS SENDER NOTIFY RCPT...");
    }
    argc -= optind;
    argv += optind;
    if (argc < 5 || count < 1)
        die("usage", "qmgr_inject [-n COUNT] [-N] SOCKET AGE_SECONDS SENDER NOTIFY RCPT...");
    if ((fd = proto_connect(argv[0])) < 0)
        die("connect", argv[0]);
    if (proto_hello_call(fd, "qmgr-commit", 1, 5000, &why) < 0)
        die("hello", why);
    for (long i = 0; i < count; i++)
        inject_one(fd, argv, argc, noscan);
    close(fd);
    return 0;
}
