/*
 * smtp_session - one SMTP conversation with one server address: connect,
 * greeting, EHLO (HELO fallback), STARTTLS, the transaction (smtp_trans.c),
 * QUIT.  Event-driven on bufferevents (a TLS filter after STARTTLS).
 *
 * Interface: smtp_session_start (from smtp_deliver.c),
 * smtp_session_cache_flush (smtp.c, at stop), and for smtp_trans.c:
 * smtp_session_send, _arm, _fail, _finish, _said, _dsn.
 *
 * Every wait has its [mailgw.timeouts] limit: connect and greeting
 * SendingInitialTimeout, EHLO/HELO/STARTTLS SendingHelloTimeout, MAIL
 * SendingMailTimeout, RCPT SendingRcptTimeout, DATA
 * SendingDataInitiationTimeout, end of data SendingDataTerminationTimeout,
 * QUIT SendingQuitTimeout; writes WriteTimeout.  The read timeout follows
 * the oldest command whose reply is still expected.
 *
 * Replies are parsed by the strict lib/route/smtp_reply parser; garbage,
 * an over-long line, too many lines or inconsistent codes end the session
 * as a temporary failure ("malformed reply").  Trouble before MAIL (no
 * greeting, refused EHLO/HELO, TLS required but missing or failed) moves
 * on to the next address; after MAIL the pending recipients are deferred.
 * Bytes a server sends after its STARTTLS reply and before the handshake
 * are refused (the plaintext command injection of CVE-2011-0411).
 *
 * Connection cache (as Postfix's smtp_connection_cache_on_demand): after
 * a transaction that ended with the reply to end of data and nothing else
 * outstanding, the connection is kept idle (no QUIT) for the next delivery
 * to the same host, address and port, at most SMTP_CACHE_IDLE seconds and
 * SMTP_CACHE_USES transactions, at most SMTP_CACHE_MAX connections; then
 * QUIT.  A server that closes or talks while we are idle loses its entry.
 * A cached connection that dies before its first reply of the new
 * transaction was stale: the same address is tried again on a new
 * connection (no recipient is deferred for it).
 *
 * Diagnostics go into the recipients' reply texts in Postfix's words
 * ("connect to H[IP]:P: Connection refused", "host H[IP] said: ...",
 * "lost connection with H[IP] while ...", "conversation with H[IP] timed
 * out while ...").
 */
#include "smtp_session.h"

#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SMTP_CACHE_IDLE 2
#define SMTP_CACHE_USES 100
#define SMTP_CACHE_MAX 200

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

static struct smtp_session *session_cache;     /* idle connections */
static size_t session_ncached;

/* Output drained: more content when a message is being sent. */
static void session_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    if (!s->ssl)
        bufferevent_disable(bev, EV_WRITE);     /* until a flush leaves a rest */
    if (s->sending_content && !s->closed)
        smtp_trans_write_more(s);
}

/* A plain session writes what its commands and content queued itself, at
 * the end of the loop round (pipelined commands go out together), instead
 * of arming the bufferevent's write event for every command: that costs
 * two epoll_ctl and a loop round per write.  Only what the socket does not
 * take waits for the write event (errors and the write time-out then come
 * to session_event_cb as before). */
static void session_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    struct evbuffer *out;

    s->flush_queued = false;
    if (s->closed || !s->bev || s->ssl)
        return;
    out = bufferevent_get_output(s->bev);
    /* the bufferevent keeps its output's start frozen between its own
     * writes; we are the writer here */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, bufferevent_getfd(s->bev)) > 0)
        ;
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(s->bev, EV_WRITE);
    else if (s->sending_content)
        smtp_trans_write_more(s);       /* queues the next piece, and a flush */
}

void smtp_session_output(struct smtp_session *s)
{
    if (s->ssl || s->closed || s->flush_queued || !s->ev_flush)
        return;
    s->flush_queued = true;
    event_active(s->ev_flush, EV_TIMEOUT, 0);
}

static const char *cmd_stage(enum smtp_cmd cmd)
{
    switch (cmd) {
    case SMTP_CMD_GREETING: return "receiving the initial server greeting";
    case SMTP_CMD_EHLO: return "performing the EHLO handshake";
    case SMTP_CMD_HELO: return "performing the HELO handshake";
    case SMTP_CMD_STARTTLS: return "performing the STARTTLS handshake";
    case SMTP_CMD_MAIL: return "sending MAIL FROM";
    case SMTP_CMD_RCPT: return "sending RCPT TO";
    case SMTP_CMD_DATA: return "sending DATA command";
    case SMTP_CMD_DOT: return "sending end of data -- message may be sent more than once";
    case SMTP_CMD_QUIT: return "sending QUIT";
    }
    return "talking";
}

