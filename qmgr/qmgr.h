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
 *                    incoming/ files found at start): qmgr_incoming_ready()
 *   qmgr_msg.c       the in-memory message table, state changes (rename +
 *                    batched fsync of the target directory), the run loop
 *                    that moves messages incoming -> scan -> active
 *   qmgr_scanstep.c  the scan hand-off to scand (private/scand)
 *   qmgr_sched.c     destinations (nexthops), concurrency limits,
 *                    round-robin dispatch, the unreachable cache
 *   qmgr_smtp.c      connections to smtp (private/smtp), requests, replies
 *   qmgr_result.c    recording outcomes, back-off, expiry, deferred/,
 *                    removal
 *   qmgr_bounce.c    DSN reports (lib/dsn) queued as new messages
 *   qmgr_notes.c     deferral reasons and the no-scan flag kept in the
 *                    queue file (lib/queue post records)
 *   qmgr_admin.c     queue administration ops (queue-list, hold, ...)
 *   qmgr_verdict.c   acting on scand's reply, one block per policy group
 *   qmgr_notify.c    new messages qmgr queues: notices, split groups,
 *                    blind copies
 *   qmgr_archive.c   the quarantine daemon: quarantine/backup stores,
 *                    archives, blind copies, daily expiry
 */
#ifndef MAILGW_QMGR_H
#define MAILGW_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "queue/queue_file.h"
#include "queue/queue_id.h"

struct server;
struct server_work;
struct event;
struct event_base;
struct qmgr_commit;
struct qmgr_dest;
struct qmgr_smtp;
struct route_table;
struct proto_msg;

enum qmgr_dir {
    QMGR_TMP,
    QMGR_INCOMING,
    QMGR_ACTIVE,
    QMGR_DEFERRED,
    QMGR_HOLD,
    QMGR_CORRUPT,
    QMGR_SPARE,                 /* removed files kept for reuse (qmgr_spare.c) */
    QMGR_NDIRS,
};

/* What an administrator asked for a message that was busy (scanning or
 * delivering) at the time; applied when the work in flight ends. */
enum qmgr_admin_op { QMGR_OP_NONE, QMGR_OP_HOLD, QMGR_OP_DELETE, QMGR_OP_REQUEUE };

/* Per-recipient facts of this pass, in memory only. */
struct qmgr_rcpt_info {
    char *reason;               /* last deferral / failure text */
    char *relay;                /* relay= of the last attempt */
    char dsn[16];               /* X.Y.Z of the last attempt */
    bool success_report;        /* NOTIFY=SUCCESS and next hop lacked DSN */
    bool unsaved;               /* status changed in memory, not in the file */
};

struct qmgr_job;

struct qmgr_msg {
    char id[QUEUE_ID_SIZE];
    enum qmgr_dir dir;          /* where the file is now */
    uint64_t arrival_us;
    uint64_t size;              /* content bytes (0 until read) */
    time_t next_try;            /* deferred/: retry time; incoming/: scan
                                 * back-off end */
    unsigned scan_backoff;      /* seconds, doubles per scan tempfail */
    unsigned agent_failures;    /* smtp died during our requests */
    bool noscan;                /* scanned in this pass, or our own report */
    bool released;              /* released from quarantine: never scanned
                                 * (durable: QUEUE_FLAG_NOSCAN in the file) */
    bool force;                 /* "deliver now" (mailgwq -i): this pass
                                 * ignores the unreachable cache */
    bool scanning;
    bool syncing;               /* a move waits for its directory fsync */
    bool loaded;                /* qf/fd/info valid (active, in memory) */
    bool delay_warned;          /* delay report sent (file mode 0700) */
    bool in_wait;               /* on q->waiting or q->waiting_scan */
    bool wait_scan;             /* ... on q->waiting_scan */
    enum qmgr_admin_op admin_op;
    bool unsaved;               /* some info[].unsaved */
    int fd;                     /* O_RDONLY while loaded (also what smtp
                                 * gets); statuses are written through a
                                 * separate fd by qmgr_result_persist() */
    struct queue_file qf;
    struct qmgr_rcpt_info *info;    /* kept between passes */
    size_t ninfo;
    size_t jobs_out;            /* jobs queued or in flight */
    struct qmgr_msg *hnext;     /* hash chain */
    TAILQ_ENTRY(qmgr_msg) wait; /* q->waiting(_scan): incoming, to activate
                                 * (or scan) */
};
TAILQ_HEAD(qmgr_msg_list, qmgr_msg);

