/*
 * mailgw - the control command (mailgw(1)).
 *
 * Usage: mailgw [-c FILE] COMMAND [ARGS]
 *   start [-f]  run master (detached, or in the foreground with -f)
 *   stop        graceful stop; waits until master has exited
 *   restart     stop (when running), then start
 *   reload      check the config, then have master reload it
 *   status      master's and every daemon's state (exit 3: not running)
 *   check       validate the config        (mailgw_cmd_check)
 *   config      print parameters, postconf-like (mailgw_cmd_config)
 *   recv-off recv-on send-off send-on flush reload-bases avir-off avir-on
 *   stats       relayed by master to the daemon concerned (stats: to
 *               every daemon; master sums the counters and writes
 *               StatFilename)
 * The config is -c FILE, else $MAILGW_CONF, else /etc/mailgw/mailgw.conf.
 *
 * start execs master from the libexec directory: $MAILGW_LIBEXEC when it
 * holds a master, else ../libexec next to this binary (the build tree),
 * else ../libexec/mailgw (an installed PREFIX/sbin/mailgw), else the
 * compiled-in MAILGW_LIBEXECDIR.
 *
 * Diagnostics go to stderr prefixed "mailgw: "; the exit status is 0 on
 * success, 1 on failure, 3 for status when mailgw is not running.  Every
 * command that needs master says "mailgw: COMMAND: mailgw is not
 * running" (status: "mailgw is not running" on stdout) when it is not.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "mailgw_config.h"
#include "mailgw_quarantine.h"
#include "mailgw_ctl.h"
#include "util/buf.h"
#include "util/mem.h"

#ifndef MAILGW_LIBEXECDIR
#define MAILGW_LIBEXECDIR "/usr/local/libexec/mailgw"
#endif
#define MAILGW_STOP_WAIT_MS 30000

static const char *config_path;

static void mailgw_usage(FILE *out)
{
    fprintf(out,
            "usage: mailgw [-c FILE] COMMAND\n"
            "commands:\n"
            "  start [-f]   start (-f: stay in the foreground, log to stderr)\n"
            "  stop         stop gracefully\n"
            "  restart      stop, then start\n"
            "  reload       check the configuration, then reload it\n"
            "  status       state of master and the daemons\n"
            "  check        validate the configuration\n"
            "  config       print parameters (-n non-defaults, -d defaults)\n"
            "  recv-off | recv-on     suspend / resume receiving (smtpd)\n"
            "  send-off | send-on     suspend / resume sending (qmgr)\n"
            "  flush        retry the deferred queue now\n"
            "  avir-off | avir-on | reload-bases   anti-virus (scand)\n"
            "  stats        counters (also written to StatFilename)\n"
            "  quarantine list|show|release|resend|delete|expire   the store\n");
}

static bool mailgw_executable(const char *path)
{
    return access(path, X_OK) == 0;
}

static char *mailgw_find_master(void)
{
    const char *env = getenv("MAILGW_LIBEXEC");
    char self[PATH_MAX];
    ssize_t n;
    char *path;

    if (env != NULL && *env != 0) {
        path = xasprintf("%s/master", env);
        if (mailgw_executable(path))
            return path;
        free(path);
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        const char *dir = dirname(self);
        static const char *const rel[] = { "../libexec/master", "../libexec/mailgw/master" };
        for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
            path = xasprintf("%s/%s", dir, rel[i]);
            if (mailgw_executable(path))
                return path;
            free(path);
        }
    }
    return xstrdup(MAILGW_LIBEXECDIR "/master");
}

static int mailgw_exec_master(bool foreground)
{
    char *master = mailgw_find_master();
    char *argv[] = { master, "-c", (char *)config_path, foreground ? "-f" : NULL, NULL };

    fflush(NULL);
    execv(master, argv);
    fprintf(stderr, "mailgw: cannot execute %s: %s\n", master, strerror(errno));
    return 1;
}

static int mailgw_cmd_start(int argc, char **argv)
{
    bool foreground = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0) {
            foreground = true;
        } else {
            fprintf(stderr, "usage: mailgw start [-f]\n");
            return 1;
        }
    }
    return mailgw_exec_master(foreground);
}

static void mailgw_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* true while pid exists and is not a zombie (master unlocks its pid file
 * just before it exits). */
