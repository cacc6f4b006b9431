/*
 * quarantine_conn - the daemon's listeners and connections.
 *
 * Interface: quar_listen_start(), quar_listen_stop(), quar_send().
 *
 * Listeners: fd 4 (private/quarantine) and fd 5 (public/quarantine) from
 * master; a missing one is bound here under QueuePath (public mode 0660).
 * Each accepted connection is a non-blocking proto_conn: the first frame
 * must be the hello {proto="quarantine", version=1}, then every frame is
 * one request answered in order (quarantine_ops.c).
 *
 * Security: on the public socket the peer's credentials (SO_PEERCRED) must
 * be root, our own uid, or a user of [mailgw.options] AdminGroup (primary
 * or supplementary group); anyone else is refused and logged.  The
 * "store" request is accepted on the private socket only (a store needs
 * a queue file fd from qmgr).  A bad frame closes that connection.
 */
#include "quarantine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define QUAR_MAX_CONNS 256
#define QUAR_MAX_GROUPS 256

static int quar_bind(struct quar *q, const char *rel, mode_t mode)
{
    char *path = server_queue_file(q->srv, rel);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = -1;

    if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >= sizeof(sun.sun_path)) {
        log_error("%s: socket path too long", path);
        goto out;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("%s: socket: %m", path);
        goto out;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 64) < 0
        || chmod(path, mode) < 0) {
        log_warn("%s: cannot listen: %m", path);
        close(fd);
        fd = -1;
    }
out:
    free(path);
    return fd;
}

static bool quar_in_admin_group(const struct quar *q, uid_t uid, gid_t gid)
{
    struct passwd *pw;
    gid_t groups[QUAR_MAX_GROUPS];
    int n = QUAR_MAX_GROUPS;

    if (!q->have_admin_gid)
        return false;
    if (gid == q->admin_gid)
        return true;
    pw = getpwuid(uid);
    if (pw == NULL || getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == q->admin_gid)
            return true;
    return false;
}

static bool quar_peer_allowed(const struct quar *q, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        log_warn("public/quarantine: SO_PEERCRED: %m");
        return false;
    }
    if (cred.uid == 0 || cred.uid == getuid() || quar_in_admin_group(q, cred.uid, cred.gid))
        return true;
    log_warn("public/quarantine: refused uid %ld (pid %ld): not root, not the mailgw user, "
             "not in AdminGroup", (long)cred.uid, (long)cred.pid);
    return false;
}

static void quar_conn_close(struct quar_conn *c)
{
    struct quar *q = c->q;

    event_free(c->ev_read);
    event_free(c->ev_write);
    proto_conn_close(&c->pc);
    free(c);
    q->nconns--;
    if (q->stopping && q->nconns == 0)
        server_exit(q->srv, 0);
}

void quar_send(struct quar_conn *c, const struct proto_msg *m)
{
    if (proto_conn_queue(&c->pc, m) < 0)
        log_warn("reply frame too large: dropped");
}

static void quar_hello(struct quar_conn *c, const struct proto_msg *m, bool *bad)
{
    const char *why = NULL;
    struct proto_msg reply;

    if (proto_check_hello(m, QUAR_PROTO, QUAR_PROTO_VERSION, &why) < 0) {
        log_warn("%s/quarantine: bad hello: %s", c->public ? "public" : "private",
                 why ? why : "?");
        *bad = true;
        return;
    }
    c->hello = true;
    proto_msg_init(&reply);
    proto_put_str(&reply, "status", "ok");
    quar_send(c, &reply);
    proto_msg_free(&reply);
}

/* Take and serve every complete frame; false when the connection must go. */
static bool quar_serve_frames(struct quar_conn *c)
{
    const char *why = NULL;
    bool bad = false;

    for (;;) {
        struct proto_msg m;
        proto_msg_init(&m);
        int n = proto_conn_next(&c->pc, &m, &why);
        if (n == 1) {
            server_touch(c->q->srv);
            if (!c->hello)
                quar_hello(c, &m, &bad);
            else
                quar_request(c, &m);
        }
        proto_msg_free(&m);
        if (n == 0)
            return !bad;
        if (n < 0 || bad) {
            if (n < 0)
                log_warn("quarantine: bad frame: %s", why ? why : "?");
            return false;
        }
    }
}

static void quar_conn_flush(struct quar_conn *c)
{
    int r = proto_conn_flush(&c->pc);

    if (r < 0) {
        quar_conn_close(c);
        return;
    }
    if (proto_conn_outlen(&c->pc) > 0)
        event_add(c->ev_write, NULL);
}

static void quar_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct quar_conn *c = arg;
    const char *why = NULL;
    int r;

    while ((r = proto_conn_read(&c->pc, &why)) == 1)
        ;
    if (!quar_serve_frames(c) || r < 0) {
        proto_conn_flush(&c->pc);
        quar_conn_close(c);
        return;
    }
    quar_conn_flush(c);
}

static void quar_on_write(evutil_socket_t fd, short what, void *arg)
{
    quar_conn_flush(arg);
}

static void quar_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct quar *q = arg;
    bool public = q->listen_fd[1] == lfd;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct quar_conn *c;

    if (fd < 0)
        return;
    if (q->nconns >= QUAR_MAX_CONNS || (public && !quar_peer_allowed(q, fd))) {
        if (q->nconns >= QUAR_MAX_CONNS)
            log_warn("too many connections (%d): refused", QUAR_MAX_CONNS);
        close(fd);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->q = q;
    c->public = public;
    proto_conn_init(&c->pc, fd);
    c->ev_read = event_new(q->base, fd, EV_READ | EV_PERSIST, quar_on_read, c);
    c->ev_write = event_new(q->base, fd, EV_WRITE, quar_on_write, c);
    event_add(c->ev_read, NULL);
    q->nconns++;
}

void quar_listen_start(struct quar *q)
{
    static const char *const rel[2] = { "private/quarantine", "public/quarantine" };
    static const mode_t mode[2] = { 0600, 0660 };
    struct server *srv = q->srv;

    for (int i = 0; i < 2; i++) {
        if (srv->nlisten > (size_t)i)
            q->listen_fd[i] = srv->listen_fds[i];
        else
            q->listen_fd[i] = quar_bind(q, rel[i], mode[i]);
        if (q->listen_fd[i] < 0) {
            log_warn("%s: not served", rel[i]);
            continue;
        }
        fcntl(q->listen_fd[i], F_SETFL, fcntl(q->listen_fd[i], F_GETFL) | O_NONBLOCK);
        q->ev_listen[i] =
            event_new(q->base, q->listen_fd[i], EV_READ | EV_PERSIST, quar_on_accept, q);
        event_add(q->ev_listen[i], NULL);
    }
    if (q->listen_fd[0] < 0 && q->listen_fd[1] < 0)
        log_fatal("no listener: neither private/quarantine nor public/quarantine");
}

void quar_listen_stop(struct quar *q)
{
    for (int i = 0; i < 2; i++) {
        if (q->ev_listen[i] != NULL) {
            event_free(q->ev_listen[i]);
            q->ev_listen[i] = NULL;
        }
    }
}
