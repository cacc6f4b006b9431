/*
 * smtp - the outbound SMTP client daemon (DESIGN §3 step 5): internal
 * interfaces shared by its files.
 *
 *   smtp.c          main, the private/smtp listener, qmgr connections,
 *                   request decoding, the reply to qmgr, counters
 *   smtp_deliver.c  one delivery: nexthop resolution (MX, A/AAAA), the
 *                   list of addresses to try, outcome bookkeeping, logs
 *   smtp_session.c  one SMTP conversation with one server (ESMTP, STARTTLS,
 *                   PIPELINING, per-recipient results, timeouts)
 *   smtp_content.c  content streaming: canonical CRLF, dot-stuffing
 *   smtp_tls.c      the client SSL_CTX and certificate checks
 */
#ifndef MAILGW_SMTP_H
#define MAILGW_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "queue/queue_file.h"
#include "route/route.h"
#include "util/buf.h"

struct conf;
struct dns_req;
struct event_base;
struct server;
struct smtp_delivery;
struct smtp_session;
typedef struct ssl_ctx_st SSL_CTX;

enum smtp_tls_mode { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT, SMTP_TLS_VERIFY };

/* Settings read once from the config. */
struct smtp_settings {
    const char *hostname;           /* our EHLO name */
    unsigned timeout_initial, timeout_helo, timeout_mail, timeout_rcpt;
    unsigned timeout_data_init, timeout_data_term, timeout_quit, timeout_write;
    enum smtp_tls_mode tls_mode;
    SSL_CTX *tls_ctx;               /* NULL when tls_mode is NONE */
    unsigned max_addresses;         /* addresses tried per delivery */
};

extern struct smtp_settings smtp_var;
extern struct event_base *smtp_base;
extern struct server *smtp_server;

enum smtp_rcpt_state { SMTP_RCPT_PENDING = 0, SMTP_RCPT_SENT, SMTP_RCPT_DEFERRED,
                       SMTP_RCPT_BOUNCED };

struct smtp_rcpt {
    char *addr;
    char *orcpt;                    /* "" = none */
    unsigned notify;                /* enum queue_notify bits */
    enum smtp_rcpt_state state;
    char dsn[16];
    char *reply;                    /* server reply or our diagnostic */
    bool dsn_passed;
    bool accepted;                  /* RCPT got 2xx in this session */
};

/* Called once when a delivery is over (results in d). */
typedef void (*smtp_delivery_done_fn)(struct smtp_delivery *d, void *arg);

struct smtp_delivery {
    char *id;
    char *nexthop;
    char *sender;
    char *envid;                    /* NULL = none */
    char *ret;                      /* "FULL" / "HDRS" / NULL */
    int body_type;                  /* enum queue_body */
    bool smtputf8;
    uint64_t size;
    uint64_t arrival_us;
    struct smtp_rcpt *rcpts;
    size_t nrcpts;
    int fd;                         /* the queue file, read-only */
    struct queue_file qf;
    bool qf_loaded;

    /* progress */
    struct route_nexthop nh;
    struct smtp_addr *addrs;        /* addresses to try, in order */
    size_t naddrs, next_addr;
    struct smtp_session *session;
    struct dns_req *dns;
    size_t dns_host;                /* MX host being resolved */
    struct smtp_mx *mx;             /* MX hosts (or the one static host) */
    size_t nmx;
    int dns_pending;
    bool dns_tempfail;
    char relay[400];                /* "NAME[IP]:PORT" or "none" */
    struct buf last_error;          /* why the last address failed */
    bool last_error_permanent;
    char last_error_dsn[16];
    bool unreachable;
    bool mx_fallback;               /* no MX records: the domain's address */
    bool tls_plain_retry;           /* TLS handshake failed in "may" mode:
                                     * retry this address without TLS */
    bool fresh_retry;               /* a cached connection died before its
                                     * first reply: this address again, on
                                     * a new connection */
    bool no_cache;                  /* the next session connects anew */
    /* times for delays=a/b/c/d (microseconds since the epoch) */
    uint64_t t_received, t_connect, t_connected, t_done;

    smtp_delivery_done_fn done;
    void *done_arg;
};

struct smtp_mx {
    char *host;
    unsigned pref;
};

struct smtp_addr {
    char *host;                     /* name for logs and TLS checks */
    struct sockaddr_storage sa;
    socklen_t salen;
    char ip[64];
};

/* smtp_deliver.c */
void smtp_delivery_start(struct smtp_delivery *d);
void smtp_delivery_free(struct smtp_delivery *d);
/* Set the result of every recipient still pending. */
void smtp_delivery_fail_pending(struct smtp_delivery *d, bool permanent, const char *dsn,
                                const char *reply);
void smtp_rcpt_result(struct smtp_rcpt *r, enum smtp_rcpt_state st, const char *dsn,
                      const char *reply);
uint64_t smtp_now_us(void);
/* The session is over: all recipients have a result, or (retry true) the
 * next address should be tried for those still pending. */
void smtp_delivery_session_done(struct smtp_delivery *d, bool retry);

/* smtp_session.c: talk to one address.  The session reports back through
 * smtp_delivery_session_done(); it frees itself after QUIT. */
void smtp_session_start(struct smtp_delivery *d, const struct smtp_addr *a, unsigned port);
/* The delivery is going away: detach so the session does not call back. */
void smtp_session_detach(struct smtp_session *s);
/* Close every idle cached connection (QUIT); at stop. */
void smtp_session_cache_flush(void);

/* smtp_content.c: the canonical CRLF + dot-stuffing transform, streaming. */
struct smtp_content_state {
    bool at_bol;                    /* at the beginning of a line */
    bool pending_cr;                /* a CR waits for its LF */
};
void smtp_content_init(struct smtp_content_state *st);
void smtp_content_encode(struct smtp_content_state *st, const char *p, size_t n,
                         struct buf *out);
/* Ends the content: the final CRLF if needed, then ".\r\n". */
void smtp_content_finish(struct smtp_content_state *st, struct buf *out);
/* 1 when the content has a byte >= 0x80, 0 when not, -1 on read errors. */
int smtp_content_has_8bit(int fd, const struct queue_file *qf, const char **why);

/* smtp_tls.c */
SSL_CTX *smtp_tls_ctx_new(const struct conf *c);
/* Verify the peer of a finished handshake against host (verify mode).
 * 0 ok, -1 with a reason in why. */
int smtp_tls_check_peer(void *ssl, const char *host, struct buf *why);
void smtp_tls_describe(void *ssl, struct buf *out);

/* smtp.c */
void smtp_count(const char *counter, uint64_t n);

#endif
