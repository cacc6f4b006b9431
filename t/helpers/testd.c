/*
 * testd - a fake mailgw daemon for master's supervision tests, linked with
 * lib/server like the real ones.  Tests put symlinks named qmgr, smtpd,
 * smtp ... to it in a directory and point MAILGW_LIBEXEC there; testd
 * takes its daemon name from argv[0].
 *
 * Behaviour, per daemon name, from the environment:
 *   TESTD_MODE_<name>=run    (default) serve: each listener accepts and
 *                            answers "220 testd <name> ready" then closes
 *                     exit   exit with status 1 right after server_init
 *                     hang   after the first heartbeat, block forever (no
 *                            more heartbeats, no stop handling)
 *                     crash  abort() after one second
 *   TESTD_STOP_DELAY=N       on "stop": close the listeners at once, exit
 *                            N seconds later (a daemon finishing sessions)
 * Commands from master: recv-off, recv-on, send-off, send-on, flush are
 * logged ("testd <name>: command <op>") and answered ok; stats answers
 * testd_commands=<count>; anything else gets status=error.
 */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "server/server.h"
#include "util/log.h"

static const char *testd_name;
static long testd_commands;
static struct event *testd_accept[16];

static void testd_on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    char line[128];
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (c < 0)
        return;
    int n = snprintf(line, sizeof(line), "220 testd %s ready\r\n", testd_name);
    if (write(c, line, (size_t)n) < 0)
        log_warn("write: %m");
    close(c);
    server_use(srv);
}

static void testd_on_command(struct server *srv, const struct proto_msg *cmd,
                             struct proto_msg *reply, void *arg)
{
    static const char *const known[] = { "recv-off", "recv-on", "send-off", "send-on", "flush" };
    const char *op = proto_get_str(cmd, "op");

    testd_commands++;
    if (strcmp(op, "stats") == 0) {
        proto_put_int(reply, "testd_commands", testd_commands);
        return;
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(op, known[i]) == 0) {
            log_info("testd %s: command %s", testd_name, op);
            return;
        }
    }
    proto_put_str(reply, "status", "error");
    proto_put_str(reply, "reason", "unknown command");
}

static void testd_exit_cb(evutil_socket_t fd, short what, void *arg)
{
    log_info("testd %s: stopped", testd_name);
    server_exit(arg, 0);
}

static void testd_on_stop(struct server *srv, void *arg)
{
    const char *delay = getenv("TESTD_STOP_DELAY");
    struct timeval tv = { delay ? atoi(delay) : 0, 0 };

    log_info("testd %s: stopping", testd_name);
    for (size_t i = 0; i < srv->nlisten; i++) {
        event_del(testd_accept[i]);
        close(srv->listen_fds[i]);
    }
    event_base_once(srv->base, -1, EV_TIMEOUT, testd_exit_cb, srv, &tv);
}

static void testd_misbehave(evutil_socket_t fd, short what, void *arg)
{
    const char *mode = arg;

    if (strcmp(mode, "crash") == 0) {
        log_info("testd %s: crashing as told", testd_name);
        abort();
    }
    log_info("testd %s: hanging as told", testd_name);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    char var[96];
    const char *mode;
    struct server *srv;
    struct event_base *base;

    testd_name = basename(argv[0]);
    srv = server_init(argc, argv, testd_name);
    snprintf(var, sizeof(var), "TESTD_MODE_%s", testd_name);
    mode = getenv(var);
    if (mode == NULL)
        mode = "run";
    if (strcmp(mode, "exit") == 0) {
        log_info("testd %s: exiting at once as told", testd_name);
        exit(1);
    }
    base = event_base_new();
    if (base == NULL)
        log_fatal("event_base_new failed");
    server_event_attach(srv, base, testd_on_command, testd_on_stop, NULL);
    for (size_t i = 0; i < srv->nlisten; i++) {
        testd_accept[i] = event_new(base, srv->listen_fds[i], EV_READ | EV_PERSIST,
                                    testd_on_accept, srv);
        event_add(testd_accept[i], NULL);
    }
    if (strcmp(mode, "hang") == 0 || strcmp(mode, "crash") == 0) {
        struct timeval tv = { strcmp(mode, "crash") == 0 ? 1 : 0, 200 * 1000 };
        event_base_once(base, -1, EV_TIMEOUT, testd_misbehave, (void *)mode, &tv);
    }
    log_info("testd %s: started with %zu listeners, mode %s", testd_name, srv->nlisten, mode);
    event_base_dispatch(base);
    return 0;
}
