/*
 * server - the skeleton every mailgw daemon links (DESIGN §2).
 *
 * How master starts a daemon:  libexec/NAME -c CONFIG [-f] [-L NLISTEN]
 *   fd 0,1,2  /dev/null, /dev/null, master's log fd (stderr in foreground)
 *   fd 3      a unix stream socket to master (the "status channel"), in
 *             proto frames: the child sends {op="heartbeat"} every
 *             SERVER_HEARTBEAT_SECONDS; master sends commands such as
 *             {op="stop"} (graceful: stop accepting, finish, exit 0),
 *             {op="recv-off"}, {op="recv-on"}, {op="send-off"}, ... and
 *             requests a daemon answers (op plus attributes).
 *   fd 4..    NLISTEN listening sockets (TCP for smtpd; the unix socket
 *             private/NAME for daemons that serve one), already bound and
 *             listening, O_NONBLOCK.
 * A daemon started by hand (no fd 3) runs standalone: no heartbeats.
 *
 * server_init() parses argv, loads and validates the config (exit 1 with
 * the errors on failure), opens the log as the config says (stderr with
 * -f), then, when running as root, drops privileges to [mailgw.options]
 * User (setgroups, setresgid, setresuid, then verifies they cannot be
 * regained), sets rlimits (open files; address space/CPU when asked),
 * and marks every inherited fd O_CLOEXEC.  Any failure there is fatal:
 * a daemon never runs half-configured.
 *
 * A daemon that must read files it cannot reach once confined (TLS keys,
 * /etc/resolv.conf, ...) starts with server_init_flags(...,
 * SERVER_KEEP_PRIVILEGES), does that set-up as root, then calls
 * server_drop(srv, SERVER_CHROOT): as root it chroots to QueuePath
 * (private/ with the daemon sockets is then "/private"; use
 * server_queue_file() after the drop) and drops to User.  Before the
 * chroot it calls tzset() (log timestamps stay in local time) and, when
 * logging to LogFilename, moves the log to fd 2 so it survives the
 * chroot; master then hands over a fresh log fd on SIGUSR1 (frame
 * {op="log-fd"} + 1 fd, handled here, never seen by the daemon).  Syslog
 * was opened with LOG_NDELAY before.  Not root: no chroot, no change.
 * MAILGW_NO_CHROOT=1 in the environment skips the chroot (tests that
 * instrument a daemon through files outside the queue).
 * server_event_attach() refuses to run a daemon that kept root.
 *
 * server_event_attach() hooks the status channel and the heartbeat timer
 * into a libevent base; commands from master go to the daemon's callback.
 * Max-use / max-idle recycling: a daemon calls server_use() per unit of
 * work; when max_use is reached or it stayed idle max_idle seconds, the
 * exit callback (or plain exit(0)) runs so master starts a fresh one.
 */
#ifndef MAILGW_SERVER_H
#define MAILGW_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/proto.h"

struct conf;
struct event_base;

#define SERVER_STATUS_FD 3
#define SERVER_LISTEN_FD0 4
#define SERVER_HEARTBEAT_SECONDS 5

struct server;

typedef void (*server_command_fn)(struct server *srv, const struct proto_msg *cmd,
                                  struct proto_msg *reply, void *arg);
typedef void (*server_stop_fn)(struct server *srv, void *arg);

struct server {
    const char *name;           /* "smtpd", "qmgr", ... */
    const char *config_path;
    struct conf *conf;
    bool foreground;
    bool standalone;            /* no master (no status channel) */
    int status_fd;              /* -1 when standalone */
    int listen_fds[16];
    size_t nlisten;
    /* recycling */
    unsigned max_use, uses;
    unsigned max_idle;          /* seconds, 0 = never */
    /* set by server_event_attach */
    struct event_base *base;
    server_command_fn on_command;
    server_stop_fn on_stop;
    void *cb_arg;
    void *priv;                 /* implementation state */
};

/* Parse argv, load config, open log, drop privileges.  Never returns on
 * failure. */
struct server *server_init(int argc, char **argv, const char *name);

/* server_init_flags() flags */
#define SERVER_KEEP_PRIVILEGES 0x1  /* the daemon calls server_drop() itself */
/* server_drop() flags */
#define SERVER_CHROOT 0x1           /* confine to QueuePath (when root) */

/* server_init(), with flags.  SERVER_KEEP_PRIVILEGES: stay root (when
 * started as root) until server_drop(). */
struct server *server_init_flags(int argc, char **argv, const char *name, unsigned flags);
/* Drop privileges now (see above); fatal on any failure.  Without
 * SERVER_KEEP_PRIVILEGES at init this is a no-op (SERVER_CHROOT then is
 * a fatal programming error: the daemon is no longer root). */
void server_drop(struct server *srv, unsigned flags);
/* true when server_drop() chrooted this process. */
bool server_chrooted(const struct server *srv);

/* A new event base for a daemon's loop: epoll with libevent's changelist,
 * so an event added and removed again within one loop round (a buffered
 * reply written at once) costs no epoll_ctl.  Fatal on failure. */
struct event_base *server_event_base(void);

/* Attach the status channel and heartbeat to base.  on_command gets every
 * command from master except "stop"; it may fill reply (sent back when it
 * has attributes).  When master's command carries "reqid" (a command
 * relayed from `mailgw`), a reply {op="reply", command=OP, reqid=N,
 * status=...} is always sent: the callback sets status="error" and
 * reason=TEXT for a command it does not know or cannot do; an empty reply
 * means status="ok".  Other attributes it puts (e.g. counters for
 * "stats") are relayed to the user as name=value.  on_stop is called for "stop" and SIGTERM: the daemon
 * stops accepting, finishes in-flight work, then calls server_exit(0). */
void server_event_attach(struct server *srv, struct event_base *base,
                         server_command_fn on_command, server_stop_fn on_stop,
                         void *arg);

/* Count one unit of work (a session, a message) for max-use recycling;
 * returns true when the daemon should finish up and exit. */
bool server_use(struct server *srv);
/* Mark activity for max-idle. */
void server_touch(struct server *srv);
/* true once "stop" or SIGTERM arrived (the daemon is finishing up). */
bool server_stopping(const struct server *srv);

/* Send an event to master over the status channel (e.g. counters). */
int server_notify(struct server *srv, const struct proto_msg *m);

void server_exit(struct server *srv, int status) __attribute__((noreturn));

/* Paths under [mailgw.path] QueuePath ("/" once chrooted there). */
const char *server_queue_path(const struct server *srv);
/* Resolved path of a socket/file in the queue tree, e.g. "private/qmgr"
 * (valid inside the chroot after server_drop(srv, SERVER_CHROOT)). */
char *server_queue_file(const struct server *srv, const char *rel);

#endif