static unsigned cmd_timeout(enum smtp_cmd cmd)
{
    switch (cmd) {
    case SMTP_CMD_GREETING: return smtp_var.timeout_initial;
    case SMTP_CMD_EHLO:
    case SMTP_CMD_HELO:
    case SMTP_CMD_STARTTLS: return smtp_var.timeout_helo;
    case SMTP_CMD_MAIL: return smtp_var.timeout_mail;
    case SMTP_CMD_RCPT: return smtp_var.timeout_rcpt;
    case SMTP_CMD_DATA: return smtp_var.timeout_data_init;
    case SMTP_CMD_DOT: return smtp_var.timeout_data_term;
    case SMTP_CMD_QUIT: return smtp_var.timeout_quit;
    }
    return smtp_var.timeout_initial;
}

static void expect_push(struct smtp_session *s, enum smtp_cmd cmd, size_t rcpt)
{
    if (s->nexpect == s->expect_cap && s->expect_head > 0) {
        /* compact before growing */
        memmove(s->expect, s->expect + s->expect_head,
                (s->nexpect - s->expect_head) * sizeof(*s->expect));
        s->nexpect -= s->expect_head;
        s->expect_head = 0;
    }
    if (s->nexpect == s->expect_cap) {
        s->expect_cap = s->expect_cap ? s->expect_cap * 2 : 8;
        s->expect = xreallocarray(s->expect, s->expect_cap, sizeof(*s->expect));
    }
    s->expect[s->nexpect].cmd = cmd;
    s->expect[s->nexpect].rcpt = rcpt;
    s->nexpect++;
}

void smtp_session_arm(struct smtp_session *s)
{
    struct timeval rtv = { 0, 0 }, wtv = { smtp_var.timeout_write, 0 };
    bool waiting = s->expect_head < s->nexpect;
    if (waiting)
        rtv.tv_sec = cmd_timeout(s->expect[s->expect_head].cmd);
    bufferevent_set_timeouts(s->bev, waiting ? &rtv : NULL, &wtv);
}

void smtp_session_expect(struct smtp_session *s, enum smtp_cmd cmd, size_t rcpt)
{
    bool was_idle = s->expect_head == s->nexpect;
    expect_push(s, cmd, rcpt);
    if (was_idle)
        smtp_session_arm(s);
}

void smtp_session_send(struct smtp_session *s, enum smtp_cmd cmd, size_t rcpt,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
    va_end(ap);
    evbuffer_add(bufferevent_get_output(s->bev), "\r\n", 2);
    smtp_session_expect(s, cmd, rcpt);
    smtp_session_output(s);
}

const char *smtp_session_dsn(const struct smtp_reply *r, char *out)
{
    if (r->dsn[0])
        str_copy(out, r->dsn, 16);
    else
        snprintf(out, 16, "%d.0.0", r->code / 100);
    return out;
}

void smtp_session_said(struct smtp_session *s, const char *what, struct buf *out)
{
    buf_printf(out, "host %s[%s] said: ", s->host, s->ip);
    smtp_reply_format(&s->reply, out);
    buf_printf(out, " (in reply to %s command)", what);
}

static void cache_remove(struct smtp_session *s)
{
    struct smtp_session **pp = &session_cache;

    while (*pp && *pp != s)
        pp = &(*pp)->cache_next;
    if (*pp) {
        *pp = s->cache_next;
        session_ncached--;
    }
    s->cache_next = NULL;
    s->cached = false;
}

/* An idle connection to host[ip]:port, taken out of the cache. */
static struct smtp_session *cache_take(const char *host, const char *ip, unsigned port)
{
    for (struct smtp_session *c = session_cache; c; c = c->cache_next) {
        if (c->port == port && strcmp(c->ip, ip) == 0 && strcmp(c->host, host) == 0) {
            cache_remove(c);
            return c;
        }
    }
    return NULL;
}

