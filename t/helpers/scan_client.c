/*
 * scan_client - test client for scand's scanning protocol (private/scand,
 * CONTRACTS.md "qmgr -> scand scanning protocol").
 *
 * Usage: scan_client [-i ID] [-r RCPT]... [-s SENDER] [-w FILE]... [-d DIR]
 *                    [-n COUNT] [-t SECONDS] [-H] SOCKET MESSAGE
 * Builds a queue file from MESSAGE (bare LF become CRLF, as smtpd stores
 * it) with the lib/queue writer in an anonymous temporary file, then per
 * request: connects, sends hello and {op="scan", ...} with the queue file
 * (read-only) as fd 0, and prints the reply as "name=value" lines
 * followed by "--".  -s sets the envelope sender ("" = <>).  Each -w FILE
 * is created empty and passed as fd 1, 2, ... (files for rewritten
 * content); after the reply a non-empty FILE is read with the lib/queue
 * reader into FILE.eml (the content) and FILE.env ("sender=", "rcpt="
 * lines).  DATA attributes print as "name=(data N bytes)", or with -d
 * DIR are saved as DIR/NAME.N (N counts from 1 per name) and print as
 * "name=@DIR/NAME.N".  With -H it connects and sends hello, prints
 * "connected", then waits for a line on stdin before sending the request
 * (lets a test act on the busy worker).  -n repeats the request (for
 * benchmarks: only the last reply is printed, and "rate=N.NN msg/s" on
 * stderr).
 * Exit 0 after replies; 2 when a reply did not come ("noreply: WHY" is
 * printed); 1 on a usage or local error.  Every wait is bounded (-t,
 * default 60 s).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "queue/queue_file.h"
#include "util/buf.h"
#include "util/mem.h"

#define MAX_RCPTS 64
#define MAX_WFILES 7

struct client {
    const char *id, *sock_path, *sender, *datadir;
    const char *wfiles[MAX_WFILES];
    size_t nwfiles;
    const char *rcpts[MAX_RCPTS];
    size_t nrcpts;
    long count, timeout_s;
    int hold;
};

static void die(const char *what, const char *why)
{
    fprintf(stderr, "scan_client: %s: %s\n", what, why ? why : strerror(errno));
    exit(1);
}

static void read_message(const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    int c, prev = 0;

    if (f == NULL)
        die(path, NULL);
    while ((c = getc(f)) != EOF) {
        if (c == '\n' && prev != '\r')
            buf_append_byte(out, '\r');
        buf_append_byte(out, (uint8_t)c);
        prev = c;
    }
    fclose(f);
}

/* The queue file in an anonymous file; returns a read-only fd to it. */
static int build_queue_file(const struct client *cl, const char *msgpath)
{
    struct queue_rcpt rcpts[MAX_RCPTS];
    struct queue_envelope env;
    struct queue_writer w;
    struct buf msg = BUF_INIT;
    char self[64];
    int fd = open("/tmp", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600), ro;

    if (fd < 0)
        die("O_TMPFILE in /tmp", NULL);
    memset(&env, 0, sizeof(env));
    memset(rcpts, 0, sizeof(rcpts));
    for (size_t i = 0; i < cl->nrcpts; i++)
        rcpts[i].addr = cl->rcpts[i];
    env.arrival_us = (uint64_t)time(NULL) * 1000000u;
    env.client_addr = "127.0.0.1";
    env.client_name = "localhost";
    env.helo = "client.example.test";
    env.proto = "ESMTP";
    env.sender = cl->sender;
    env.rcpts = rcpts;
    env.nrcpts = cl->nrcpts;
    read_message(msgpath, &msg);
    if (queue_writer_open(&w, fd) < 0 || queue_writer_envelope(&w, &env) < 0
        || queue_writer_content(&w, msg.data, msg.len) < 0 || queue_writer_finish(&w) < 0)
        die("queue writer", w.error);
    queue_writer_close(&w);
    buf_free(&msg);
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    ro = open(self, O_RDONLY | O_CLOEXEC);
    if (ro < 0)
        die(self, NULL);
    close(fd);
    return ro;
}

