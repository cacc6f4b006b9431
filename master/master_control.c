/*
 * master_control - the control socket QueuePath/public/control that the
 * `mailgw` command talks to (proto frames, protocol "mailgw-control",
 * version 1).
 *
 * Interface: master_control_open() binds it, master_control_attach()
 * hooks it into the event loop, master_control_reply() takes a daemon's
 * answer to a relayed command, master_control_close() removes it.
 *
 * Requests {op=OP}, one reply each:
 *   status    {status="ok", pid, uptime, config} + per daemon, in order,
 *             the repeated attributes daemon, pid, uptime, restarts, state
 *   stop      {status="ok"}, then master stops
 *   reload    {status="ok"} | {status="error", reason, diag...}
 *   recv-off recv-on (smtpd), send-off send-on flush (qmgr), avir-off
 *   avir-on reload-bases (scand), stats (every daemon): relayed down the
 *             status channels; {status, line...} with one "NAME: ..." line
 *             per daemon answer ("NAME: no answer" after 5 s).
 *   stats     also sums the daemons' counters under the reference's
 *             names (master_stats.c): those name=value lines come first,
 *             and go to StatFilename when set (a write failure makes
 *             status="error" with the reason).
 *   queue-*   (queue-list, queue-show, queue-hold, ... see CONTRACTS
 *             "Queue administration") relayed to qmgr with every request
 *             attribute; qmgr's reply attributes and fds come back as they
 *             are (minus op/command/reqid).  qmgr not running or silent
 *             for MASTER_RELAY_TIMEOUT s: {status="error", reason,
 *             unreachable=1}.
 * Anything else: {status="error", reason="OP: not supported by this
 * version"}.
 *
 * master_control_internal() runs a request for master itself (the
 * control files of ControlPath): the same code, with the reply handed to
 * a callback instead of a socket.
 *
 * Security: the socket is 0660 in the 0710 directory public/ (group
 * AdminGroup, else the mailgw user's group).  On top of that every
 * connection's SO_PEERCRED is checked: root, master's own uid, the mailgw
 * user and members of AdminGroup only; others are logged and dropped.
 * Requests are size-limited by lib/proto and a bad frame closes only that
 * connection.
 */
#include "master.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define CONTROL_MAX_CLIENTS 64

struct control_client {
    struct proto_conn conn;
    struct event *ev_read, *ev_write, *ev_timeout;
    bool hello_done;
    bool close_after;
    int64_t reqid;              /* relayed request waiting for answers */
    unsigned outstanding;
    char waiting[MASTER_MAX_DAEMONS][32];
    struct proto_msg reply;
    bool failed;
    bool passthrough;           /* queue-* op: qmgr's reply goes back as is */
    struct master_stats *stats; /* "stats": the counters being summed */
    bool internal;              /* master's own request: no socket */
    bool answered;              /* internal: done() was called */
    master_control_done_fn done;
    void *done_arg;
    struct control_client *next;
};

static struct control_client *clients;
static size_t nclients;
static struct event *ev_accept;
static int64_t next_reqid = 1;

struct relay_target {
    const char *op;
    const char *daemon;         /* NULL = every running daemon */
};

static const struct relay_target relay_targets[] = {
    { "recv-off", "smtpd" },     { "recv-on", "smtpd" },
    { "send-off", "qmgr" },      { "send-on", "qmgr" },      { "flush", "qmgr" },
    { "avir-off", "scand" },     { "avir-on", "scand" },     { "reload-bases", "scand" },
    { "stats", NULL },
};

int master_control_open(struct buf *err)
{
    gid_t group = master.have_admin_gid ? master.admin_gid : master.gid;

    master.control_fd = master_unix_listener(&master, "public/control", 0660, group, err);
    return master.control_fd < 0 ? -1 : 0;
}

static void client_free(struct control_client *cl)
{
    for (struct control_client **pp = &clients; *pp; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    }
    if (cl->ev_read)
        event_free(cl->ev_read);
    if (cl->ev_write)
        event_free(cl->ev_write);
    if (cl->ev_timeout)
        event_free(cl->ev_timeout);
    master_stats_free(cl->stats);
    proto_msg_free(&cl->reply);
    proto_conn_close(&cl->conn);
    free(cl);
    nclients--;
}

static void client_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    client_free(arg);
}

/* An internal request's answer: to its callback, then the client goes
 * (from the loop: the caller still uses cl). */
