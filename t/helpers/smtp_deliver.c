/*
 * smtp_deliver - test client of the smtp daemon (qmgr's role in the
 * delivery protocol, CONTRACTS.md).
 *
 * Usage: smtp_deliver -s SOCKET -n NEXTHOP [-f SENDER] [-i ID] [-b BODY]
 *                     [-u] [-e ENVID] [-r RET] [-m MESSAGE_FILE] [-t SECS]
 *                     RCPT[,NOTIFY[,ORCPT]] ...
 * Builds a queue file with the lib/queue writer (in $TMPDIR), the content
 * being MESSAGE_FILE's bytes exactly as they are (bare CR/LF included),
 * opens it read-only, connects to SOCKET, says hello, sends one deliver
 * request with the fd, and prints the answer:
 *   status=done
 *   relay=NAME[IP]:PORT
 *   unreachable=0|1
 *   rcpt=<ADDR> status=sent dsn=2.0.0 dsn_passed=0 reply=TEXT
 * NOTIFY is a number (enum queue_notify bits).  Exit 0 when an answer
 * came, 1 on usage or local errors, 2 when the daemon did not answer.
 */
#include "proto/proto.h"
#include "queue/queue_file.h"
#include "util/mem.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

struct opts {
    const char *sock, *nexthop, *sender, *id, *body, *envid, *ret, *msgfile;
    bool utf8;
    int timeout;
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void read_file(const char *path, struct buf *out)
{
    char chunk[65536];
    ssize_t n;
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0)
        die(path);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_append(out, chunk, (size_t)n);
    if (n < 0)
        die("read");
    if (path)
        close(fd);
}

static void parse_rcpt(const char *arg, struct queue_rcpt *r)
{
    char *copy = xstrdup(arg);
    char *notify = strchr(copy, ',');
    r->addr = copy;
    r->orcpt = NULL;
    r->notify = 0;
    if (notify) {
        *notify++ = 0;
        char *orcpt = strchr(notify, ',');
        if (orcpt) {
            *orcpt++ = 0;
            r->orcpt = orcpt;
        }
        r->notify = (unsigned)strtoul(notify, NULL, 10);
    }
}

static int body_code(const char *b)
{
    if (!b)
        return QUEUE_BODY_NONE;
    if (strcmp(b, "7BIT") == 0)
        return QUEUE_BODY_7BIT;
    if (strcmp(b, "8BITMIME") == 0)
        return QUEUE_BODY_8BITMIME;
    return QUEUE_BODY_BINARYMIME;
}

