/*
 * mailgw_quarantine - `mailgw quarantine`, the store manager (klmaila's
 * role, reference §3.10; mailgw-quarantine(1)).
 *
 * Usage: mailgw [-c FILE] quarantine COMMAND
 *   list [--json] [--area AREA]   every stored message (AREA: quarantine,
 *                                 backup, archive-in, archive-out; default
 *                                 all), klmaila's line shape
 *                                 "ID STATUS SIZE DATE IP <SENDER> -> <RCPT>"
 *                                 and a "Total:" footer; --json prints one
 *                                 JSON object per entry and line
 *   show ID [--area AREA]         envelope, verdict and the message
 *   release ID                    queue again without scanning
 *   resend ID                     queue again, scanned again
 *   delete ID|ALL [--area AREA]   remove
 *   expire [--age DAYS]           remove entries older than DAYS (default
 *                                 [mailgw.policy] QuarantineMaxAge)
 * Every command is a request to the quarantine daemon on
 * QueuePath/public/quarantine (protocol "quarantine" version 1).
 *
 * Exit status (reference §3.10): 0 done, 1 bad command line, 2 directory
 * unreadable, 3 system error (config, daemon unreachable), 4 requested
 * action not performed (no such ID, qmgr refused, ...).  Diagnostics go
 * to stderr prefixed "mailgw quarantine: ".
 *
 * Security: stored data came from the network; text output replaces
 * control characters (except in `show`'s message body, which is printed
 * as stored without CRs) and JSON output escapes them.
 */
#include "mailgw_quarantine.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "mailgw_config.h"
#include "mailgw_ctl.h"
#include "proto/proto.h"
#include "util/mem.h"

#define QCLI_TIMEOUT_MS 120000
#define QCLI_MAX_FRAMES 100000

struct qcli {
    int sock;
    const char *area;
    bool json;
    long long age_days;
    bool have_age;
};

static void qcli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void qcli_err(const char *fmt, ...)
{
    va_list ap;

    fputs("mailgw quarantine: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int qcli_usage(void)
{
    fprintf(stderr,
            "usage: mailgw quarantine list [--json] [--area AREA]\n"
            "       mailgw quarantine show ID [--area AREA]\n"
            "       mailgw quarantine release ID | resend ID\n"
            "       mailgw quarantine delete ID|ALL [--area AREA]\n"
            "       mailgw quarantine expire [--age DAYS]\n"
            "AREA: quarantine, backup, archive-in, archive-out\n");
    return QUARANTINE_EXIT_USAGE;
}

static int qcli_connect(void)
{
    const char *path = mailgw_config_path(NULL);
    struct conf *c = mailgw_ctl_conf(path, false);
    const char *why = NULL;
    char *sock_path;
    int fd;

    if (c == NULL)
        return -1;
    sock_path = xasprintf("%s/public/quarantine", conf_str(c, "mailgw.path", "QueuePath"));
    conf_free(c);
    fd = proto_connect(sock_path);
    if (fd < 0 && errno == ENOENT && geteuid() == 0) {
        /* root may use the daemon's private socket when public/ has none
         * (the daemon could not bind it in master's root-owned public/). */
        char *priv = xasprintf("%.*s/private/quarantine",
                               (int)(strlen(sock_path) - strlen("/public/quarantine")), sock_path);
        fd = proto_connect(priv);
        free(priv);
        if (fd < 0)
            errno = ENOENT;
    }
    if (fd < 0) {
        qcli_err("cannot connect to %s: %s%s", sock_path, strerror(errno),
                 errno == ENOENT || errno == ECONNREFUSED ? " (is the quarantine daemon running?)"
                                                          : "");
        free(sock_path);
        return -1;
    }
    free(sock_path);
    if (proto_hello_call(fd, "quarantine", 1, QCLI_TIMEOUT_MS, &why) < 0) {
        qcli_err("the quarantine daemon refused the connection: %s", why);
        close(fd);
        return -1;
    }
    return fd;
}

/* Send req, read one reply into ans.  Returns 0 for status=ok, else the
 * exit status (the daemon's code, or 3 when it did not answer). */
static int qcli_call(struct qcli *q, const struct proto_msg *req, struct proto_msg *ans)
{
    const char *why = NULL, *status;
    int64_t code = QUARANTINE_EXIT_ACTION;

    if (proto_send(q->sock, req) < 0 || proto_recv(q->sock, ans, QCLI_TIMEOUT_MS, &why) < 0) {
        qcli_err("no answer from the quarantine daemon: %s", why ? why : strerror(errno));
        return QUARANTINE_EXIT_SYSTEM;
    }
    status = proto_get_str(ans, "status");
    if (status != NULL && strcmp(status, "ok") == 0)
        return 0;
    proto_get_int(ans, "code", &code);
    qcli_err("%s", proto_get_str(ans, "reason") ? proto_get_str(ans, "reason") : "failed");
    return code >= 2 && code <= 4 ? (int)code : QUARANTINE_EXIT_ACTION;
}

/* ---- printing entries ---- */

static void qcli_text(FILE *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc(p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i], out);
}

static void qcli_json_str(FILE *out, const uint8_t *p, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"' || p[i] == '\\')
            fprintf(out, "\\%c", p[i]);
        else if (p[i] < 0x20 || p[i] == 0x7f)
            fprintf(out, "\\u%04x", p[i]);
        else
            fputc(p[i], out);
    }
    fputc('"', out);
}

