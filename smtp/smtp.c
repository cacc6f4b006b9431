/*
 * smtp - the mailgw outbound SMTP client (DESIGN §3 step 5).
 *
 * Usage (by master): libexec/smtp -c CONFIG [-f] [-L N]; the unix
 * listener private/smtp arrives as fd 4, the status channel as fd 3
 * (server.h).  One process, one libevent base, many deliveries at once.
 *
 * This file: start-up (timeouts from [mailgw.timeouts], [mailgw.tls]
 * ClientTLS, the resolver), the delivery protocol with qmgr (CONTRACTS.md
 * "qmgr -> smtp delivery protocol"): hello {proto="smtp-deliver",
 * version=1} -> {status="ok"}; then one {op="deliver", ...} + the queue
 * file fd at a time per connection, answered with {status="done",
 * relay, unreachable, rcpt_status/rcpt_dsn/rcpt_reply/rcpt_dsn_passed per
 * recipient in order}.  Also the "stats" command from master (counters
 * by their reference §3.7 names) and graceful stop (stop accepting,
 * finish the deliveries in flight).
 *
 * Diagnostics: a malformed request is answered {status="error", reason}
 * and logged; a connection that breaks the protocol is closed.  A
 * delivery whose qmgr connection went away still runs to its end (its
 * log lines are written) and the answer is dropped.
 *
 * Security: qmgr is trusted, but every attribute is still checked (types,
 * counts, lengths) before use; the queue file fd is read-only and read
 * through the lib/queue reader, which trusts no length.
 */
#include "smtp.h"

#include "conf/conf.h"
#include "dns/dns.h"
#include "proto/proto.h"
#include "server/server.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SMTP_PROTO "smtp-deliver"
#define SMTP_PROTO_VERSION 1
#define SMTP_MAX_ADDRESSES 10

struct smtp_settings smtp_var;
struct event_base *smtp_base;
struct server *smtp_server;

struct smtp_client {
    struct proto_conn conn;
    struct event *ev_read, *ev_write;
    bool hello_done;
    bool dead;                      /* connection closed, delivery running */
    struct smtp_delivery *busy;
};

static struct event *smtp_ev_listen;
static size_t smtp_in_flight;
static bool smtp_stopping;

/* ---- counters (reference §3.7 names), answered to master's "stats" ---- */

static const char *const smtp_counter_names[] = {
    "mta_outgoing_connections_total",
    "mta_outgoing_connections_current",
    "mta_outgoing_connections_maximum",
    "mta_outgoing_connections_failed_total",
    "mta_sent_messages",
    "mta_sendings_failed_total",
    "mta_sendings_failed_for_message_size_limit",
    "mta_sendings_failed_for_8bitmime",
};
#define SMTP_NCOUNTERS (sizeof(smtp_counter_names) / sizeof(smtp_counter_names[0]))
static uint64_t smtp_counters[SMTP_NCOUNTERS];

void smtp_count(const char *counter, uint64_t n)
{
    for (size_t i = 0; i < SMTP_NCOUNTERS; i++) {
        if (strcmp(smtp_counter_names[i], counter) != 0)
            continue;
        smtp_counters[i] += n;  /* n = (uint64_t)-1 decrements */
        if (i == 1 && smtp_counters[1] > smtp_counters[2] && smtp_counters[1] < (1u << 30))
            smtp_counters[2] = smtp_counters[1];
        return;
    }
    log_warn("unknown counter %s", counter);
}

/* ---- qmgr connections ---- */

static void client_watch(struct smtp_client *c)
{
    if (proto_conn_outlen(&c->conn) > 0)
        event_add(c->ev_write, NULL);
    else
        event_del(c->ev_write);
}

static void client_free(struct smtp_client *c)
{
    event_free(c->ev_read);
    event_free(c->ev_write);
    proto_conn_close(&c->conn);
    free(c);
}

/* The connection is over; the struct stays while a delivery runs. */
static void client_close(struct smtp_client *c, const char *why)
{
    if (why)
        log_debug("private/smtp: connection closed: %s", why);
    if (c->busy) {
        c->dead = true;
        event_del(c->ev_read);
        event_del(c->ev_write);
        return;
    }
    client_free(c);
}

/* Queue a frame and write what can be written; -1 = the connection is
 * broken (the caller closes it). */
