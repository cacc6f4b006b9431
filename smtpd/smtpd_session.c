/*
 * smtpd_session - one SMTP session: input loop, command dispatch with the
 * RFC 2920 synchronization rules, replies (with error accounting), state
 * timeouts, and the end of the session with Postfix's disconnect line.
 *
 * Interface: smtpd_session_new() (from accept), smtpd_reply*(),
 * smtpd_close*(), smtpd_resume() (after an asynchronous step),
 * smtpd_txn_reset(), smtpd_log_reject().
 *
 * Diagnostics: "connect from NAME[IP]", "disconnect from NAME[IP] ehlo=1
 * ... commands=N", "lost connection after CMD from NAME[IP]", "timeout
 * after CMD from NAME[IP]", "too many errors after CMD from NAME[IP]",
 * "improper command pipelining after CMD from NAME[IP]: TEXT".
 *
 * Security: every byte comes from the peer.  Lines are searched for within
 * MaximalCommandLineLength; input is buffered up to a high-water mark only
 * (bufferevent stops reading beyond it); a bare CR/LF, NUL or control
 * character in a command is refused; peer input never ends the process.
 */
#include "smtpd.h"
#include "smtpd_access.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "util/log.h"
#include "util/mem.h"

#define SMTPD_INPUT_HIGH (256 * 1024)
#define SMTPD_READ_MAX (64 * 1024)

typedef void (*smtpd_handler)(struct smtpd_session *, const struct smtpd_cmd *);

enum {
    CMD_LAST = 1 << 0,      /* must be last in a pipelined group (RFC 2920) */
};

static const struct {
    smtpd_handler fn;
    unsigned flags;
} handlers[SMTPD_V_COUNT] = {
    [SMTPD_V_UNKNOWN] = {smtpd_cmd_unknown, 0},
    [SMTPD_V_HELO] = {smtpd_cmd_helo, CMD_LAST},
    [SMTPD_V_EHLO] = {smtpd_cmd_ehlo, CMD_LAST},
    [SMTPD_V_STARTTLS] = {smtpd_cmd_starttls, 0},   /* input discarded */
    [SMTPD_V_MAIL] = {smtpd_cmd_mail, 0},
    [SMTPD_V_RCPT] = {smtpd_cmd_rcpt, 0},
    [SMTPD_V_DATA] = {smtpd_cmd_data, CMD_LAST},
    [SMTPD_V_BDAT] = {smtpd_cmd_bdat, 0},
    [SMTPD_V_RSET] = {smtpd_cmd_rset, 0},
    [SMTPD_V_NOOP] = {smtpd_cmd_noop, CMD_LAST},
    [SMTPD_V_VRFY] = {smtpd_cmd_vrfy, CMD_LAST},
    [SMTPD_V_EXPN] = {smtpd_cmd_expn, CMD_LAST},
    [SMTPD_V_HELP] = {smtpd_cmd_help, 0},
    [SMTPD_V_QUIT] = {smtpd_cmd_quit, 0},
};

static void session_input(struct smtpd_session *s);
static void session_free(struct smtpd_session *s);
static void session_greet(struct smtpd_session *s);

struct bufferevent *smtpd_bev(struct smtpd_session *s)
{
    return s->bev;
}

const char *smtpd_proto_name(const struct smtpd_session *s)
{
    if (!s->esmtp)
        return "SMTP";
    if (s->txn.smtputf8)
        return s->tls ? "UTF8SMTPS" : "UTF8SMTP";
    return s->tls ? "ESMTPS" : "ESMTP";
}

/* Postfix's name of the last command for "... after CMD from" logs. */
static const char *session_last_cmd(const struct smtpd_session *s)
{
    static const char *const upper[SMTPD_V_COUNT] = {
        "UNKNOWN", "HELO", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA",
        "BDAT", "RSET", "NOOP", "VRFY", "EXPN", "HELP", "QUIT",
    };
    if (s->cmd_verb < 0 || s->cmd_verb >= SMTPD_V_COUNT)
        return "CONNECT";
    return upper[s->cmd_verb];
}

