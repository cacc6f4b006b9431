/*
 * server - the skeleton every mailgw daemon links (see server.h for the
 * master <-> child conventions).
 *
 * Interface: server_init() / server_init_flags() (argv, config, log,
 * privileges, limits, fds), server_drop() (privilege drop and chroot for
 * daemons that load files first),
 * server_event_attach() (status channel, heartbeat, SIGTERM/SIGUSR1,
 * max-idle timer), server_use()/server_touch() (recycling),
 * server_notify(), server_exit(), server_queue_path/_file().
 *
 * Status channel: every frame from master carries "op"; "stop" runs the
 * daemon's stop callback, anything else goes to its command callback.
 * When master's frame carries "reqid" the daemon always answers with
 * {op="reply", reqid=N, status="ok"|"error", ...} (an empty reply from the
 * callback becomes status="ok"), so master can relay the answer to the
 * control command.  Heartbeats are {op="heartbeat"}.
 *
 * Diagnostics: startup problems are fatal (printed to stderr and logged):
 * a daemon never runs half-configured.  A bad frame from master is logged
 * and the channel closed; a daemon whose master went away stops.
 *
 * Security: as root the daemon drops to [mailgw.options] User with
 * setgroups/setresgid/setresuid and then verifies that root cannot be
 * regained.  Every inherited fd is marked close-on-exec.  With
 * SERVER_CHROOT (smtpd, smtp) the drop is preceded by
 * chroot(QueuePath/private): the daemon reaches the daemon sockets and
 * nothing else, so network-facing code cannot touch the queue files even
 * though it runs as the same User as qmgr (DESIGN §2).  The
 * user's record, the time zone, syslog and the log file are all opened
 * before; the daemon loads its own files before calling server_drop().
 *
 * Stats: a "stats" reply also carries the process's resolver counters
 * (mta_dns_queries_total, _through_cache, _failed) when the daemon links
 * lib/dns (a weak reference: daemons without a resolver do not pull it).
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "util/log.h"
#include "util/mem.h"

#define SERVER_DEFAULT_CONF "/etc/mailgw/mailgw.conf"

/* Only daemons that use the resolver link it (see the header comment). */
#pragma weak dns_counters

struct server_priv {
    struct proto_conn chan;
    bool chan_open;
    struct event *ev_read, *ev_write, *ev_beat, *ev_term, *ev_usr1, *ev_idle;
    bool stopping;
    time_t last_activity;
    bool dropped;               /* privileges dropped (or never had them) */
    bool chrooted;
};

/* SIGUSR1 before server_event_attach(): remembered, acted on there. */
static volatile sig_atomic_t server_early_reopen;

static void server_early_usr1(int sig)
{
    server_early_reopen = 1;
}

static void server_usage(const char *name)
{
    fprintf(stderr, "usage: %s [-c CONFIG] [-f] [-L NLISTEN]\n", name);
    exit(1);
}

static void server_parse_args(struct server *srv, int argc, char **argv, unsigned *nlisten)
{
    int ch;
    char *end;
    unsigned long n;

    opterr = 1;
    while ((ch = getopt(argc, argv, "c:fL:")) != -1) {
        switch (ch) {
        case 'c':
            srv->config_path = optarg;
            break;
        case 'f':
            srv->foreground = true;
            break;
        case 'L':
            errno = 0;
            n = strtoul(optarg, &end, 10);
            if (errno || *end || end == optarg || n > 16)
                server_usage(srv->name);
            *nlisten = (unsigned)n;
            break;
        default:
            server_usage(srv->name);
        }
    }
    if (optind != argc)
        server_usage(srv->name);
    if (srv->config_path == NULL)
        srv->config_path = getenv("MAILGW_CONF");
    if (srv->config_path == NULL || *srv->config_path == 0)
        srv->config_path = SERVER_DEFAULT_CONF;
}

static void server_load_conf(struct server *srv)
{
    struct buf diag = BUF_INIT;

    srv->conf = conf_load(srv->config_path, &diag);
    if (srv->conf == NULL) {
        fprintf(stderr, "%s: configuration %s has errors:\n%s", srv->name,
                srv->config_path, diag.data ? diag.data : "");
        exit(1);
    }
    buf_free(&diag);
}

