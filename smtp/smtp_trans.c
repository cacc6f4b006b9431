/*
 * smtp_trans - the mail transaction of a session: MAIL, RCPT, DATA, the
 * content, and a result per recipient.
 *
 * Interface: smtp_trans_start (after EHLO/HELO and STARTTLS),
 * smtp_trans_reply (each reply to MAIL/RCPT/DATA/end of data),
 * smtp_trans_write_more (content, as the output drains).
 *
 * Before MAIL the message is checked against what the server offers:
 *   SIZE limit lower than the message  -> bounced 5.3.4
 *       (counter mta_sendings_failed_for_message_size_limit)
 *   8-bit content, no 8BITMIME         -> bounced 5.6.3, no downgrade
 *       (counter mta_sendings_failed_for_8bitmime)
 *   SMTPUTF8 message, no SMTPUTF8      -> bounced 5.6.7
 * With PIPELINING, MAIL, every RCPT and DATA go out in one write (RFC
 * 2920); without it, one command per reply.  DSN parameters (RET, ENVID,
 * NOTIFY, ORCPT) are passed on when the server offers DSN, and then a
 * recipient it accepts has rcpt_dsn_passed=1.
 *
 * Results: 2xx to end of data -> sent; a 4xx anywhere -> deferred; a 5xx
 * -> bounced; reply texts in Postfix's words.  The content is streamed
 * from the queue file through smtp_content (canonical CRLF, dot-stuffing)
 * with at most about SMTP_OUT_HIGH bytes buffered.
 */
#include "smtp_session.h"

#include "addr/addr.h"

#include "util/log.h"
#include "util/mem.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_OUT_HIGH (256 * 1024)

/* xtext (RFC 3461 §4) unless the value already is one. */
static void put_xtext(struct buf *b, const char *v)
{
    bool plain = true;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == '=')
            plain = false;
    if (plain) {
        buf_append_str(b, v);
        return;
    }
    addr_xtext_encode(b, v, strlen(v));
}

static void send_mail(struct smtp_session *s)
{
    const struct smtp_delivery *d = s->d;
    struct buf cmd = BUF_INIT;
    buf_printf(&cmd, "MAIL FROM:<%s>", d->sender);
    if (s->ext_size)
        buf_printf(&cmd, " SIZE=%llu", (unsigned long long)d->size);
    if (s->ext_8bitmime && d->body_type == QUEUE_BODY_7BIT)
        buf_append_str(&cmd, " BODY=7BIT");
    else if (s->ext_8bitmime && d->body_type >= QUEUE_BODY_8BITMIME)
        buf_append_str(&cmd, " BODY=8BITMIME");
    if (s->ext_smtputf8 && d->smtputf8)
        buf_append_str(&cmd, " SMTPUTF8");
    if (s->ext_dsn && d->ret)
        buf_printf(&cmd, " RET=%s", d->ret);
    if (s->ext_dsn && d->envid && *d->envid) {
        buf_append_str(&cmd, " ENVID=");
        put_xtext(&cmd, d->envid);
    }
    smtp_session_send(s, SMTP_CMD_MAIL, 0, "%s", cmd.data);
    buf_free(&cmd);
}

static void send_rcpt(struct smtp_session *s, size_t i)
{
    const struct smtp_rcpt *r = &s->d->rcpts[i];
    struct buf cmd = BUF_INIT;
    buf_printf(&cmd, "RCPT TO:<%s>", r->addr);
    if (s->ext_dsn && r->notify) {
        const char *sep = "";
        buf_append_str(&cmd, " NOTIFY=");
        if (r->notify & QUEUE_NOTIFY_NEVER) {
            buf_append_str(&cmd, "NEVER");
        } else {
            static const struct { unsigned bit; const char *name; } n[] = {
                { QUEUE_NOTIFY_SUCCESS, "SUCCESS" }, { QUEUE_NOTIFY_FAILURE, "FAILURE" },
                { QUEUE_NOTIFY_DELAY, "DELAY" } };
            for (size_t k = 0; k < 3; k++)
                if (r->notify & n[k].bit) {
                    buf_printf(&cmd, "%s%s", sep, n[k].name);
                    sep = ",";
                }
        }
    }
    if (s->ext_dsn && r->orcpt && *r->orcpt) {
        buf_append_str(&cmd, " ORCPT=");
        put_xtext(&cmd, r->orcpt);
    }
    smtp_session_send(s, SMTP_CMD_RCPT, i, "%s", cmd.data);
    buf_free(&cmd);
}