static void client_answer_internal(struct control_client *cl, const struct proto_msg *m)
{
    struct timeval now = { 0, 0 };

    if (cl->answered)
        return;
    cl->answered = true;
    cl->done(m, cl->done_arg);
    if (event_base_once(master.base, -1, EV_TIMEOUT, client_reap_cb, cl, &now) < 0)
        log_warn("control: cannot schedule the end of an internal request");
}

static void client_send(struct control_client *cl, const struct proto_msg *m)
{
    if (cl->internal) {
        client_answer_internal(cl, m);
        return;
    }
    if (proto_conn_queue(&cl->conn, m) < 0 || proto_conn_flush(&cl->conn) < 0) {
        cl->close_after = true;
        return;
    }
    if (proto_conn_outlen(&cl->conn) > 0)
        event_add(cl->ev_write, NULL);
}

static void client_error(struct control_client *cl, const char *reason)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "status", "error");
    proto_put_str(&m, "reason", reason);
    client_send(cl, &m);
    proto_msg_free(&m);
}

static void control_status(struct control_client *cl)
{
    struct proto_msg m;
    time_t now = time(NULL);

    proto_msg_init(&m);
    proto_put_str(&m, "status", "ok");
    proto_put_int(&m, "pid", getpid());
    proto_put_int(&m, "uptime", now - master.started);
    proto_put_str(&m, "config", master.config_path);
    for (size_t i = 0; i < master.ndaemons; i++) {
        for (struct master_child *ch = master.children; ch; ch = ch->next) {
            if (strcmp(ch->name, master.daemons[i]) != 0)
                continue;
            proto_put_str(&m, "daemon", ch->name);
            proto_put_int(&m, "pid", ch->pid);
            proto_put_int(&m, "uptime", ch->pid ? now - ch->started : 0);
            proto_put_int(&m, "restarts", ch->restarts);
            proto_put_str(&m, "state", master_child_state(ch));
        }
    }
    client_send(cl, &m);
    proto_msg_free(&m);
}

static void control_reload(struct control_client *cl)
{
    struct buf diag = BUF_INIT;
    struct proto_msg m;

    proto_msg_init(&m);
    if (master_reload(&diag) == 0) {
        proto_put_str(&m, "status", "ok");
    } else {
        proto_put_str(&m, "status", "error");
        proto_put_str(&m, "reason", "configuration not reloaded; the running one stays");
    }
    for (char *line = diag.data, *nl; line != NULL && *line; line = nl) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 0)
            proto_put_strn(&m, "diag", line, len);
        nl = nl ? nl + 1 : NULL;
    }
    client_send(cl, &m);
    proto_msg_free(&m);
    buf_free(&diag);
}

static void relay_finish(struct control_client *cl)
{
    struct proto_msg out;
    struct buf err = BUF_INIT;

    proto_msg_init(&out);
    /* stats: the summed counters first, then what each daemon said */
    if (cl->stats != NULL && master_stats_finish(cl->stats, &out, &err) < 0)
        cl->failed = true;
    for (size_t i = 0; i < cl->reply.nattrs; i++)
        proto_put_strn(&out, "line", (const char *)cl->reply.attrs[i].value,
                       cl->reply.attrs[i].len);
    proto_put_str(&out, "status", cl->failed ? "error" : "ok");
    if (err.len > 0)
        proto_put_str(&out, "reason", err.data);
    client_send(cl, &out);
    proto_msg_free(&out);
    buf_free(&err);
    master_stats_free(cl->stats);
    cl->stats = NULL;
    proto_msg_reset(&cl->reply);
    cl->reqid = 0;
    cl->outstanding = 0;
    if (cl->ev_timeout)
        evtimer_del(cl->ev_timeout);
}

static void queue_relay_fail(struct control_client *cl, const char *reason);

static void relay_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct control_client *cl = arg;

    if (cl->passthrough) {
        queue_relay_fail(cl, "qmgr: no answer");
        return;
    }
    for (size_t i = 0; i < MASTER_MAX_DAEMONS; i++) {
        if (cl->waiting[i][0] == 0)
            continue;
        char *line = xasprintf("%s: no answer", cl->waiting[i]);
        proto_put_str(&cl->reply, "line", line);
        free(line);
        cl->waiting[i][0] = 0;
    }
    cl->failed = true;
    relay_finish(cl);
}

static void relay_add_line(struct control_client *cl, const char *fmt, const char *a,
                           const char *b)
{
    char *line = xasprintf(fmt, a, b);

    proto_put_str(&cl->reply, "line", line);
    free(line);
}