static void server_open_log(struct server *srv)
{
    const char *file = conf_str(srv->conf, "mailgw.options", "LogFilename");

    if (srv->foreground)
        log_open(srv->name, LOG_DEST_STDERR, NULL);
    else if (file != NULL && *file != 0)
        log_open(srv->name, LOG_DEST_FILE, file);
    else
        log_open(srv->name, LOG_DEST_SYSLOG, NULL);
    log_set_level((int)conf_int(srv->conf, "mailgw.options", "LogLevel"));
}

/* fd 3 is the status channel only when it is a unix stream socket: a
 * daemon started by hand from a shell may have some other fd 3. */
static bool server_is_status_fd(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int type;
    socklen_t tlen = sizeof(type);

    if (fcntl(fd, F_GETFD) < 0)
        return false;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != AF_UNIX)
        return false;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
        return false;
    return true;
}

static void server_set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        log_fatal("fd %d: cannot set close-on-exec: %m", fd);
}

static void server_setup_fds(struct server *srv, unsigned nlisten)
{
    srv->standalone = !server_is_status_fd(SERVER_STATUS_FD);
    srv->status_fd = srv->standalone ? -1 : SERVER_STATUS_FD;
    if (srv->status_fd >= 0)
        server_set_cloexec(srv->status_fd);
    for (unsigned i = 0; i < nlisten; i++) {
        int fd = SERVER_LISTEN_FD0 + (int)i;
        if (fcntl(fd, F_GETFD) < 0)
            log_fatal("listener fd %d (of -L %u) is not open", fd, nlisten);
        server_set_cloexec(fd);
        srv->listen_fds[i] = fd;
    }
    srv->nlisten = nlisten;
}

static void server_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the open files limit: %m");
    }
}

static void server_set_ids(const char *user, uid_t uid, gid_t gid)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (setgroups(1, &gid) < 0)
        log_fatal("setgroups: %m");
    if (setresgid(gid, gid, gid) < 0)
        log_fatal("setresgid %ld: %m", (long)gid);
    if (setresuid(uid, uid, uid) < 0)
        log_fatal("setresuid %ld: %m", (long)uid);
    if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
        log_fatal("getresuid: %m");
    if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
        log_fatal("privilege drop to %s did not take", user);
    if (setuid(0) == 0 || seteuid(0) == 0)
        log_fatal("privilege drop to %s: root could be regained", user);
}

/* Everything a confined process still needs from outside, opened now:
 * the zone file (localtime_r keeps what tzset loaded) and the log file
 * (moved to fd 2; master passes a new one on reopen).  Syslog's socket
 * is open already (LOG_NDELAY). */
static void server_prepare_chroot(struct server *srv)
{
    const char *file = conf_str(srv->conf, "mailgw.options", "LogFilename");
    int fd;

    tzset();
    if (srv->foreground || file == NULL || *file == 0)
        return;
    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        log_fatal("cannot open log file %s: %m", file);
    if (fd != 2) {
        if (dup2(fd, 2) < 0)
            log_fatal("cannot move the log to fd 2: %m");
        close(fd);
    }
    log_open(srv->name, LOG_DEST_STDERR, NULL);
}

static void server_chroot(struct server *srv)
{
    char *dir = xasprintf("%s/private", server_queue_path(srv));

    server_prepare_chroot(srv);
    if (chroot(dir) < 0)
        log_fatal("chroot %s: %m", dir);
    if (chdir("/") < 0)
        log_fatal("chdir / in the chroot %s: %m", dir);
    log_debug("chrooted to %s", dir);
    free(dir);
}

/* MAILGW_NO_CHROOT=1 (from master's environment): tests that watch a
 * daemon through files outside the queue (LD_PRELOAD shims). */
static bool server_chroot_wanted(void)
{
    const char *env = getenv("MAILGW_NO_CHROOT");

    if (env != NULL && strcmp(env, "1") == 0) {
        log_info("MAILGW_NO_CHROOT=1: not chrooting");
        return false;
    }
    return true;
}

