/*
 * smtpd_xfer - message transfer: DATA (RFC 5321 4.1.1.4) and BDAT
 * (RFC 3030 CHUNKING), the Received: header, the end-of-message checks
 * and the commit through qmgr.
 *
 * The queue file (an fd qmgr handed out at MAIL) gets the envelope and
 * our Received: header when the transfer starts, then the content as it
 * streams (framing by smtpd_data: dot-unstuffed, strict CRLF).  At the end
 * the message is refused when framing was bad (bare CR/LF, NUL: 550 5.5.2;
 * over-long line), when it is too big (552 5.3.4,
 * MaximalIncomingMessageSize / MaximalIncomingSessionSize), when it has
 * more Received: headers than MaximalIncomingHops (554 5.4.6), or when a
 * write failed (451 4.3.0); otherwise the writer adds END and fsyncs (on
 * a worker thread, smtpd_fsync.c: the loop keeps serving other sessions),
 * qmgr commits, and only then "250 2.0.0 Ok: queued as ID".
 *
 * BDAT: chunks are read by count; a chunk sent where no transaction can
 * take it is read and dropped (503); after a failed chunk every further
 * chunk of the transaction gets the same error; DATA during a BDAT
 * transfer is refused (503).
 *
 * Diagnostics: rejects in Postfix's shape "ID: reject: END-OF-MESSAGE
 * from NAME[IP]: REPLY; from=<..> ..." with the limit and counter named;
 * "ID: message-id=<...>" for each message committed.
 */
#include "smtpd.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

static uint64_t xfer_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void xfer_received(struct smtpd_session *s, struct buf *b, uint64_t now_us)
{
    time_t now = (time_t)(now_us / 1000000u);
    struct tm tm;
    char date[64];

    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
    buf_printf(b, "Received: from %s (%s [%s])\r\n", s->helo, s->name, s->addr);
    if (s->tls_info)
        buf_printf(b, "\t(using %s)\r\n", s->tls_info);
    buf_printf(b, "\tby %s (mailgw) with %s id %s", s->d->hostname, smtpd_proto_name(s),
               s->txn.id);
    if (s->txn.nrcpts == 1)
        buf_printf(b, "\r\n\tfor <%s>; %s\r\n", s->txn.rcpts[0].addr, date);
    else
        buf_printf(b, ";\r\n\t%s\r\n", date);
}

/* Start writing the queue file: envelope, then our Received: header. */
static void xfer_begin(struct smtpd_session *s, int mode)
{
    struct smtpd_txn *t = &s->txn;
    struct queue_envelope env = {0};
    struct buf rec = BUF_INIT;

    smtpd_data_init(&t->dm, mode, s->d->lim.text_line_max);
    smtpd_hdr_init(&t->hdr);
    t->size = 0;
    env.arrival_us = xfer_now_us();
    env.client_addr = s->addr;
    env.client_name = s->name;
    env.helo = s->helo;
    env.proto = smtpd_proto_name(s);
    env.tls = s->tls_info;
    env.sender = t->sender;
    env.envid = t->envid;
    env.ret = t->ret;
    env.body_type = t->body_type;
    env.smtputf8 = t->smtputf8;
    env.rcpts = t->rcpts;
    env.nrcpts = t->nrcpts;
    xfer_received(s, &rec, env.arrival_us);
    if (queue_writer_open(&t->w, t->fd) < 0) {
        log_warn("%s: queue file open: %s", t->id, t->w.error ? t->w.error : "error");
        t->write_failed = true;
        buf_free(&rec);
        return;
    }
    t->writing = true;
    if (queue_writer_envelope(&t->w, &env) < 0 ||
        queue_writer_content(&t->w, rec.data, rec.len) < 0) {
        log_warn("%s: queue file write: %s", t->id, t->w.error ? t->w.error : "error");
        t->write_failed = true;
    }
    buf_free(&rec);
}

/* Client content (after framing) into the file, with the size and hop
 * limits applied as it streams. */
static void xfer_content(struct smtpd_session *s, const char *p, size_t n)
{
    struct smtpd_txn *t = &s->txn;
    struct smtpd *d = s->d;

    if (n == 0)
        return;
    t->size += n;
    if (t->size > d->lim.msg_size)
        t->too_big = true;
    if (s->session_bytes + n > d->lim.session_size)
        t->session_too_big = true;
    if (!t->hdr.done)
        smtpd_hdr_feed(&t->hdr, p, n);
    if (t->too_big || t->session_too_big || t->write_failed || !t->writing ||
        t->hdr.received >= d->lim.hops || t->dm.flags)
        return;                 /* the message will be refused: stop writing */
    if (queue_writer_content(&t->w, p, n) < 0) {
        log_warn("%s: queue file write: %s", t->id, t->w.error ? t->w.error : "error");
        t->write_failed = true;
    }
}

