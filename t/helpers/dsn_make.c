/*
 * dsn_make - test helper: builds a delivery status notification with
 * lib/dsn from a message on stdin and prints it on stdout.
 *
 * Usage: dsn_make [-s SENDER] [-e ENVID] [-r FULL|HDRS] [-u] [-H HOST]
 *                 [-q QUEUEID] [-l LIMIT] [-t TEMPLATE] [-b BOUNDARY]...
 *                 [-T NOW] [-Q] -R ACTION -a RCPT [-o ORCPT] [-S STATUS]
 *                 [-m REMOTE] [-d DIAG] [-w RETRY_UNTIL] [-R ...]
 *   -R starts a recipient (failed|delayed|delivered|relayed|expanded);
 *   -a -o -S -m -d -w set its fields.  The original is written into a
 *   real queue file with the lib/queue writer and read back with the
 *   reader, as qmgr does.  -Q: also queue the report (dsn_envelope_make +
 *   dsn_queue_write into a second file), read that back and print its
 *   envelope on stderr ("sender=<> rcpt=<...> body=N smtputf8=N").
 * Exit: 0 built; 2 no report (the reason on stderr, e.g. "no bounce to
 * <>"); 1 usage or error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn/dsn.h"
#include "queue/queue_file.h"
#include "util/buf.h"
#include "util/mem.h"

#define MAX_RCPTS 64

static struct dsn_rcpt_report reports[MAX_RCPTS];
static struct queue_rcpt qrcpts[MAX_RCPTS];
static size_t nrcpts;

static int tmp_file(void)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *path = xasprintf("%s/dsn_make.XXXXXX", dir);
    int fd = mkostemp(path, O_CLOEXEC);

    if (fd >= 0)
        unlink(path);
    free(path);
    return fd;
}

static int parse_action(const char *s, enum dsn_action *a)
{
    static const char *const names[] = { "failed", "delayed", "delivered", "relayed",
                                         "expanded" };
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            *a = (enum dsn_action)i;
            return 0;
        }
    }
    return -1;
}

static int rcpt_option(int opt, const char *arg)
{
    struct dsn_rcpt_report *r;

    if (opt == 'R') {
        if (nrcpts == MAX_RCPTS)
            return -1;
        r = &reports[nrcpts++];
        return parse_action(arg, &r->action);
    }
    if (nrcpts == 0)
        return -1;
    r = &reports[nrcpts - 1];
    switch (opt) {
    case 'a': r->final_rcpt = arg; break;
    case 'o': r->orcpt = arg; break;
    case 'S': r->status = arg; break;
    case 'm': r->remote_mta = arg; break;
    case 'd': r->diagnostic = arg; break;
    case 'w': r->will_retry_until = (time_t)strtoll(arg, NULL, 10); break;
    default: return -1;
    }
    return 0;
}

static int write_original(int fd, struct queue_envelope *env)
{
    struct queue_writer w;
    char chunk[8192];
    ssize_t n;

    for (size_t i = 0; i < nrcpts; i++) {
        qrcpts[i].addr = reports[i].final_rcpt ? reports[i].final_rcpt : "x@example.test";
        qrcpts[i].orcpt = reports[i].orcpt;
    }
    env->rcpts = qrcpts;
    env->nrcpts = nrcpts;
    if (queue_writer_open(&w, fd) < 0 || queue_writer_envelope(&w, env) < 0)
        goto fail;
    while ((n = read(0, chunk, sizeof chunk)) > 0) {
        if (queue_writer_content(&w, chunk, (size_t)n) < 0)
            goto fail;
    }
    if (n < 0 || queue_writer_finish(&w) < 0)
        goto fail;
    queue_writer_close(&w);
    return 0;
fail:
    fprintf(stderr, "dsn_make: original: %s\n", w.error ? w.error : "read error");
    queue_writer_close(&w);
    return -1;
}

static int queue_report(const struct queue_envelope *orig, const struct dsn_message *msg)
{
    struct dsn_envelope de;
    struct queue_file qf;
    const char *why = NULL;
    int fd = tmp_file(), rc = -1;

    dsn_envelope_make(&de, orig, msg, 1700000000000000ULL);
    if (fd < 0 || dsn_queue_write(fd, &de, msg, &why) < 0 || queue_file_read(fd, &qf, &why) < 0) {
        fprintf(stderr, "dsn_make: queueing the report: %s\n", why ? why : "no temp file");
    } else {
        fprintf(stderr, "sender=<%s> rcpt=<%s> notify=%u nrcpts=%zu body=%d smtputf8=%d size=%llu\n",
                qf.env.sender, qf.env.rcpts[0].addr, qf.env.rcpts[0].notify, qf.env.nrcpts,
                qf.env.body_type, (int)qf.env.smtputf8, (unsigned long long)qf.content_size);
        queue_file_free(&qf);
        rc = 0;
    }
    dsn_envelope_free(&de);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int build(struct dsn_request *req, struct queue_envelope *env, int do_queue)
{
    struct queue_file qf;
    struct dsn_message msg;
    const char *why = NULL;
    int fd = tmp_file(), rc = 1;

    if (fd < 0 || write_original(fd, env) < 0 || queue_file_read(fd, &qf, &why) < 0) {
        fprintf(stderr, "dsn_make: %s\n", why ? why : "cannot make the original");
        return 1;
    }
    req->fd = fd;
    req->qf = &qf;
    if (dsn_should_bounce(&qf.env, fd, &qf, &why) != DSN_SEND) {
        fprintf(stderr, "%s\n", why);
        rc = 2;
    } else if (dsn_build(req, &msg, &why) < 0) {
        fprintf(stderr, "dsn_make: %s\n", why);
        dsn_message_free(&msg);
    } else {
        rc = fwrite(msg.text.data, 1, msg.text.len, stdout) == msg.text.len ? 0 : 1;
        if (rc == 0 && do_queue)
            rc = queue_report(&qf.env, &msg) < 0;
        dsn_message_free(&msg);
    }
    queue_file_free(&qf);
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    struct queue_envelope env = { .arrival_us = 1700000000000000ULL, .sender = "sender@example.org",
                                  .client_addr = "192.0.2.1", .proto = "ESMTP" };
    struct dsn_request req = { .hostname = "mx.example.test", .queue_id = "4Xyz0123abcd" };
    const char *boundaries[16] = { NULL };
    struct buf tmpl = BUF_INIT;
    size_t nb = 0;
    int opt, do_queue = 0;
    const char *why;

    while ((opt = getopt(argc, argv, "s:e:r:uH:q:l:t:b:T:QR:a:o:S:m:d:w:")) != -1) {
        switch (opt) {
        case 's': env.sender = optarg; break;
        case 'e': env.envid = optarg; break;
        case 'r': env.ret = strcmp(optarg, "HDRS") == 0 ? QUEUE_RET_HDRS : QUEUE_RET_FULL; break;
        case 'u': env.smtputf8 = true; break;
        case 'H': req.hostname = optarg; break;
        case 'q': req.queue_id = optarg; break;
        case 'l': req.content_limit = (size_t)strtoull(optarg, NULL, 10); break;
        case 'T': req.now = (time_t)strtoll(optarg, NULL, 10); break;
        case 'Q': do_queue = 1; break;
        case 'b':
            if (nb < 15)
                boundaries[nb++] = optarg;
            break;
        case 't':
            if (dsn_template_load(optarg, &tmpl, &why) < 0) {
                fprintf(stderr, "dsn_make: %s: %s\n", optarg, why);
                return 1;
            }
            req.template_text = tmpl.data ? tmpl.data : "";
            req.template_len = tmpl.len;
            break;
        default:
            if (rcpt_option(opt, optarg) < 0) {
                fprintf(stderr, "dsn_make: bad option -%c\n", opt);
                return 1;
            }
        }
    }
    if (nrcpts == 0) {
        fprintf(stderr, "dsn_make: no -R recipient\n");
        return 1;
    }
    req.reports = reports;
    req.nreports = nrcpts;
    req.boundary_candidates = nb ? boundaries : NULL;
    int rc = build(&req, &env, do_queue);
    buf_free(&tmpl);
    return rc;
}