static bool mailgw_process_alive(pid_t pid)
{
    char path[64], text[512];
    FILE *f;
    bool alive;

    if (pid <= 0 || kill(pid, 0) < 0)
        return false;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return false;
    alive = fgets(text, sizeof(text), f) != NULL;
    fclose(f);
    const char *paren = alive ? strrchr(text, ')') : NULL;
    return paren != NULL && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

/* Ask master to stop (control socket, else SIGTERM) and wait for it. */
static int mailgw_stop(const struct conf *c, bool quiet_if_stopped)
{
    pid_t pid = mailgw_ctl_running(c);
    struct proto_msg reply;
    const char *why = NULL;
    int fd;

    if (pid == 0) {
        if (!quiet_if_stopped)
            fprintf(stderr, "mailgw: stop: mailgw is not running\n");
        return quiet_if_stopped ? 0 : 1;
    }
    fd = mailgw_ctl_connect(c);
    proto_msg_init(&reply);
    if (fd < 0 || mailgw_ctl_request(fd, "stop", &reply, 10000, &why) < 0) {
        if (pid > 0 && kill(pid, SIGTERM) < 0) {
            fprintf(stderr, "mailgw: cannot signal master pid %ld: %s\n", (long)pid,
                    strerror(errno));
            proto_msg_free(&reply);
            return 1;
        }
    }
    proto_msg_free(&reply);
    if (fd >= 0)
        close(fd);
    for (long waited = 0; waited < MAILGW_STOP_WAIT_MS; waited += 100) {
        if (mailgw_ctl_running(c) == 0 && !mailgw_process_alive(pid)) {
            printf("mailgw: stopped\n");
            return 0;
        }
        mailgw_sleep_ms(100);
    }
    fprintf(stderr, "mailgw: master pid %ld did not stop within %d s\n", (long)pid,
            MAILGW_STOP_WAIT_MS / 1000);
    return 1;
}

static int mailgw_cmd_stop(int argc, char **argv)
{
    struct conf *c = mailgw_ctl_conf(config_path, false);
    int rc;

    if (c == NULL)
        return 1;
    rc = mailgw_stop(c, false);
    conf_free(c);
    return rc;
}

static int mailgw_cmd_restart(int argc, char **argv)
{
    struct conf *c = mailgw_ctl_conf(config_path, false);
    int rc;

    if (c == NULL)
        return 1;
    rc = mailgw_stop(c, true);
    conf_free(c);
    if (rc != 0)
        return rc;
    return mailgw_exec_master(false);
}

static void mailgw_print_attrs(const struct proto_msg *m, const char *name)
{
    const struct proto_attr *a;

    for (size_t i = 0; (a = proto_get_nth(m, name, i)) != NULL; i++)
        fprintf(stderr, "%.*s\n", (int)a->len, (const char *)a->value);
}

static int mailgw_cmd_reload(int argc, char **argv)
{
    struct conf *c = mailgw_ctl_conf(config_path, true);
    struct proto_msg reply;
    const char *why = NULL, *status;
    int fd, rc = 1;

    if (c == NULL) {
        fprintf(stderr, "mailgw: not reloaded: the running configuration stays\n");
        return 1;
    }
    fd = mailgw_ctl_connect(c);
    conf_free(c);
    if (fd < 0) {
        fprintf(stderr, "mailgw: reload: %s\n", errno == ENOENT || errno == ECONNREFUSED
                                                    ? "mailgw is not running"
                                                    : strerror(errno));
        return 1;
    }
    proto_msg_init(&reply);
    if (mailgw_ctl_request(fd, "reload", &reply, 30000, &why) < 0) {
        fprintf(stderr, "mailgw: reload: no answer from master: %s\n", why ? why : "?");
    } else {
        status = proto_get_str(&reply, "status");
        rc = status != NULL && strcmp(status, "ok") == 0 ? 0 : 1;
        mailgw_print_attrs(&reply, "diag");
        if (rc == 0)
            printf("mailgw: configuration reloaded\n");
        else
            fprintf(stderr, "mailgw: reload: %s\n", proto_get_str(&reply, "reason")
                                                        ? proto_get_str(&reply, "reason")
                                                        : "failed");
    }
    proto_msg_free(&reply);
    close(fd);
    return rc;
}

static int64_t mailgw_nth_int(const struct proto_msg *m, const char *name, size_t n)
{
    const struct proto_attr *a = proto_get_nth(m, name, n);

    return a != NULL && a->type == PROTO_INT ? a->num : 0;
}

static void mailgw_print_status(const struct proto_msg *m)
{
    const struct proto_attr *d, *st;

    printf("mailgw is running: master pid %lld, uptime %lld s, configuration %s\n",
           (long long)mailgw_nth_int(m, "pid", 0), (long long)mailgw_nth_int(m, "uptime", 0),
           proto_get_str(m, "config") ? proto_get_str(m, "config") : "?");
    printf("%-10s %8s %10s %9s  %s\n", "daemon", "pid", "uptime", "restarts", "state");
    for (size_t i = 0; (d = proto_get_nth(m, "daemon", i)) != NULL; i++) {
        st = proto_get_nth(m, "state", i);
        printf("%-10.*s %8lld %10lld %9lld  %.*s\n", (int)d->len, (const char *)d->value,
               (long long)mailgw_nth_int(m, "pid", i + 1),
               (long long)mailgw_nth_int(m, "uptime", i + 1),
               (long long)mailgw_nth_int(m, "restarts", i), st ? (int)st->len : 1,
               st ? (const char *)st->value : "?");
    }
}

static int mailgw_cmd_status(int argc, char **argv)
{
    struct conf *c = mailgw_ctl_conf(config_path, false);
    struct proto_msg reply;
    const char *why = NULL;
    int fd, rc = 1;

    if (c == NULL)
        return 1;
    fd = mailgw_ctl_connect(c);
    if (fd < 0) {
        int err = errno;
        pid_t pid = mailgw_ctl_running(c);
        conf_free(c);
        if (pid != 0 && err == EACCES) {
            fprintf(stderr, "mailgw: master pid %ld is running; the control socket refused "
                    "this user\n", (long)pid);
            return 1;
        }
        printf("mailgw is not running\n");
        return 3;
    }
    conf_free(c);
    proto_msg_init(&reply);
    if (mailgw_ctl_request(fd, "status", &reply, 10000, &why) < 0)
        fprintf(stderr, "mailgw: status: no answer from master: %s\n", why ? why : "?");
    else if (proto_get_str(&reply, "status") == NULL
             || strcmp(proto_get_str(&reply, "status"), "ok") != 0)
        fprintf(stderr, "mailgw: status: %s\n", proto_get_str(&reply, "reason")
                                                    ? proto_get_str(&reply, "reason")
                                                    : "failed");
    else {
        mailgw_print_status(&reply);
        rc = 0;
    }
    proto_msg_free(&reply);
    close(fd);
    return rc;
}

static int mailgw_cmd_relay(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: mailgw %s\n", argv[0]);
        return 1;
    }
    return mailgw_ctl_simple(config_path, argv[0]);
}

