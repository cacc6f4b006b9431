/*
 * cli_control - client side of master's control socket for the user
 * commands.
 *
 * Interface: cli_control_path(), cli_control_open(), cli_control_call()
 * (see cli_control.h).
 *
 * Diagnostics: nothing is printed here; callers get a category
 * (enum cli_control_err) and a short reason.  master checks every
 * connection's SO_PEERCRED and closes the ones it refuses without a word,
 * so a connection that dies during the hello is reported as
 * CLI_CONTROL_DENIED.
 *
 * Security: replies are trusted no further than lib/proto checked them.
 */
#include "cli_control.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/mem.h"

char *cli_control_path(const struct conf *c)
{
    return xasprintf("%s/public/control", conf_str(c, "mailgw.path", "QueuePath"));
}

static enum cli_control_err cli_control_connect_err(int e)
{
    if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
        return CLI_CONTROL_DOWN;
    if (e == EACCES || e == EPERM)
        return CLI_CONTROL_DENIED;
    return CLI_CONTROL_FAILED;
}

/* master answered the hello: ok, or a refusal with a reason. */
static int cli_control_hello_reply(const struct proto_msg *m, enum cli_control_err *err,
                                   const char **why)
{
    const char *status = proto_get_str(m, "status");

    if (status != NULL && strcmp(status, "ok") == 0)
        return 0;
    *err = CLI_CONTROL_FAILED;
    *why = "master refused the hello";
    return -1;
}

int cli_control_open(const char *path, int timeout_ms, enum cli_control_err *err,
                     const char **why)
{
    struct proto_msg m;
    const char *rwhy = NULL;
    int fd = proto_connect(path);

    if (fd < 0) {
        *err = cli_control_connect_err(errno);
        *why = strerror(errno);
        return -1;
    }
    proto_msg_init(&m);
    if (proto_send_hello(fd, CLI_CONTROL_PROTO, CLI_CONTROL_VERSION) < 0
        || proto_recv(fd, &m, timeout_ms, &rwhy) < 0) {
        bool timeout = rwhy != NULL && strcmp(rwhy, "timeout") == 0;
        *err = timeout ? CLI_CONTROL_FAILED : CLI_CONTROL_DENIED;
        *why = timeout ? "master does not answer" : "master closed the connection";
        proto_msg_free(&m);
        close(fd);
        return -1;
    }
    if (cli_control_hello_reply(&m, err, why) < 0) {
        proto_msg_free(&m);
        close(fd);
        return -1;
    }
    proto_msg_free(&m);
    *err = CLI_CONTROL_OK;
    return fd;
}

int cli_control_call(int fd, const struct proto_msg *req, struct proto_msg *reply,
                     int timeout_ms, const char **why)
{
    if (proto_send(fd, req) < 0) {
        *why = strerror(errno);
        return -1;
    }
    return proto_recv(fd, reply, timeout_ms, why);
}