/* One delivery request: recipients of one message with one nexthop. */
struct qmgr_job {
    struct qmgr_msg *msg;
    struct qmgr_dest *dest;
    size_t *rcpt;               /* indexes into msg->qf.env.rcpts */
    size_t nrcpt;
    TAILQ_ENTRY(qmgr_job) link;
};
TAILQ_HEAD(qmgr_job_list, qmgr_job);

struct qmgr_dest {
    char *nexthop;
    struct qmgr_job_list jobs;
    size_t njobs;
    unsigned active;            /* requests in flight */
    time_t unreachable_until;
    char *unreachable_reason;
    bool in_ring;
    struct qmgr_dest *hnext;
    TAILQ_ENTRY(qmgr_dest) ring;
};
TAILQ_HEAD(qmgr_dest_list, qmgr_dest);

struct qmgr_settings {
    unsigned out_sessions;      /* OutgoingSessions */
    unsigned per_host;          /* MaximalOutgoingSessionsPerHost */
    unsigned scan_sessions;     /* AntiviralSessions */
    time_t min_backoff, max_backoff, lifetime, unreachable_ttl, delay_warning;
    const char *hostname;
    char *dsn_template;         /* NULL = built-in */
    size_t dsn_template_len;
    size_t bounce_size_limit;
};

struct qmgr_counters {
    uint64_t dsn_generated;             /* mta_dsn_generated */
    uint64_t failed_through_cache;      /* mta_outgoing_connections_failed_through_cache */
    uint64_t sent_recipients;
    uint64_t bounced_recipients;
    uint64_t deferred_recipients;
    uint64_t dropped_recipients;
    uint64_t removed;
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
    struct qmgr_archive *archive;   /* quarantine daemon (qmgr_archive.c) */
    struct qmgr_spares *spares;     /* files kept for reuse (qmgr_spare.c) */
    struct server_work *work;       /* threads for fsyncs off the loop */
    bool send_suspended;            /* "send-off" from the administrator */
    bool stopping;

    /* delivery side */
    struct qmgr_settings set;
    struct qmgr_counters ctr;
    struct route_table *routes;
    struct qmgr_msg **mtab;         /* hash of every known message */
    size_t mtab_size, nmsgs;
    struct qmgr_msg_list waiting;   /* incoming/, ready for delivery */
    struct qmgr_msg_list waiting_scan;  /* incoming/, to scan first (a
                                     * separate list: a scan backlog is not
                                     * walked while no scan slot is free) */
    size_t nloaded;                 /* messages loaded (active in memory) */
    size_t nscanning;
    bool scan_enabled;              /* private/scand exists */
    char *scand_path, *smtp_path;
    struct event *ev_run;           /* the run loop, activated by changes */
    struct event *ev_tick;          /* once a second: retries, back-offs */
    struct event *ev_sync;          /* batched directory fsyncs */
    struct qmgr_sync_item *sync;
    size_t nsync, capsync;
    bool dir_dirty[QMGR_NDIRS];
    /* scheduler */
    struct qmgr_dest **dtab;
    size_t dtab_size;
    struct qmgr_dest_list ring;     /* destinations that may dispatch */
    unsigned sessions;              /* requests in flight to smtp */
    struct qmgr_smtp *idle;         /* idle smtp connections */
    size_t nconns;
    time_t smtp_retry_at;           /* no connection to smtp until then */
};

/* qmgr_spare.c: the pool (emptied at start); remove from/id, keeping the
 * inode for reuse when the pool has room (from/ is fsynced by the next
 * sync flush), 0 or -1 with errno; a new tmp/ID opened O_RDWR, a spare
 * when one is ready, else a created file (-1 with errno); after the sync
 * flush's directory fsyncs, the kept spares whose directory synced become
 * ready. */
void qmgr_spare_init(struct qmgr *q);
int qmgr_spare_remove(struct qmgr *q, enum qmgr_dir from, const char *id);
/* tmp/tmpid replaces dir/id (exchanged where the file system can, else
 * renamed over it); the replaced file joins the pool after the next fsync
 * of dir.  0 / -1 with errno (nothing changed). */
int qmgr_spare_replace(struct qmgr *q, const char *tmpid, enum qmgr_dir dir, const char *id);
int qmgr_spare_new_file(struct qmgr *q, char id[QUEUE_ID_SIZE]);
/* A done message's from/id leaves for the pool; its directory's fsync
 * waits for more removals or the next qmgr_spare_tick (once a second). */