/* After a complete transaction: can the connection serve another? */
static bool cache_fits(const struct smtp_session *s)
{
    return s->trans_done && s->connected && !s->quitting && !s->closed && s->bev &&
           s->expect_head == s->nexpect && !s->sending_content && s->uses < SMTP_CACHE_USES &&
           session_ncached < SMTP_CACHE_MAX;
}

static void cache_put(struct smtp_session *s)
{
    struct timeval idle = { SMTP_CACHE_IDLE, 0 }, wtv = { smtp_var.timeout_write, 0 };

    s->cached = true;
    s->idle_since_us = smtp_now_us();
    s->cache_next = session_cache;
    session_cache = s;
    session_ncached++;
    bufferevent_set_timeouts(s->bev, &idle, &wtv);
}

static void session_free_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    smtp_reply_free(&s->reply);
    if (s->ev_flush)
        event_free(s->ev_flush);
    free(s->expect);
    free(s->batch);
    free(s);
}

/* Close the connection; the struct goes at the next loop turn, so the
 * callers up the stack may still look at s->closed. */
static void session_close(struct smtp_session *s)
{
    static const struct timeval now = { 0, 0 };
    if (s->closed)
        return;
    s->closed = true;
    if (s->ev_flush)
        event_del(s->ev_flush);
    if (s->cached)
        cache_remove(s);
    if (s->bev) {
        bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
        bufferevent_free(s->bev);
        s->bev = NULL;
        smtp_count("mta_outgoing_connections_current", (uint64_t)-1);
    }
    if (s->d) {
        struct smtp_delivery *d = s->d;
        s->d = NULL;
        smtp_delivery_session_done(d, true);
    }
    event_base_once(smtp_base, -1, EV_TIMEOUT, session_free_cb, s, &now);
}

static void session_quit(struct smtp_session *s)
{
    if (s->quitting || s->closed || !s->connected) {
        session_close(s);
        return;
    }
    s->quitting = true;
    s->sending_content = false;
    smtp_session_send(s, SMTP_CMD_QUIT, 0, "QUIT");
}

void smtp_session_finish(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;
    bool keep = cache_fits(s);

    s->d = NULL;
    s->uses++;
    if (keep)
        cache_put(s);       /* before the callback: the next delivery may take it */
    if (d)
        smtp_delivery_session_done(d, false);
    if (!keep)
        session_quit(s);
}

void smtp_session_cache_flush(void)
{
    while (session_cache) {
        struct smtp_session *s = session_cache;
        cache_remove(s);
        session_quit(s);
    }
}

void smtp_session_fail(struct smtp_session *s, bool permanent, const char *dsn,
                       const char *reply, bool send_quit)
{
    struct smtp_delivery *d = s->d;
    s->d = NULL;
    if (d) {
        buf_reset(&d->last_error);
        buf_append_str(&d->last_error, reply);
        d->last_error_permanent = permanent;
        str_copy(d->last_error_dsn, dsn, sizeof(d->last_error_dsn));
        if (s->in_transaction)
            smtp_delivery_fail_pending(d, permanent, dsn, reply);
        /* before MAIL: the next address now; QUIT goes on in the background */
        smtp_delivery_session_done(d, !s->in_transaction);
    }
    if (send_quit)
        session_quit(s);
    else
        session_close(s);
}

/* Connection trouble: lost, timed out, malformed, TLS error. */
static void session_trouble(struct smtp_session *s, const char *what, const char *dsn)
{
    struct buf msg = BUF_INIT;
    enum smtp_cmd cmd = s->expect_head < s->nexpect ? s->expect[s->expect_head].cmd
                                                    : SMTP_CMD_GREETING;
    if (s->sending_content)
        cmd = SMTP_CMD_DOT;
    if (s->quitting || s->cached) {
        session_close(s);
        return;
    }
    if (s->reused && s->replies == 0 && s->d) {
        /* a stale cached connection: this address again, anew */
        s->in_transaction = false;
        s->d->fresh_retry = true;
    }
    buf_printf(&msg, "%s with %s[%s] while %s", what, s->host, s->ip, cmd_stage(cmd));
    smtp_session_fail(s, false, dsn, msg.data, false);
    buf_free(&msg);
}