/* One entry: attributes from index *i (a "qid") up to the next qid. */
struct qentry {
    const struct proto_attr *a[16];
    const struct proto_attr *rcpt[64];
    size_t nrcpt;
};

static const char *const qentry_names[] = {
    "qid", "area", "code", "verdict", "names", "group", "queue_id", "size", "stored",
    "arrival", "client_addr", "client_name", "sender", "nrcpt", "helo", "reason",
};

static size_t qentry_take(const struct proto_msg *m, size_t i, struct qentry *e)
{
    memset(e, 0, sizeof(*e));
    for (size_t k = i; k < m->nattrs; k++) {
        const struct proto_attr *a = &m->attrs[k];
        if (k > i && strcmp(a->name, "qid") == 0)
            return k;
        if (strcmp(a->name, "rcpt") == 0) {
            if (e->nrcpt < sizeof(e->rcpt) / sizeof(e->rcpt[0]))
                e->rcpt[e->nrcpt++] = a;
            continue;
        }
        for (size_t n = 0; n < sizeof(qentry_names) / sizeof(qentry_names[0]); n++)
            if (strcmp(a->name, qentry_names[n]) == 0 && e->a[n] == NULL)
                e->a[n] = a;
    }
    return m->nattrs;
}

static const struct proto_attr *qentry_get(const struct qentry *e, const char *name)
{
    for (size_t n = 0; n < sizeof(qentry_names) / sizeof(qentry_names[0]); n++)
        if (strcmp(qentry_names[n], name) == 0)
            return e->a[n];
    return NULL;
}

static int64_t qentry_int(const struct qentry *e, const char *name)
{
    const struct proto_attr *a = qentry_get(e, name);

    return a != NULL && a->type == PROTO_INT ? a->num : 0;
}

static void qentry_str(FILE *out, const struct qentry *e, const char *name, const char *dflt)
{
    const struct proto_attr *a = qentry_get(e, name);

    if (a != NULL && a->type != PROTO_INT && a->len > 0)
        qcli_text(out, a->value, a->len);
    else
        fputs(dflt, out);
}

static void qcli_date(FILE *out, int64_t t)
{
    char text[32];
    time_t tt = (time_t)t;
    struct tm tm;

    localtime_r(&tt, &tm);
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    fputs(text, out);
}

static void qentry_print_line(FILE *out, const struct qentry *e)
{
    qentry_str(out, e, "qid", "?");
    fputc(' ', out);
    qentry_str(out, e, "code", "ERR");
    fprintf(out, " %lld ", (long long)qentry_int(e, "size"));
    qcli_date(out, qentry_int(e, "stored"));
    fputc(' ', out);
    qentry_str(out, e, "client_addr", "-");
    fputs(" <", out);
    qentry_str(out, e, "sender", "");
    fputs("> ->", out);
    for (size_t r = 0; r < e->nrcpt; r++) {
        fputs(r ? ", <" : " <", out);
        qcli_text(out, e->rcpt[r]->value, e->rcpt[r]->len);
        fputc('>', out);
    }
    if ((size_t)qentry_int(e, "nrcpt") > e->nrcpt)
        fprintf(out, " (+%zu more)", (size_t)qentry_int(e, "nrcpt") - e->nrcpt);
    fputc('\n', out);
}