static void session_state(struct smtpd_session *s, int state)
{
    if (s->state != SMTPD_S_CLOSING)
        s->state = state;
}

/* ---- replies ---- */

static void reply_account(struct smtpd_session *s, int code)
{
    if (code == 354 || s->last_verb < 0)
        return;
    s->cmd_total[s->last_verb]++;
    if (code < 400)
        s->cmd_ok[s->last_verb]++;
    s->last_verb = -1;
}

/* A plain session: a socket bufferevent, whose I/O we do ourselves where
 * libevent's is slow (replies, message data); a TLS one owns its fd. */
static bool session_plain(const struct smtpd_session *s)
{
    return !s->fd_in_bev;
}

/* Replies of a plain session collect in the output buffer and are written
 * once at the end of the loop round (session_flush_cb), straight to the
 * socket: the replies to a pipelined group go out in one write, and the
 * bufferevent's write event is armed only when the socket is full.  A TLS
 * session's bufferevent writes its own output. */
static void reply_write(struct smtpd_session *s, const char *text, size_t len)
{
    evbuffer_add(bufferevent_get_output(s->bev), text, len);
    evbuffer_add(bufferevent_get_output(s->bev), "\r\n", 2);
    if (session_plain(s) && !s->flush_queued) {
        s->flush_queued = true;
        event_active(s->flush, EV_WRITE, 0);
    }
}

/* The output is written: what follows the last reply. */
static void session_drained(struct smtpd_session *s)
{
    if (s->state == SMTPD_S_CLOSING)
        session_free(s);
    else if (s->state == SMTPD_S_TLS)
        smtpd_tls_start(s);
}

static void session_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_session *s = arg;
    struct evbuffer *out;

    s->flush_queued = false;
    if (!s->bev || !session_plain(s))
        return;
    out = bufferevent_get_output(s->bev);
    /* the bufferevent keeps its output's start frozen between its own
     * writes; we are the writer here */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, s->fd) > 0)
        ;
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(s->bev, EV_WRITE);   /* the rest when writable; errors
                                                 * come to session_event_cb */
    else
        session_drained(s);
}

/* Format a reply line into line (size bytes, cut to fit); its length. */
static size_t reply_vformat(char *line, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(line, size, fmt, ap);

    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

void smtpd_reply_raw(struct smtpd_session *s, const char *text, size_t len)
{
    int code = 0;

    if (s->state == SMTPD_S_CLOSING || !s->bev)
        return;
    if (len >= 3)
        code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
    reply_write(s, text, len);
    reply_account(s, code);
    if (code >= 400 && code != 421 && s->state != SMTPD_S_CONNECT) {
        if (++s->errors >= s->d->lim.errors) {
            log_msg("too many errors after %s from %s", session_last_cmd(s), s->namaddr);
            s->d->cnt.mta_incoming_connections_errors++;
            smtpd_close_reply(s, "421 4.7.0 %s Error: too many errors", s->d->hostname);
        }
    }
}

void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    char line[1024];
    size_t n;

    va_start(ap, fmt);
    n = reply_vformat(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        smtpd_reply_raw(s, line, n);
}

void smtpd_close(struct smtpd_session *s)
{
    if (s->state == SMTPD_S_CLOSING)
        return;
    s->state = SMTPD_S_CLOSING;
    if (!s->bev) {
        session_free(s);
        return;
    }
    bufferevent_disable(s->bev, EV_READ);
    evbuffer_drain(bufferevent_get_input(s->bev), evbuffer_get_length(bufferevent_get_input(s->bev)));
    bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){s->d->lim.write_timeout, 0});
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
        event_active(s->timer, EV_WRITE, 0);    /* free from the loop */
    else if (!session_plain(s))
        bufferevent_enable(s->bev, EV_WRITE);
    /* else the queued flush writes it and frees the session */
}

void smtpd_close_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    char line[512];
    size_t n;

    va_start(ap, fmt);
    n = reply_vformat(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && s->bev && s->state != SMTPD_S_CLOSING) {
        reply_write(s, line, n);
        reply_account(s, 421);
    }
    smtpd_close(s);
}