static void parse_ehlo(struct smtp_session *s)
{
    s->esmtp = true;
    s->pipelining = s->ext_size = s->ext_8bitmime = s->ext_dsn = false;
    s->ext_smtputf8 = s->ext_starttls = false;
    s->size_limit = 0;
    for (size_t i = 1; i < s->reply.nlines; i++) {
        size_t n;
        const char *l = smtp_reply_line(&s->reply, i, &n);
        if (!l)
            break;
        char kw[32];
        size_t k = strcspn(l, " \n");
        if (k > n)
            k = n;
        if (k == 0 || k >= sizeof(kw))
            continue;
        memcpy(kw, l, k);
        kw[k] = 0;
        if (strcasecmp(kw, "PIPELINING") == 0)
            s->pipelining = true;
        else if (strcasecmp(kw, "8BITMIME") == 0)
            s->ext_8bitmime = true;
        else if (strcasecmp(kw, "DSN") == 0)
            s->ext_dsn = true;
        else if (strcasecmp(kw, "SMTPUTF8") == 0)
            s->ext_smtputf8 = true;
        else if (strcasecmp(kw, "STARTTLS") == 0)
            s->ext_starttls = true;
        else if (strcasecmp(kw, "SIZE") == 0) {
            s->ext_size = true;
            if (k < n && l[k] == ' ') {
                char num[24];
                size_t m = n - k - 1 < sizeof(num) - 1 ? n - k - 1 : sizeof(num) - 1;
                memcpy(num, l + k + 1, m);
                num[m] = 0;
                s->size_limit = strtoull(num, NULL, 10);   /* garbage = 0 = none */
            }
        }
    }
}

static bool tls_wanted(const struct smtp_session *s)
{
    return smtp_var.tls_mode != SMTP_TLS_NONE && !s->no_tls && !s->tls_active;
}

/* EHLO/HELO done: STARTTLS, or insist on it, or go on to MAIL. */
static void session_after_hello(struct smtp_session *s)
{
    if (tls_wanted(s) && s->ext_starttls && smtp_var.tls_ctx) {
        smtp_session_send(s, SMTP_CMD_STARTTLS, 0, "STARTTLS");
        return;
    }
    if (smtp_var.tls_mode >= SMTP_TLS_ENCRYPT && !s->tls_active) {
        struct buf msg = BUF_INIT;
        buf_printf(&msg, "TLS is required, but was not offered by host %s[%s]", s->host, s->ip);
        smtp_session_fail(s, false, "4.7.4", msg.data, true);
        buf_free(&msg);
        return;
    }
    if (s->d && !s->d->t_connected)
        s->d->t_connected = smtp_now_us();
    smtp_trans_start(s);
}

static void session_refused(struct smtp_session *s, const char *what)
{
    struct buf msg = BUF_INIT;
    char dsn[16];
    buf_printf(&msg, "host %s[%s] refused to talk to me: ", s->host, s->ip);
    smtp_reply_format(&s->reply, &msg);
    if (what)
        buf_printf(&msg, " (in reply to %s command)", what);
    smtp_session_fail(s, s->reply.code >= 500, smtp_session_dsn(&s->reply, dsn), msg.data, true);
    buf_free(&msg);
}