static int client_send(struct smtp_client *c, const struct proto_msg *m)
{
    if (proto_conn_queue(&c->conn, m) < 0 || proto_conn_flush(&c->conn) < 0)
        return -1;
    client_watch(c);
    return 0;
}

static int client_error(struct smtp_client *c, const char *reason)
{
    struct proto_msg m;
    proto_msg_init(&m);
    proto_put_str(&m, "status", "error");
    proto_put_str(&m, "reason", reason);
    int rc = client_send(c, &m);
    proto_msg_free(&m);
    return rc;
}

static const char *rcpt_state_name(enum smtp_rcpt_state st)
{
    switch (st) {
    case SMTP_RCPT_SENT: return "sent";
    case SMTP_RCPT_BOUNCED: return "bounced";
    default: return "deferred";
    }
}

static void smtp_on_stop(struct server *srv, void *arg);

static void maybe_exit(void)
{
    if (smtp_stopping && smtp_in_flight == 0)
        server_exit(smtp_server, 0);
}

static void delivery_done(struct smtp_delivery *d, void *arg)
{
    struct smtp_client *c = arg;
    struct proto_msg m;
    proto_msg_init(&m);
    proto_put_str(&m, "status", "done");
    proto_put_str(&m, "relay", d->relay[0] ? d->relay : "none");
    proto_put_int(&m, "unreachable", d->unreachable);
    for (size_t i = 0; i < d->nrcpts; i++) {
        const struct smtp_rcpt *r = &d->rcpts[i];
        proto_put_str(&m, "rcpt_status", rcpt_state_name(r->state));
        proto_put_str(&m, "rcpt_dsn", r->dsn);
        proto_put_str(&m, "rcpt_reply", r->reply ? r->reply : "");
        proto_put_int(&m, "rcpt_dsn_passed", r->state == SMTP_RCPT_SENT && r->dsn_passed);
    }
    c->busy = NULL;
    if (c->dead) {
        client_free(c);
    } else {
        event_add(c->ev_read, NULL);
        if (client_send(c, &m) < 0)
            client_close(c, "write error");
    }
    proto_msg_free(&m);
    smtp_delivery_free(d);
    smtp_in_flight--;
    if (server_use(smtp_server) && !smtp_stopping)
        smtp_on_stop(smtp_server, NULL);     /* max-use: finish up, master starts a new one */
    maybe_exit();
}

static char *attr_str(const struct proto_attr *a)
{
    return a && a->type == PROTO_STR ? xstrndup((const char *)a->value, a->len) : NULL;
}

static int body_type_parse(const char *s)
{
    if (!s || !*s)
        return QUEUE_BODY_NONE;
    if (strcasecmp(s, "7BIT") == 0)
        return QUEUE_BODY_7BIT;
    if (strcasecmp(s, "8BITMIME") == 0)
        return QUEUE_BODY_8BITMIME;
    if (strcasecmp(s, "BINARYMIME") == 0)
        return QUEUE_BODY_BINARYMIME;
    return -1;
}

/* The recipients of a deliver request; NULL reason = ok. */
static const char *request_rcpts(struct smtp_delivery *d, const struct proto_msg *m)
{
    size_t n = proto_count(m, "rcpt");
    if (n == 0 || n > QUEUE_MAX_RCPTS)
        return "bad recipient count";
    if (proto_count(m, "rcpt_orcpt") != n || proto_count(m, "rcpt_notify") != n)
        return "rcpt, rcpt_orcpt and rcpt_notify counts differ";
    d->rcpts = xcalloc(n, sizeof(*d->rcpts));
    d->nrcpts = n;
    for (size_t i = 0; i < n; i++) {
        const struct proto_attr *notify = proto_get_nth(m, "rcpt_notify", i);
        d->rcpts[i].addr = attr_str(proto_get_nth(m, "rcpt", i));
        d->rcpts[i].orcpt = attr_str(proto_get_nth(m, "rcpt_orcpt", i));
        if (!d->rcpts[i].addr || !*d->rcpts[i].addr || !d->rcpts[i].orcpt ||
            notify->type != PROTO_INT || notify->num < 0 || notify->num > QUEUE_NOTIFY_MASK)
            return "bad recipient attributes";
        d->rcpts[i].notify = (unsigned)notify->num;
    }
    return NULL;
}

