/*
 * qmgr - the queue manager: owner of the queue directories (DESIGN §4).
 *
 * Modules:
 *   qmgr.c           main: server skeleton, event loop, master commands
 *   qmgr_scan.c      start-up: queue tree, tmp/ clean-up, rebuild of the
 *                    in-memory state from the directories, corrupt/ moves
 *   qmgr_commit.c    the commit protocol on private/qmgr (CONTRACTS.md):
 *                    new / commit / abort, batched directory fsync
 *   qmgr_incoming.c  hand-off point after a durable commit (and for
 *                    incoming/ files found at start): the next stage
 *                    (scanning, delivery) starts from qmgr_incoming_ready()
 */
#ifndef MAILGW_QMGR_H
#define MAILGW_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct event_base;
struct qmgr_commit;

enum qmgr_dir {
    QMGR_TMP,
    QMGR_INCOMING,
    QMGR_ACTIVE,
    QMGR_DEFERRED,
    QMGR_HOLD,
    QMGR_CORRUPT,
    QMGR_NDIRS,
};

struct qmgr {
    struct server *srv;
    struct event_base *base;
    const char *queue_path;
    int queue_fd;                   /* QueuePath itself */
    int dir_fd[QMGR_NDIRS];
    size_t count[QMGR_NDIRS];       /* messages per directory */
    uint64_t min_free_bytes;        /* MinimalQueueFreeSpaceSize, 0 = off */
    uint64_t committed;             /* commits since start */
    uint64_t incoming_ready;        /* hand-offs since start */
    struct qmgr_commit *commit;     /* protocol state (qmgr_commit.c) */
    bool send_suspended;            /* "send-off" from the administrator */
    bool stopping;
};

/* Directory names, indexed by enum qmgr_dir ("tmp", "incoming", ...). */
extern const char *const qmgr_dir_names[QMGR_NDIRS];

/* qmgr_scan.c: create missing queue dirs and open them (fatal on error:
 * qmgr cannot run without its queue); remove every tmp/ file; validate
 * every queue file, move malformed ones to corrupt/, count the rest and
 * hand incoming/ files to qmgr_incoming_ready(). */
void qmgr_scan_open_dirs(struct qmgr *q);
void qmgr_scan_startup(struct qmgr *q);
/* Move dir/id to corrupt/id with a log line giving why; 0 / -1. */
int qmgr_scan_to_corrupt(struct qmgr *q, enum qmgr_dir from, const char *id, const char *why);

/* qmgr_commit.c: serve the listeners; stop accepting and finish. */
void qmgr_commit_start(struct qmgr *q);
void qmgr_commit_stop(struct qmgr *q);
/* Files handed out by "new" and not yet committed or aborted. */
size_t qmgr_commit_in_progress(const struct qmgr *q);
/* Free space check for "new": true when the queue file system has at
 * least MinimalQueueFreeSpaceSize available (or the check is off). */
bool qmgr_commit_space_ok(const struct qmgr *q);

/* qmgr_incoming.c: a message is durably in incoming/ (just committed, or
 * found there at start). */
void qmgr_incoming_ready(struct qmgr *q, const char *id);

#endif