struct mailgw_command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct mailgw_command commands[] = {
    { "start", mailgw_cmd_start },
    { "stop", mailgw_cmd_stop },
    { "restart", mailgw_cmd_restart },
    { "reload", mailgw_cmd_reload },
    { "status", mailgw_cmd_status },
    { "check", mailgw_cmd_check },
    { "config", mailgw_cmd_config },
    { "recv-off", mailgw_cmd_relay },
    { "recv-on", mailgw_cmd_relay },
    { "send-off", mailgw_cmd_relay },
    { "send-on", mailgw_cmd_relay },
    { "flush", mailgw_cmd_relay },
    { "reload-bases", mailgw_cmd_relay },
    { "avir-off", mailgw_cmd_relay },
    { "avir-on", mailgw_cmd_relay },
    { "stats", mailgw_cmd_relay },
    { "quarantine", mailgw_cmd_quarantine },
};

int main(int argc, char **argv)
{
    int ch;

    while ((ch = getopt(argc, argv, "+c:h")) != -1) {
        if (ch == 'c') {
            config_path = optarg;
        } else if (ch == 'h') {
            mailgw_usage(stdout);
            return 0;
        } else {
            mailgw_usage(stderr);
            return 1;
        }
    }
    if (optind >= argc) {
        mailgw_usage(stderr);
        return 1;
    }
    if (config_path == NULL)
        config_path = getenv("MAILGW_CONF");
    if (config_path == NULL || *config_path == 0)
        config_path = MAILGW_DEFAULT_CONF;
    /* check/config read it from there too. */
    setenv("MAILGW_CONF", config_path, 1);
    int cmd = optind;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[cmd], commands[i].name) == 0) {
            optind = 1;     /* commands may parse their own options */
            return commands[i].run(argc - cmd, argv + cmd);
        }
    }
    fprintf(stderr, "mailgw: unknown command \"%s\"\n", argv[cmd]);
    mailgw_usage(stderr);
    return 1;
}