/* Fill d from a deliver request; NULL reason = ok. */
static const char *request_parse(struct smtp_delivery *d, struct proto_msg *m)
{
    const char *id = proto_get_str(m, "id"), *nexthop = proto_get_str(m, "nexthop");
    const char *sender = proto_get_str(m, "sender"), *ret = proto_get_str(m, "ret");
    const char *envid = proto_get_str(m, "envid");
    int64_t utf8 = 0, size = 0, arrival = 0;
    if (!id || !*id || strlen(id) > 63 || !nexthop || !sender)
        return "id, nexthop and sender are required";
    d->id = xstrdup(id);
    d->nexthop = xstrdup(nexthop);
    d->sender = xstrdup(sender);
    d->envid = envid && *envid ? xstrdup(envid) : NULL;
    if (ret && *ret && strcasecmp(ret, "FULL") != 0 && strcasecmp(ret, "HDRS") != 0)
        return "bad ret";
    d->ret = ret && *ret ? xstrdup(ret) : NULL;
    if ((d->body_type = body_type_parse(proto_get_str(m, "body_type"))) < 0)
        return "bad body_type";
    proto_get_int(m, "smtputf8", &utf8);
    proto_get_int(m, "arrival_us", &arrival);
    if (proto_get_int(m, "size", &size) < 0 || size < 0)
        return "bad size";
    d->smtputf8 = utf8 != 0;
    d->size = (uint64_t)size;
    d->arrival_us = arrival > 0 ? (uint64_t)arrival : 0;
    if (m->nfds != 1)
        return "expected exactly one fd (the queue file)";
    d->fd = proto_take_fd(m, 0);
    return request_rcpts(d, m);
}

static void delivery_start_cb(evutil_socket_t fd, short what, void *arg)
{
    smtp_delivery_start(arg);
}

static int client_deliver(struct smtp_client *c, struct proto_msg *m)
{
    static const struct timeval now = { 0, 0 };
    struct smtp_delivery *d = xcalloc(1, sizeof(*d));
    d->fd = -1;
    const char *why = request_parse(d, m);
    if (why) {
        log_warn("private/smtp: bad deliver request%s%s: %s", d->id ? " for " : "",
                 d->id ? d->id : "", why);
        smtp_delivery_free(d);
        return client_error(c, why);
    }
    d->done = delivery_done;
    d->done_arg = c;
    c->busy = d;
    smtp_in_flight++;
    event_del(c->ev_read);      /* one request at a time per connection */
    /* from the loop, so the answer never comes back inside this call */
    if (event_base_once(smtp_base, -1, EV_TIMEOUT, delivery_start_cb, d, &now) < 0)
        log_fatal("cannot schedule a delivery");
    return 0;
}

static int client_request(struct smtp_client *c, struct proto_msg *m)
{
    const char *why = NULL;
    if (!c->hello_done) {
        struct proto_msg ok;
        if (proto_check_hello(m, SMTP_PROTO, SMTP_PROTO_VERSION, &why) < 0) {
            log_warn("private/smtp: bad hello: %s", why);
            return -1;
        }
        c->hello_done = true;
        proto_msg_init(&ok);
        proto_put_str(&ok, "status", "ok");
        int rc = client_send(c, &ok);
        proto_msg_free(&ok);
        return rc;
    }
    const char *op = proto_get_str(m, "op");
    if (!op || strcmp(op, "deliver") != 0) {
        log_warn("private/smtp: unknown request \"%s\"", op ? op : "(none)");
        return client_error(c, "unknown request");
    }
    return client_deliver(c, m);
}

static void client_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    const char *why = NULL;
    int rc = proto_conn_read(&c->conn, &why);
    while (!c->busy) {
        struct proto_msg m;
        proto_msg_init(&m);
        int n = proto_conn_next(&c->conn, &m, &why);
        if (n == 1 && client_request(c, &m) < 0)
            n = -1;
        proto_msg_free(&m);
        if (n == 0)
            break;
        if (n < 0) {
            client_close(c, why ? why : "protocol error");
            return;
        }
    }
    if (rc < 0)
        client_close(c, why ? why : "closed");
}

static void client_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    if (proto_conn_flush(&c->conn) < 0) {
        client_close(c, "write error");
        return;
    }
    client_watch(c);
    if (!c->busy && !c->dead)
        event_add(c->ev_read, NULL);
}

