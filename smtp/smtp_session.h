/*
 * smtp_session - internals of one SMTP conversation, shared by
 * smtp_session.c (connection, replies, EHLO, STARTTLS, QUIT) and
 * smtp_trans.c (MAIL, RCPT, DATA, content).
 */
#ifndef MAILGW_SMTP_SESSION_H
#define MAILGW_SMTP_SESSION_H

#include "smtp.h"
#include "route/smtp_reply.h"

#include <event2/bufferevent.h>
#include <event2/event.h>

/* The command a reply answers (replies come back in command order). */
enum smtp_cmd {
    SMTP_CMD_GREETING,
    SMTP_CMD_EHLO,
    SMTP_CMD_HELO,
    SMTP_CMD_STARTTLS,
    SMTP_CMD_MAIL,
    SMTP_CMD_RCPT,
    SMTP_CMD_DATA,
    SMTP_CMD_DOT,
    SMTP_CMD_QUIT,
};

struct smtp_expect {
    enum smtp_cmd cmd;
    size_t rcpt;                    /* SMTP_CMD_RCPT: index into d->rcpts */
};

struct smtp_session {
    struct smtp_delivery *d;        /* NULL once results went back */
    struct bufferevent *bev;
    void *ssl;                      /* SSL * once STARTTLS began */
    char id[64];                    /* queue ID, for logs after detach */
    char host[ROUTE_HOST_MAX + 1];
    char ip[64];
    unsigned port;
    int early_errno;                /* socket/connect failed at once */
    bool connected, tls_active, no_tls, quitting, closed;
    bool in_transaction;            /* MAIL was sent: no retry elsewhere */
    bool trans_done;                /* the reply to end of data came */
    bool cached;                    /* idle in the connection cache */
    bool reused;                    /* taken from the cache for d */
    unsigned replies;               /* replies read since (re)use */
    unsigned uses;                  /* transactions on this connection */
    uint64_t idle_since_us;
    struct smtp_session *cache_next;
    /* peer's ESMTP features */
    bool esmtp, pipelining, ext_size, ext_8bitmime, ext_dsn, ext_smtputf8, ext_starttls;
    unsigned long long size_limit;  /* 0 = none */
    /* replies still expected, in order */
    struct smtp_expect *expect;
    size_t nexpect, expect_head, expect_cap;
    struct smtp_reply reply;
    /* transaction */
    size_t *batch;                  /* indexes of the pending recipients */
    size_t nbatch, next_rcpt;
    size_t accepted;
    bool mail_ok, sending_content;
    struct queue_content content;
    struct smtp_content_state cstate;
    struct event *ev_flush;         /* plain: our own write, end of round */
    bool flush_queued;
};

/* smtp_session.c */
void smtp_session_send(struct smtp_session *s, enum smtp_cmd cmd, size_t rcpt,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Output was queued: a plain session writes it itself at the end of
 * this loop round (a TLS session's bufferevent writes its own). */
void smtp_session_output(struct smtp_session *s);
/* A reply is expected (the command went out by other means). */
void smtp_session_expect(struct smtp_session *s, enum smtp_cmd cmd, size_t rcpt);
void smtp_session_arm(struct smtp_session *s);
/* Give up on this server.  Before MAIL: the next address is tried
 * (retry); after: pending recipients get reply/dsn.  Then QUIT or close. */
void smtp_session_fail(struct smtp_session *s, bool permanent, const char *dsn,
                       const char *reply, bool send_quit);
/* Results are in: report to the delivery, then QUIT. */
void smtp_session_finish(struct smtp_session *s);
/* "host NAME[IP] said: REPLY (in reply to WHAT command)" into out. */
void smtp_session_said(struct smtp_session *s, const char *what, struct buf *out);
const char *smtp_session_dsn(const struct smtp_reply *r, char *out);

/* smtp_trans.c */
void smtp_trans_start(struct smtp_session *s);
/* Handle the reply to a transaction command; 0 or -1 (session ended). */
int smtp_trans_reply(struct smtp_session *s, const struct smtp_expect *e);
void smtp_trans_write_more(struct smtp_session *s);

#endif