/* ---- logging ---- */

void smtpd_log_reject(struct smtpd_session *s, const char *cmd, const char *reply,
                      const char *to, const char *extra)
{
    struct buf b = BUF_INIT;

    buf_printf(&b, "%s: reject: %s from %s: %s;",
               s->txn.logged_client ? s->txn.id : "NOQUEUE", cmd, s->namaddr, reply);
    if (s->txn.active)
        buf_printf(&b, " from=<%s>", s->txn.sender);
    if (to)
        buf_printf(&b, " to=<%s>", to);
    buf_printf(&b, " proto=%s", smtpd_proto_name(s));
    if (s->helo)
        buf_printf(&b, " helo=<%s>", s->helo);
    if (extra)
        buf_printf(&b, " %s", extra);
    log_msg("%s", b.data);
    buf_free(&b);
}

static void session_log_disconnect(struct smtpd_session *s)
{
    static const int order[] = {
        SMTPD_V_HELO, SMTPD_V_EHLO, SMTPD_V_STARTTLS, SMTPD_V_MAIL, SMTPD_V_RCPT,
        SMTPD_V_DATA, SMTPD_V_BDAT, SMTPD_V_RSET, SMTPD_V_NOOP, SMTPD_V_VRFY,
        SMTPD_V_EXPN, SMTPD_V_HELP, SMTPD_V_QUIT, SMTPD_V_UNKNOWN,
    };
    struct buf b = BUF_INIT;
    unsigned ok = 0, total = 0;

    buf_printf(&b, "disconnect from %s", s->namaddr);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        int v = order[i];
        if (s->cmd_total[v] == 0)
            continue;
        ok += s->cmd_ok[v];
        total += s->cmd_total[v];
        if (s->cmd_ok[v] == s->cmd_total[v])
            buf_printf(&b, " %s=%u", smtpd_verb_name(v), s->cmd_ok[v]);
        else
            buf_printf(&b, " %s=%u/%u", smtpd_verb_name(v), s->cmd_ok[v], s->cmd_total[v]);
    }
    if (ok == total)
        buf_printf(&b, " commands=%u", ok);
    else
        buf_printf(&b, " commands=%u/%u", ok, total);
    log_msg("%s", b.data);
    buf_free(&b);
}

/* ---- transaction ---- */

void smtpd_txn_reset(struct smtpd_session *s)
{
    struct smtpd_txn *t = &s->txn;

    smtpd_fsync_forget(s);
    if (t->writing)
        queue_writer_close(&t->w);
    if (t->fd >= 0)
        close(t->fd);
    if (t->id[0])
        smtpd_queue_abort(s->d, t->id);
    smtpd_queue_forget(s->d, s);
    free(t->sender);
    free(t->envid);
    free(t->bdat_error);
    for (size_t i = 0; i < t->nrcpts; i++) {
        free((char *)t->rcpts[i].addr);
        free((char *)t->rcpts[i].orcpt);
    }
    free(t->rcpts);
    free((char *)t->pending.addr);
    free((char *)t->pending.orcpt);
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    if (s->acc)
        access_session_reset(s->acc);
}

/* ---- timers ---- */

void smtpd_set_timer(struct smtpd_session *s, unsigned seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_add(s->timer, &tv);
}

static void session_arm_command_timer(struct smtpd_session *s)
{
    /* The first RCPT falls under the command timeout, later RCPTs and DATA
     * under the data initiation timeout (reference §1.8). */
    if (s->txn.active && s->txn.rcpt_tries > 0)
        smtpd_set_timer(s, s->d->lim.data_init_timeout);
    else
        smtpd_set_timer(s, s->d->lim.cmd_timeout);
}

static void session_timeout(struct smtpd_session *s)
{
    if (s->state == SMTPD_S_DATA || s->state == SMTPD_S_BDAT)
        log_msg("timeout after %s (%llu bytes) from %s",
                s->state == SMTPD_S_DATA ? "DATA" : "BDAT",
                (unsigned long long)s->txn.size, s->namaddr);
    else
        log_msg("timeout after %s from %s", session_last_cmd(s), s->namaddr);
    smtpd_close_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->d->hostname);
}