static void start_tls(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    if (evbuffer_get_length(in) > 0) {
        session_trouble(s, "unexpected data after the STARTTLS reply", "4.7.0");
        return;
    }
    SSL *ssl = SSL_new(smtp_var.tls_ctx);
    unsigned char addr[16];
    if (!ssl) {
        session_trouble(s, "cannot start TLS", "4.7.0");
        return;
    }
    if (inet_pton(AF_INET, s->host, addr) != 1 && inet_pton(AF_INET6, s->host, addr) != 1)
        SSL_set_tlsext_host_name(ssl, s->host);
    bufferevent_enable(s->bev, EV_WRITE);      /* the filter writes through it */
    struct bufferevent *tls = bufferevent_openssl_filter_new(
        smtp_base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!tls) {
        SSL_free(ssl);
        session_trouble(s, "cannot start TLS", "4.7.0");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    s->bev = tls;
    s->ssl = ssl;
    bufferevent_setcb(tls, session_read_cb, session_write_cb, session_event_cb, s);
    bufferevent_setwatermark(tls, EV_READ, 0, 2 * SMTP_REPLY_MAX_LINE + 65536);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    struct timeval tv = { smtp_var.timeout_helo, 0 };
    bufferevent_set_timeouts(tls, &tv, &tv);
}

/* The handshake finished (filter's CONNECTED event). */
static void tls_established(struct smtp_session *s)
{
    struct buf info = BUF_INIT, why = BUF_INIT;
    smtp_tls_describe(s->ssl, &info);
    if (smtp_var.tls_mode == SMTP_TLS_VERIFY && smtp_tls_check_peer(s->ssl, s->host, &why) < 0) {
        struct buf msg = BUF_INIT;
        buf_printf(&msg, "Server certificate not verified: host %s[%s]: %s", s->host, s->ip,
                   why.data);
        smtp_session_fail(s, false, "4.7.5", msg.data, true);
        buf_free(&msg);
    } else {
        log_info("%s: %s TLS connection established to %s[%s]:%u: %s", s->id,
                 smtp_var.tls_mode == SMTP_TLS_VERIFY ? "Verified" : "Untrusted", s->host, s->ip,
                 s->port, info.data);
        s->tls_active = true;
        smtp_session_send(s, SMTP_CMD_EHLO, 0, "EHLO %s", smtp_var.hostname);
    }
    buf_free(&info);
    buf_free(&why);
}

static int session_reply(struct smtp_session *s, const struct smtp_expect *e)
{
    int code = s->reply.code;
    switch (e->cmd) {
    case SMTP_CMD_GREETING:
        if (code / 100 != 2)
            session_refused(s, NULL);
        else
            smtp_session_send(s, SMTP_CMD_EHLO, 0, "EHLO %s", smtp_var.hostname);
        break;
    case SMTP_CMD_EHLO:
        if (code / 100 == 2) {
            parse_ehlo(s);
            session_after_hello(s);
        } else if (!s->tls_active) {
            smtp_session_send(s, SMTP_CMD_HELO, 0, "HELO %s", smtp_var.hostname);
        } else {
            session_refused(s, "EHLO");
        }
        break;
    case SMTP_CMD_HELO:
        if (code / 100 == 2)
            session_after_hello(s);
        else
            session_refused(s, "HELO");
        break;
    case SMTP_CMD_STARTTLS:
        if (code == 220) {
            start_tls(s);
        } else if (smtp_var.tls_mode == SMTP_TLS_MAY) {
            s->no_tls = true;
            session_after_hello(s);
        } else {
            session_refused(s, "STARTTLS");
        }
        break;
    case SMTP_CMD_QUIT:
        session_close(s);
        break;
    default:
        return smtp_trans_reply(s, e);
    }
    return s->closed ? -1 : 0;
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    while (!s->closed) {
        struct evbuffer *in = bufferevent_get_input(s->bev);
        size_t len = evbuffer_get_length(in), used = 0;
        const char *why = NULL;
        if (len == 0)
            return;
        if (s->cached) {
            session_close(s);   /* talks while idle (421 on a time-out) */
            return;
        }
        if (s->expect_head == s->nexpect) {
            session_trouble(s, "unexpected data (a reply to no command)", "4.5.0");
            return;
        }
        const char *data = (const char *)evbuffer_pullup(in, -1);
        enum smtp_reply_status st = smtp_reply_feed(&s->reply, data, len, &used, &why);
        evbuffer_drain(in, used);
        if (st == SMTP_REPLY_MORE)
            return;
        if (st == SMTP_REPLY_BAD) {
            struct buf msg = BUF_INIT;
            buf_printf(&msg, "malformed reply (%s)", why);
            session_trouble(s, msg.data, "4.5.0");
            buf_free(&msg);
            return;
        }
        struct smtp_expect e = s->expect[s->expect_head++];
        s->replies++;
        smtp_session_arm(s);
        int rc = session_reply(s, &e);
        if (!s->closed)
            smtp_reply_reset(&s->reply);
        if (rc < 0)
            return;
    }
}

static void session_connected(struct smtp_session *s)
{
    s->connected = true;
    smtp_count("mta_outgoing_connections_total", 1);
    if (s->d)
        snprintf(s->d->relay, sizeof(s->d->relay), "%s[%s]:%u", s->host, s->ip, s->port);
    bufferevent_enable(s->bev, EV_READ);
    bufferevent_disable(s->bev, EV_WRITE);     /* we write (session_flush_cb) */
    expect_push(s, SMTP_CMD_GREETING, 0);
    smtp_session_arm(s);
}

static void connect_failed(struct smtp_session *s, const char *reason)
{
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "connect to %s[%s]:%u: %s", s->host, s->ip, s->port, reason);
    smtp_count("mta_outgoing_connections_failed_total", 1);
    smtp_session_fail(s, false, "4.4.1", msg.data, false);
    buf_free(&msg);
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_session *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (s->cached) {
        cache_remove(s);
        if (what & BEV_EVENT_TIMEOUT) {
            bufferevent_enable(s->bev, EV_READ);    /* a time-out disabled it */
            session_quit(s);    /* idle long enough */
        } else
            session_close(s);
        return;
    }
    if (what & BEV_EVENT_CONNECTED) {
        if (s->ssl && !s->tls_active)
            tls_established(s);
        else
            session_connected(s);
        return;
    }
    if (!s->connected) {
        connect_failed(s, what & BEV_EVENT_TIMEOUT ? "Connection timed out" : strerror(err));
        return;
    }
    if (s->ssl && !s->tls_active && !(what & BEV_EVENT_TIMEOUT)) {
        if (smtp_var.tls_mode == SMTP_TLS_MAY && s->d)
            s->d->tls_plain_retry = true;   /* one more try without TLS */
        session_trouble(s, "TLS handshake failed", "4.7.5");
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        session_trouble(s, "conversation timed out", "4.4.2");
    else if (what & BEV_EVENT_EOF)
        session_trouble(s, "lost connection", "4.4.2");
    else
        session_trouble(s, "lost connection", "4.4.2");
}

/* A failure before any I/O, reported from the loop (never re-entrantly). */
static void session_early_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_session *s = arg;
    connect_failed(s, strerror(s->early_errno));
}