static void server_drop_privileges(struct server *srv, bool chroot_too)
{
    const char *user = conf_str(srv->conf, "mailgw.options", "User");
    struct server_priv *p = srv->priv;
    struct passwd *pw;

    p->dropped = true;
    if (geteuid() != 0)
        return;
    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL)
        log_fatal("[mailgw.options] User %s: no such user", user);
    if (pw->pw_uid == 0)
        log_fatal("[mailgw.options] User %s: must not be root", user);
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (chroot_too && server_chroot_wanted()) {
        server_chroot(srv);
        p->chrooted = true;
    }
    server_set_ids(user, uid, gid);
}

struct server *server_init_flags(int argc, char **argv, const char *name, unsigned flags)
{
    struct server *srv = xcalloc(1, sizeof(*srv));
    struct server_priv *p = xcalloc(1, sizeof(*p));
    unsigned nlisten = 0;

    srv->name = name;
    srv->priv = p;
    srv->status_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, server_early_usr1);
    log_open(name, LOG_DEST_STDERR, NULL);
    server_parse_args(srv, argc, argv, &nlisten);
    server_load_conf(srv);
    server_open_log(srv);
    server_setup_fds(srv, nlisten);
    if (!srv->standalone) {
        /* master handles terminal signals and stops us with a frame. */
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
    }
    server_raise_nofile();
    if (!(flags & SERVER_KEEP_PRIVILEGES))
        server_drop_privileges(srv, false);
    p->last_activity = time(NULL);
    return srv;
}

struct server *server_init(int argc, char **argv, const char *name)
{
    return server_init_flags(argc, argv, name, 0);
}

void server_drop(struct server *srv, unsigned flags)
{
    struct server_priv *p = srv->priv;

    if (p->dropped) {
        if ((flags & SERVER_CHROOT) && geteuid() == 0)
            log_fatal("server_drop: privileges already dropped, cannot chroot "
                      "(start with SERVER_KEEP_PRIVILEGES)");
        return;
    }
    server_drop_privileges(srv, (flags & SERVER_CHROOT) != 0);
}

bool server_chrooted(const struct server *srv)
{
    const struct server_priv *p = srv->priv;

    return p->chrooted;
}

static void server_watch_output(struct server *srv)
{
    struct server_priv *p = srv->priv;

    if (p->chan_open && p->ev_write != NULL && proto_conn_outlen(&p->chan) > 0)
        event_add(p->ev_write, NULL);
}

static int server_send(struct server *srv, const struct proto_msg *m)
{
    struct server_priv *p = srv->priv;

    if (!p->chan_open)
        return -1;
    if (proto_conn_queue(&p->chan, m) < 0)
        return -1;
    if (proto_conn_flush(&p->chan) < 0)
        return -1;
    server_watch_output(srv);
    return 0;
}

static void server_begin_stop(struct server *srv)
{
    struct server_priv *p = srv->priv;

    if (p->stopping)
        return;
    p->stopping = true;
    log_debug("stopping");
    if (srv->on_stop != NULL)
        srv->on_stop(srv, srv->cb_arg);
    else
        server_exit(srv, 0);
}

static void server_close_chan(struct server *srv)
{
    struct server_priv *p = srv->priv;

    if (!p->chan_open)
        return;
    event_del(p->ev_read);
    event_del(p->ev_write);
    event_del(p->ev_beat);
    proto_conn_close(&p->chan);
    p->chan_open = false;
    srv->status_fd = -1;
}

/* master reopened the log file: it becomes our fd 2 (where a chrooted
 * daemon logs, and where anything else writes its last words). */
static void server_take_log_fd(const struct proto_msg *cmd)
{
    if (cmd->nfds < 1 || cmd->fds[0] < 0) {
        log_warn("status channel: log-fd without a file descriptor");
        return;
    }
    if (dup2(cmd->fds[0], 2) < 0)
        log_warn("cannot take the new log file: %m");
}

static void server_put_dns_counters(struct proto_msg *reply)
{
    struct dns_counters c;
    const char *status = proto_get_str(reply, "status");

    if (dns_counters == NULL || (status != NULL && strcmp(status, "ok") != 0))
        return;
    dns_counters(&c);
    proto_put_int(reply, "mta_dns_queries_total", (int64_t)c.queries_total);
    proto_put_int(reply, "mta_dns_queries_through_cache", (int64_t)c.queries_through_cache);
    proto_put_int(reply, "mta_dns_queries_failed", (int64_t)c.queries_failed);
}

