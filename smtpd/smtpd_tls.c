/*
 * smtpd_tls - STARTTLS (RFC 3207) with OpenSSL through libevent's
 * bufferevent_openssl.
 *
 * [mailgw.tls] CertificateFile (PEM chain), KeyFile, Protocols (words out
 * of TLSv1 TLSv1.1 TLSv1.2 TLSv1.3: the lowest and highest give the
 * version range), Ciphers (TLS 1.2 and below), OfferStartTLS.  Without a
 * certificate, or with OfferStartTLS=false, STARTTLS is not offered.
 *
 * The switch: "220 2.0.0 Ready to start TLS" is queued, any input the
 * client pipelined after STARTTLS is discarded unanswered (RFC 3207 5:
 * no command may cross the boundary) and reading stops; once the 220 is
 * written the socket is handed to OpenSSL.  After the handshake the
 * session is as fresh as after the greeting: no HELO, no transaction, the
 * client must send EHLO again.
 *
 * Diagnostics: "Anonymous TLS connection established from NAME[IP]:
 * TLSv1.3 with cipher X (256/256 bits)" (Postfix's shape); "SSL_accept
 * error from NAME[IP]: REASON".  Certificate or key problems at start-up
 * are fatal (the daemon never runs half-configured).
 */
#include "smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conf/conf.h"
#include "util/log.h"
#include "util/mem.h"

#define TLS_SEC "mailgw.tls"

static int tls_version(const char *w, size_t n)
{
    static const struct { const char *name; int v; } names[] = {
        {"TLSv1", TLS1_VERSION}, {"TLSv1.1", TLS1_1_VERSION},
        {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == n && strncmp(names[i].name, w, n) == 0)
            return names[i].v;
    return 0;
}

static void tls_protocols(SSL_CTX *ctx, const char *list)
{
    int lo = 0, hi = 0;

    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, " ,\t");
        int v = n ? tls_version(p, n) : 0;
        if (n && !v)
            log_fatal("[mailgw.tls] Protocols: unknown protocol '%.*s'", (int)n, p);
        if (v && (!lo || v < lo))
            lo = v;
        if (v && v > hi)
            hi = v;
        p += n;
        p += strspn(p, " ,\t");
    }
    if (lo && !SSL_CTX_set_min_proto_version(ctx, lo))
        log_fatal("[mailgw.tls] Protocols: cannot set the minimum version");
    if (hi && !SSL_CTX_set_max_proto_version(ctx, hi))
        log_fatal("[mailgw.tls] Protocols: cannot set the maximum version");
}

static const char *tls_error(void)
{
    static char text[256];
    unsigned long e = ERR_get_error();

    if (e == 0)
        return "unknown error";
    ERR_error_string_n(e, text, sizeof(text));
    ERR_clear_error();
    return text;
}

SSL_CTX *smtpd_tls_init(const struct conf *conf)
{
    const char *cert = conf_str(conf, TLS_SEC, "CertificateFile");
    const char *key = conf_str(conf, TLS_SEC, "KeyFile");
    const char *ciphers = conf_str(conf, TLS_SEC, "Ciphers");
    SSL_CTX *ctx;

    if (!conf_bool(conf, TLS_SEC, "OfferStartTLS") || !cert || !*cert)
        return NULL;
    if (!key || !*key)
        key = cert;
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        log_fatal("TLS: SSL_CTX_new: %s", tls_error());
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    tls_protocols(ctx, conf_str(conf, TLS_SEC, "Protocols"));
    if (ciphers && *ciphers && !SSL_CTX_set_cipher_list(ctx, ciphers))
        log_fatal("[mailgw.tls] Ciphers: %s", tls_error());
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        log_fatal("[mailgw.tls] CertificateFile %s: %s", cert, tls_error());
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        log_fatal("[mailgw.tls] KeyFile %s: %s", key, tls_error());
    if (SSL_CTX_check_private_key(ctx) != 1)
        log_fatal("[mailgw.tls] KeyFile %s does not match the certificate", key);
    return ctx;
}

void smtpd_tls_free(SSL_CTX *ctx)
{
    if (ctx)
        SSL_CTX_free(ctx);
}

void smtpd_cmd_starttls(struct smtpd_session *s, const struct smtpd_cmd *c)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t extra = evbuffer_get_length(in);

    if (!s->d->tls_ctx) {
        smtpd_reply(s, "502 5.5.1 Error: STARTTLS is not offered here");
        return;
    }
    if (s->tls) {
        smtpd_reply(s, "554 5.5.1 Error: TLS already active");
        return;
    }
    if (c->arglen) {
        smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (extra) {
        log_msg("improper command pipelining after STARTTLS from %s: %zu bytes discarded",
                s->namaddr, extra);
        evbuffer_drain(in, extra);
    }
    smtpd_txn_reset(s);
    smtpd_reply(s, "220 2.0.0 Ready to start TLS");
    s->state = SMTPD_S_TLS;
    bufferevent_disable(s->bev, EV_READ);
}

/* The 220 is out: give the socket to OpenSSL. */
void smtpd_tls_start(struct smtpd_session *s)
{
    SSL *ssl = SSL_new(s->d->tls_ctx);
    struct bufferevent *bev;

    if (s->tls || s->tls_pending)
        return;
    if (!ssl) {
        log_warn("TLS: SSL_new: %s", tls_error());
        smtpd_close(s);
        return;
    }
    s->tls_pending = true;
    bufferevent_free(s->bev);
    s->bev = NULL;
    bev = bufferevent_openssl_socket_new(s->d->base, s->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        log_warn("TLS: cannot set up the TLS stream for %s", s->namaddr);
        smtpd_close(s);
        return;
    }
    s->fd_in_bev = true;
    smtpd_session_rebind(s, bev);
    smtpd_set_timer(s, s->d->lim.cmd_timeout);
}

void smtpd_tls_done(struct smtpd_session *s)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int alg = 0, bits = SSL_CIPHER_get_bits(cipher, &alg);
    char info[256];

    snprintf(info, sizeof(info), "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
             SSL_CIPHER_get_name(cipher), bits, alg);
    free(s->tls_info);
    s->tls_info = xstrdup(info);
    s->tls = true;
    s->tls_pending = false;
    log_msg("Anonymous TLS connection established from %s: %s", s->namaddr, info);
    /* RFC 3207 4.2: forget everything learnt before TLS. */
    smtpd_txn_reset(s);
    free(s->helo);
    s->helo = NULL;
    s->esmtp = false;
    s->state = SMTPD_S_CMD;
    smtpd_resume(s);
}

void smtpd_tls_failed(struct smtpd_session *s)
{
    unsigned long e = bufferevent_get_openssl_error(s->bev);
    char text[256] = "handshake failed";

    if (e)
        ERR_error_string_n(e, text, sizeof(text));
    log_msg("SSL_accept error from %s: %s", s->namaddr, text);
}