static unsigned relay_send(struct control_client *cl, const char *op, const char *daemon)
{
    unsigned sent = 0;

    for (struct master_child *ch = master.children; ch; ch = ch->next) {
        if (ch->old || (daemon != NULL && strcmp(ch->name, daemon) != 0))
            continue;
        if (master_child_command(ch, op, cl->reqid) == 0) {
            str_copy(cl->waiting[sent], ch->name, sizeof(cl->waiting[sent]));
            sent++;
        } else if (daemon != NULL) {
            relay_add_line(cl, "%s: %s", ch->name, "not running");
            cl->failed = true;
        }
        if (sent >= MASTER_MAX_DAEMONS)
            break;
    }
    return sent;
}

static void control_relay(struct control_client *cl, const char *op, const char *daemon)
{
    struct timeval tv = { MASTER_RELAY_TIMEOUT, 0 };

    memset(cl->waiting, 0, sizeof(cl->waiting));
    cl->failed = false;
    cl->reqid = next_reqid++;
    proto_msg_reset(&cl->reply);
    if (strcmp(op, "stats") == 0) {
        master_stats_free(cl->stats);
        cl->stats = master_stats_new();
    }
    if (daemon == NULL) {
        char text[64];
        snprintf(text, sizeof(text), "pid=%ld uptime=%ld", (long)getpid(),
                 (long)(time(NULL) - master.started));
        relay_add_line(cl, "%s: %s", "master", text);
    }
    cl->outstanding = relay_send(cl, op, daemon);
    if (daemon != NULL && cl->outstanding == 0 && cl->reply.nattrs == 0) {
        relay_add_line(cl, "%s: %s", daemon, "not running");
        cl->failed = true;
    }
    if (cl->outstanding == 0) {
        relay_finish(cl);
        return;
    }
    if (cl->ev_timeout == NULL)
        cl->ev_timeout = evtimer_new(master.base, relay_timeout, cl);
    if (cl->ev_timeout != NULL)
        evtimer_add(cl->ev_timeout, &tv);
}

/* Copy every attribute of src except those named in skip[]. */
static void queue_copy_attrs(struct proto_msg *dst, const struct proto_msg *src,
                             const char *const *skip, size_t nskip)
{
    for (size_t i = 0; i < src->nattrs; i++) {
        const struct proto_attr *a = &src->attrs[i];
        bool skipped = false;
        for (size_t k = 0; k < nskip; k++)
            skipped = skipped || strcmp(a->name, skip[k]) == 0;
        if (skipped)
            continue;
        if (a->type == PROTO_INT)
            proto_put_int(dst, a->name, a->num);
        else if (a->type == PROTO_STR)
            proto_put_strn(dst, a->name, (const char *)a->value, a->len);
        else
            proto_put_data(dst, a->name, a->value, a->len);
    }
}

static void queue_relay_done(struct control_client *cl)
{
    cl->reqid = 0;
    cl->outstanding = 0;
    cl->passthrough = false;
    memset(cl->waiting, 0, sizeof(cl->waiting));
    if (cl->ev_timeout)
        evtimer_del(cl->ev_timeout);
}

static void queue_relay_fail(struct control_client *cl, const char *reason)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "status", "error");
    proto_put_str(&m, "reason", reason);
    proto_put_int(&m, "unreachable", 1);
    client_send(cl, &m);
    proto_msg_free(&m);
    queue_relay_done(cl);
}

static struct master_child *queue_qmgr(void)
{
    for (struct master_child *ch = master.children; ch; ch = ch->next)
        if (!ch->old && ch->pid != 0 && ch->chan_open && strcmp(ch->name, "qmgr") == 0)
            return ch;
    return NULL;
}

/* queue-* ops go to qmgr with every attribute the client sent. */
static void control_queue_relay(struct control_client *cl, const struct proto_msg *req)
{
    static const char *const skip[] = { "reqid" };
    struct master_child *ch = queue_qmgr();
    struct timeval tv = { MASTER_RELAY_TIMEOUT, 0 };
    struct proto_msg m;
    int rc = -1;

    if (ch == NULL) {
        queue_relay_fail(cl, "qmgr: not running");
        return;
    }
    cl->reqid = next_reqid++;
    proto_msg_init(&m);
    queue_copy_attrs(&m, req, skip, 1);
    proto_put_int(&m, "reqid", cl->reqid);
    if (proto_conn_queue(&ch->chan, &m) == 0 && proto_conn_flush(&ch->chan) >= 0)
        rc = 0;
    if (rc == 0 && proto_conn_outlen(&ch->chan) > 0)
        event_add(ch->ev_write, NULL);
    proto_msg_free(&m);
    if (rc < 0) {
        queue_relay_fail(cl, "qmgr: cannot send the request");
        return;
    }
    cl->passthrough = true;
    cl->outstanding = 1;
    str_copy(cl->waiting[0], ch->name, sizeof(cl->waiting[0]));
    if (cl->ev_timeout == NULL)
        cl->ev_timeout = evtimer_new(master.base, relay_timeout, cl);
    if (cl->ev_timeout != NULL)
        evtimer_add(cl->ev_timeout, &tv);
}

