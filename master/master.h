/*
 * master - internal interfaces between master's modules.
 *
 * master.c          main: arguments, config, pid file, daemonizing,
 *                   signals, reload and shutdown
 * master_fs.c       queue tree, listeners (TCP and unix), the mailgw user
 * master_child.c    spawning and supervising the daemons
 * master_control.c  the control socket public/control
 * master_stats.c    the statistics file (StatFilename)
 * master_ctlfile.c  the control files of ControlPath
 */
#ifndef MAILGW_MASTER_H
#define MAILGW_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "proto/proto.h"

struct conf;
struct event;
struct event_base;
struct buf;

#define MASTER_MAX_LISTEN 16
#define MASTER_MAX_DAEMONS 16
#define MASTER_BACKOFF_MAX 60       /* seconds */
#define MASTER_BACKOFF_RESET 60     /* a child that ran this long starts over */
#define MASTER_THROTTLE_CRASHES 5   /* crashes ... */
#define MASTER_THROTTLE_WINDOW 60   /* ... within this many seconds */
#define MASTER_STOP_TIMEOUT 10      /* graceful stop, then SIGKILL */
#define MASTER_RELOAD_STOP_TIMEOUT 300  /* old generation finishing sessions */
#define MASTER_RELAY_TIMEOUT 5      /* a daemon answering a relayed command */
#define MASTER_CONTROL_PROTO "mailgw-control"
#define MASTER_CONTROL_VERSION 1

struct master_listener {
    char *spec;             /* "127.0.0.1:25", "[::1]:25" */
    int fd;
};

enum master_child_state {
    CHILD_RUNNING,
    CHILD_WAITING,          /* exited, restart scheduled */
    CHILD_THROTTLED,        /* crashed too often, restart delayed */
    CHILD_STOPPING,         /* asked to stop (reload or shutdown) */
};

struct master_child {
    char name[32];
    pid_t pid;              /* 0 when not running */
    bool old;               /* previous generation, finishing up */
    enum master_child_state state;
    struct proto_conn chan;
    bool chan_open;
    bool attached;          /* sent a heartbeat: its signal handlers are in */
    bool reopen_pending;    /* SIGUSR1 to send once attached */
    struct event *ev_read, *ev_write, *ev_restart;
    time_t started, last_beat, stop_deadline;
    unsigned restarts;
    unsigned backoff;       /* next restart delay, seconds */
    time_t crashes[MASTER_THROTTLE_CRASHES];
    size_t ncrashes;        /* total ever; ring index = ncrashes % N */
    struct master_child *next;
};

struct master {
    struct event_base *base;
    struct conf *conf;
    char *config_path;      /* absolute */
    bool foreground;
    char *libexec;          /* directory of the daemons */
    char *queue_path;
    char *pid_path;
    int pid_fd;
    pid_t stale_pid;        /* found in a pid file nobody held */
    time_t started;
    /* identity */
    bool root;
    uid_t uid;              /* the mailgw user (or ourselves) */
    gid_t gid;
    gid_t admin_gid;
    bool have_admin_gid;
    /* sockets */
    struct master_listener listeners[MASTER_MAX_LISTEN];
    size_t nlisteners;
    char *daemons[MASTER_MAX_DAEMONS];
    size_t ndaemons;
    int private_fds[MASTER_MAX_DAEMONS];    /* private/NAME, -1 for smtpd */
    int public_fds[MASTER_MAX_DAEMONS];     /* public/NAME for daemons the CLI talks to, else -1 */
    int control_fd;
    struct master_child *children;
    bool stopping;
    struct event *ev_tick;
};

extern struct master master;

/* master.c */
void master_request_stop(void);
int master_reload(struct buf *diag);
void master_reopen_logs(void);
void master_pass_log_fd(struct master_child *ch);

/* master_fs.c */
int master_resolve_user(struct master *m, struct buf *err);
int master_make_tree(struct master *m, struct buf *err);
int master_bind_listeners(struct master *m, const struct conf *c,
                          struct master_listener *out, size_t *nout, struct buf *err);
void master_close_listeners(struct master_listener *l, size_t n);
int master_unix_listener(struct master *m, const char *rel, mode_t mode, gid_t group,
                         struct buf *err);
char *master_queue_file(const struct master *m, const char *rel);
int master_pid_lock(struct master *m, struct buf *err);
void master_pid_write(struct master *m);
void master_pid_remove(struct master *m);

/* master_child.c */
void master_child_start_all(void);
void master_child_reap(void);
void master_child_tick(void);
void master_child_stop_all(void);
void master_child_new_generation(void);
void master_child_signal_all(int sig);
bool master_child_all_gone(void);
struct master_child *master_child_find(const char *name);
const char *master_child_state(const struct master_child *ch);
int master_child_command(struct master_child *ch, const char *op, int64_t reqid);
void master_child_kill_all(void);
/* Send {op=OP} + a dup of fd to only (when up), or to every daemon that
 * is up (attached) when only is NULL. */
void master_child_send_fd(struct master_child *only, const char *op, int fd);

/* master_control.c */
int master_control_open(struct buf *err);
void master_control_attach(void);
void master_control_close(void);
void master_control_reply(struct master_child *ch, struct proto_msg *m);
/* Run control request OP for master itself; done(reply, arg) is called
 * once with the reply the socket would have got.  0, or -1. */
typedef void (*master_control_done_fn)(const struct proto_msg *reply, void *arg);
int master_control_internal(const char *op, master_control_done_fn done, void *arg);

/* master_stats.c */
struct master_stats;
struct master_stats *master_stats_new(void);
void master_stats_add(struct master_stats *st, const char *daemon, const struct proto_msg *m);
/* Append the name=value lines to out as "line" attributes and write
 * StatFilename when set; -1 with the reason in err when that failed. */
int master_stats_finish(const struct master_stats *st, struct proto_msg *out, struct buf *err);
void master_stats_free(struct master_stats *st);

/* master_ctlfile.c */
void master_ctlfile_poll(void);

#endif