/* Why the message must be refused: the reply, and the log extra. */
static const char *xfer_verdict(struct smtpd_session *s, const char **extra)
{
    struct smtpd_txn *t = &s->txn;
    struct smtpd *d = s->d;

    *extra = NULL;
    if (t->dm.flags & (SMTPD_DATA_BARE_CR | SMTPD_DATA_BARE_LF | SMTPD_DATA_NUL)) {
        d->cnt.mta_malformed_messages++;
        *extra = "counter=mta_malformed_messages";
        if (t->dm.flags & SMTPD_DATA_BARE_LF)
            return "550 5.5.2 Error: bare <LF> received in message data";
        if (t->dm.flags & SMTPD_DATA_BARE_CR)
            return "550 5.5.2 Error: bare <CR> received in message data";
        return "550 5.5.2 Error: NUL character received in message data";
    }
    if (t->dm.flags & SMTPD_DATA_LONG_LINE) {
        d->cnt.mta_malformed_messages++;
        *extra = "limit=MaximalTextLineLength counter=mta_malformed_messages";
        return "554 5.6.0 Error: message line too long";
    }
    if (t->too_big) {
        smtpd_count_refused(d, &d->cnt.mta_receivings_refused_for_message_size_limit);
        *extra = "limit=MaximalIncomingMessageSize "
                 "counter=mta_receivings_refused_for_message_size_limit";
        return "552 5.3.4 Error: message file too big";
    }
    if (t->session_too_big) {
        smtpd_count_refused(d, &d->cnt.mta_receivings_refused_for_session_size_limit);
        *extra = "limit=MaximalIncomingSessionSize "
                 "counter=mta_receivings_refused_for_session_size_limit";
        return "552 5.3.4 Error: session size limit exceeded";
    }
    if (t->hdr.received >= d->lim.hops) {
        smtpd_count_refused(d, &d->cnt.mta_receivings_refused_for_hops_limit);
        *extra = "limit=MaximalIncomingHops counter=mta_receivings_refused_for_hops_limit";
        return "554 5.4.6 Error: too many hops";
    }
    if (t->write_failed || !t->writing)
        return "451 4.3.0 Error: queue file write error";
    return NULL;
}

static void xfer_commit_cb(struct smtpd_session *s, int code, const char *reason)
{
    struct smtpd_txn *t = &s->txn;
    struct smtpd *d = s->d;

    if (code == 0) {
        d->cnt.mta_received_messages++;
        d->cnt.mta_received_bytes += t->size;
        d->cnt.mta_received_recipients += t->nrcpts;
        s->nmsgs++;
        smtpd_reply(s, "250 2.0.0 Ok: queued as %s", t->id);
    } else {
        log_warn("%s: commit failed: %s", t->id, reason ? reason : "queue manager error");
        smtpd_reply(s, "451 4.3.0 Error: queue file write error");
    }
    t->id[0] = 0;               /* committed or removed by qmgr: no abort */
    smtpd_txn_reset(s);
    smtpd_resume(s);
}

/* The message is refused (reply) at its end. */
static void xfer_refuse(struct smtpd_session *s, const char *reply, const char *extra)
{
    struct smtpd_txn *t = &s->txn;

    if (reply[0] == '5')
        log_msg("%s: reject: END-OF-MESSAGE from %s: %s; from=<%s>%s%s%s proto=%s helo=<%s>%s%s",
                t->id, s->namaddr, reply, t->sender, t->nrcpts == 1 ? " to=<" : "",
                t->nrcpts == 1 ? t->rcpts[0].addr : "", t->nrcpts == 1 ? ">" : "",
                smtpd_proto_name(s), s->helo, extra ? " " : "", extra ? extra : "");
    smtpd_reply(s, "%s", reply);
    smtpd_txn_reset(s);
}

/* END is written and the file fsync()ed (on a worker thread): commit. */
static void xfer_synced_cb(struct smtpd_session *s, int code, const char *reason)
{
    struct smtpd_txn *t = &s->txn;

    if (code != 0) {
        log_warn("%s: queue file finish: %s", t->id, reason ? reason : "error");
        xfer_refuse(s, "451 4.3.0 Error: queue file write error", NULL);
        smtpd_resume(s);
        return;
    }
    if (t->hdr.msgid[0])
        log_msg("%s: message-id=%s", t->id, t->hdr.msgid);
    smtpd_queue_commit(s, xfer_commit_cb);
}

/* End of the message (DATA's final dot or BDAT LAST): refuse it, or have
 * END written and fsync()ed off the loop, then commit, then 250. */
static void xfer_end(struct smtpd_session *s)
{
    const char *extra, *reply = xfer_verdict(s, &extra);

    if (reply) {
        xfer_refuse(s, reply, extra);
        return;
    }
    s->busy = true;
    smtpd_fsync_finish(s, xfer_synced_cb);
}

