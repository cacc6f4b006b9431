/*
 * scand.h - internal interfaces of the scanning daemon (DESIGN §7).
 *
 * scand is a pre-fork pool: the parent (scand.c, scand_pool.c) loads and
 * compiles the libclamav engine once (scand_engine.c) and forks workers
 * (scand_worker.c) that share it copy-on-write and accept() directly on
 * the inherited listener private/scand.  A worker serves one request per
 * connection (scand_request.c: the qmgr -> scand protocol of CONTRACTS.md)
 * and scans the raw message plus every MIME part (scand_scan.c).
 * scand_status.c maps libclamav results to Kaspersky's object statuses
 * and applies the IncludeBy / ExcludeBy filter masks.
 *
 * Shared state between the parent and its workers lives in one
 * MAP_SHARED anonymous page (struct scand_shared): the avir-off switch and
 * the counters, updated with atomic adds.  Workers tell the parent when
 * they turn busy or idle through one pipe (struct scand_note, written
 * atomically: smaller than PIPE_BUF).
 */
#ifndef MAILGW_SCAND_H
#define MAILGW_SCAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "util/buf.h"

struct cl_engine;
struct conf;
struct server;

/* Object statuses of reference §2.1, in increasing order of badness: the
 * message status is the worst of its objects. */
enum scand_status {
    SCAND_CLEAN = 0,
    SCAND_FILTERED,
    SCAND_CORRUPTED,
    SCAND_ERROR,
    SCAND_PROTECTED,
    SCAND_SUSPICIOUS,
    SCAND_INFECTED,
    SCAND_NSTATUS
};

const char *scand_status_name(enum scand_status st);
/* Map one libclamav result (cl_error_t) and virus name to a status. */
enum scand_status scand_status_from_cl(int clret, const char *virname);

/* Name / MIME type masks of [mailgw.policy] (fnmatch, case-insensitive). */
struct scand_filter {
    const char *const *inc_name, *const *exc_name, *const *inc_mime, *const *exc_mime;
    size_t ninc_name, nexc_name, ninc_mime, nexc_mime;
};

void scand_filter_load(struct scand_filter *f, const struct conf *c);
/* The filter of one policy group (-1 = [mailgw.policy]). */
void scand_filter_load_group(struct scand_filter *f, const struct conf *c, int group);
/* true when an object with this file name (may be NULL) and MIME type
 * (may be NULL) is caught by the filter. */
bool scand_filter_match(const struct scand_filter *f, const char *name, const char *mime);

/* Counters (reference §3.7 antiviral_*), shared by the pool. */
enum scand_counter {
    SC_SESSIONS_CURRENT,
    SC_SESSIONS_MAXIMUM,
    SC_MESSAGES,            /* messages with a verdict */
    SC_MSG_CLEAN,           /* ... per message status, SCAND_NSTATUS of them */
    SC_MSG_FILTERED,
    SC_MSG_CORRUPTED,
    SC_MSG_ERROR,
    SC_MSG_PROTECTED,
    SC_MSG_SUSPICIOUS,
    SC_MSG_INFECTED,
    SC_OBJECTS,
    SC_BYTES,
    SC_TEMPFAIL,            /* requests answered tempfail */
    SC_WORKERS_STARTED,
    SC_WORKERS_KILLED,      /* by the watchdog */
    SC_WORKERS_CRASHED,     /* died on a signal or exited non-zero */
    SC_NCOUNTERS
};

extern const char *const scand_counter_names[SC_NCOUNTERS];

struct scand_shared {
    volatile int avir_off;
    volatile uint64_t counters[SC_NCOUNTERS];
};

void scand_count(struct scand_shared *sh, enum scand_counter c, int64_t delta);

/* Worker -> parent notes. */
enum scand_note_kind { SCAND_NOTE_BUSY = 1, SCAND_NOTE_IDLE = 2 };
struct scand_note {
    pid_t pid;
    int kind;
};

/* The engine and the options every scan uses. */
struct scand_engine {
    struct cl_engine *cl;
    unsigned sigs;                  /* signatures loaded */
    uint64_t parse_raw, parse_part; /* cl_scan_options.parse */
    uint32_t general, heuristic;
    unsigned scan_timeout;          /* seconds, per message */
    time_t db_time;                 /* date of the bases (CL_ENGINE_DB_TIME) */
};

/* cl_init() once per process; 0 / -1 (logged). */
int scand_engine_global_init(void);
/* Build a compiled engine from BasesPath with every limit set.  Returns
 * NULL with why (a static or buffered reason) on failure. */
struct scand_engine *scand_engine_build(const struct conf *c, struct buf *why);
void scand_engine_free(struct scand_engine *e);
/* Point the engine's temp dir at dir (a worker, after chroot). */
void scand_engine_set_tmpdir(struct scand_engine *e, const char *dir);

