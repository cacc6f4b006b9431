/*
 * master - the mailgw supervisor (DESIGN §2, master(8)).
 *
 * Usage: master -c CONFIG [-f]   (normally run by `mailgw start [-f]`)
 *
 * At start master validates the config (errors printed, exit 1),
 * resolves the mailgw user (root only), creates the queue tree, takes the
 * pid file (refuses when a live master holds it), binds every ListenOn
 * address and the unix listeners (private/NAME per daemon, public/control),
 * then (without -f) detaches: double fork and setsid, the invoking
 * process exiting 0 only once the daemon is ready, 1 when it failed.
 * With -f it stays in the foreground and logs to stderr.  Then it spawns
 * and supervises the daemons (master_child.c).
 *
 * Signals: HUP reload (a config that fails validation is logged and the
 * running one kept; otherwise listeners are rebound as needed and a new
 * generation of daemons replaces the old one gracefully), TERM/INT/QUIT
 * graceful stop (10 s, then SIGKILL), USR1 reopen the log files (master's
 * and, by passing USR1 on, the daemons'; a chrooted daemon gets the new
 * log file as an fd over its status channel).  Every second the tick
 * also looks for control files in ControlPath (master_ctlfile.c).
 *
 * Environment: MAILGW_LIBEXEC (directory of the daemons; default: master's
 * own directory), MAILGW_DAEMONS (comma list of daemons to run; tests).
 *
 * Security: master alone keeps root; the daemons drop to User in
 * server_init() (smtpd and smtp after their set-up, chrooted to
 * QueuePath: lib/server server_drop()).  All fds are close-on-exec except those handed to a
 * child on purpose.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define MASTER_DEFAULT_CONF "/etc/mailgw/mailgw.conf"
#define MASTER_DEFAULT_DAEMONS "qmgr,smtpd,smtp,scand,quarantine"

struct master master = { .pid_fd = -1, .control_fd = -1 };

static int ready_fd = -1;

static void master_usage(void)
{
    fprintf(stderr, "usage: master [-c CONFIG] [-f]\n");
    exit(1);
}

/* A startup failure: printed for the person who ran mailgw start. */
static void master_startup_fail(const struct buf *err)
{
    const char *text = err->data ? err->data : "unknown error\n";

    if (master.foreground || ready_fd < 0)
        fprintf(stderr, "mailgw: %s", text);
    else
        for (const char *l = text, *nl; *l; l = nl + 1) {
            nl = strchr(l, '\n');
            if (nl == NULL)
                nl = l + strlen(l) - 1;
            log_error("%.*s", (int)(nl - l), l);
        }
    exit(1);
}

static void master_parse_args(int argc, char **argv)
{
    const char *path = NULL;
    char real[PATH_MAX];
    int ch;

    while ((ch = getopt(argc, argv, "c:f")) != -1) {
        if (ch == 'c')
            path = optarg;
        else if (ch == 'f')
            master.foreground = true;
        else
            master_usage();
    }
    if (optind != argc)
        master_usage();
    if (path == NULL)
        path = getenv("MAILGW_CONF");
    if (path == NULL || *path == 0)
        path = MASTER_DEFAULT_CONF;
    /* Children and reloads must find the same file whatever the cwd. */
    if (realpath(path, real) == NULL) {
        fprintf(stderr, "mailgw: cannot open configuration %s: %s\n", path, strerror(errno));
        exit(1);
    }
    master.config_path = xstrdup(real);
}

static struct conf *master_load_conf(struct buf *diag)
{
    struct conf *c = conf_load(master.config_path, diag);

    if (c == NULL) {
        fprintf(stderr, "mailgw: configuration %s has errors:\n%s", master.config_path,
                diag->data ? diag->data : "");
        exit(1);
    }
    if (diag->len > 0)
        fprintf(stderr, "%s", diag->data);
    return c;
}