void smtpd_cmd_data(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    struct smtpd_txn *t = &s->txn;

    if (c->arglen) {
        smtpd_reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (t->bdat) {
        smtpd_reply(s, "503 5.5.1 Error: DATA not allowed during a BDAT transfer");
        return;
    }
    if (!t->active) {
        smtpd_reply(s, "503 5.5.1 Error: need RCPT command");
        return;
    }
    if (t->nrcpts == 0) {
        smtpd_reply(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    xfer_begin(s, SMTPD_DATA_DOT);
    s->state = SMTPD_S_DATA;
    smtpd_set_timer(s, s->d->lim.data_term_timeout);
    smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

size_t smtpd_xfer_data_input(struct smtpd_session *s, const char *p, size_t n)
{
    size_t used;
    int end;

    buf_reset(&s->tmp);
    end = smtpd_data_feed(&s->txn.dm, p, n, &used, &s->tmp);
    xfer_content(s, s->tmp.data, s->tmp.len);
    if (end) {
        s->state = SMTPD_S_CMD;
        xfer_end(s);
    }
    return used;
}

/* ---- BDAT ---- */

static int bdat_parse(const struct smtpd_cmd *c, uint64_t *size, bool *last)
{
    const char *p = c->arg, *end = c->arg + c->arglen;
    uint64_t v = 0;
    size_t digits = 0;

    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits >= 20 || __builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return -1;
    }
    if (digits == 0)
        return -1;
    *size = v;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    *last = false;
    if (p == end)
        return 0;
    if (end - p == 4 && strncasecmp(p, "LAST", 4) == 0) {
        *last = true;
        return 0;
    }
    return -1;
}

/* The chunk is complete: reply, and end the message at LAST. */
static void bdat_chunk_done(struct smtpd_session *s)
{
    struct smtpd_txn *t = &s->txn;
    const char *extra;

    s->state = SMTPD_S_CMD;
    if (t->bdat_error) {
        char *reply = xstrdup(t->bdat_error);
        bool reset = t->bdat_last || !t->active;
        smtpd_reply(s, "%s", reply);
        free(reply);
        if (reset)
            smtpd_txn_reset(s);
        return;
    }
    if (t->too_big || t->session_too_big) {
        const char *reply = xfer_verdict(s, &extra);
        log_msg("%s: reject: BDAT from %s: %s; from=<%s> proto=%s helo=<%s>%s%s", t->id,
                s->namaddr, reply, t->sender, smtpd_proto_name(s), s->helo, extra ? " " : "",
                extra ? extra : "");
        t->bdat_error = xstrdup(reply);
        smtpd_reply(s, "%s", reply);
        if (t->bdat_last)
            smtpd_txn_reset(s);
        return;
    }
    if (!t->bdat_last) {
        smtpd_reply(s, "250 2.0.0 Ok: %llu octets", (unsigned long long)t->size);
        return;
    }
    buf_reset(&s->tmp);
    smtpd_data_finish(&t->dm, &s->tmp);
    xfer_content(s, s->tmp.data, s->tmp.len);
    xfer_end(s);
}

/* Where no transaction can take a chunk, it is read and dropped. */
static const char *bdat_refusal(struct smtpd_session *s)
{
    if (!s->txn.active)
        return "503 5.5.1 Error: need MAIL command";
    if (s->txn.nrcpts == 0)
        return "554 5.5.1 Error: no valid recipients";
    return NULL;
}

void smtpd_cmd_bdat(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    struct smtpd_txn *t = &s->txn;
    const char *refuse;
    uint64_t size = 0;
    bool last = false;

    if (bdat_parse(c, &size, &last) < 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
        return;
    }
    if (!s->esmtp) {
        /* the chunk still has to be read past */
        refuse = "503 5.5.1 Error: send EHLO first";
    } else {
        refuse = bdat_refusal(s);
    }
    if (refuse && !t->bdat_error)
        t->bdat_error = xstrdup(refuse);
    if (!refuse && !t->bdat && !t->bdat_error) {
        t->bdat = true;
        xfer_begin(s, SMTPD_DATA_RAW);
    }
    t->bdat_last = last;
    t->chunk_left = size;
    s->state = SMTPD_S_BDAT;
    smtpd_set_timer(s, s->d->lim.data_term_timeout);
    if (size == 0)
        bdat_chunk_done(s);
}

size_t smtpd_xfer_bdat_input(struct smtpd_session *s, const char *p, size_t n)
{
    struct smtpd_txn *t = &s->txn;
    size_t take = n, used;

    if (take > t->chunk_left)
        take = (size_t)t->chunk_left;
    if (!t->bdat_error) {
        buf_reset(&s->tmp);
        smtpd_data_feed(&t->dm, p, take, &used, &s->tmp);
        xfer_content(s, s->tmp.data, s->tmp.len);
    }
    t->chunk_left -= take;
    if (t->chunk_left == 0)
        bdat_chunk_done(s);
    return take;
}
