/*
 * smtpd - the mailgw SMTP receiver (DESIGN §3 steps 1-2).
 *
 * Usage (by master): libexec/smtpd -c CONFIG [-f] [-L N]; the listening
 * TCP sockets arrive as fd 4.., the status channel as fd 3 (server.h).
 * One process runs many sessions on one libevent base.
 *
 * This file: start-up (limits from [mailgw.limits]/[mailgw.timeouts], TLS,
 * access rules, the qmgr client, the fsync worker threads), accept with the session limits
 * (IncomingSessions, MaximalIncomingSessionsPerIP: "421 4.7.0" to the
 * excess connection), recv-off/recv-on from master ("421 4.3.2" to new
 * connections while off), the "stats" command (counters by their
 * reference §3.7 names), graceful stop (stop accepting, let sessions end).
 *
 * Diagnostics: start-up problems are fatal (a daemon never runs
 * half-configured); per-connection refusals are logged with the limit
 * and the counter they count in.
 */
#include "smtpd.h"
#include "smtpd_access.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#define LIM "mailgw.limits"
#define TMO "mailgw.timeouts"

static long long smtpd_conf_num(const struct conf *c, const char *sec, const char *name)
{
    return conf_int(c, sec, name);
}

static void smtpd_load_limits(struct smtpd *d)
{
    const struct conf *c = d->conf;
    struct smtpd_limits *l = &d->lim;

    l->sessions = (unsigned)smtpd_conf_num(c, LIM, "IncomingSessions");
    l->sessions_per_ip = (unsigned)smtpd_conf_num(c, LIM, "MaximalIncomingSessionsPerIP");
    l->msgs_per_session = (unsigned)smtpd_conf_num(c, LIM, "MaximalIncomingMessagesPerSession");
    l->rcpts_per_msg = (unsigned)smtpd_conf_num(c, LIM, "MaximalIncomingRcptsPerMessage");
    l->hops = (unsigned)smtpd_conf_num(c, LIM, "MaximalIncomingHops");
    l->errors = (unsigned)smtpd_conf_num(c, LIM, "MaximalErrorsPerSession");
    l->msg_size = (uint64_t)smtpd_conf_num(c, LIM, "MaximalIncomingMessageSize");
    l->session_size = (uint64_t)smtpd_conf_num(c, LIM, "MaximalIncomingSessionSize");
    l->cmd_line_max = (size_t)smtpd_conf_num(c, LIM, "MaximalCommandLineLength");
    l->text_line_max = (size_t)smtpd_conf_num(c, LIM, "MaximalTextLineLength");
    l->cmd_timeout = (unsigned)smtpd_conf_num(c, TMO, "ReceivingCommandTimeout");
    l->data_init_timeout = (unsigned)smtpd_conf_num(c, TMO, "ReceivingDataInitiationTimeout");
    l->data_term_timeout = (unsigned)smtpd_conf_num(c, TMO, "ReceivingDataTerminationTimeout");
    l->read_timeout = (unsigned)smtpd_conf_num(c, TMO, "ReadTimeout");
    l->write_timeout = (unsigned)smtpd_conf_num(c, TMO, "WriteTimeout");
}

static char *smtpd_hostname(const struct conf *c)
{
    const char *h = conf_str(c, "mailgw.network", "Hostname");
    char buf[256];

    if (h && *h)
        return xstrdup(h);
    if (gethostname(buf, sizeof(buf)) < 0)
        return xstrdup("localhost");
    buf[sizeof(buf) - 1] = 0;
    return xstrdup(buf);
}

void smtpd_count_refused(struct smtpd *d, uint64_t *specific)
{
    d->cnt.mta_receivings_refused_total++;
    if (specific)
        (*specific)++;
}

void smtpd_session_gone(struct smtpd *d, const char *addr)
{
    d->nsessions--;
    d->cnt.mta_incoming_connections_current = d->nsessions;
    if (d->stopping && d->nsessions == 0)
        server_exit(d->srv, 0);
}

static unsigned smtpd_sessions_from(const struct smtpd *d, const char *addr)
{
    unsigned n = 0;

    for (const struct smtpd_session *s = d->sessions; s; s = s->next)
        n += strcmp(s->addr, addr) == 0;
    return n;
}

/* Refuse a connection before any session exists: one short write. */
static void smtpd_refuse(struct smtpd *d, int fd, const char *reply)
{
    char line[300];
    int n = snprintf(line, sizeof(line), "%s\r\n", reply);

    if (n > 0)
        (void)!send(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1,
                    MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

static void smtpd_peer_text(const struct sockaddr_storage *ss, char *out, size_t size)
{
    const struct sockaddr_in *sin = (const void *)ss;
    const struct sockaddr_in6 *sin6 = (const void *)ss;

    if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
        inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], out, (socklen_t)size);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)size);
    else if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)size);
    else
        str_copy(out, "unknown", size);
}