/* A cached connection takes up d: straight to the transaction. */
static void session_reuse(struct smtp_session *s, struct smtp_delivery *d)
{
    s->d = d;
    d->session = s;
    s->reused = true;
    s->replies = 0;
    s->in_transaction = s->trans_done = s->mail_ok = s->sending_content = false;
    s->nbatch = s->next_rcpt = s->accepted = 0;
    for (size_t i = 0; i < d->nrcpts; i++)
        d->rcpts[i].accepted = false;
    str_copy(s->id, d->id, sizeof(s->id));
    snprintf(d->relay, sizeof(d->relay), "%s[%s]:%u", s->host, s->ip, s->port);
    if (!d->t_connected)
        d->t_connected = smtp_now_us();
    log_debug("%s: reusing the connection to %s[%s]:%u", s->id, s->host, s->ip, s->port);
    smtp_trans_start(s);
}

void smtp_session_start(struct smtp_delivery *d, const struct smtp_addr *a, unsigned port)
{
    static const struct timeval now = { 0, 0 };
    struct smtp_session *s;
    struct timeval tv = { smtp_var.timeout_initial, 0 };
    bool fresh = d->no_cache || d->tls_plain_retry;

    d->no_cache = false;
    if (!fresh && (s = cache_take(a->host, a->ip, port)) != NULL) {
        session_reuse(s, d);
        return;
    }
    s = xcalloc(1, sizeof(*s));
    s->d = d;
    d->session = s;
    s->no_tls = d->tls_plain_retry;
    d->tls_plain_retry = false;
    str_copy(s->id, d->id, sizeof(s->id));
    str_copy(s->host, a->host, sizeof(s->host));
    str_copy(s->ip, a->ip, sizeof(s->ip));
    s->port = port;
    smtp_reply_init(&s->reply);
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->early_errno = errno;
    if (fd >= 0)
        s->bev = bufferevent_socket_new(smtp_base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->ev_flush = event_new(smtp_base, -1, 0, session_flush_cb, s);
    if (!s->ev_flush)
        log_fatal("cannot create an event");
    if (fd >= 0 && !s->bev) {
        s->early_errno = ENOMEM;
        close(fd);
    }
    if (!s->bev) {
        event_base_once(smtp_base, -1, EV_TIMEOUT, session_early_fail_cb, s, &now);
        return;
    }
    smtp_count("mta_outgoing_connections_current", 1);
    bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, 2 * SMTP_REPLY_MAX_LINE + 65536);
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    if (bufferevent_socket_connect(s->bev, (const struct sockaddr *)&a->sa, a->salen) < 0) {
        /* immediate failure: the event callback has not run; report async */
        s->early_errno = errno ? errno : ECONNREFUSED;
        event_base_once(smtp_base, -1, EV_TIMEOUT, session_early_fail_cb, s, &now);
    }
}

void smtp_session_detach(struct smtp_session *s)
{
    if (s)
        s->d = NULL;
}