/* A permanent failure decided before MAIL: no other server will do. */
static void refuse_message(struct smtp_session *s, const char *dsn, const char *counter,
                           const char *text)
{
    if (counter)
        smtp_count(counter, 1);
    smtp_count("mta_sendings_failed_total", 1);
    s->in_transaction = true;
    smtp_session_fail(s, true, dsn, text, true);
}

/* 0 = the server can take the message; -1 = refused (session going). */
static int check_message(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;
    struct buf msg = BUF_INIT;
    const char *why = NULL;
    int has8 = 0;
    if (s->ext_size && s->size_limit && d->size > s->size_limit) {
        buf_printf(&msg, "message size %llu exceeds size limit %llu of server %s[%s]",
                   (unsigned long long)d->size, s->size_limit, s->host, s->ip);
        refuse_message(s, "5.3.4", "mta_sendings_failed_for_message_size_limit", msg.data);
    } else if (d->smtputf8 && !s->ext_smtputf8) {
        buf_printf(&msg, "SMTPUTF8 is required, but was not offered by host %s[%s]", s->host,
                   s->ip);
        refuse_message(s, "5.6.7", NULL, msg.data);
    } else if (d->body_type >= QUEUE_BODY_8BITMIME && !s->ext_8bitmime &&
               (has8 = smtp_content_has_8bit(d->fd, &d->qf, &why)) != 0) {
        if (has8 < 0) {
            buf_printf(&msg, "error reading the queue file: %s", why);
            s->in_transaction = true;
            smtp_session_fail(s, false, "4.3.0", msg.data, true);
        } else {
            buf_printf(&msg, "message has 8-bit content, but host %s[%s] does not support "
                       "8BITMIME (no conversion to 7 bit is done)", s->host, s->ip);
            refuse_message(s, "5.6.3", "mta_sendings_failed_for_8bitmime", msg.data);
        }
    } else {
        return 0;
    }
    buf_free(&msg);
    return -1;
}

void smtp_trans_start(struct smtp_session *s)
{
    struct smtp_delivery *d = s->d;
    if (!d) {
        smtp_session_finish(s);
        return;
    }
    s->nbatch = 0;
    s->batch = xreallocarray(s->batch, d->nrcpts ? d->nrcpts : 1, sizeof(*s->batch));
    for (size_t i = 0; i < d->nrcpts; i++)
        if (d->rcpts[i].state == SMTP_RCPT_PENDING)
            s->batch[s->nbatch++] = i;
    if (s->nbatch == 0) {
        smtp_session_finish(s);
        return;
    }
    if (check_message(s) < 0)
        return;
    s->in_transaction = true;
    send_mail(s);
    if (!s->pipelining)
        return;
    for (size_t k = 0; k < s->nbatch; k++)
        send_rcpt(s, s->batch[k]);
    s->next_rcpt = s->nbatch;
    smtp_session_send(s, SMTP_CMD_DATA, 0, "DATA");
}

/* Result for one recipient from the current reply. */
static void rcpt_from_reply(struct smtp_session *s, size_t i, const char *what)
{
    struct smtp_rcpt *r = &s->d->rcpts[i];
    struct buf text = BUF_INIT;
    char dsn[16];
    int cls = s->reply.code / 100;
    smtp_session_dsn(&s->reply, dsn);
    if (cls == 2) {
        smtp_reply_format(&s->reply, &text);
        smtp_rcpt_result(r, SMTP_RCPT_SENT, dsn, text.data);
        r->dsn_passed = s->ext_dsn;
    } else {
        smtp_session_said(s, what, &text);
        smtp_rcpt_result(r, cls == 5 ? SMTP_RCPT_BOUNCED : SMTP_RCPT_DEFERRED, dsn, text.data);
    }
    buf_free(&text);
}