static void session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_session *s = arg;

    if (s->state == SMTPD_S_CLOSING) {
        if (what & EV_WRITE)
            session_free(s);
        else {
            log_msg("timeout sending the last reply to %s", s->namaddr);
            session_free(s);
        }
        return;
    }
    if (s->busy && s->state != SMTPD_S_CONNECT)
        return;     /* our own step is slow: not the client's fault */
    session_timeout(s);
}

/* ---- input ---- */

/* Log what came too early, printable only. */
static void session_log_improper(struct smtpd_session *s, const char *after)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t n = evbuffer_get_length(in);
    char text[101];
    const unsigned char *p;

    if (n > 100)
        n = 100;
    p = evbuffer_pullup(in, (ssize_t)n);
    for (size_t i = 0; i < n; i++)
        text[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : (p[i] == '\r' || p[i] == '\n') ? ' ' : '?';
    text[n] = 0;
    log_msg("improper command pipelining %s from %s: %s", after, s->namaddr, text);
}

static void session_sync_error(struct smtpd_session *s, const char *verb)
{
    char after[64];

    if (verb)
        snprintf(after, sizeof(after), "after %s", verb);
    else
        str_copy(after, "before greeting", sizeof(after));
    session_log_improper(s, after);
    s->d->cnt.mta_incoming_connections_errors++;
    smtpd_close_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
}

static void session_dispatch(struct smtpd_session *s, char *line, size_t len)
{
    struct smtpd_cmd c;
    const char *why;
    bool bare_lf = len == 0 || line[len - 1] != '\r';

    len -= bare_lf ? 0 : 1;
    line[len] = 0;
    if (smtpd_cmd_parse(line, len, &c, &why) < 0 && !bare_lf) {
        s->last_verb = s->cmd_verb = c.verb;
        if (c.verb == SMTPD_V_MAIL || c.verb == SMTPD_V_RCPT)
            smtpd_reply(s, "501 5.5.4 %s", why);
        else {
            log_msg("%s in command from %s", why, s->namaddr);
            smtpd_reply(s, "500 5.5.2 %s", why);
        }
        return;
    }
    s->last_verb = s->cmd_verb = c.verb;
    if (bare_lf) {
        log_msg("bare <LF> received in command from %s", s->namaddr);
        smtpd_reply(s, "500 5.5.2 Error: bare <LF> received");
        return;
    }
    if (s->pipelined && s->state == SMTPD_S_CMD && c.verb != SMTPD_V_QUIT &&
        c.verb != SMTPD_V_STARTTLS && (!s->esmtp || (handlers[c.verb].flags & CMD_LAST))) {
        session_sync_error(s, session_last_cmd(s));
        return;
    }
    handlers[c.verb].fn(s, &c);
}

/* One command line from the input; returns false when more input is
 * needed. */
static bool session_command(struct smtpd_session *s, struct evbuffer *in)
{
    struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);
    size_t avail = evbuffer_get_length(in), linelen;
    char *line;

    if (s->skip_line) {
        evbuffer_drain(in, p.pos < 0 ? avail : (size_t)p.pos + 1);
        s->skip_line = p.pos < 0;
        return p.pos >= 0;
    }
    if (p.pos < 0 || (size_t)p.pos + 1 > s->d->lim.cmd_line_max) {
        if (p.pos < 0 && avail <= s->d->lim.cmd_line_max)
            return false;
        log_msg("command line too long from %s", s->namaddr);
        s->last_verb = -1;
        smtpd_reply(s, "500 5.5.2 Error: line too long");
        evbuffer_drain(in, p.pos < 0 ? avail : (size_t)p.pos + 1);
        s->skip_line = p.pos < 0;
        return true;
    }
    linelen = (size_t)p.pos + 1;
    line = xmalloc(linelen + 1);
    evbuffer_remove(in, line, linelen);
    s->pipelined = evbuffer_get_length(in) > 0;
    session_dispatch(s, line, linelen - 1);
    free(line);
    return true;
}

