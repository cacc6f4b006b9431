/*
 * smtpd - the SMTP receiver: shared types of the daemon's files.
 *
 *   smtpd.c          main, listeners, accept, session limits, master commands
 *   smtpd_session.c  session state, input loop, replies, timeouts, close
 *   smtpd_cmd.c      pure command line parser (fuzzed); paths: lib/addr
 *   smtpd_hello.c    EHLO HELO RSET NOOP QUIT VRFY EXPN HELP, unknown
 *   smtpd_mail.c     MAIL RCPT (ESMTP parameters, access checks)
 *   smtpd_xfer.c     DATA BDAT, Received:, end of message, commit
 *   smtpd_data.c     pure DATA/BDAT framing state machine (fuzzed)
 *   smtpd_queue.c    qmgr commit client (CONTRACTS.md)
 *   smtpd_fsync.c    END + fsync of queue files on worker threads
 *   smtpd_tls.c      STARTTLS
 *   smtpd_access.c   access rules (masks: lib/addr, DNS facts: lib/dns)
 */
#ifndef MAILGW_SMTPD_H
#define MAILGW_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "util/buf.h"

#include "smtpd_cmd.h"
#include "smtpd_data.h"

struct event;
struct event_base;
struct bufferevent;
struct server;
struct conf;
struct access_ctx;
struct access_session;
struct smtpd_qmgr;
struct server_work;
struct smtpd_fsync_job;
typedef struct ssl_ctx_st SSL_CTX;

/* Counters, named as Kaspersky's statistics (reference §3.7). */
struct smtpd_counters {
    uint64_t mta_received_messages;
    uint64_t mta_received_bytes;
    uint64_t mta_received_recipients;
    uint64_t mta_incoming_connections_total;
    uint64_t mta_incoming_connections_current;
    uint64_t mta_incoming_connections_maximum;
    uint64_t mta_incoming_connections_errors;
    uint64_t mta_receivings_refused_total;
    uint64_t mta_receivings_refused_for_message_size_limit;
    uint64_t mta_receivings_refused_for_session_size_limit;
    uint64_t mta_receivings_refused_for_hops_limit;
    uint64_t mta_receivings_refused_for_messages_per_session_limit;
    uint64_t mta_malformed_messages;
};

struct smtpd_limits {
    unsigned sessions, sessions_per_ip;
    unsigned msgs_per_session, rcpts_per_msg, hops, errors;
    uint64_t msg_size, session_size;
    size_t cmd_line_max, text_line_max;
    unsigned cmd_timeout, data_init_timeout, data_term_timeout, read_timeout;
    unsigned write_timeout;
};

struct smtpd_session;

struct smtpd {
    struct server *srv;
    struct conf *conf;
    struct event_base *base;
    struct smtpd_limits lim;
    char *hostname;
    struct event *listen_ev[16];
    size_t nlisten;
    bool recv_off, stopping;
    unsigned nsessions;
    struct smtpd_session *sessions;     /* doubly linked list */
    SSL_CTX *tls_ctx;                   /* NULL: no STARTTLS */
    struct access_ctx *access;
    struct smtpd_qmgr *qmgr;
    struct server_work *fsync;          /* END + fsync worker threads */
    struct smtpd_counters cnt;
};

enum smtpd_state {
    SMTPD_S_CONNECT,    /* connect checks running, no greeting yet */
    SMTPD_S_CMD,        /* reading commands */
    SMTPD_S_DATA,       /* reading DATA text */
    SMTPD_S_BDAT,       /* reading a BDAT chunk */
    SMTPD_S_TLS,        /* TLS handshake */
    SMTPD_S_CLOSING,    /* flushing the last reply */
};

/* One transaction (MAIL .. end of message / RSET). */
struct smtpd_txn {
    bool active;                /* MAIL accepted */
    char *sender;
    uint64_t size_param;        /* SIZE= or 0 */
    int body_type, ret;         /* enum queue_body, enum queue_ret */
    char *envid;
    bool smtputf8;
    struct queue_rcpt *rcpts;
    size_t nrcpts, caprcpts;
    unsigned rcpt_tries;        /* RCPT commands (for the timeout choice) */
    /* queue file */
    char id[QUEUE_ID_SIZE];     /* "" until qmgr's "new" answered */
    int fd;
    bool logged_client;
    struct queue_writer w;
    bool writing, write_failed;
    struct smtpd_fsync_job *fsync_job;  /* END + fsync running: w, fd moved */
    /* content */
    struct smtpd_data dm;
    struct smtpd_hdr hdr;
    uint64_t size;              /* content bytes from the client */
    bool too_big, session_too_big;
    bool hops_logged;
    /* BDAT */
    bool bdat;                  /* a BDAT transfer is open */
    bool bdat_last;
    uint64_t chunk_left;
    char *bdat_error;           /* reply for every further chunk */
    /* mail: pending RCPT (waiting for access) */
    struct queue_rcpt pending;
};

#define SMTPD_NAMADDR_MAX 330

