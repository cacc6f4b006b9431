/*
 * master_child - spawning and supervising the daemons.
 *
 * Interface: master_child_start_all() (the daemon set: MAILGW_DAEMONS or
 * qmgr, smtpd, smtp; each only when its binary exists in libexec),
 * master_child_reap() (SIGCHLD), master_child_tick() (every second:
 * heartbeats, stop deadlines), master_child_new_generation() (reload),
 * master_child_stop_all() (shutdown), master_child_command() (a frame
 * down the status channel).
 *
 * A child gets fd 3 = its end of a socketpair (the status channel) and
 * fd 4.. = its listeners (smtpd: every ListenOn socket; any other daemon:
 * the unix listener private/NAME), fds 0 and 1 = /dev/null, fd 2 =
 * master's stderr (the terminal with -f, else the log file).
 *
 * Supervision: a child that exits is restarted after a back-off (1 s,
 * doubling up to 60 s, back to 1 s once a child ran 60 s); a clean exit
 * (status 0) after at least a second is a recycle and restarts at once.
 * 5 crashes within 60 s throttle it: the next start waits 60 s and the
 * log says "throttling".  A current-generation child that sent no
 * heartbeat for HeartbeatTimeout is SIGKILLed ("hung") and restarted.
 *
 * Reload starts a new generation at once while the old one finishes (it
 * was sent "stop"); the exception is qmgr, the single owner of the queue:
 * the new qmgr starts only when the old one has exited.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define EXCLUSIVE_STOP_TIMEOUT 30

static bool child_exclusive(const char *name)
{
    return strcmp(name, "qmgr") == 0;
}

static const char *child_state_name(const struct master_child *ch)
{
    if (ch->old)
        return "stopping";
    switch (ch->state) {
    case CHILD_RUNNING: return "running";
    case CHILD_WAITING: return ch->pid ? "running" : "waiting";
    case CHILD_THROTTLED: return "throttled";
    case CHILD_STOPPING: return "stopping";
    }
    return "?";
}

const char *master_child_state(const struct master_child *ch)
{
    return child_state_name(ch);
}

struct master_child *master_child_find(const char *name)
{
    for (struct master_child *ch = master.children; ch; ch = ch->next)
        if (!ch->old && strcmp(ch->name, name) == 0)
            return ch;
    return NULL;
}

static int child_daemon_index(const char *name)
{
    for (size_t i = 0; i < master.ndaemons; i++)
        if (strcmp(master.daemons[i], name) == 0)
            return (int)i;
    return -1;
}

/* In the forked child: put the fds in place and exec.  Never returns. */
static void child_exec(const char *name, const int *pass, size_t npass)
{
    static const int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGCHLD, SIGPIPE };
    int high[1 + MASTER_MAX_LISTEN];
    sigset_t none;
    char nbuf[16];
    char *path, *argv[8];
    size_t argc = 0;
    int devnull;

    /* libevent's handlers would signal master's loop from here. */
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (size_t i = 0; i < npass; i++)
        if ((high[i] = fcntl(pass[i], F_DUPFD_CLOEXEC, 64)) < 0)
            _exit(126);
    devnull = open("/dev/null", O_RDWR);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0)
        _exit(126);
    for (size_t i = 0; i < npass; i++)
        if (dup2(high[i], SERVER_STATUS_FD + (int)i) < 0)
            _exit(126);
    path = xasprintf("%s/%s", master.libexec, name);
    argv[argc++] = path;
    argv[argc++] = "-c";
    argv[argc++] = master.config_path;
    if (master.foreground)
        argv[argc++] = "-f";
    if (npass > 1) {
        snprintf(nbuf, sizeof(nbuf), "%zu", npass - 1);
        argv[argc++] = "-L";
        argv[argc++] = nbuf;
    }
    argv[argc] = NULL;
    execv(path, argv);
    dprintf(2, "mailgw/master[%ld]: error: cannot execute %s: %s\n", (long)getpid(), path,
            strerror(errno));
    _exit(127);
}