int qmgr_spare_remove_later(struct qmgr *q, enum qmgr_dir from, const char *id);
void qmgr_spare_tick(struct qmgr *q);
/* After a sync flush: synced[d], d was fsynced; failed[d], its fsync
 * failed (the spares that waited for it are dropped). */
void qmgr_spare_synced(struct qmgr *q, const bool synced[QMGR_NDIRS],
                       const bool failed[QMGR_NDIRS]);

/* Directory names, indexed by enum qmgr_dir ("tmp", "incoming", ...). */
extern const char *const qmgr_dir_names[QMGR_NDIRS];

/* qmgr_scan.c: create missing queue dirs and open them (fatal on error:
 * qmgr cannot run without its queue); remove every tmp/ file; validate
 * every queue file, move malformed ones to corrupt/, count the rest and
 * hand incoming/ files to qmgr_incoming_ready(), active/ files to the
 * scheduler, and remember deferred/ (retry time = file mtime) and hold/. */
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
 * found there at start).  The _noscan form skips the scan step (reports
 * qmgr made, quarantine releases). */
void qmgr_incoming_ready(struct qmgr *q, const char *id);
void qmgr_incoming_ready_noscan(struct qmgr *q, const char *id);
/* A message released from quarantine (QUEUE_FLAG_NOSCAN in its file):
 * never scanned, "ID: scanning skipped (released from quarantine)". */
void qmgr_incoming_ready_released(struct qmgr *q, const char *id);

/* qmgr_msg.c */
typedef void (*qmgr_sync_fn)(struct qmgr *q, struct qmgr_msg *m, bool ok);
void qmgr_msg_init(struct qmgr *q);
struct qmgr_msg *qmgr_msg_find(const struct qmgr *q, const char *id);
struct qmgr_msg *qmgr_msg_add(struct qmgr *q, const char *id, enum qmgr_dir dir);
/* Forget a message (the file is gone or elsewhere). */
void qmgr_msg_forget(struct qmgr *q, struct qmgr_msg *m);
/* Rename m's file into dir "to"; fn (may be NULL) runs after the fsync
 * of "to" that this rename shares with others of the same loop round.
 * -1 when the rename failed (logged; m unchanged). */
int qmgr_msg_move(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir to, qmgr_sync_fn fn);
/* fn(q, m, ok) after the next fsync of dir (m busy meanwhile), for a
 * change made in dir without qmgr_msg_move. */
void qmgr_msg_after_sync(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir dir, qmgr_sync_fn fn);
/* The same without the fsync of "to" (fn still runs in the same place):
 * for moves whose loss at a crash only repeats work, as to active/ (the
 * file stays durably in its old directory and is delivered from there). */
int qmgr_msg_move_nosync(struct qmgr *q, struct qmgr_msg *m, enum qmgr_dir to, qmgr_sync_fn fn);
/* Remove m's file, log "ID: removed", forget m.  A message that is done:
 * its directory's fsync may wait a second (qmgr_spare_remove_later); an
 * administrator's delete (qmgr_msg_delete) is fsynced at once. */
void qmgr_msg_remove(struct qmgr *q, struct qmgr_msg *m);
void qmgr_msg_delete(struct qmgr *q, struct qmgr_msg *m);
/* Put an incoming/ message on a waiting list and wake the run loop;
 * take it off again. */
void qmgr_msg_wait(struct qmgr *q, struct qmgr_msg *m);
void qmgr_msg_unwait(struct qmgr *q, struct qmgr_msg *m);
void qmgr_msg_wake(struct qmgr *q);
/* Open and parse the file in active/, build its jobs; 0 / -1. */
int qmgr_msg_load(struct qmgr *q, struct qmgr_msg *m);
void qmgr_msg_unload(struct qmgr *q, struct qmgr_msg *m);
/* Deferred/hold message to active/ now (flush, deliver, retry time). */
void qmgr_msg_activate(struct qmgr *q, struct qmgr_msg *m);
/* Every message, sorted by ID (= arrival); caller frees the array. */
struct qmgr_msg **qmgr_msg_all(const struct qmgr *q, size_t *n);
time_t qmgr_now(void);
uint64_t qmgr_now_us(void);

/* qmgr_scanstep.c: scanning is on when private/scand exists. */
void qmgr_scanstep_init(struct qmgr *q);
bool qmgr_scanstep_enabled(struct qmgr *q);
/* Start scanning m (in incoming/); the outcome moves it on by itself. */
void qmgr_scanstep_start(struct qmgr *q, struct qmgr_msg *m);