static void server_command(struct server *srv, struct proto_msg *cmd)
{
    const char *op = proto_get_str(cmd, "op");
    struct proto_msg reply;
    int64_t reqid = 0;
    bool want_reply = proto_get_int(cmd, "reqid", &reqid) == 0;

    if (op == NULL) {
        log_warn("status channel: frame without op ignored");
        return;
    }
    if (strcmp(op, "stop") == 0) {
        server_begin_stop(srv);
        return;
    }
    if (strcmp(op, "log-fd") == 0) {
        server_take_log_fd(cmd);
        return;
    }
    proto_msg_init(&reply);
    if (srv->on_command != NULL)
        srv->on_command(srv, cmd, &reply, srv->cb_arg);
    else
        proto_put_str(&reply, "status", "error");
    if (strcmp(op, "stats") == 0 && srv->on_command != NULL)
        server_put_dns_counters(&reply);
    if (want_reply || reply.nattrs > 0) {
        struct proto_msg out;
        proto_msg_init(&out);
        proto_put_str(&out, "op", "reply");
        proto_put_str(&out, "command", op);
        if (want_reply)
            proto_put_int(&out, "reqid", reqid);
        if (proto_get_str(&reply, "status") == NULL)
            proto_put_str(&out, "status", srv->on_command ? "ok" : "error");
        if (srv->on_command == NULL)
            proto_put_str(&out, "reason", "not supported by this daemon");
        for (size_t i = 0; i < reply.nattrs; i++) {
            const struct proto_attr *a = &reply.attrs[i];
            if (a->type == PROTO_INT)
                proto_put_int(&out, a->name, a->num);
            else if (a->type == PROTO_STR)
                proto_put_strn(&out, a->name, (const char *)a->value, a->len);
            else
                proto_put_data(&out, a->name, a->value, a->len);
        }
        /* fds a daemon answers with (e.g. qmgr's queue-show) travel too */
        for (size_t i = 0; i < reply.nfds; i++)
            proto_put_fd(&out, reply.fds[i]);
        server_send(srv, &out);
        proto_msg_free(&out);
    }
    proto_msg_free(&reply);
}

static void server_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    struct server_priv *p = srv->priv;
    const char *why = NULL;
    int r;

    do {
        r = proto_conn_read(&p->chan, &why);
    } while (r == 1);
    for (;;) {
        struct proto_msg m;
        proto_msg_init(&m);
        int n = proto_conn_next(&p->chan, &m, &why);
        if (n == 1)
            server_command(srv, &m);
        proto_msg_free(&m);
        if (n == 0)
            break;
        if (n < 0) {
            log_warn("status channel: bad frame from master: %s", why ? why : "?");
            r = -1;
            break;
        }
        if (!p->chan_open)
            return;
    }
    if (r < 0) {
        log_info("master went away (%s): stopping", why ? why : "closed");
        server_close_chan(srv);
        server_begin_stop(srv);
    }
}

static void server_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    struct server_priv *p = srv->priv;

    if (proto_conn_flush(&p->chan) < 0) {
        log_warn("status channel: write: %m");
        server_close_chan(srv);
        server_begin_stop(srv);
        return;
    }
    server_watch_output(srv);
}

static void server_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "op", "heartbeat");
    server_send(srv, &m);
    proto_msg_free(&m);
}

static void server_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;

    if (sig == SIGUSR1) {
        log_reopen();
        log_debug("log reopened");
    } else {
        server_begin_stop(srv);
    }
}

static void server_idle_check(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    struct server_priv *p = srv->priv;

    if (srv->max_idle > 0 && time(NULL) - p->last_activity >= (time_t)srv->max_idle) {
        log_debug("idle for %u s: exiting", srv->max_idle);
        server_begin_stop(srv);
    }
}