static size_t child_fds(const struct master_child *ch, int status_fd, int *pass)
{
    size_t n = 0;
    int idx = child_daemon_index(ch->name);

    pass[n++] = status_fd;
    if (strcmp(ch->name, "smtpd") == 0) {
        for (size_t i = 0; i < master.nlisteners; i++)
            pass[n++] = master.listeners[i].fd;
    } else if (idx >= 0 && master.private_fds[idx] >= 0) {
        pass[n++] = master.private_fds[idx];
        if (master.public_fds[idx] >= 0)
            pass[n++] = master.public_fds[idx];
    }
    return n;
}

static void child_on_read(evutil_socket_t fd, short what, void *arg);
static void child_on_write(evutil_socket_t fd, short what, void *arg);
static void child_schedule(struct master_child *ch, unsigned delay);

static void child_close_chan(struct master_child *ch)
{
    if (!ch->chan_open)
        return;
    event_free(ch->ev_read);
    event_free(ch->ev_write);
    ch->ev_read = ch->ev_write = NULL;
    proto_conn_close(&ch->chan);
    ch->chan_open = false;
}

static int child_spawn(struct master_child *ch)
{
    int sv[2], pass[1 + MASTER_MAX_LISTEN];
    size_t npass;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("daemon %s: socketpair: %m", ch->name);
        return -1;
    }
    npass = child_fds(ch, sv[1], pass);
    pid = fork();
    if (pid < 0) {
        log_error("daemon %s: fork: %m", ch->name);
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0)
        child_exec(ch->name, pass, npass);
    close(sv[1]);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    proto_conn_init(&ch->chan, sv[0]);
    ch->chan_open = true;
    ch->ev_read = event_new(master.base, sv[0], EV_READ | EV_PERSIST, child_on_read, ch);
    ch->ev_write = event_new(master.base, sv[0], EV_WRITE, child_on_write, ch);
    if (ch->ev_read == NULL || ch->ev_write == NULL)
        log_fatal("cannot create events");
    event_add(ch->ev_read, NULL);
    ch->pid = pid;
    ch->attached = ch->reopen_pending = false;
    ch->state = CHILD_RUNNING;
    ch->started = ch->last_beat = time(NULL);
    log_info("daemon %s started: pid %ld", ch->name, (long)pid);
    return 0;
}

static void child_restart_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master_child *ch = arg;

    if (master.stopping || ch->old || ch->pid != 0)
        return;
    ch->restarts++;
    if (child_spawn(ch) < 0)
        child_schedule(ch, MASTER_BACKOFF_MAX);
}

static void child_schedule(struct master_child *ch, unsigned delay)
{
    struct timeval tv = { (time_t)delay, 0 };

    if (ch->ev_restart == NULL)
        ch->ev_restart = evtimer_new(master.base, child_restart_cb, ch);
    if (ch->ev_restart == NULL)
        log_fatal("cannot create a timer");
    evtimer_add(ch->ev_restart, &tv);
}

static struct master_child *child_new(const char *name)
{
    struct master_child *ch = xcalloc(1, sizeof(*ch));

    str_copy(ch->name, name, sizeof(ch->name));
    ch->backoff = 1;
    ch->state = CHILD_WAITING;
    ch->next = master.children;
    master.children = ch;
    return ch;
}

static void child_free(struct master_child *dead)
{
    for (struct master_child **pp = &master.children; *pp; pp = &(*pp)->next) {
        if (*pp == dead) {
            *pp = dead->next;
            break;
        }
    }
    child_close_chan(dead);
    if (dead->ev_restart)
        event_free(dead->ev_restart);
    free(dead);
}

static bool child_binary_ok(const char *name)
{
    char *path = xasprintf("%s/%s", master.libexec, name);
    bool ok = access(path, X_OK) == 0;

    if (!ok)
        log_warn("daemon %s: %s: %m: not started", name, path);
    free(path);
    return ok;
}