static void smtp_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("private/smtp: accept: %m");
        return;
    }
    struct smtp_client *c = xcalloc(1, sizeof(*c));
    proto_conn_init(&c->conn, fd);
    c->ev_read = event_new(smtp_base, fd, EV_READ | EV_PERSIST, client_on_read, c);
    c->ev_write = event_new(smtp_base, fd, EV_WRITE | EV_PERSIST, client_on_write, c);
    if (!c->ev_read || !c->ev_write)
        log_fatal("cannot create events");
    event_add(c->ev_read, NULL);
}

/* ---- start-up, master's commands, stop ---- */

static unsigned timeout_param(const struct conf *c, const char *name)
{
    long long v = conf_int(c, "mailgw.timeouts", name);
    return v > 0 ? (unsigned)v : 1;
}

static void smtp_load_settings(const struct conf *c)
{
    static const char *const modes[] = { "none", "may", "encrypt", "verify" };
    const char *mode = conf_str(c, "mailgw.tls", "ClientTLS");
    smtp_var.hostname = conf_str(c, "mailgw.network", "Hostname");
    smtp_var.timeout_initial = timeout_param(c, "SendingInitialTimeout");
    smtp_var.timeout_helo = timeout_param(c, "SendingHelloTimeout");
    smtp_var.timeout_mail = timeout_param(c, "SendingMailTimeout");
    smtp_var.timeout_rcpt = timeout_param(c, "SendingRcptTimeout");
    smtp_var.timeout_data_init = timeout_param(c, "SendingDataInitiationTimeout");
    smtp_var.timeout_data_term = timeout_param(c, "SendingDataTerminationTimeout");
    smtp_var.timeout_quit = timeout_param(c, "SendingQuitTimeout");
    smtp_var.timeout_write = timeout_param(c, "WriteTimeout");
    smtp_var.max_addresses = SMTP_MAX_ADDRESSES;
    smtp_var.tls_mode = SMTP_TLS_MAY;
    for (size_t i = 0; i < 4; i++)
        if (mode && strcasecmp(mode, modes[i]) == 0)
            smtp_var.tls_mode = (enum smtp_tls_mode)i;
    if (smtp_var.tls_mode != SMTP_TLS_NONE)
        smtp_var.tls_ctx = smtp_tls_ctx_new(c);
}

static void smtp_on_command(struct server *srv, const struct proto_msg *cmd,
                            struct proto_msg *reply, void *arg)
{
    const char *op = proto_get_str(cmd, "op");
    if (op && strcmp(op, "stats") == 0) {
        for (size_t i = 0; i < SMTP_NCOUNTERS; i++)
            proto_put_int(reply, smtp_counter_names[i], (int64_t)smtp_counters[i]);
        proto_put_int(reply, "deliveries_in_flight", (int64_t)smtp_in_flight);
    } else {
        proto_put_str(reply, "status", "error");
        proto_put_str(reply, "reason", "unknown command");
    }
}

static void smtp_on_stop(struct server *srv, void *arg)
{
    smtp_stopping = true;
    if (smtp_ev_listen)
        event_del(smtp_ev_listen);
    smtp_session_cache_flush();
    log_info("stopping: %zu deliveries in flight", smtp_in_flight);
    maybe_exit();
}

int main(int argc, char **argv)
{
    smtp_server = server_init_flags(argc, argv, "smtp", SERVER_KEEP_PRIVILEGES);
    smtp_base = server_event_base();
    smtp_load_settings(smtp_server->conf);
    if (dns_init(smtp_base, smtp_server->conf) < 0)
        log_fatal("cannot set up the resolver");
    /* TLS files and resolv.conf are loaded: confine. */
    server_drop(smtp_server, SERVER_CHROOT);
    if (smtp_server->nlisten == 0)
        log_fatal("no listening socket (private/smtp) on fd %d", SERVER_LISTEN_FD0);
    smtp_ev_listen = event_new(smtp_base, smtp_server->listen_fds[0], EV_READ | EV_PERSIST,
                               smtp_on_accept, NULL);
    if (!smtp_ev_listen || event_add(smtp_ev_listen, NULL) < 0)
        log_fatal("cannot watch the listening socket");
    server_event_attach(smtp_server, smtp_base, smtp_on_command, smtp_on_stop, NULL);
    event_base_dispatch(smtp_base);
    server_exit(smtp_server, 0);
}