static void server_attach_channel(struct server *srv)
{
    struct server_priv *p = srv->priv;
    struct timeval beat = { SERVER_HEARTBEAT_SECONDS, 0 };
    int fl = fcntl(srv->status_fd, F_GETFL);

    if (fl < 0 || fcntl(srv->status_fd, F_SETFL, fl | O_NONBLOCK) < 0)
        log_fatal("status channel: %m");
    proto_conn_init(&p->chan, srv->status_fd);
    p->chan_open = true;
    p->ev_read = event_new(srv->base, srv->status_fd, EV_READ | EV_PERSIST, server_on_read, srv);
    p->ev_write = event_new(srv->base, srv->status_fd, EV_WRITE, server_on_write, srv);
    p->ev_beat = event_new(srv->base, -1, EV_PERSIST, server_heartbeat, srv);
    if (p->ev_read == NULL || p->ev_write == NULL || p->ev_beat == NULL)
        log_fatal("status channel: cannot create events");
    event_add(p->ev_read, NULL);
    event_add(p->ev_beat, &beat);
    /* The first heartbeat tells master we are up. */
    server_heartbeat(-1, 0, srv);
}

struct event_base *server_event_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (cfg == NULL)
        log_fatal("event_config_new failed");
    /* Changes are applied once per loop round, coalesced per fd; libevent
     * retries MOD as ADD (and ADD as MOD) when the kernel disagrees, so a
     * closed and reused fd number stays correct.  We never dup() an fd
     * that has events of its own, the case the changelist cannot handle. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (base == NULL)
        log_fatal("event_base_new failed");
    return base;
}

void server_event_attach(struct server *srv, struct event_base *base,
                         server_command_fn on_command, server_stop_fn on_stop, void *arg)
{
    struct server_priv *p = srv->priv;

    if (!p->dropped)
        log_fatal("server_event_attach: still privileged: call server_drop() first");
    srv->base = base;
    srv->on_command = on_command;
    srv->on_stop = on_stop;
    srv->cb_arg = arg;
    /* Signals first: master sends SIGUSR1 only after our first heartbeat. */
    p->ev_term = evsignal_new(base, SIGTERM, server_on_signal, srv);
    p->ev_usr1 = evsignal_new(base, SIGUSR1, server_on_signal, srv);
    if (p->ev_term == NULL || p->ev_usr1 == NULL)
        log_fatal("cannot install signal events");
    event_add(p->ev_term, NULL);
    event_add(p->ev_usr1, NULL);
    if (server_early_reopen) {
        server_early_reopen = 0;
        log_reopen();
    }
    if (!srv->standalone)
        server_attach_channel(srv);
    if (srv->standalone) {
        /* Interactive: Ctrl-C stops gracefully too. */
        struct event *ev_int = evsignal_new(base, SIGINT, server_on_signal, srv);
        if (ev_int != NULL)
            event_add(ev_int, NULL);
    }
    if (srv->max_idle > 0) {
        struct timeval tick = { 1, 0 };
        p->ev_idle = event_new(base, -1, EV_PERSIST, server_idle_check, srv);
        if (p->ev_idle == NULL)
            log_fatal("cannot create the idle timer");
        event_add(p->ev_idle, &tick);
    }
}

bool server_use(struct server *srv)
{
    srv->uses++;
    server_touch(srv);
    return srv->max_use > 0 && srv->uses >= srv->max_use;
}

void server_touch(struct server *srv)
{
    struct server_priv *p = srv->priv;

    p->last_activity = time(NULL);
}

bool server_stopping(const struct server *srv)
{
    const struct server_priv *p = srv->priv;

    return p->stopping;
}

int server_notify(struct server *srv, const struct proto_msg *m)
{
    if (srv->standalone)
        return 0;
    return server_send(srv, m);
}

void server_exit(struct server *srv, int status)
{
    struct server_priv *p = srv->priv;

    if (p->chan_open && proto_conn_outlen(&p->chan) > 0) {
        /* Best effort: a pending reply should reach master. */
        int fl = fcntl(p->chan.fd, F_GETFL);
        if (fl >= 0 && fcntl(p->chan.fd, F_SETFL, fl & ~O_NONBLOCK) == 0)
            proto_conn_flush(&p->chan);
    }
    exit(status);
}

const char *server_queue_path(const struct server *srv)
{
    if (server_chrooted(srv))
        return "/";
    return conf_str(srv->conf, "mailgw.path", "QueuePath");
}

char *server_queue_file(const struct server *srv, const char *rel)
{
    /* chrooted daemons live in private/: only its sockets are reachable */
    if (server_chrooted(srv))
        return xasprintf("/%s", strncmp(rel, "private/", 8) == 0 ? rel + 8 : rel);
    return xasprintf("%s/%s", server_queue_path(srv), rel);
}