/* An old child with the same name still running (qmgr waits for it). */
static bool child_old_running(const char *name)
{
    for (struct master_child *ch = master.children; ch; ch = ch->next)
        if (ch->old && ch->pid != 0 && strcmp(ch->name, name) == 0)
            return true;
    return false;
}

void master_child_start_all(void)
{
    /* Reverse order so the list (prepended) reads in daemon order. */
    for (size_t i = master.ndaemons; i-- > 0;) {
        const char *name = master.daemons[i];
        if (!child_binary_ok(name))
            continue;
        struct master_child *ch = child_new(name);
        if (child_exclusive(name) && child_old_running(name)) {
            log_info("daemon %s: new generation waits for the old one to exit", name);
            continue;
        }
        if (child_spawn(ch) < 0)
            child_schedule(ch, 1);
    }
}

static const char *child_signame(int sig)
{
    const char *abbrev = sigabbrev_np(sig);

    return abbrev != NULL ? abbrev : "?";
}

static void child_describe_exit(const struct master_child *ch, pid_t pid, int status,
                                char *text, size_t size)
{
    if (WIFEXITED(status))
        snprintf(text, size, "daemon %s pid %ld exited with status %d", ch->name, (long)pid,
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(text, size, "daemon %s pid %ld killed by signal %d (SIG%s)%s", ch->name,
                 (long)pid, WTERMSIG(status), child_signame(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(text, size, "daemon %s pid %ld ended with wait status %#x", ch->name,
                 (long)pid, status);
}

static unsigned child_recent_crashes(const struct master_child *ch, time_t now)
{
    unsigned n = 0;
    size_t have = ch->ncrashes < MASTER_THROTTLE_CRASHES ? ch->ncrashes : MASTER_THROTTLE_CRASHES;

    for (size_t i = 0; i < have; i++)
        if (now - ch->crashes[i] < MASTER_THROTTLE_WINDOW)
            n++;
    return n;
}

/* A current-generation child exited on its own: decide when it restarts. */
static void child_plan_restart(struct master_child *ch, int status, const char *text)
{
    time_t now = time(NULL);
    time_t ran = now - ch->started;
    unsigned delay;

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && ran >= 1) {
        log_info("%s: restarting", text);
        ch->state = CHILD_WAITING;
        child_schedule(ch, 0);
        return;
    }
    if (ran >= MASTER_BACKOFF_RESET)
        ch->backoff = 1;
    ch->crashes[ch->ncrashes % MASTER_THROTTLE_CRASHES] = now;
    ch->ncrashes++;
    delay = ch->backoff;
    ch->backoff = ch->backoff * 2 > MASTER_BACKOFF_MAX ? MASTER_BACKOFF_MAX : ch->backoff * 2;
    if (child_recent_crashes(ch, now) >= MASTER_THROTTLE_CRASHES) {
        delay = MASTER_BACKOFF_MAX;
        ch->state = CHILD_THROTTLED;
        log_warn("%s; daemon %s: throttling: %d crashes in %d s, next start in %u s", text,
                 ch->name, MASTER_THROTTLE_CRASHES, MASTER_THROTTLE_WINDOW, delay);
    } else {
        ch->state = CHILD_WAITING;
        log_warn("%s; restarting in %u s", text, delay);
    }
    child_schedule(ch, delay);
}

static void child_exited(struct master_child *ch, pid_t pid, int status)
{
    char text[256];
    const char *name = ch->name;

    child_describe_exit(ch, pid, status, text, sizeof(text));
    child_close_chan(ch);
    ch->pid = 0;
    if (ch->old) {
        log_info("%s (previous generation)", text);
        char saved[32];
        str_copy(saved, name, sizeof(saved));
        child_free(ch);
        struct master_child *cur = master_child_find(saved);
        if (cur != NULL && cur->pid == 0 && cur->state == CHILD_WAITING && !master.stopping
            && (cur->ev_restart == NULL || !evtimer_pending(cur->ev_restart, NULL))
            && child_spawn(cur) < 0)
            child_schedule(cur, 1);
        return;
    }
    if (master.stopping || ch->state == CHILD_STOPPING) {
        log_info("%s", text);
        ch->state = CHILD_STOPPING;
        return;
    }
    child_plan_restart(ch, status, text);
}

void master_child_reap(void)
{
    pid_t pid;
    int status;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct master_child *ch = master.children;
        while (ch != NULL && ch->pid != pid)
            ch = ch->next;
        if (ch == NULL) {
            log_debug("reaped unknown child pid %ld", (long)pid);
            continue;
        }
        child_exited(ch, pid, status);
    }
}

static void child_kill(struct master_child *ch, int sig)
{
    if (ch->pid > 0 && kill(ch->pid, sig) < 0 && errno != ESRCH)
        log_warn("daemon %s pid %ld: kill: %m", ch->name, (long)ch->pid);
}

void master_child_tick(void)
{
    time_t now = time(NULL);
    long long timeout = conf_int(master.conf, "mailgw.options", "HeartbeatTimeout");

    /* A timeout close to the heartbeat period would kill healthy daemons. */
    if (timeout > 0 && timeout < SERVER_HEARTBEAT_SECONDS + 2)
        timeout = SERVER_HEARTBEAT_SECONDS + 2;

    for (struct master_child *ch = master.children; ch; ch = ch->next) {
        if (ch->pid == 0)
            continue;
        if (ch->old || ch->state == CHILD_STOPPING) {
            if (ch->stop_deadline && now >= ch->stop_deadline) {
                log_warn("daemon %s pid %ld did not stop in time: killing it", ch->name,
                         (long)ch->pid);
                child_kill(ch, SIGKILL);
                ch->stop_deadline = 0;
            }
            continue;
        }
        if (timeout > 0 && now - ch->last_beat >= timeout) {
            log_warn("daemon %s pid %ld hung: no heartbeat for %lld s: killing it", ch->name,
                     (long)ch->pid, (long long)(now - ch->last_beat));
            child_kill(ch, SIGKILL);
            ch->last_beat = now;
        }
    }
}

int master_child_command(struct master_child *ch, const char *op, int64_t reqid)
{
    struct proto_msg m;
    int rc = -1;

    if (!ch->chan_open || ch->pid == 0)
        return -1;
    proto_msg_init(&m);
    proto_put_str(&m, "op", op);
    if (reqid > 0)
        proto_put_int(&m, "reqid", reqid);
    if (proto_conn_queue(&ch->chan, &m) == 0 && proto_conn_flush(&ch->chan) >= 0)
        rc = 0;
    if (rc == 0 && proto_conn_outlen(&ch->chan) > 0)
        event_add(ch->ev_write, NULL);
    proto_msg_free(&m);
    return rc;
}

static void child_ask_stop(struct master_child *ch, unsigned timeout)
{
    if (ch->ev_restart)
        evtimer_del(ch->ev_restart);
    if (ch->pid == 0)
        return;
    if (master_child_command(ch, "stop", 0) < 0)
        child_kill(ch, SIGTERM);
    ch->stop_deadline = time(NULL) + (time_t)timeout;
    if (!ch->old)
        ch->state = CHILD_STOPPING;
}

void master_child_stop_all(void)
{
    time_t limit = time(NULL) + MASTER_STOP_TIMEOUT;

    for (struct master_child *ch = master.children; ch; ch = ch->next) {
        if (ch->ev_restart)
            evtimer_del(ch->ev_restart);
        if (ch->pid == 0) {
            ch->state = CHILD_STOPPING;
        } else if (ch->old) {
            if (ch->stop_deadline == 0 || ch->stop_deadline > limit)
                ch->stop_deadline = limit;
        } else {
            child_ask_stop(ch, MASTER_STOP_TIMEOUT);
        }
    }
}

void master_child_new_generation(void)
{
    struct master_child *next;

    for (struct master_child *ch = master.children; ch; ch = next) {
        next = ch->next;
        if (ch->old)
            continue;
        if (ch->pid == 0) {
            child_free(ch);
            continue;
        }
        ch->old = true;
        child_ask_stop(ch, child_exclusive(ch->name) ? EXCLUSIVE_STOP_TIMEOUT
                                                     : MASTER_RELOAD_STOP_TIMEOUT);
    }
    master_child_start_all();
}

/* SIGUSR1 would kill a daemon that has not installed its handler yet:
 * those get it after their first heartbeat. */
void master_child_signal_all(int sig)
{
    for (struct master_child *ch = master.children; ch; ch = ch->next) {
        if (sig == SIGUSR1 && !ch->attached)
            ch->reopen_pending = ch->pid != 0;
        else
            child_kill(ch, sig);
    }
}

void master_child_send_fd(struct master_child *only, const char *op, int fd)
{
    for (struct master_child *ch = master.children; ch; ch = ch->next) {
        struct proto_msg m;
        if ((only != NULL && ch != only) || ch->pid == 0 || !ch->chan_open || !ch->attached)
            continue;
        proto_msg_init(&m);
        proto_put_str(&m, "op", op);
        proto_put_fd(&m, fd);
        if (proto_conn_queue(&ch->chan, &m) < 0 || proto_conn_flush(&ch->chan) < 0)
            log_warn("daemon %s pid %ld: cannot send %s", ch->name, (long)ch->pid, op);
        else if (proto_conn_outlen(&ch->chan) > 0)
            event_add(ch->ev_write, NULL);
        proto_msg_free(&m);
    }
}

void master_child_kill_all(void)
{
    for (struct master_child *ch = master.children; ch; ch = ch->next)
        if (ch->pid > 0) {
            log_warn("daemon %s pid %ld did not stop in time: killing it", ch->name,
                     (long)ch->pid);
            child_kill(ch, SIGKILL);
        }
}

bool master_child_all_gone(void)
{
    for (struct master_child *ch = master.children; ch; ch = ch->next)
        if (ch->pid != 0)
            return false;
    return true;
}

static void child_frame(struct master_child *ch, struct proto_msg *m)
{
    const char *op = proto_get_str(m, "op");

    if (op == NULL) {
        log_warn("daemon %s pid %ld: status frame without op ignored", ch->name, (long)ch->pid);
    } else if (strcmp(op, "heartbeat") == 0) {
        ch->last_beat = time(NULL);
        if (!ch->attached) {
            ch->attached = true;
            if (ch->reopen_pending) {
                master_pass_log_fd(ch);
                child_kill(ch, SIGUSR1);
            }
            ch->reopen_pending = false;
        }
    } else if (strcmp(op, "reply") == 0) {
        master_control_reply(ch, m);
    } else {
        log_debug("daemon %s pid %ld: event %s", ch->name, (long)ch->pid, op);
    }
}

static void child_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct master_child *ch = arg;
    const char *why = NULL;
    int r;

    do {
        r = proto_conn_read(&ch->chan, &why);
    } while (r == 1);
    for (;;) {
        struct proto_msg m;
        int n;
        proto_msg_init(&m);
        n = proto_conn_next(&ch->chan, &m, &why);
        if (n == 1)
            child_frame(ch, &m);
        proto_msg_free(&m);
        if (n == 0)
            break;
        if (n < 0) {
            log_warn("daemon %s pid %ld: bad status frame: %s", ch->name, (long)ch->pid,
                     why ? why : "?");
            r = -1;
            break;
        }
    }
    if (r < 0) {
        /* The child is exiting (or broke the protocol); the heartbeat
         * timeout or SIGCHLD takes it from here. */
        log_debug("daemon %s pid %ld: status channel closed (%s)", ch->name, (long)ch->pid,
                  why ? why : "closed");
        child_close_chan(ch);
    }
}

static void child_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct master_child *ch = arg;

    if (proto_conn_flush(&ch->chan) < 0) {
        child_close_chan(ch);
        return;
    }
    if (proto_conn_outlen(&ch->chan) > 0)
        event_add(ch->ev_write, NULL);
}