/* qmgr_verdict.c: the rewrite files of one scan request (tmp/NEWID,
 * O_RDWR; fd 1..nfd of the request) and, after group_rewrite_needed, the
 * only recipients to ask for. */
#define QMGR_SCAN_FDS 7     /* PROTO_MAX_FDS - 1 (fd 0 is the queue file) */
struct qmgr_scan_req {
    char id[QMGR_SCAN_FDS][QUEUE_ID_SIZE];
    int fd[QMGR_SCAN_FDS];
    size_t nfd;
    char **only;                /* NULL = every pending recipient */
    size_t nonly;
};
/* Create min(nrcpt, QMGR_SCAN_FDS) (at least 1) files; 0 / -1. */
int qmgr_verdict_req_open(struct qmgr *q, struct qmgr_scan_req *r, size_t nrcpt);
/* Close and unlink the files not used; _req_free also forgets "only". */
void qmgr_verdict_req_files_free(struct qmgr *q, struct qmgr_scan_req *r);
void qmgr_verdict_req_free(struct qmgr *q, struct qmgr_scan_req *r);
/* Is this recipient part of the request (pending, and in "only")? */
bool qmgr_verdict_wanted(const struct qmgr_scan_req *r, const struct queue_rcpt *rc);
/* Act on a reply {status="ok"} for m (in incoming/): 1 no recipient
 * left, 0 on to delivery, 3 on to delivery after the next fsync of
 * incoming/ (a rewritten copy replaced the file), 2 scan again for
 * r->only, -1 retry (*why). */
int qmgr_verdict_apply(struct qmgr *q, struct qmgr_msg *m, struct qmgr_scan_req *r,
                       const struct proto_msg *v, const char **why);

/* qmgr_notify.c: new messages made by qmgr (see the file's header). */
enum { QMGR_NEW_NOSCAN = 1, QMGR_NEW_INTAKE_DONE = 2 };
struct qmgr_newmsg {
    char id[QUEUE_ID_SIZE];     /* "" = none */
    uint64_t size;
    size_t nrcpt;
    char *sender, *rcpt;        /* rcpt: the first recipient */
    bool scan;
};
/* Write env + content (data/len, or copied from src_fd/src_qf when data
 * is NULL) into a new file, validate it, rename it into incoming/ (no
 * directory fsync).  0 / -1 with *why. */
int qmgr_notify_new(struct qmgr *q, const struct queue_envelope *env, int src_fd,
                    const struct queue_file *src_qf, const void *data, size_t len, unsigned how,
                    struct qmgr_newmsg *out, const char **why);
/* The same with another writer: write(fd, arg, why) fills the file and
 * fsyncs it (0 / -1 with *why), as dsn_queue_write does for reports. */
typedef int (*qmgr_write_fn)(int fd, void *arg, const char **why);
int qmgr_notify_new_with(struct qmgr *q, qmgr_write_fn write, void *arg, unsigned how,
                         struct qmgr_newmsg *out, const char **why);
/* A complete tmp file (qf read from fd; freed here): NOSCAN, intake
 * mark, rename to incoming/target (NULL = its own name; a file there is
 * replaced and joins the spare pool after the next incoming/ fsync). */
int qmgr_notify_adopt(struct qmgr *q, int fd, const char *tmpid, const char *target,
                      struct queue_file *qf, struct qmgr_newmsg *out, const char **why);
/* A notice from "from" to "to" with the message msg (never to <>). */
int qmgr_notify_notice(struct qmgr *q, const char *id, const char *from, const char *to,
                       const void *msg, size_t len, struct qmgr_newmsg *out, const char **why);
/* fsync incoming/; then _ready (log, hand on) or _undo (unlink) each. */
int qmgr_notify_sync(struct qmgr *q);
void qmgr_notify_ready(struct qmgr *q, struct qmgr_newmsg *nm);
void qmgr_notify_undo(struct qmgr *q, struct qmgr_newmsg *nm);

/* qmgr_archive.c: the quarantine daemon (private/quarantine). */
void qmgr_archive_init(struct qmgr *q);
/* Store the queue file fd in area; 0 / -1 with *why (logged). */
int qmgr_archive_store(struct qmgr *q, const char *area, const char *id, int fd,
                       const char *group, const char *status, const char *names,
                       const char *reason, const char **why);
/* Before the first scan: archive-in and the blind copy, once. 0 / -1. */
int qmgr_archive_intake(struct qmgr *q, struct qmgr_msg *m, const char **why);
/* m (loaded) leaves the queue: archive-out when a recipient was sent. */
void qmgr_archive_out(struct qmgr *q, struct qmgr_msg *m);

