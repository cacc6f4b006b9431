/*
 * smtpd_hello - the session-level SMTP commands: EHLO, HELO (RFC 5321
 * 4.1.1.1), RSET, NOOP, QUIT, VRFY (always 252: no address probing), EXPN
 * (disabled), HELP, and unknown commands.
 *
 * EHLO advertises PIPELINING, SIZE, STARTTLS (when configured and not yet
 * in TLS), ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING.  A new
 * EHLO/HELO ends any transaction (as RSET).  The HELO name is kept
 * printable ASCII only (other bytes become '?'), at most 255 bytes.
 */
#include "smtpd.h"
#include "smtpd_access.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "util/log.h"
#include "util/mem.h"

#define SMTPD_HELO_MAX 255

static void hello_reply_ehlo(struct smtpd_session *s)
{
    struct smtpd *d = s->d;
    struct buf b = BUF_INIT;

    buf_printf(&b, "250-%s\r\n", d->hostname);
    buf_append_str(&b, "250-PIPELINING\r\n");
    buf_printf(&b, "250-SIZE %llu\r\n", (unsigned long long)d->lim.msg_size);
    if (d->tls_ctx && !s->tls)
        buf_append_str(&b, "250-STARTTLS\r\n");
    buf_append_str(&b, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
                       "250-SMTPUTF8\r\n250 CHUNKING");
    smtpd_reply_raw(s, b.data, b.len);
    buf_free(&b);
}

static void hello_access_cb(const struct access_decision *dec, void *arg)
{
    struct smtpd_session *s = arg;

    if (s->esmtp)
        hello_reply_ehlo(s);
    else
        smtpd_reply(s, "250 %s", s->d->hostname);
    smtpd_resume(s);
}

static void hello_common(struct smtpd_session *s, const struct smtpd_cmd *c, bool esmtp)
{
    char *h;

    if (c->arglen == 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    if (c->arglen > SMTPD_HELO_MAX) {
        smtpd_reply(s, "501 5.5.4 Error: %s name too long", esmtp ? "EHLO" : "HELO");
        return;
    }
    smtpd_txn_reset(s);
    h = xstrndup(c->arg, c->arglen);
    for (char *p = h; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    free(s->helo);
    s->helo = h;
    s->esmtp = esmtp;
    if (s->acc) {
        s->busy = true;
        access_helo(s->acc, s->helo, hello_access_cb, s);
        return;
    }
    if (esmtp)
        hello_reply_ehlo(s);
    else
        smtpd_reply(s, "250 %s", s->d->hostname);
}

void smtpd_cmd_ehlo(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    hello_common(s, c, true);
}

void smtpd_cmd_helo(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    hello_common(s, c, false);
}

void smtpd_cmd_rset(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    if (c->arglen) {
        smtpd_reply(s, "501 5.5.4 Syntax: RSET");
        return;
    }
    smtpd_txn_reset(s);
    smtpd_reply(s, "250 2.0.0 Ok");
}

void smtpd_cmd_noop(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    smtpd_reply(s, "250 2.0.0 Ok");
}

void smtpd_cmd_quit(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    smtpd_reply(s, "221 2.0.0 Bye");
    smtpd_close(s);
}

void smtpd_cmd_vrfy(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    if (c->arglen == 0) {
        smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

void smtpd_cmd_expn(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    smtpd_reply(s, "502 5.5.1 EXPN command is disabled");
}

void smtpd_cmd_help(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    smtpd_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
                   "HELP%s", s->d->tls_ctx && !s->tls ? " STARTTLS" : "");
}

void smtpd_cmd_unknown(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    smtpd_reply(s, "502 5.5.2 Error: command not recognized");
}