/* Write the queue file; returns a read-only fd of it. */
static int make_queue_file(const struct opts *o, struct queue_envelope *env, const struct buf *msg)
{
    const char *tmp = getenv("TMPDIR");
    char *path = xasprintf("%s/smtp_deliver.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    struct queue_writer w;
    if (fd < 0)
        die("mkstemp");
    if (queue_writer_open(&w, fd) < 0 || queue_writer_envelope(&w, env) < 0 ||
        queue_writer_content(&w, msg->data, msg->len) < 0 || queue_writer_finish(&w) < 0) {
        fprintf(stderr, "smtp_deliver: queue writer: %s\n", w.error ? w.error : "?");
        exit(1);
    }
    queue_writer_close(&w);
    close(fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    if (ro < 0)
        die(path);
    unlink(path);
    free(path);
    return ro;
}

static void build_request(const struct opts *o, const struct queue_envelope *env, size_t size,
                          int fd, struct proto_msg *m)
{
    proto_put_str(m, "op", "deliver");
    proto_put_str(m, "id", o->id);
    proto_put_str(m, "nexthop", o->nexthop);
    proto_put_str(m, "sender", o->sender);
    if (o->envid)
        proto_put_str(m, "envid", o->envid);
    if (o->ret)
        proto_put_str(m, "ret", o->ret);
    proto_put_str(m, "body_type", o->body ? o->body : "");
    proto_put_int(m, "smtputf8", o->utf8);
    proto_put_int(m, "size", (int64_t)size);
    proto_put_int(m, "arrival_us", (int64_t)env->arrival_us);
    for (size_t i = 0; i < env->nrcpts; i++) {
        proto_put_str(m, "rcpt", env->rcpts[i].addr);
        proto_put_str(m, "rcpt_orcpt", env->rcpts[i].orcpt ? env->rcpts[i].orcpt : "");
        proto_put_int(m, "rcpt_notify", env->rcpts[i].notify);
    }
    proto_put_fd(m, fd);
}

static void print_answer(const struct proto_msg *a)
{
    const char *status = proto_get_str(a, "status");
    const char *relay = proto_get_str(a, "relay");
    int64_t unreachable = -1;
    proto_get_int(a, "unreachable", &unreachable);
    printf("status=%s\nrelay=%s\nunreachable=%lld\n", status ? status : "",
           relay ? relay : "", (long long)unreachable);
    if (status && strcmp(status, "error") == 0)
        printf("reason=%s\n", proto_get_str(a, "reason") ? proto_get_str(a, "reason") : "");
    for (size_t i = 0; i < proto_count(a, "rcpt_status"); i++) {
        const struct proto_attr *st = proto_get_nth(a, "rcpt_status", i);
        const struct proto_attr *dsn = proto_get_nth(a, "rcpt_dsn", i);
        const struct proto_attr *rep = proto_get_nth(a, "rcpt_reply", i);
        const struct proto_attr *pass = proto_get_nth(a, "rcpt_dsn_passed", i);
        printf("rcpt=%zu status=%.*s dsn=%.*s dsn_passed=%lld reply=%.*s\n", i, (int)st->len,
               (const char *)st->value, dsn ? (int)dsn->len : 0, dsn ? (const char *)dsn->value : "",
               pass ? (long long)pass->num : -1, rep ? (int)rep->len : 0,
               rep ? (const char *)rep->value : "");
    }
}

static int talk(const struct opts *o, struct proto_msg *req)
{
    const char *why = NULL;
    struct proto_msg a;
    int s = proto_connect(o->sock);
    if (s < 0)
        die(o->sock);
    proto_msg_init(&a);
    if (proto_send_hello(s, "smtp-deliver", 1) < 0 || proto_recv(s, &a, o->timeout * 1000, &why) < 0)
        goto fail;
    proto_msg_reset(&a);
    if (proto_send(s, req) < 0 || proto_recv(s, &a, o->timeout * 1000, &why) < 0)
        goto fail;
    print_answer(&a);
    proto_msg_free(&a);
    close(s);
    return 0;
fail:
    fprintf(stderr, "smtp_deliver: no answer: %s\n", why ? why : "send failed");
    return 2;
}

int main(int argc, char **argv)
{
    struct opts o = { .sender = "sender@example.org", .id = "TESTID0001", .timeout = 60 };
    int ch;
    while ((ch = getopt(argc, argv, "s:n:f:i:b:ue:r:m:t:")) != -1) {
        switch (ch) {
        case 's': o.sock = optarg; break;
        case 'n': o.nexthop = optarg; break;
        case 'f': o.sender = optarg; break;
        case 'i': o.id = optarg; break;
        case 'b': o.body = optarg; break;
        case 'u': o.utf8 = true; break;
        case 'e': o.envid = optarg; break;
        case 'r': o.ret = optarg; break;
        case 'm': o.msgfile = optarg; break;
        case 't': o.timeout = atoi(optarg); break;
        default: fprintf(stderr, "usage: see the source\n"); return 1;
        }
    }
    if (!o.sock || !o.nexthop || optind >= argc) {
        fprintf(stderr, "smtp_deliver: -s SOCKET -n NEXTHOP and a recipient are required\n");
        return 1;
    }
    struct buf msg = BUF_INIT;
    read_file(o.msgfile, &msg);
    struct queue_envelope env = { 0 };
    struct timeval tv;
    gettimeofday(&tv, NULL);
    env.arrival_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    env.sender = o.sender;
    env.body_type = body_code(o.body);
    env.smtputf8 = o.utf8;
    env.nrcpts = (size_t)(argc - optind);
    env.rcpts = xcalloc(env.nrcpts, sizeof(*env.rcpts));
    for (size_t i = 0; i < env.nrcpts; i++)
        parse_rcpt(argv[optind + (int)i], &env.rcpts[i]);
    int fd = make_queue_file(&o, &env, &msg);
    struct proto_msg req;
    proto_msg_init(&req);
    build_request(&o, &env, msg.len, fd, &req);
    close(fd);
    int rc = talk(&o, &req);
    proto_msg_free(&req);
    return rc;
}