/* qmgr's answer to a queue-* op: its attributes and fds, unchanged. */
static void queue_relay_reply(struct control_client *cl, struct proto_msg *m)
{
    static const char *const skip[] = { "op", "command", "reqid" };
    struct proto_msg out;

    proto_msg_init(&out);
    queue_copy_attrs(&out, m, skip, sizeof(skip) / sizeof(skip[0]));
    if (proto_get_str(&out, "status") == NULL)
        proto_put_str(&out, "status", "error");
    for (size_t i = 0; i < m->nfds; i++)
        proto_put_fd(&out, m->fds[i]);
    client_send(cl, &out);
    proto_msg_free(&out);
    queue_relay_done(cl);
}

static void control_request(struct control_client *cl, const struct proto_msg *m)
{
    const char *op = proto_get_str(m, "op");

    if (op == NULL) {
        client_error(cl, "request without op");
        return;
    }
    if (cl->reqid != 0) {
        client_error(cl, "one request at a time");
        return;
    }
    if (strcmp(op, "status") == 0) {
        control_status(cl);
    } else if (strcmp(op, "reload") == 0) {
        control_reload(cl);
    } else if (strcmp(op, "stop") == 0) {
        struct proto_msg r;
        proto_msg_init(&r);
        proto_put_str(&r, "status", "ok");
        client_send(cl, &r);
        proto_msg_free(&r);
        log_info("stop requested over the control socket");
        master_request_stop();
    } else if (strncmp(op, "queue-", 6) == 0) {
        control_queue_relay(cl, m);
    } else {
        for (size_t i = 0; i < sizeof(relay_targets) / sizeof(relay_targets[0]); i++) {
            if (strcmp(op, relay_targets[i].op) == 0) {
                control_relay(cl, op, relay_targets[i].daemon);
                return;
            }
        }
        char *why = xasprintf("%.64s: not supported by this version", op);
        client_error(cl, why);
        free(why);
    }
}

static void client_frame(struct control_client *cl, const struct proto_msg *m)
{
    const char *why = NULL;

    if (!cl->hello_done) {
        if (proto_check_hello(m, MASTER_CONTROL_PROTO, MASTER_CONTROL_VERSION, &why) < 0) {
            client_error(cl, why ? why : "bad hello");
            cl->close_after = true;
            return;
        }
        cl->hello_done = true;
        struct proto_msg r;
        proto_msg_init(&r);
        proto_put_str(&r, "status", "ok");
        proto_put_int(&r, "version", MASTER_CONTROL_VERSION);
        client_send(cl, &r);
        proto_msg_free(&r);
        return;
    }
    control_request(cl, m);
}

static void client_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct control_client *cl = arg;
    const char *why = NULL;
    int r;

    do {
        r = proto_conn_read(&cl->conn, &why);
    } while (r == 1);
    for (;;) {
        struct proto_msg m;
        int n;
        proto_msg_init(&m);
        n = proto_conn_next(&cl->conn, &m, &why);
        if (n == 1)
            client_frame(cl, &m);
        proto_msg_free(&m);
        if (n == 0)
            break;
        if (n < 0) {
            log_warn("control: bad frame: %s", why ? why : "?");
            r = -1;
            break;
        }
    }
    if (r < 0 || (cl->close_after && proto_conn_outlen(&cl->conn) == 0))
        client_free(cl);
}

static void client_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct control_client *cl = arg;

    if (proto_conn_flush(&cl->conn) < 0) {
        client_free(cl);
        return;
    }
    if (proto_conn_outlen(&cl->conn) > 0)
        event_add(cl->ev_write, NULL);
    else if (cl->close_after)
        client_free(cl);
}

static bool control_in_admin_group(uid_t uid, gid_t gid)
{
    struct passwd *pw;
    gid_t groups[256];
    int n = (int)(sizeof(groups) / sizeof(groups[0]));

    if (!master.have_admin_gid)
        return false;
    if (gid == master.admin_gid)
        return true;
    pw = getpwuid(uid);
    if (pw == NULL || getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == master.admin_gid)
            return true;
    return false;
}