static void master_setup_paths(void)
{
    const char *pid = conf_str(master.conf, "mailgw.path", "PidFile");
    const char *env = getenv("MAILGW_LIBEXEC");
    char self[PATH_MAX];
    ssize_t n;

    master.queue_path = xstrdup(conf_str(master.conf, "mailgw.path", "QueuePath"));
    if (pid != NULL && *pid != 0)
        master.pid_path = xstrdup(pid);
    else
        master.pid_path = xasprintf("%s/pid/master.pid", master.queue_path);
    if (env != NULL && *env != 0) {
        master.libexec = xstrdup(env);
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        log_fatal("readlink /proc/self/exe: %m");
    self[n] = 0;
    master.libexec = xstrdup(dirname(self));
}

static void master_setup_daemons(void)
{
    const char *env = getenv("MAILGW_DAEMONS");
    char *list = xstrdup(env != NULL ? env : MASTER_DEFAULT_DAEMONS);
    char *save = NULL;

    for (char *name = strtok_r(list, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
        if (master.ndaemons >= MASTER_MAX_DAEMONS || strchr(name, '/') != NULL
            || strlen(name) >= 32) {
            fprintf(stderr, "mailgw: MAILGW_DAEMONS: bad or too many names\n");
            exit(1);
        }
        master.private_fds[master.ndaemons] = -1;
        master.public_fds[master.ndaemons] = -1;
        master.daemons[master.ndaemons++] = xstrdup(name);
    }
    free(list);
}

static void master_bind_all(void)
{
    struct buf err = BUF_INIT;

    if (master_bind_listeners(&master, master.conf, master.listeners, &master.nlisteners,
                              &err) < 0)
        master_startup_fail(&err);
    for (size_t i = 0; i < master.ndaemons; i++) {
        if (strcmp(master.daemons[i], "smtpd") == 0)
            continue;
        char *rel = xasprintf("private/%s", master.daemons[i]);
        master.private_fds[i] = master_unix_listener(&master, rel, 0600, master.gid, &err);
        free(rel);
        if (master.private_fds[i] < 0)
            master_startup_fail(&err);
        /* The quarantine store answers the CLI itself (listing and
         * releasing need no master involvement); it checks peers too. */
        if (strcmp(master.daemons[i], "quarantine") == 0) {
            gid_t group = master.have_admin_gid ? master.admin_gid : master.gid;
            master.public_fds[i] = master_unix_listener(&master, "public/quarantine", 0660,
                                                        group, &err);
            if (master.public_fds[i] < 0)
                master_startup_fail(&err);
        }
    }
    if (master_control_open(&err) < 0)
        master_startup_fail(&err);
}

static void master_prepare(void)
{
    struct buf err = BUF_INIT;
    char *piddir;

    if (master_resolve_user(&master, &err) < 0 || master_make_tree(&master, &err) < 0)
        master_startup_fail(&err);
    piddir = xstrdup(master.pid_path);
    if (mkdir(dirname(piddir), 0755) < 0 && errno != EEXIST) {
        buf_printf(&err, "cannot create %s: %s\n", piddir, strerror(errno));
        master_startup_fail(&err);
    }
    free(piddir);
    if (master_pid_lock(&master, &err) < 0)
        master_startup_fail(&err);
    master_bind_all();
}

/* Double fork; the original process waits until the daemon says it is
 * ready (one byte on a pipe) and exits 0, or 1 when the pipe closes
 * without it (the daemon logged why). */
static void master_daemonize(void)
{
    int p[2];
    pid_t pid;
    char c = 0;

    if (pipe2(p, O_CLOEXEC) < 0)
        log_fatal("pipe: %m");
    pid = fork();
    if (pid < 0)
        log_fatal("fork: %m");
    if (pid > 0) {
        ssize_t n;
        close(p[1]);
        do {
            n = read(p[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1 || c != '0')
            fprintf(stderr, "mailgw: master failed to start; see the log\n");
        _exit(n == 1 && c == '0' ? 0 : 1);
    }
    close(p[0]);
    if (setsid() < 0)
        log_fatal("setsid: %m");
    pid = fork();
    if (pid < 0)
        log_fatal("fork: %m");
    if (pid > 0)
        _exit(0);
    ready_fd = p[1];
}

/* stderr of a detached master (inherited by the daemons as fd 2): the log
 * file when there is one, so a crash message still lands somewhere. */
static void master_redirect_stdio(void)
{
    const char *file = conf_str(master.conf, "mailgw.options", "LogFilename");
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int err = -1;

    if (file != NULL && *file != 0)
        err = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(err >= 0 ? err : null, 2);
        close(null);
    }
    if (err >= 0)
        close(err);
}

static void master_open_log(void)
{
    const char *file = conf_str(master.conf, "mailgw.options", "LogFilename");

    if (master.foreground)
        log_open("master", LOG_DEST_STDERR, NULL);
    else if (file != NULL && *file != 0)
        log_open("master", LOG_DEST_FILE, file);
    else
        log_open("master", LOG_DEST_SYSLOG, NULL);
    log_set_level((int)conf_int(master.conf, "mailgw.options", "LogLevel"));
    /* The daemons (after their privilege drop) append to the same file. */
    if (!master.foreground && master.root && file != NULL && *file != 0
        && chown(file, master.uid, master.gid) < 0)
        log_warn("cannot chown %s: %m", file);
}

/* Chrooted daemons cannot reopen LogFilename themselves: each daemon
 * that is up (or only ch) gets the new file as its fd 2 over the status
 * channel. */
void master_pass_log_fd(struct master_child *ch)
{
    const char *file = conf_str(master.conf, "mailgw.options", "LogFilename");
    int fd;

    if (master.foreground || file == NULL || *file == 0)
        return;
    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_warn("cannot open log file %s for the daemons: %m", file);
        return;
    }
    master_child_send_fd(ch, "log-fd", fd);
    close(fd);
}

void master_reopen_logs(void)
{
    master_open_log();
    if (!master.foreground)
        master_redirect_stdio();
    master_pass_log_fd(NULL);
    master_child_signal_all(SIGUSR1);
    log_info("log files reopened");
}

void master_request_stop(void)
{
    if (master.stopping)
        return;
    master.stopping = true;
    log_info("stopping: waiting for the daemons to exit");
    master_child_stop_all();
    if (master_child_all_gone())
        event_base_loopbreak(master.base);
}

/* Settings a reload cannot change: the queue tree and who owns it. */
static int master_reload_check(const struct conf *nc, struct buf *diag)
{
    static const char *const fixed[][2] = {
        { "mailgw.path", "QueuePath" },
        { "mailgw.path", "PidFile" },
        { "mailgw.options", "User" },
        { "mailgw.options", "AdminGroup" },
    };

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(conf_str(nc, fixed[i][0], fixed[i][1]),
                   conf_str(master.conf, fixed[i][0], fixed[i][1])) != 0) {
            buf_printf(diag, "%s: cannot change on reload; use mailgw restart\n", fixed[i][1]);
            return -1;
        }
    }
    return 0;
}