struct mime_msg;
struct mime_part;

/* One scanned object of a message. */
struct scand_object {
    char *name;                 /* file name or a label like "(message)" */
    char *type;                 /* MIME type */
    enum scand_status status;   /* with the [mailgw.policy] filter */
    char *virus;                /* "" when none */
    enum scand_status av;       /* the anti-virus alone (no filter) */
    struct mime_part *part;     /* the part scanned; NULL = the message */
    unsigned char *filt;        /* filt[k]: filter k caught it (k 0 = the
                                 * policy, 1 + g = group g); NULL = none */
    bool hidden;                /* an archive member only a group's filter
                                 * caught: not in the top-level reply */
};

struct scand_result {
    struct scand_object *objs;
    size_t nobjs, cap;
    enum scand_status status;   /* worst */
    struct buf names;           /* virus names, ", " separated, unique */
    uint32_t anomalies;         /* MIME structural anomalies */
    uint64_t bytes;
    struct mime_msg *msg;       /* the parsed message (kept for the policy) */
    size_t nfilters;            /* length of every object's filt */
};

void scand_result_init(struct scand_result *r);
void scand_result_free(struct scand_result *r);
void scand_result_add(struct scand_result *r, const char *name, const char *type,
                      enum scand_status st, const char *virus);
/* The same for an object not counted in the top-level status (hidden). */
struct scand_object *scand_result_add_ex(struct scand_result *r, const char *name,
                                         const char *type, enum scand_status st,
                                         const char *virus, bool hidden);

/* What a worker needs to scan. */
struct scand_ctx {
    struct scand_engine *engine;
    struct scand_filter filter;         /* [mailgw.policy]'s (= filters[0]) */
    struct scand_filter *filters;       /* 0 the policy, 1 + g group g */
    size_t nfilters;
    const struct conf *conf;
    const char *tmpdir;         /* where O_TMPFILE files go ("/" in chroot) */
};

/* Apply the policy per group and answer (scand_policy.c).  req: the scan
 * request (its fds 1.. are empty files for rewritten content); qfd/qf
 * the queue file; cfd the content copy r->msg was parsed from. */
struct proto_msg;
struct queue_file;
void scand_policy_reply(struct scand_ctx *ctx, int sock, const char *id,
                        struct proto_msg *req, const struct queue_file *qf,
                        struct scand_result *r);

/* Install the libclamav callbacks (archive member names) on an engine. */
void scand_scan_hooks(struct cl_engine *cl);

/* Scan the message whose raw bytes are in fd (size bytes), fill r.
 * Returns 0, or -1 with *why (the message gets a temporary failure). */
int scand_scan_message(struct scand_ctx *ctx, int fd, uint64_t size, const char *id,
                       struct scand_result *r, const char **why);

/* Serve one accepted connection (scand_request.c). */
void scand_request_serve(struct scand_ctx *ctx, struct scand_shared *sh, int sock,
                         unsigned timeout_s);

/* An anonymous temporary file for at most size bytes: in memory (memfd)
 * up to SCAND_MEMFILE_MAX, else in dir (O_TMPFILE, else create and
 * unlink at once).  -1 with errno. */
#define SCAND_MEMFILE_MAX (16u << 20)
int scand_tmpfile(const char *dir, uint64_t size);

/* The pool (parent side). */
struct scand_pool;
struct scand_pool *scand_pool_new(struct server *srv, struct scand_shared *sh);
void scand_pool_set_engine(struct scand_pool *p, struct scand_engine *e);
struct scand_engine *scand_pool_engine(struct scand_pool *p);
void scand_pool_start(struct scand_pool *p);
/* New engine in place: workers of older generations finish and exit. */
void scand_pool_rotate(struct scand_pool *p);
/* Stop: idle workers exit now, busy ones after their message. */
void scand_pool_stop(struct scand_pool *p);
size_t scand_pool_workers(const struct scand_pool *p);

/* The worker's life (never returns). */
struct scand_worker_args {
    struct server *srv;
    struct scand_shared *sh;
    struct scand_engine *engine;
    int listen_fd;
    int note_fd;                /* write end of the notes pipe */
    const char *tmpdir;         /* private, created by the parent */
    bool chroot;                /* confine to tmpdir */
    unsigned max_messages, max_idle, scan_timeout;
    uint64_t mem_limit;         /* bytes beyond the engine (RLIMIT_AS) */
};

void scand_worker_main(const struct scand_worker_args *a) __attribute__((noreturn));

/* Was scand started as root (before server_init dropped privileges)? */
extern bool scand_started_as_root;

#endif