static void qentry_print_json(FILE *out, const struct qentry *e)
{
    static const char *const strs[] = { "qid", "area", "code", "verdict", "names", "group",
                                        "queue_id", "client_addr", "client_name", "sender" };
    static const char *const ints[] = { "size", "stored", "arrival", "nrcpt" };

    fputc('{', out);
    for (size_t n = 0; n < sizeof(strs) / sizeof(strs[0]); n++) {
        const struct proto_attr *a = qentry_get(e, strs[n]);
        const char *key = strcmp(strs[n], "qid") == 0 ? "id"
                          : strcmp(strs[n], "verdict") == 0 ? "status" : strs[n];
        fprintf(out, "%s\"%s\":", n ? "," : "", key);
        qcli_json_str(out, a && a->type != PROTO_INT ? a->value : (const uint8_t *)"",
                      a && a->type != PROTO_INT ? a->len : 0);
    }
    for (size_t n = 0; n < sizeof(ints) / sizeof(ints[0]); n++)
        fprintf(out, ",\"%s\":%lld", ints[n], (long long)qentry_int(e, ints[n]));
    fputs(",\"recipients\":[", out);
    for (size_t r = 0; r < e->nrcpt; r++) {
        if (r)
            fputc(',', out);
        qcli_json_str(out, e->rcpt[r]->value, e->rcpt[r]->len);
    }
    fputs("]}\n", out);
}

/* ---- commands ---- */

static int qcli_list(struct qcli *q)
{
    struct proto_msg req, ans;
    struct qentry e;
    int rc = 0;
    int64_t more = 1, count = 0, bytes = 0;

    proto_msg_init(&req);
    proto_put_str(&req, "op", "list");
    if (q->area)
        proto_put_str(&req, "area", q->area);
    if (proto_send(q->sock, &req) < 0) {
        qcli_err("cannot send the request: %s", strerror(errno));
        proto_msg_free(&req);
        return QUARANTINE_EXIT_SYSTEM;
    }
    proto_msg_free(&req);
    for (long frames = 0; more && rc == 0 && frames < QCLI_MAX_FRAMES; frames++) {
        const char *why = NULL, *status;
        proto_msg_init(&ans);
        if (proto_recv(q->sock, &ans, QCLI_TIMEOUT_MS, &why) < 0) {
            qcli_err("no answer from the quarantine daemon: %s", why ? why : "?");
            rc = QUARANTINE_EXIT_SYSTEM;
        } else if ((status = proto_get_str(&ans, "status")) != NULL && strcmp(status, "ok") != 0) {
            int64_t code = QUARANTINE_EXIT_ACTION;
            proto_get_int(&ans, "code", &code);
            qcli_err("%s", proto_get_str(&ans, "reason") ? proto_get_str(&ans, "reason") : "failed");
            rc = code >= 2 && code <= 4 ? (int)code : QUARANTINE_EXIT_ACTION;
        } else {
            for (size_t i = 0, next; i < ans.nattrs; i = next) {
                next = qentry_take(&ans, i, &e);
                if (qentry_get(&e, "qid") != NULL)
                    (q->json ? qentry_print_json : qentry_print_line)(stdout, &e);
            }
            more = 0;
            proto_get_int(&ans, "more", &more);
            proto_get_int(&ans, "count", &count);
            proto_get_int(&ans, "bytes", &bytes);
        }
        proto_msg_free(&ans);
    }
    if (rc == 0 && !q->json)
        printf("Total: %lld messages, %lld bytes.\n", (long long)count, (long long)bytes);
    return rc;
}

static void qcli_show_body(const struct proto_msg *ans)
{
    size_t len = 0;
    const uint8_t *p = proto_get_data(ans, "content", &len);
    int64_t cut = 0;

    for (size_t i = 0; p != NULL && i < len; i++)
        if (p[i] != '\r')
            fputc(p[i], stdout);
    proto_get_int(ans, "content_truncated", &cut);
    if (cut)
        printf("\n[... content truncated]\n");
}

static void qcli_show_print(const struct proto_msg *ans)
{
    struct qentry e;
    static const char *const fields[] = { "area", "verdict", "code", "names", "group",
                                          "queue_id", "client_name", "client_addr", "helo",
                                          "sender", "reason" };

    qentry_take(ans, 0, &e);
    printf("id: ");
    qentry_str(stdout, &e, "qid", "?");
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        printf("\n%s: ", strcmp(fields[i], "verdict") == 0 ? "status" : fields[i]);
        qentry_str(stdout, &e, fields[i], "");
    }
    printf("\nsize: %lld\nstored: ", (long long)qentry_int(&e, "size"));
    qcli_date(stdout, qentry_int(&e, "stored"));
    printf("\narrival: ");
    qcli_date(stdout, qentry_int(&e, "arrival"));
    putchar('\n');
    for (size_t i = 0; i < ans->nattrs; i++) {
        if (strcmp(ans->attrs[i].name, "rcpt") != 0)
            continue;
        printf("recipient: ");
        qcli_text(stdout, ans->attrs[i].value, ans->attrs[i].len);
        putchar('\n');
    }
    printf("\n");
    qcli_show_body(ans);
}