static void master_log_diag(const struct buf *diag, bool failed)
{
    for (const char *l = diag->data, *nl; l != NULL && *l; l = nl + 1) {
        nl = strchr(l, '\n');
        int len = nl ? (int)(nl - l) : (int)strlen(l);
        if (failed)
            log_error("reload: %.*s", len, l);
        else
            log_warn("reload: %.*s", len, l);
        if (nl == NULL)
            break;
    }
}

int master_reload(struct buf *diag)
{
    struct master_listener nl[MASTER_MAX_LISTEN];
    size_t nnl = 0;
    struct conf *nc;

    log_info("reload: reading %s", master.config_path);
    nc = conf_load(master.config_path, diag);
    if (nc == NULL || master_reload_check(nc, diag) < 0
        || master_bind_listeners(&master, nc, nl, &nnl, diag) < 0) {
        master_log_diag(diag, true);
        log_error("reload: configuration has errors; keeping the running one");
        if (nc != NULL)
            conf_free(nc);
        return -1;
    }
    master_log_diag(diag, false);
    master_close_listeners(master.listeners, master.nlisteners);
    memcpy(master.listeners, nl, sizeof(nl[0]) * nnl);
    master.nlisteners = nnl;
    conf_free(master.conf);
    master.conf = nc;
    master_open_log();
    master_child_new_generation();
    log_info("reload: configuration reloaded");
    return 0;
}

