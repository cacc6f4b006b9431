/*
 * mailgw_ctl - client side of master's control socket and of the pid
 * file, for the `mailgw` command.
 *
 * Interface: see mailgw_ctl.h.  mailgw_ctl_simple() runs the commands
 * that master relays to a daemon (recv-off, send-on, flush, stats, ...):
 * it prints one line per daemon answer and returns 0 when every daemon
 * said ok, 1 otherwise (also when master does not know the command:
 * "not supported by this version").
 *
 * Diagnostics go to stderr prefixed "mailgw: ".  Nothing here trusts the
 * reply beyond what lib/proto checked: strings are printed as received
 * (they cannot hold CR/LF by the codec's rules).
 */
#include "mailgw_ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/buf.h"
#include "util/mem.h"

struct conf *mailgw_ctl_conf(const char *path, bool verbose)
{
    struct buf diag = BUF_INIT;
    struct conf *c = conf_load(path, &diag);

    if (c == NULL)
        fprintf(stderr, "mailgw: configuration %s has errors:\n%s", path,
                diag.data ? diag.data : "");
    else if (verbose && diag.len > 0)
        fprintf(stderr, "%s", diag.data);
    buf_free(&diag);
    return c;
}

char *mailgw_ctl_pid_path(const struct conf *c)
{
    const char *pid = conf_str(c, "mailgw.path", "PidFile");

    if (pid != NULL && *pid != 0)
        return xstrdup(pid);
    return xasprintf("%s/pid/master.pid", conf_str(c, "mailgw.path", "QueuePath"));
}

pid_t mailgw_ctl_running(const struct conf *c)
{
    char *path = mailgw_ctl_pid_path(c);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char text[32];
    pid_t pid = 0;

    free(path);
    if (fd < 0)
        return 0;
    /* master holds an exclusive lock as long as it lives. */
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
        if (n > 0) {
            text[n] = 0;
            pid = (pid_t)strtol(text, NULL, 10);
        }
        if (pid <= 0)
            pid = -1;   /* running, pid not written yet */
    }
    close(fd);
    return pid;
}

int mailgw_ctl_connect(const struct conf *c)
{
    char *path = xasprintf("%s/public/control", conf_str(c, "mailgw.path", "QueuePath"));
    int fd = proto_connect(path);
    struct proto_msg m;
    const char *why = NULL;
    const char *status;

    free(path);
    if (fd < 0)
        return -1;
    proto_msg_init(&m);
    if (proto_send_hello(fd, MAILGW_CTL_PROTO, MAILGW_CTL_VERSION) < 0
        || proto_recv(fd, &m, 10000, &why) < 0) {
        /* master closes connections it refuses (SO_PEERCRED) */
        proto_msg_free(&m);
        close(fd);
        errno = EACCES;
        return -1;
    }
    status = proto_get_str(&m, "status");
    if (status == NULL || strcmp(status, "ok") != 0) {
        const char *reason = proto_get_str(&m, "reason");
        fprintf(stderr, "mailgw: control socket: %s\n", reason ? reason : "hello refused");
        proto_msg_free(&m);
        close(fd);
        errno = EPROTO;
        return -1;
    }
    proto_msg_free(&m);
    return fd;
}

int mailgw_ctl_request(int fd, const char *op, struct proto_msg *reply, int timeout_ms,
                       const char **why)
{
    struct proto_msg m;
    int rc;

    proto_msg_init(&m);
    proto_put_str(&m, "op", op);
    rc = proto_send(fd, &m);
    proto_msg_free(&m);
    if (rc < 0) {
        *why = strerror(errno);
        return -1;
    }
    return proto_recv(fd, reply, timeout_ms, why);
}

static void mailgw_ctl_print_lines(const struct proto_msg *reply, const char *name, FILE *out)
{
    const struct proto_attr *a;

    for (size_t i = 0; (a = proto_get_nth(reply, name, i)) != NULL; i++)
        if (a->type == PROTO_STR)
            fprintf(out, "%.*s\n", (int)a->len, (const char *)a->value);
}

int mailgw_ctl_simple(const char *config, const char *op)
{
    struct conf *c = mailgw_ctl_conf(config, false);
    struct proto_msg reply;
    const char *why = NULL, *status, *reason;
    int fd, rc = 1;

    if (c == NULL)
        return 1;
    fd = mailgw_ctl_connect(c);
    if (fd < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            fprintf(stderr, "mailgw: %s: mailgw is not running\n", op);
        else
            fprintf(stderr, "mailgw: %s: cannot talk to master: %s\n", op, strerror(errno));
        conf_free(c);
        return 1;
    }
    proto_msg_init(&reply);
    if (mailgw_ctl_request(fd, op, &reply, 30000, &why) < 0) {
        fprintf(stderr, "mailgw: %s: no answer from master: %s\n", op, why ? why : "?");
    } else {
        status = proto_get_str(&reply, "status");
        reason = proto_get_str(&reply, "reason");
        rc = status != NULL && strcmp(status, "ok") == 0 ? 0 : 1;
        mailgw_ctl_print_lines(&reply, "line", rc == 0 ? stdout : stderr);
        if (reason != NULL)
            fprintf(stderr, "mailgw: %s\n", reason);
    }
    proto_msg_free(&reply);
    close(fd);
    conf_free(c);
    return rc;
}