static void session_account_bytes(struct smtpd_session *s, size_t n)
{
    s->session_bytes += n;
}

static void session_input(struct smtpd_session *s)
{
    struct evbuffer *in;

    if (!s->bev)
        return;
    in = bufferevent_get_input(s->bev);
    while (!s->busy && (s->state == SMTPD_S_CMD || s->state == SMTPD_S_DATA ||
                        s->state == SMTPD_S_BDAT)) {
        size_t avail = evbuffer_get_length(in), used;
        struct evbuffer_iovec v;
        int prev = s->state;

        if (avail == 0)
            break;
        if (s->state == SMTPD_S_CMD) {
            size_t before = avail;
            if (!session_command(s, in))
                break;
            if (s->bev)
                session_account_bytes(s, before - evbuffer_get_length(in));
            if (s->state == SMTPD_S_CMD && prev == SMTPD_S_CMD && !s->busy)
                session_arm_command_timer(s);
            continue;
        }
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        if (s->state == SMTPD_S_DATA)
            used = smtpd_xfer_data_input(s, v.iov_base, v.iov_len);
        else
            used = smtpd_xfer_bdat_input(s, v.iov_base, v.iov_len);
        session_account_bytes(s, used);
        evbuffer_drain(in, used);
        if (s->state == SMTPD_S_CMD && !s->busy)
            session_arm_command_timer(s);
    }
}

/* Message data comes in bulk, and libevent 2.1 reads at most 4 KiB per
 * call (EVBUFFER_MAX_READ): in DATA and BDAT a plain session takes what
 * the socket has, up to SMTPD_READ_MAX per read and the input high-water
 * mark, straight into the input buffer.  EOF and errors are left for the
 * bufferevent to see on its next read (the socket stays readable). */
static void session_read_more(struct smtpd_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);

    if (!session_plain(s) || (s->state != SMTPD_S_DATA && s->state != SMTPD_S_BDAT))
        return;
    evbuffer_unfreeze(in, 0);   /* the bufferevent freezes the end between reads */
    for (int i = 0; i < 4; i++) {
        size_t have = evbuffer_get_length(in), want;
        struct evbuffer_iovec v;
        ssize_t n;

        if (have >= SMTPD_INPUT_HIGH)
            break;
        want = SMTPD_INPUT_HIGH - have < SMTPD_READ_MAX ? SMTPD_INPUT_HIGH - have : SMTPD_READ_MAX;
        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
            break;
        n = recv(s->fd, v.iov_base, v.iov_len < want ? v.iov_len : want, MSG_DONTWAIT);
        if (n <= 0)
            break;
        v.iov_len = (size_t)n;
        evbuffer_commit_space(in, &v, 1);
        if ((size_t)n < want)
            break;
    }
    evbuffer_freeze(in, 0);
}

void smtpd_resume(struct smtpd_session *s)
{
    s->busy = false;
    if (s->state == SMTPD_S_CMD)
        session_arm_command_timer(s);
    session_input(s);
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;

    if (s->state == SMTPD_S_CLOSING) {
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return;
    }
    session_read_more(s);
    session_input(s);
    if (s->flush_queued) {      /* now, not in one more loop round */
        event_del(s->flush);
        session_flush_cb(-1, 0, s);
    }
}

static void session_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;

    if (session_plain(s))
        bufferevent_disable(bev, EV_WRITE);     /* until a flush leaves a rest */
    session_drained(s);
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_session *s = arg;

    if (what & BEV_EVENT_CONNECTED) {
        smtpd_tls_done(s);
        return;
    }
    if (s->state == SMTPD_S_CLOSING) {
        session_free(s);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (s->busy && (what & BEV_EVENT_READING)) {
            bufferevent_enable(bev, EV_READ);   /* we are the slow side */
            return;
        }
        session_timeout(s);
        return;
    }
    if (s->state == SMTPD_S_TLS)
        smtpd_tls_failed(s);
    else if (s->state == SMTPD_S_DATA || s->state == SMTPD_S_BDAT)
        log_msg("lost connection after %s (%llu bytes) from %s",
                s->state == SMTPD_S_DATA ? "DATA" : "BDAT",
                (unsigned long long)s->txn.size, s->namaddr);
    else
        log_msg("lost connection after %s from %s", session_last_cmd(s), s->namaddr);
    session_free(s);
}