static void master_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct buf diag = BUF_INIT;

    switch (sig) {
    case SIGCHLD:
        master_child_reap();
        if (master.stopping && master_child_all_gone())
            event_base_loopbreak(master.base);
        break;
    case SIGHUP:
        if (!master.stopping)
            master_reload(&diag);
        break;
    case SIGUSR1:
        master_reopen_logs();
        break;
    default:
        log_info("signal %d (SIG%s) received", (int)sig, sigabbrev_np((int)sig));
        master_request_stop();
        break;
    }
    buf_free(&diag);
}

static void master_on_tick(evutil_socket_t fd, short what, void *arg)
{
    master_child_tick();
    master_ctlfile_poll();
    if (master.stopping && master_child_all_gone())
        event_base_loopbreak(master.base);
}

static void master_setup_events(void)
{
    static const int sigs[] = { SIGCHLD, SIGHUP, SIGUSR1, SIGTERM, SIGINT, SIGQUIT };
    struct timeval second = { 1, 0 };

    master.base = event_base_new();
    if (master.base == NULL)
        log_fatal("cannot create the event base");
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct event *ev = evsignal_new(master.base, sigs[i], master_on_signal, NULL);
        if (ev == NULL || event_add(ev, NULL) < 0)
            log_fatal("cannot install the signal handlers");
    }
    master.ev_tick = event_new(master.base, -1, EV_PERSIST, master_on_tick, NULL);
    if (master.ev_tick == NULL || event_add(master.ev_tick, &second) < 0)
        log_fatal("cannot create the timer");
    master_control_attach();
}

static void master_signal_ready(void)
{
    if (ready_fd < 0)
        return;
    if (write(ready_fd, "0", 1) != 1)
        log_warn("cannot tell the starting process we are ready: %m");
    close(ready_fd);
    ready_fd = -1;
    master_redirect_stdio();
}

/* Shutdown: the loop ended because every daemon exited, or the stop
 * timeout passed. */
static void master_finish(void)
{
    master_child_kill_all();
    for (int i = 0; i < 20 && !master_child_all_gone(); i++) {
        usleep(100 * 1000);
        master_child_reap();
    }
    master_control_close();
    master_pid_remove(&master);
    log_info("stopped");
}

int main(int argc, char **argv)
{
    struct buf diag = BUF_INIT;

    signal(SIGPIPE, SIG_IGN);
    umask(022);
    log_open("master", LOG_DEST_STDERR, NULL);
    master_parse_args(argc, argv);
    master.conf = master_load_conf(&diag);
    buf_free(&diag);
    master_setup_paths();
    master_setup_daemons();
    master_prepare();
    if (!master.foreground)
        master_daemonize();
    master.started = time(NULL);
    master_pid_write(&master);
    master_open_log();
    master_setup_events();
    log_info("starting mailgw: configuration %s, daemons from %s", master.config_path,
             master.libexec);
    if (master.stale_pid > 0)
        log_info("removed stale pid file %s (pid %ld)", master.pid_path, (long)master.stale_pid);
    /* Detach from the caller's terminal/pipes before any daemon inherits
     * fd 2 from us. */
    master_signal_ready();
    master_child_start_all();
    event_base_dispatch(master.base);
    master_finish();
    return 0;
}