/* Limits on one new connection: 0 to accept, -1 refused (fd closed). */
static int smtpd_admit(struct smtpd *d, int fd, const char *addr)
{
    char reply[300];

    if (d->recv_off || d->stopping) {
        log_msg("reject: connect from unknown[%s]: receiving is off", addr);
        snprintf(reply, sizeof(reply), "421 4.3.2 %s Service not available, receiving is off",
                 d->hostname);
        smtpd_refuse(d, fd, reply);
        return -1;
    }
    if (d->nsessions >= d->lim.sessions) {
        log_warn("connection limit exceeded: %u sessions (IncomingSessions), refusing "
                 "unknown[%s]; counter=mta_receivings_refused_total", d->nsessions, addr);
        snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too many connections", d->hostname);
    } else if (smtpd_sessions_from(d, addr) >= d->lim.sessions_per_ip) {
        log_warn("connection limit exceeded: %u sessions from unknown[%s] "
                 "(MaximalIncomingSessionsPerIP); counter=mta_receivings_refused_total",
                 d->lim.sessions_per_ip, addr);
        snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too many connections from %s",
                 d->hostname, addr);
    } else {
        return 0;
    }
    smtpd_count_refused(d, NULL);
    smtpd_refuse(d, fd, reply);
    return -1;
}

static void smtpd_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct smtpd *d = arg;

    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char addr[64];
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_warn("accept: %m");
            return;
        }
        smtpd_peer_text(&ss, addr, sizeof(addr));
        d->cnt.mta_incoming_connections_total++;
        if (smtpd_admit(d, fd, addr) < 0)
            continue;
        d->nsessions++;
        d->cnt.mta_incoming_connections_current = d->nsessions;
        if (d->nsessions > d->cnt.mta_incoming_connections_maximum)
            d->cnt.mta_incoming_connections_maximum = d->nsessions;
        server_touch(d->srv);
        smtpd_session_new(d, fd, addr);
    }
}

static void smtpd_put_counters(const struct smtpd *d, struct proto_msg *r)
{
#define C(name) proto_put_int(r, #name, (int64_t)d->cnt.name)
    C(mta_received_messages);
    C(mta_received_bytes);
    C(mta_received_recipients);
    C(mta_incoming_connections_total);
    C(mta_incoming_connections_current);
    C(mta_incoming_connections_maximum);
    C(mta_incoming_connections_errors);
    C(mta_receivings_refused_total);
    C(mta_receivings_refused_for_message_size_limit);
    C(mta_receivings_refused_for_session_size_limit);
    C(mta_receivings_refused_for_hops_limit);
    C(mta_receivings_refused_for_messages_per_session_limit);
    C(mta_malformed_messages);
#undef C
}

static void smtpd_on_command(struct server *srv, const struct proto_msg *cmd,
                             struct proto_msg *reply, void *arg)
{
    struct smtpd *d = arg;
    const char *op = proto_get_str(cmd, "op");

    if (strcmp(op, "recv-off") == 0) {
        d->recv_off = true;
        log_info("receiving is off");
    } else if (strcmp(op, "recv-on") == 0) {
        d->recv_off = false;
        log_info("receiving is on");
    } else if (strcmp(op, "stats") == 0) {
        smtpd_put_counters(d, reply);
    } else {
        proto_put_str(reply, "status", "error");
        proto_put_str(reply, "reason", "unknown command");
    }
}

static void smtpd_on_stop(struct server *srv, void *arg)
{
    struct smtpd *d = arg;

    d->stopping = true;
    for (size_t i = 0; i < d->nlisten; i++)
        event_del(d->listen_ev[i]);
    if (d->nsessions == 0)
        server_exit(srv, 0);
}

static void smtpd_init_access(struct smtpd *d)
{
    struct buf diag = BUF_INIT;

    if (dns_init(d->base, d->conf) < 0)
        log_fatal("cannot initialise the DNS resolver");
    d->access = access_load(d->conf, &diag);
    if (d->access == NULL)
        log_fatal("access rules: %s", diag.len ? diag.data : "invalid");
    buf_free(&diag);
}

int main(int argc, char **argv)
{
    struct server *srv = server_init_flags(argc, argv, "smtpd", SERVER_KEEP_PRIVILEGES);
    struct smtpd *d = xcalloc(1, sizeof(*d));
    char *qpath;

    d->srv = srv;
    d->conf = srv->conf;
    d->base = server_event_base();
    smtpd_load_limits(d);
    d->hostname = smtpd_hostname(d->conf);
    d->tls_ctx = smtpd_tls_init(d->conf);
    smtpd_init_access(d);
    /* TLS files, resolv.conf and the access lists are loaded: confine. */
    server_drop(srv, SERVER_CHROOT);
    qpath = server_queue_file(srv, "private/qmgr");
    d->qmgr = smtpd_queue_init(d, qpath);
    free(qpath);
    d->fsync = smtpd_fsync_init(d->base);
    for (size_t i = 0; i < srv->nlisten && i < 16; i++) {
        d->listen_ev[i] = event_new(d->base, srv->listen_fds[i], EV_READ | EV_PERSIST,
                                    smtpd_accept_cb, d);
        event_add(d->listen_ev[i], NULL);
        d->nlisten++;
    }
    if (d->nlisten == 0)
        log_warn("no listening socket: nothing to accept");
    server_event_attach(srv, d->base, smtpd_on_command, smtpd_on_stop, d);
    event_base_dispatch(d->base);
    server_exit(srv, 0);
}