/* qmgr_sched.c */
void qmgr_sched_init(struct qmgr *q);
/* Queue the jobs of a loaded message (one per nexthop). */
void qmgr_sched_message(struct qmgr *q, struct qmgr_msg *m);
/* Hand jobs to smtp while the limits allow. */
void qmgr_sched_dispatch(struct qmgr *q);
/* A request ended (any outcome): free the slot, then the job. */
void qmgr_sched_job_done(struct qmgr *q, struct qmgr_job *j);
/* An attempt is impossible now (smtp unreachable): job back in front. */
void qmgr_sched_job_retry(struct qmgr *q, struct qmgr_job *j);
void qmgr_sched_unreachable(struct qmgr *q, struct qmgr_dest *d, const char *reason);
void qmgr_job_free(struct qmgr_job *j);
/* Take back m's jobs that wait for a slot (not those in flight); returns
 * how many (m->jobs_out is lowered). */
size_t qmgr_sched_cancel(struct qmgr *q, struct qmgr_msg *m);

/* qmgr_smtp.c: send j to smtp; 0, or -1 when no connection could be
 * made (the caller keeps the job). */
int qmgr_smtp_send(struct qmgr *q, struct qmgr_job *j);
size_t qmgr_smtp_idle_count(const struct qmgr *q);

/* qmgr_result.c */
/* Outcome of one request as smtp reported it (reply NULL = the delivery
 * agent failed: the job is retried). */
void qmgr_result_reply(struct qmgr *q, struct qmgr_job *j, const struct proto_msg *reply);
/* Recipient i's new status: in memory at once, in the file (pwrite and
 * fdatasync) at the next qmgr_result_persist(). */
void qmgr_result_mark(struct qmgr_msg *m, size_t i, uint8_t status);
/* Write the statuses marked since and fdatasync; done before anything
 * acts on them (a report, deferred/, hold/, incoming/, another job still
 * out, the file leaving memory).  A message that is removed once every
 * recipient is done skips it: its removal, made durable by the batched
 * fsync of its directory, is the outcome (a crash before that fsync
 * repeats the delivery: at least once).  0 / -1 (logged). */
int qmgr_result_persist(struct qmgr *q, struct qmgr_msg *m);
/* Recipients deferred without an attempt (unreachable cache). */
void qmgr_result_defer_job(struct qmgr *q, struct qmgr_job *j, const char *dsn,
                           const char *reason);
/* Every job of m is over: reports, then deferred/ or removal. */
void qmgr_result_finish(struct qmgr *q, struct qmgr_msg *m);
/* Log "to=<...>, relay=none, ..." for a recipient with no attempt. */
void qmgr_result_log_none(const struct qmgr_msg *m, const char *rcpt, const char *dsn,
                          const char *status, const char *reason);

/* qmgr_notes.c: reasons and flags kept in the queue file. */
/* After a load: m->released and the reasons of m->info from the file. */
void qmgr_notes_load(struct qmgr_msg *m);
/* Before a loaded message goes to deferred/: when its reasons (or flag)
 * differ from the file's, start replacing the file by a copy that has
 * them (off the loop; m is busy, m->syncing) and return true: fn(q, m)
 * runs on the loop when it is over, m->fd and m->qf then refer to the
 * copy (or still to the old file: failures are logged).  false: nothing
 * to save or it could not start (logged); fn is not called. */
typedef void (*qmgr_notes_fn)(struct qmgr *q, struct qmgr_msg *m);
bool qmgr_notes_save(struct qmgr *q, struct qmgr_msg *m, qmgr_notes_fn fn);
/* Commit time (file not yet committed): add QUEUE_FLAG_NOSCAN, fsync, and
 * read qf again.  0 / -1. */
int qmgr_notes_commit(int fd, struct queue_file *qf);

/* qmgr_bounce.c: one report of type "action" for the recipients idx[]
 * (those whose NOTIFY asks for it are reported).  0 when done (or
 * nothing to send), -1 when the report could not be queued (retry). */
int qmgr_bounce_send(struct qmgr *q, struct qmgr_msg *m, int action, const size_t *idx,
                     size_t n);

/* qmgr_admin.c: queue-* ops and flush; true when op was one of them. */
bool qmgr_admin_command(struct qmgr *q, const char *op, const struct proto_msg *cmd,
                        struct proto_msg *reply);

#endif