static bool control_peer_allowed(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        log_warn("control: SO_PEERCRED: %m");
        return false;
    }
    if (cred.uid == 0 || cred.uid == geteuid() || cred.uid == master.uid
        || control_in_admin_group(cred.uid, cred.gid))
        return true;
    log_warn("control: connection from uid %ld pid %ld refused", (long)cred.uid,
             (long)cred.pid);
    return false;
}

static void control_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct control_client *cl;

    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("control: accept: %m");
        return;
    }
    if (!control_peer_allowed(fd) || nclients >= CONTROL_MAX_CLIENTS) {
        close(fd);
        return;
    }
    cl = xcalloc(1, sizeof(*cl));
    proto_conn_init(&cl->conn, fd);
    proto_msg_init(&cl->reply);
    cl->ev_read = event_new(master.base, fd, EV_READ | EV_PERSIST, client_on_read, cl);
    cl->ev_write = event_new(master.base, fd, EV_WRITE, client_on_write, cl);
    if (cl->ev_read == NULL || cl->ev_write == NULL)
        log_fatal("cannot create events");
    event_add(cl->ev_read, NULL);
    cl->next = clients;
    clients = cl;
    nclients++;
}

int master_control_internal(const char *op, master_control_done_fn done, void *arg)
{
    struct control_client *cl;
    struct proto_msg m;

    if (master.base == NULL)
        return -1;
    cl = xcalloc(1, sizeof(*cl));
    proto_conn_init(&cl->conn, -1);
    proto_msg_init(&cl->reply);
    cl->internal = true;
    cl->hello_done = true;
    cl->done = done;
    cl->done_arg = arg;
    cl->next = clients;
    clients = cl;
    nclients++;
    proto_msg_init(&m);
    proto_put_str(&m, "op", op);
    control_request(cl, &m);
    proto_msg_free(&m);
    return 0;
}

void master_control_attach(void)
{
    ev_accept = event_new(master.base, master.control_fd, EV_READ | EV_PERSIST,
                          control_on_accept, NULL);
    if (ev_accept == NULL)
        log_fatal("cannot create events");
    event_add(ev_accept, NULL);
}

void master_control_close(void)
{
    char *path = master_queue_file(&master, "public/control");

    if (ev_accept)
        event_del(ev_accept);
    if (master.control_fd >= 0)
        close(master.control_fd);
    master.control_fd = -1;
    unlink(path);
    free(path);
}

void master_control_reply(struct master_child *ch, struct proto_msg *m)
{
    int64_t reqid;
    struct control_client *cl = clients;
    const char *status = proto_get_str(m, "status");
    const char *reason = proto_get_str(m, "reason");

    if (proto_get_int(m, "reqid", &reqid) < 0)
        return;
    while (cl != NULL && cl->reqid != reqid)
        cl = cl->next;
    if (cl == NULL)
        return;     /* the client went away or timed out */
    if (cl->passthrough) {
        queue_relay_reply(cl, m);
        return;
    }
    if (status == NULL || strcmp(status, "ok") != 0) {
        cl->failed = true;
        relay_add_line(cl, "%s: error: %s", ch->name, reason ? reason : (status ? status : "?"));
    } else {
        relay_add_line(cl, "%s: %s", ch->name, "ok");
        if (cl->stats != NULL)
            master_stats_add(cl->stats, ch->name, m);
    }
    for (size_t i = 0; i < m->nattrs; i++) {
        const struct proto_attr *a = &m->attrs[i];
        static const char *const skip[] = { "op", "command", "reqid", "status", "reason" };
        bool skipped = false;
        for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
            skipped = skipped || strcmp(a->name, skip[k]) == 0;
        if (skipped || a->type == PROTO_DATA)
            continue;
        char *line = a->type == PROTO_INT
                         ? xasprintf("%s: %s=%lld", ch->name, a->name, (long long)a->num)
                         : xasprintf("%s: %s=%.*s", ch->name, a->name, (int)a->len,
                                     (const char *)a->value);
        proto_put_str(&cl->reply, "line", line);
        free(line);
    }
    for (size_t i = 0; i < MASTER_MAX_DAEMONS; i++) {
        if (strcmp(cl->waiting[i], ch->name) == 0) {
            cl->waiting[i][0] = 0;
            break;
        }
    }
    if (cl->outstanding > 0 && --cl->outstanding == 0)
        relay_finish(cl);
}
