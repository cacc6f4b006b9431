/*
 * smtp_tls - TLS for the outbound client ([mailgw.tls] ClientTLS).
 *
 * Interface: smtp_tls_ctx_new (one SSL_CTX per process, from Protocols,
 * Ciphers, CAFile, and an optional client certificate CertificateFile /
 * KeyFile), smtp_tls_check_peer (verify mode: chain verified against
 * CAFile or the system store, and the certificate names the host we
 * meant to reach: X509_check_host / X509_check_ip_asc), smtp_tls_describe
 * (protocol and cipher for the log).
 *
 * The handshake itself never fails on certificate problems (SSL_VERIFY_NONE
 * with the result checked afterwards), so the session can tell "TLS
 * failed" from "certificate not trusted" in its diagnostics.
 * Diagnostics: configuration problems are fatal at start (log_fatal), as
 * a daemon never runs half-configured; peer problems go into why.
 */
#include "smtp.h"

#include "conf/conf.h"
#include "util/log.h"
#include "util/mem.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static int tls_version(const char *word)
{
    if (strcmp(word, "TLSv1") == 0)
        return TLS1_VERSION;
    if (strcmp(word, "TLSv1.1") == 0)
        return TLS1_1_VERSION;
    if (strcmp(word, "TLSv1.2") == 0)
        return TLS1_2_VERSION;
    if (strcmp(word, "TLSv1.3") == 0)
        return TLS1_3_VERSION;
    return 0;
}

/* Lowest and highest of the listed versions. */
static void tls_set_protocols(SSL_CTX *ctx, const char *list)
{
    int lo = 0, hi = 0;
    char *copy = xstrdup(list), *save = NULL;
    for (char *w = strtok_r(copy, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
        int v = tls_version(w);
        if (!v)
            log_fatal("[mailgw.tls] Protocols: unknown protocol '%s'", w);
        if (!lo || v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    free(copy);
    if (lo && (!SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi)))
        log_fatal("[mailgw.tls] Protocols: cannot set '%s'", list);
}

static void tls_load_files(SSL_CTX *ctx, const struct conf *c)
{
    const char *ca = conf_str(c, "mailgw.tls", "CAFile");
    const char *cert = conf_str(c, "mailgw.tls", "CertificateFile");
    const char *key = conf_str(c, "mailgw.tls", "KeyFile");
    if (ca && *ca) {
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
            log_fatal("[mailgw.tls] CAFile %s: cannot load CA certificates", ca);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        log_warn("TLS: cannot load the system CA store");
    }
    if (cert && *cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
            log_fatal("[mailgw.tls] CertificateFile %s: cannot load", cert);
        if (SSL_CTX_use_PrivateKey_file(ctx, key && *key ? key : cert, SSL_FILETYPE_PEM) != 1)
            log_fatal("[mailgw.tls] KeyFile %s: cannot load", key && *key ? key : cert);
    }
}

SSL_CTX *smtp_tls_ctx_new(const struct conf *c)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        log_fatal("TLS: cannot create a client context");
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    tls_set_protocols(ctx, conf_str(c, "mailgw.tls", "Protocols"));
    const char *ciphers = conf_str(c, "mailgw.tls", "Ciphers");
    if (ciphers && *ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1)
        log_fatal("[mailgw.tls] Ciphers: OpenSSL rejects '%s'", ciphers);
    tls_load_files(ctx, c);
    return ctx;
}

int smtp_tls_check_peer(void *ssl_ptr, const char *host, struct buf *why)
{
    SSL *ssl = ssl_ptr;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    unsigned char addr[16];
    int rc = -1;
    if (!cert) {
        buf_printf(why, "no server certificate");
        return -1;
    }
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) {
        buf_printf(why, "untrusted certificate: %s", X509_verify_cert_error_string(vr));
    } else if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
        if (X509_check_ip_asc(cert, host, 0) == 1)
            rc = 0;
        else
            buf_printf(why, "certificate does not match address %s", host);
    } else if (X509_check_host(cert, host, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1) {
        rc = 0;
    } else {
        buf_printf(why, "certificate does not match host name %s", host);
    }
    X509_free(cert);
    return rc;
}

void smtp_tls_describe(void *ssl_ptr, struct buf *out)
{
    SSL *ssl = ssl_ptr;
    buf_printf(out, "%s with cipher %s", SSL_get_version(ssl),
               SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
}