static int qcli_simple(struct qcli *q, const char *op, const char *id)
{
    struct proto_msg req, ans;
    int rc;
    int64_t count = 0;

    proto_msg_init(&req);
    proto_msg_init(&ans);
    proto_put_str(&req, "op", op);
    if (id != NULL)
        proto_put_str(&req, "qid", id);
    if (q->area != NULL)
        proto_put_str(&req, "area", q->area);
    if (q->have_age)
        proto_put_int(&req, "age", q->age_days * 86400);
    rc = qcli_call(q, &req, &ans);
    if (rc == 0) {
        proto_get_int(&ans, "count", &count);
        if (strcmp(op, "show") == 0)
            qcli_show_print(&ans);
        else if (strcmp(op, "release") == 0 || strcmp(op, "resend") == 0)
            printf("mailgw quarantine: %s %s as %s\n", id,
                   op[2] == 'l' ? "released" : "resent",
                   proto_get_str(&ans, "id") ? proto_get_str(&ans, "id") : "?");
        else
            printf("mailgw quarantine: %lld %s %s\n", (long long)count,
                   count == 1 ? "entry" : "entries", op[0] == 'd' ? "removed" : "expired");
    }
    proto_msg_free(&req);
    proto_msg_free(&ans);
    return rc;
}

static int qcli_options(struct qcli *q, int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "area", required_argument, NULL, 'a' },
        { "age", required_argument, NULL, 'g' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    char *end;

    optind = 0;     /* GNU getopt: full re-initialisation (mailgw's main used it) */
    opterr = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'j') {
            q->json = true;
        } else if (ch == 'a') {
            q->area = optarg;
        } else if (ch == 'g') {
            errno = 0;
            q->age_days = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || q->age_days < 0 || q->age_days > 36500)
                return -1;
            q->have_age = true;
        } else {
            return -1;
        }
    }
    return optind;
}

static int qcli_run(struct qcli *q, const char *cmd, const char *id)
{
    if (strcmp(cmd, "list") == 0)
        return qcli_list(q);
    return qcli_simple(q, cmd, id);
}

/* Which commands take an ID, and which options each allows. */
static bool qcli_check(const struct qcli *q, const char *cmd, int nargs)
{
    bool takes_id = strcmp(cmd, "show") == 0 || strcmp(cmd, "release") == 0
                    || strcmp(cmd, "resend") == 0 || strcmp(cmd, "delete") == 0;

    if (!takes_id && strcmp(cmd, "list") != 0 && strcmp(cmd, "expire") != 0)
        return false;
    if (nargs != (takes_id ? 1 : 0))
        return false;
    if (q->json && strcmp(cmd, "list") != 0)
        return false;
    if (q->have_age && strcmp(cmd, "expire") != 0)
        return false;
    if (q->area != NULL && (strcmp(cmd, "expire") == 0 || strcmp(cmd, "release") == 0
                            || strcmp(cmd, "resend") == 0))
        return false;
    return true;
}

static bool qcli_area_ok(const char *area)
{
    static const char *const areas[] = { "quarantine", "backup", "archive-in", "archive-out",
                                         "all" };

    for (size_t i = 0; area != NULL && i < sizeof(areas) / sizeof(areas[0]); i++)
        if (strcmp(area, areas[i]) == 0)
            return true;
    return area == NULL;
}

int mailgw_cmd_quarantine(int argc, char **argv)
{
    struct qcli q = { .sock = -1 };
    const char *cmd;
    int first, rc;

    if (argc < 2)
        return qcli_usage();
    cmd = argv[1];
    first = qcli_options(&q, argc - 1, argv + 1);
    if (first < 0 || !qcli_check(&q, cmd, argc - 1 - first) || !qcli_area_ok(q.area))
        return qcli_usage();
    q.sock = qcli_connect();
    if (q.sock < 0)
        return QUARANTINE_EXIT_SYSTEM;
    rc = qcli_run(&q, cmd, first < argc - 1 ? argv[1 + first] : NULL);
    close(q.sock);
    return rc;
}