void smtpd_session_rebind(struct smtpd_session *s, struct bufferevent *bev)
{
    struct timeval rt = {s->d->lim.read_timeout, 0};
    struct timeval wt = {s->d->lim.write_timeout, 0};

    s->bev = bev;
    bufferevent_setcb(bev, session_read_cb, session_write_cb, session_event_cb, s);
    bufferevent_setwatermark(bev, EV_READ, 0, SMTPD_INPUT_HIGH);
    bufferevent_set_timeouts(bev, &rt, &wt);
    if (session_plain(s)) {
        bufferevent_disable(bev, EV_WRITE);     /* on by default: flushes write */
        bufferevent_enable(bev, EV_READ);
    } else {
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    }
}

/* ---- life cycle ---- */

static void session_connect_cb(const struct access_decision *dec, void *arg)
{
    struct smtpd_session *s = arg;

    str_copy(s->name, access_client_name(s->acc), sizeof(s->name));
    snprintf(s->namaddr, sizeof(s->namaddr), "%s[%s]", s->name, s->addr);
    s->busy = false;
    log_msg("connect from %s", s->namaddr);
    if (dec->result != ACCESS_ALLOW) {
        smtpd_log_reject(s, "CONNECT", dec->reply, NULL, NULL);
        smtpd_count_refused(s->d, NULL);
        smtpd_close_reply(s, "%s", dec->reply[0] ? dec->reply : "554 5.7.1 Access denied");
        return;
    }
    session_greet(s);
}

static void session_greet(struct smtpd_session *s)
{
    char c;

    if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0 ||
        recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
        session_sync_error(s, NULL);
        return;
    }
    session_state(s, SMTPD_S_CMD);
    smtpd_reply(s, "220 %s ESMTP mailgw", s->d->hostname);
    session_arm_command_timer(s);
    session_input(s);
}

struct smtpd_session *smtpd_session_new(struct smtpd *d, int fd, const char *addr)
{
    struct smtpd_session *s = xcalloc(1, sizeof(*s));

    s->d = d;
    s->fd = fd;
    s->last_verb = s->cmd_verb = -1;
    s->txn.fd = -1;
    str_copy(s->addr, addr, sizeof(s->addr));
    str_copy(s->name, "unknown", sizeof(s->name));
    snprintf(s->namaddr, sizeof(s->namaddr), "unknown[%s]", addr);
    s->timer = evtimer_new(d->base, session_timer_cb, s);
    s->flush = event_new(d->base, -1, 0, session_flush_cb, s);
    smtpd_session_rebind(s, bufferevent_socket_new(d->base, fd, 0));
    s->state = SMTPD_S_CONNECT;
    s->next = d->sessions;
    if (d->sessions)
        d->sessions->prev = s;
    d->sessions = s;
    smtpd_set_timer(s, d->lim.cmd_timeout);
    if (d->access) {
        s->acc = access_session_new(d->access, addr);
        s->busy = true;
        access_connect(s->acc, session_connect_cb, s);
        return s;
    }
    log_msg("connect from %s", s->namaddr);
    session_greet(s);
    return s;
}

static void session_free(struct smtpd_session *s)
{
    struct smtpd *d = s->d;

    smtpd_txn_reset(s);
    session_log_disconnect(s);
    if (s->acc)
        access_session_free(s->acc);
    if (s->bev)
        bufferevent_free(s->bev);
    if (!s->fd_in_bev || !s->bev)
        close(s->fd);
    event_free(s->timer);
    event_free(s->flush);
    if (s->prev)
        s->prev->next = s->next;
    else
        d->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s->helo);
    free(s->tls_info);
    buf_free(&s->tmp);
    smtpd_session_gone(d, s->addr);
    free(s);
}