static void put_request(const struct client *cl, struct proto_msg *m, int qfd)
{
    proto_put_str(m, "op", "scan");
    proto_put_str(m, "id", cl->id);
    proto_put_str(m, "sender", cl->sender);
    proto_put_str(m, "client_addr", "127.0.0.1");
    proto_put_str(m, "client_name", "localhost");
    proto_put_str(m, "helo", "client.example.test");
    for (size_t i = 0; i < cl->nrcpts; i++)
        proto_put_str(m, "rcpt", cl->rcpts[i]);
    proto_put_fd(m, qfd);
    for (size_t i = 0; i < cl->nwfiles; i++) {
        int fd = open(cl->wfiles[i], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            die(cl->wfiles[i], NULL);
        proto_put_fd(m, fd);
        close(fd);
    }
}

static void save_data(const struct client *cl, const struct proto_attr *a, unsigned n)
{
    char path[4200];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.%u", cl->datadir, a->name, n);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(a->value, 1, a->len, f) != a->len)
        die(path, NULL);
    fclose(f);
    printf("%s=@%s\n", a->name, path);
}

static void print_reply(const struct client *cl, const struct proto_msg *m)
{
    for (size_t i = 0; i < m->nattrs; i++) {
        const struct proto_attr *a = &m->attrs[i];
        unsigned n = 1;
        for (size_t j = 0; j < i; j++)
            n += strcmp(m->attrs[j].name, a->name) == 0;
        if (a->type == PROTO_INT)
            printf("%s=%lld\n", a->name, (long long)a->num);
        else if (a->type == PROTO_DATA && cl->datadir)
            save_data(cl, a, n);
        else if (a->type == PROTO_DATA)
            printf("%s=(data %zu bytes)\n", a->name, a->len);
        else
            printf("%s=%.*s\n", a->name, (int)a->len, (const char *)a->value);
    }
    printf("--\n");
    fflush(stdout);
}

/* FILE -> FILE.eml + FILE.env when scand wrote a queue file into it. */
static void dump_rewrite(const char *path)
{
    char out[4200], buf[65536];
    struct queue_file qf;
    struct queue_content qc;
    const char *why = NULL;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FILE *f;

    if (fd < 0 || lseek(fd, 0, SEEK_END) <= 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (queue_file_read(fd, &qf, &why) < 0)
        die(path, why);
    snprintf(out, sizeof(out), "%s.env", path);
    if ((f = fopen(out, "w")) == NULL)
        die(out, NULL);
    fprintf(f, "sender=%s\n", qf.env.sender);
    for (size_t i = 0; i < qf.env.nrcpts; i++)
        fprintf(f, "rcpt=%s\n", qf.env.rcpts[i].addr);
    fclose(f);
    snprintf(out, sizeof(out), "%s.eml", path);
    if ((f = fopen(out, "wb")) == NULL)
        die(out, NULL);
    queue_content_open(&qc, fd, &qf);
    while ((n = queue_content_read(&qc, buf, sizeof(buf), &why)) > 0)
        fwrite(buf, 1, (size_t)n, f);
    fclose(f);
    if (n < 0)
        die(path, why);
    queue_file_free(&qf);
    close(fd);
}

/* One request; 0 with the reply printed when print is set, -1 noreply. */
static int scan_once(const struct client *cl, int qfd, int print)
{
    struct proto_msg m;
    const char *why = NULL;
    char line[64];
    int sock = proto_connect(cl->sock_path), ret = 0;

    if (sock < 0)
        die("connect", cl->sock_path);
    if (proto_send_hello(sock, "scand", 1) < 0)
        die("hello", NULL);
    if (cl->hold) {
        printf("connected\n");
        fflush(stdout);
        if (fgets(line, sizeof(line), stdin) == NULL)
            line[0] = 0;
    }
    proto_msg_init(&m);
    put_request(cl, &m, qfd);
    if (proto_send(sock, &m) < 0) {
        why = "send failed";
        ret = -1;
    }
    proto_msg_reset(&m);
    if (ret == 0 && proto_recv(sock, &m, (int)(cl->timeout_s * 1000), &why) < 0)
        ret = -1;
    if (ret < 0) {
        printf("noreply: %s\n", why ? why : "?");
        fflush(stdout);
    } else if (print) {
        print_reply(cl, &m);
        for (size_t i = 0; i < cl->nwfiles; i++)
            dump_rewrite(cl->wfiles[i]);
    }
    proto_msg_free(&m);
    close(sock);
    return ret;
}

static void parse_args(struct client *cl, int argc, char **argv)
{
    int ch;

    cl->id = "TESTID0001";
    cl->count = 1;
    cl->timeout_s = 60;
    cl->sender = "sender@example.test";
    while ((ch = getopt(argc, argv, "i:r:s:w:d:n:t:H")) != -1) {
        if (ch == 'i')
            cl->id = optarg;
        else if (ch == 'r' && cl->nrcpts < MAX_RCPTS)
            cl->rcpts[cl->nrcpts++] = optarg;
        else if (ch == 's')
            cl->sender = optarg;
        else if (ch == 'w' && cl->nwfiles < MAX_WFILES)
            cl->wfiles[cl->nwfiles++] = optarg;
        else if (ch == 'd')
            cl->datadir = optarg;
        else if (ch == 'n')
            cl->count = atol(optarg);
        else if (ch == 't')
            cl->timeout_s = atol(optarg);
        else if (ch == 'H')
            cl->hold = 1;
        else
            die("usage", "scan_client [-i ID] [-r RCPT]... [-n N] [-t S] [-H] SOCKET MESSAGE");
    }
    if (argc - optind != 2 || cl->count < 1 || cl->timeout_s < 1)
        die("usage", "scan_client [-i ID] [-r RCPT]... [-n N] [-t S] [-H] SOCKET MESSAGE");
    if (cl->nrcpts == 0)
        cl->rcpts[cl->nrcpts++] = "rcpt@example.test";
    cl->sock_path = argv[optind];
}

int main(int argc, char **argv)
{
    struct client cl;
    struct timespec t0, t1;
    int qfd;

    memset(&cl, 0, sizeof(cl));
    parse_args(&cl, argc, argv);
    qfd = build_queue_file(&cl, argv[optind + 1]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < cl.count; i++) {
        if (scan_once(&cl, qfd, i == cl.count - 1) < 0)
            return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (cl.count > 1) {
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        fprintf(stderr, "rate=%.2f msg/s\n", s > 0 ? (double)cl.count / s : 0.0);
    }
    close(qfd);
    return 0;
}