/* Every recipient of this transaction still pending gets the reply. */
static void all_from_reply(struct smtp_session *s, const char *what, bool accepted_only)
{
    for (size_t k = 0; k < s->nbatch; k++) {
        struct smtp_rcpt *r = &s->d->rcpts[s->batch[k]];
        if (r->state == SMTP_RCPT_PENDING && (!accepted_only || r->accepted))
            rcpt_from_reply(s, s->batch[k], what);
    }
}

/* Lock-step mode: the command after a RCPT reply. */
static void next_after_rcpt(struct smtp_session *s)
{
    if (s->next_rcpt < s->nbatch)
        send_rcpt(s, s->batch[s->next_rcpt++]);
    else if (s->accepted > 0)
        smtp_session_send(s, SMTP_CMD_DATA, 0, "DATA");
    else
        smtp_session_finish(s);
}

static void on_mail(struct smtp_session *s)
{
    if (s->reply.code / 100 == 2) {
        s->mail_ok = true;
        if (!s->pipelining)
            next_after_rcpt(s);
        return;
    }
    all_from_reply(s, "MAIL FROM", false);
    if (!s->pipelining)
        smtp_session_finish(s);     /* with PIPELINING: wait for DATA's reply */
}

static void on_rcpt(struct smtp_session *s, size_t i)
{
    if (!s->mail_ok)
        return;
    if (s->reply.code / 100 == 2) {
        s->d->rcpts[i].accepted = true;
        s->accepted++;
    } else {
        rcpt_from_reply(s, i, "RCPT TO");
    }
    if (!s->pipelining)
        next_after_rcpt(s);
}

static void on_data(struct smtp_session *s)
{
    if (s->reply.code == 354 && (!s->mail_ok || s->accepted == 0)) {
        /* nothing to send: end the (empty) data at once, ignore the result */
        evbuffer_add(bufferevent_get_output(s->bev), ".\r\n", 3);
        smtp_session_expect(s, SMTP_CMD_DOT, 0);
        smtp_session_output(s);
        smtp_session_finish(s);
        return;
    }
    if (s->reply.code != 354) {
        if (s->mail_ok)
            all_from_reply(s, "DATA", true);
        smtp_session_finish(s);
        return;
    }
    s->sending_content = true;
    queue_content_open(&s->content, s->d->fd, &s->d->qf);
    smtp_content_init(&s->cstate);
    smtp_trans_write_more(s);
}

int smtp_trans_reply(struct smtp_session *s, const struct smtp_expect *e)
{
    if (!s->d)
        return 0;   /* results already reported: replies of a pipelined batch */
    switch (e->cmd) {
    case SMTP_CMD_MAIL:
        on_mail(s);
        break;
    case SMTP_CMD_RCPT:
        on_rcpt(s, e->rcpt);
        break;
    case SMTP_CMD_DATA:
        on_data(s);
        break;
    case SMTP_CMD_DOT:
        s->trans_done = true;       /* the server reset its state */
        all_from_reply(s, "end of DATA", true);
        if (s->reply.code / 100 == 2)
            smtp_count("mta_sent_messages", 1);
        smtp_session_finish(s);
        break;
    default:
        break;
    }
    return s->closed ? -1 : 0;
}

void smtp_trans_write_more(struct smtp_session *s)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    static struct buf chunk = BUF_INIT;     /* kept: no fresh pages per call */
    char raw[65536];
    const char *why = NULL;
    while (s->sending_content && evbuffer_get_length(out) < SMTP_OUT_HIGH) {
        ssize_t n = queue_content_read(&s->content, raw, sizeof(raw), &why);
        buf_reset(&chunk);
        if (n < 0) {
            struct buf msg = BUF_INIT;
            buf_printf(&msg, "error reading the queue file: %s", why ? why : "I/O error");
            s->sending_content = false;
            smtp_session_fail(s, false, "4.3.0", msg.data, false);
            buf_free(&msg);
            break;
        }
        if (n == 0) {
            smtp_content_finish(&s->cstate, &chunk);
            evbuffer_add(out, chunk.data, chunk.len);
            s->sending_content = false;
            smtp_session_expect(s, SMTP_CMD_DOT, 0);
            break;
        }
        smtp_content_encode(&s->cstate, raw, (size_t)n, &chunk);
        evbuffer_add(out, chunk.data, chunk.len);
    }
    buf_reset(&chunk);
    smtp_session_output(s);
}