struct smtpd_session {
    struct smtpd *d;
    struct smtpd_session *prev, *next;
    int fd;
    struct bufferevent *bev;
    struct event *timer;
    struct event *flush;        /* writes a plain session's replies */
    bool flush_queued;
    int state;                  /* enum smtpd_state */
    char addr[64];              /* client IP as text */
    char name[256];             /* verified name or "unknown" */
    char namaddr[SMTPD_NAMADDR_MAX];
    char *helo;
    bool esmtp, tls;
    bool tls_pending;           /* handshake started */
    bool fd_in_bev;             /* the TLS bufferevent closes fd */
    char *tls_info;             /* "TLSv1.3 with cipher ..." */
    bool busy;                  /* waiting for a callback */
    bool skip_line;             /* discarding an over-long line */
    bool pipelined;             /* more input followed the current command */
    int last_verb;              /* command awaiting its reply, -1 none */
    int cmd_verb;               /* last command seen (for logs) */
    unsigned errors;
    unsigned nmsgs;
    uint64_t session_bytes;
    unsigned cmd_ok[SMTPD_V_COUNT], cmd_total[SMTPD_V_COUNT];
    struct access_session *acc;
    struct smtpd_txn txn;
    struct buf tmp;             /* scratch for content */
};

/* smtpd.c */
void smtpd_session_gone(struct smtpd *d, const char *addr);
void smtpd_count_refused(struct smtpd *d, uint64_t *specific);

/* smtpd_session.c */
struct smtpd_session *smtpd_session_new(struct smtpd *d, int fd, const char *addr);
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpd_reply_raw(struct smtpd_session *s, const char *text, size_t len);
void smtpd_close(struct smtpd_session *s);         /* after flushing output */
void smtpd_close_reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpd_resume(struct smtpd_session *s);        /* async op finished */
void smtpd_set_timer(struct smtpd_session *s, unsigned seconds);
void smtpd_txn_reset(struct smtpd_session *s);
const char *smtpd_proto_name(const struct smtpd_session *s);
/* "NOQUEUE: reject: CMD from NAME[IP]: REPLY; from=<...> to=<...> proto=.. helo=<..>" */
void smtpd_log_reject(struct smtpd_session *s, const char *cmd, const char *reply,
                      const char *to, const char *extra);
struct bufferevent *smtpd_bev(struct smtpd_session *s);
void smtpd_session_rebind(struct smtpd_session *s, struct bufferevent *bev);

/* command handlers (smtpd_hello.c, smtpd_mail.c, smtpd_xfer.c, smtpd_tls.c) */
void smtpd_cmd_helo(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_ehlo(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_rset(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_noop(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_quit(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_vrfy(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_expn(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_help(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_unknown(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_mail(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_rcpt(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_data(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_bdat(struct smtpd_session *s, const struct smtpd_cmd *c);
void smtpd_cmd_starttls(struct smtpd_session *s, const struct smtpd_cmd *c);

/* smtpd_xfer.c: content input; returns bytes consumed */
size_t smtpd_xfer_data_input(struct smtpd_session *s, const char *p, size_t n);
size_t smtpd_xfer_bdat_input(struct smtpd_session *s, const char *p, size_t n);

/* smtpd_tls.c */
SSL_CTX *smtpd_tls_init(const struct conf *conf);
void smtpd_tls_free(SSL_CTX *ctx);
void smtpd_tls_start(struct smtpd_session *s);     /* 220 flushed: handshake */
void smtpd_tls_done(struct smtpd_session *s);      /* handshake complete */
void smtpd_tls_failed(struct smtpd_session *s);    /* handshake failed */

/* smtpd_queue.c: the qmgr commit client (one connection per process). */
typedef void (*smtpd_queue_cb)(struct smtpd_session *s, int code, const char *reason);
struct smtpd_qmgr *smtpd_queue_init(struct smtpd *d, const char *socket_path);
void smtpd_queue_free(struct smtpd_qmgr *q);
/* "new": on success cb(s, 0, NULL) with s->txn.id and s->txn.fd set;
 * else cb(s, 451|452, reason). */
void smtpd_queue_new(struct smtpd_session *s, smtpd_queue_cb cb);
/* "commit" of s->txn.id: cb(s, 0, NULL) when qmgr said ok. */
void smtpd_queue_commit(struct smtpd_session *s, smtpd_queue_cb cb);
/* "abort": fire and forget. */
void smtpd_queue_abort(struct smtpd *d, const char *id);
/* The session goes away: its pending callbacks are dropped. */
void smtpd_queue_forget(struct smtpd *d, struct smtpd_session *s);

/* smtpd_fsync.c: END + fsync of the queue file on a worker thread. */
struct server_work *smtpd_fsync_init(struct event_base *base);
/* Moves s->txn.w and s->txn.fd to a worker, which writes END and fsyncs;
 * then, from the loop, cb(s, 0, NULL) or cb(s, 451, reason). */
void smtpd_fsync_finish(struct smtpd_session *s, smtpd_queue_cb cb);
/* The transaction ends: the pending callback is dropped (the worker still
 * finishes the job and closes the fd). */
void smtpd_fsync_forget(struct smtpd_session *s);

#endif
