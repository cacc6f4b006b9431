/*
 * mailgwq - queue administration for mailgw: the roles of Postfix's
 * postqueue (-p, -j, -f, -i), postsuper (-d, -h, -H, -r) and postcat (-c).
 *
 *   mailgwq [-C FILE] -p | -j | -f | -i ID | -c ID
 *   mailgwq [-C FILE] -d ID|ALL|- | -h ID|ALL|- | -H ID|ALL|- | -r ID|ALL|-
 * Several options run in the order given; "-" reads queue IDs from
 * standard input, one per line (a trailing '*' or '!' is ignored, so
 * `mailgwq -p` output piped through awk works).  The configuration is
 * -C FILE, else $MAILGW_CONF, else /etc/mailgw/mailgw.conf.
 *
 * Interface: everything goes through master's control socket
 * QueuePath/public/control ("mailgw-control" v1, cli_control.c) as the
 * queue-* requests of CONTRACTS.md "Queue administration", which master
 * relays to qmgr.  mailgwq never opens queue files by name: for -c qmgr
 * passes a read-only fd and lib/queue's reader parses it.  queue-list
 * replies with more=1 are continued with after=LAST_ID.
 *
 * Exit status (mailgwq(1)): 0 done; 1 usage or bad queue ID; 2 the
 * gateway cannot be reached (configuration unusable, master not running,
 * qmgr not answering); 3 permission denied (only root, the mailgw user and
 * members of AdminGroup may connect; master checks SO_PEERCRED); 4 no
 * such message or action not performed.
 *
 * Diagnostics go to stderr prefixed "mailgwq: "; postsuper-like counts
 * ("mailgwq: Deleted: 2 messages") too.  Listings go to stdout.
 *
 * Security: runs with the caller's privileges; the control socket's
 * permissions and master's peer check are the access control.  Replies
 * are peer data: printed through the printable/JSON quoting of
 * mailgwq_format.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_conf.h"
#include "cli_control.h"
#include "conf/conf.h"
#include "mailgwq_format.h"
#include "mailgwq_show.h"
#include "proto/proto.h"
#include "queue/queue_id.h"
#include "util/buf.h"
#include "util/mem.h"

#define MQ_OK 0
#define MQ_USAGE 1
#define MQ_UNREACHABLE 2
#define MQ_DENIED 3
#define MQ_NOTDONE 4

#define MQ_TIMEOUT_MS 30000
#define MQ_MAX_PAGES 100000

struct mq_action {
    int opt;
    const char *arg;
};

struct mq {
    const char *config;
    struct conf *conf;
    int fd;                     /* control socket, -1 until connected */
};

static void mq_usage(FILE *out)
{
    fprintf(out,
            "usage: mailgwq [-C config] option...\n"
            "  -p          print the queue (postqueue -p format)\n"
            "  -j          print the queue as JSON, one message per line (postqueue -j)\n"
            "  -f          flush: attempt to deliver every queued message now\n"
            "  -i ID       attempt to deliver message ID now\n"
            "  -c ID       show message ID: envelope and content (postcat)\n"
            "  -d ID|ALL   delete\n"
            "  -h ID|ALL   put on hold\n"
            "  -H ID|ALL   release from hold\n"
            "  -r ID|ALL   requeue\n"
            "  ID \"-\" reads queue IDs from standard input, one per line.\n"
            "  -C config   configuration file (else $MAILGW_CONF, else %s)\n",
            CLI_DEFAULT_CONF);
}

/* Load the config and connect, once.  Returns an exit status. */
static int mq_connect(struct mq *mq)
{
    enum cli_control_err err;
    const char *why = NULL;
    bool denied = false;
    char *path;

    if (mq->fd >= 0)
        return MQ_OK;
    mq->conf = cli_conf_load("mailgwq", cli_config_path(mq->config), false, &denied);
    if (mq->conf == NULL) {
        if (denied)
            fprintf(stderr, "mailgwq: permission denied\n");
        return denied ? MQ_DENIED : MQ_UNREACHABLE;
    }
    path = cli_control_path(mq->conf);
    mq->fd = cli_control_open(path, MQ_TIMEOUT_MS, &err, &why);
    if (mq->fd >= 0) {
        free(path);
        return MQ_OK;
    }
    if (err == CLI_CONTROL_DENIED) {
        fprintf(stderr, "mailgwq: permission denied: only root and members of the admin group "
                        "(AdminGroup) may manage the queue (%s: %s)\n", path, why);
    } else if (err == CLI_CONTROL_DOWN) {
        fprintf(stderr, "mailgwq: mailgw is not running (%s: %s)\n", path, why);
    } else {
        fprintf(stderr, "mailgwq: cannot talk to master (%s: %s)\n", path, why);
    }
    free(path);
    return err == CLI_CONTROL_DENIED ? MQ_DENIED : MQ_UNREACHABLE;
}

/* Map a reply's status to an exit status, telling the user why it
 * failed.  what names the object (an ID or the op). */
static int mq_reply_status(const struct proto_msg *r, const char *what)
{
    const char *status = proto_get_str(r, "status");
    const char *reason = proto_get_str(r, "reason");
    int64_t unreachable = 0;

    if (status != NULL && strcmp(status, "ok") == 0)
        return MQ_OK;
    if (reason == NULL)
        reason = status ? status : "no status in the reply";
    proto_get_int(r, "unreachable", &unreachable);
    if (unreachable || strstr(reason, "not supported by this version") != NULL) {
        fprintf(stderr, "mailgwq: the queue manager cannot be reached: %s\n", reason);
        return MQ_UNREACHABLE;
    }
    fprintf(stderr, "mailgwq: %s: %s\n", what, reason);
    return MQ_NOTDONE;
}

/* Connect if needed, send req, read the reply.  Returns an exit status;
 * MQ_OK means a reply frame arrived (its status is not checked). */
static int mq_call(struct mq *mq, const struct proto_msg *req, struct proto_msg *reply)
{
    const char *why = NULL;
    int rc = mq_connect(mq);

    if (rc != MQ_OK)
        return rc;
    if (cli_control_call(mq->fd, req, reply, MQ_TIMEOUT_MS, &why) < 0) {
        fprintf(stderr, "mailgwq: no answer from master: %s\n", why ? why : "?");
        return MQ_UNREACHABLE;
    }
    return MQ_OK;
}

/* One queue-list request (after = last ID of the previous page, or
 * NULL) into q.  *more set when qmgr says the answer was cut short
 * (more=1 or truncated=1). */
static int mq_list_page(struct mq *mq, const char *after, struct mailgwq_queue *q, bool *more)
{
    struct proto_msg req, reply;
    const char *why = NULL;
    int64_t m = 0, t = 0;
    int rc;

    proto_msg_init(&req);
    proto_msg_init(&reply);
    proto_put_str(&req, "op", "queue-list");
    if (after != NULL)
        proto_put_str(&req, "after", after);
    rc = mq_call(mq, &req, &reply);
    if (rc == MQ_OK)
        rc = mq_reply_status(&reply, "queue-list");
    if (rc == MQ_OK && mailgwq_queue_parse(q, &reply, &why) < 0) {
        fprintf(stderr, "mailgwq: %s\n", why);
        rc = MQ_UNREACHABLE;
    }
    proto_get_int(&reply, "more", &m);
    proto_get_int(&reply, "truncated", &t);
    *more = rc == MQ_OK && (m != 0 || t != 0);
    proto_msg_free(&req);
    proto_msg_free(&reply);
    return rc;
}

/* Move the entries of page to the end of q when they continue it (IDs
 * sort by arrival); false when the page repeats what q has (a qmgr that
 * does not know "after"). */
static bool mq_list_append(struct mailgwq_queue *q, struct mailgwq_queue *page)
{
    if (page->n == 0 || (q->n > 0 && strcmp(page->v[0].id, q->v[q->n - 1].id) <= 0))
        return false;
    for (size_t i = 0; i < page->n; i++) {
        struct mailgwq_entry *e = &page->v[i];
        struct mailgwq_entry *d = mailgwq_queue_add(q, e->id, e->state, e->size, e->arrival,
                                                    e->sender);
        for (size_t k = 0; k < e->nrcpts; k++)
            mailgwq_entry_add_rcpt(d, e->rcpts[k].addr, e->rcpts[k].reason);
    }
    return true;
}

/* The whole listing, page by page. */
static int mq_list_all(struct mq *mq, struct mailgwq_queue *q, bool *complete)
{
    bool more = true;
    int rc = MQ_OK;

    for (size_t page = 0; more && page < MQ_MAX_PAGES; page++) {
        struct mailgwq_queue part;
        mailgwq_queue_init(&part);
        rc = mq_list_page(mq, q->n ? q->v[q->n - 1].id : NULL, &part, &more);
        bool moved = rc == MQ_OK && mq_list_append(q, &part);
        mailgwq_queue_free(&part);
        if (rc != MQ_OK)
            return rc;
        if (!moved)
            break;
    }
    *complete = !more;
    return MQ_OK;
}

static int mq_list(struct mq *mq, bool json)
{
    struct mailgwq_queue q;
    struct buf out = BUF_INIT;
    bool complete = true;
    int rc;

    mailgwq_queue_init(&q);
    rc = mq_list_all(mq, &q, &complete);
    if (rc == MQ_OK) {
        buf_append(&out, "", 0);
        if (json)
            mailgwq_format_json(&q, &out);
        else
            mailgwq_format_postfix(&q, &out);
        fwrite(out.data, 1, out.len, stdout);
        if (fflush(stdout) != 0 && errno != EPIPE)
            rc = MQ_NOTDONE;
    }
    if (rc == MQ_OK && !complete) {
        fprintf(stderr, "mailgwq: the listing is incomplete: the queue manager's answer was "
                        "cut short\n");
        rc = MQ_NOTDONE;
    }
    buf_free(&out);
    mailgwq_queue_free(&q);
    return rc;
}

static int mq_show(struct mq *mq, const char *id)
{
    struct proto_msg req, reply;
    const char *why = NULL;
    int rc, fd;

    proto_msg_init(&req);
    proto_msg_init(&reply);
    proto_put_str(&req, "op", "queue-show");
    proto_put_str(&req, "id", id);
    rc = mq_call(mq, &req, &reply);
    if (rc == MQ_OK)
        rc = mq_reply_status(&reply, id);
    fd = rc == MQ_OK ? proto_take_fd(&reply, 0) : -1;
    if (rc == MQ_OK && fd < 0) {
        fprintf(stderr, "mailgwq: %s: the queue manager sent no file\n", id);
        rc = MQ_NOTDONE;
    }
    if (fd >= 0) {
        const char *state = proto_get_str(&reply, "q_state");
        char *label = state && *state ? xasprintf("%s/%s", state, id) : xstrdup(id);
        if (mailgwq_show(fd, label, stdout, &why) < 0) {
            fprintf(stderr, "mailgwq: %s: cannot read the queue file: %s\n", id, why);
            rc = MQ_NOTDONE;
        }
        free(label);
        close(fd);
    }
    fflush(stdout);
    proto_msg_free(&req);
    proto_msg_free(&reply);
    return rc;
}

static const char *mq_op(int opt)
{
    switch (opt) {
    case 'd': return "queue-delete";
    case 'h': return "queue-hold";
    case 'H': return "queue-release";
    case 'r': return "queue-requeue";
    case 'i': return "queue-deliver";
    default:  return "queue-flush";
    }
}

static void mq_report_count(int opt, int64_t count)
{
    const char *what = opt == 'd' ? "Deleted" : opt == 'h' ? "Placed on hold"
                     : opt == 'H' ? "Released from hold" : opt == 'r' ? "Requeued" : NULL;

    if (what != NULL && count > 0)
        fprintf(stderr, "mailgwq: %s: %lld message%s\n", what, (long long)count,
                count == 1 ? "" : "s");
}

/* -f, -i ID, -d/-h/-H/-r ID|ALL: one request, a count back. */
static int mq_simple(struct mq *mq, int opt, const char *id)
{
    struct proto_msg req, reply;
    int64_t count = -1;
    int rc;

    proto_msg_init(&req);
    proto_msg_init(&reply);
    proto_put_str(&req, "op", mq_op(opt));
    if (id != NULL)
        proto_put_str(&req, "id", id);
    rc = mq_call(mq, &req, &reply);
    if (rc == MQ_OK)
        rc = mq_reply_status(&reply, id ? id : mq_op(opt));
    if (rc == MQ_OK) {
        proto_get_int(&reply, "count", &count);
        mq_report_count(opt, count);
        if (count == 0 && id != NULL && strcmp(id, "ALL") != 0) {
            fprintf(stderr, "mailgwq: %s: no such message, or nothing to do\n", id);
            rc = MQ_NOTDONE;
        }
    }
    proto_msg_free(&req);
    proto_msg_free(&reply);
    return rc;
}

static int mq_worse(int a, int b)
{
    return a > b ? a : b;
}

/* The queue ID on one line of standard input: first word, without a
 * trailing '*' or '!'.  NULL for a blank line. */
static char *mq_line_id(char *line)
{
    char *id = line + strspn(line, " \t");
    size_t n = strcspn(id, " \t\r\n");

    while (n > 0 && (id[n - 1] == '*' || id[n - 1] == '!'))
        n--;
    id[n] = 0;
    return n > 0 ? id : NULL;
}

/* "-": the IDs come from standard input. */
static int mq_stdin_ids(struct mq *mq, int opt)
{
    char *line = NULL, *id;
    size_t cap = 0;
    int rc = MQ_OK;

    while (getline(&line, &cap, stdin) > 0) {
        if ((id = mq_line_id(line)) == NULL)
            continue;
        if (!queue_id_valid(id)) {
            fprintf(stderr, "mailgwq: %s: not a valid queue ID\n", id);
            rc = mq_worse(rc, MQ_NOTDONE);
            continue;
        }
        int r = mq_simple(mq, opt, id);
        rc = mq_worse(rc, r);
        if (r == MQ_UNREACHABLE || r == MQ_DENIED)
            break;
    }
    free(line);
    return rc;
}

static int mq_run(struct mq *mq, const struct mq_action *a)
{
    switch (a->opt) {
    case 'p':
        return mq_list(mq, false);
    case 'j':
        return mq_list(mq, true);
    case 'c':
        return mq_show(mq, a->arg);
    case 'f':
        return mq_simple(mq, 'f', NULL);
    default:
        if (a->arg != NULL && strcmp(a->arg, "-") == 0)
            return mq_stdin_ids(mq, a->opt);
        return mq_simple(mq, a->opt, a->arg);
    }
}

/* Check an option's ID argument before anything is sent. */
static bool mq_arg_ok(int opt, const char *arg)
{
    bool all_ok = opt == 'd' || opt == 'h' || opt == 'H' || opt == 'r';

    if (arg == NULL)
        return true;
    if (all_ok && (strcmp(arg, "ALL") == 0 || strcmp(arg, "-") == 0))
        return true;
    if (queue_id_valid(arg))
        return true;
    fprintf(stderr, "mailgwq: %s: not a valid queue ID\n", arg);
    return false;
}

/* Parse argv into actions (run in order).  Returns the count, or -1
 * after a usage message. */
static int mq_parse_args(int argc, char **argv, struct mq *mq, struct mq_action *acts)
{
    int n = 0, ch;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            mq_usage(stdout);
            exit(MQ_OK);
        }
    }
    while ((ch = getopt(argc, argv, "C:c:d:fh:H:i:jpr:")) != -1) {
        if (ch == 'C') {
            mq->config = optarg;
            continue;
        }
        if (ch == '?' || !mq_arg_ok(ch, strchr("pjf", ch) ? NULL : optarg))
            return -1;
        acts[n].opt = ch;
        acts[n].arg = strchr("pjf", ch) ? NULL : optarg;
        n++;
    }
    if (optind < argc) {
        fprintf(stderr, "mailgwq: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (n == 0) {
        fprintf(stderr, "mailgwq: no action given\n");
        return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    struct mq mq = { NULL, NULL, -1 };
    struct mq_action *acts = xcalloc((size_t)argc + 1, sizeof(*acts));
    int n = mq_parse_args(argc, argv, &mq, acts);
    int rc = MQ_OK;

    if (n < 0) {
        mq_usage(stderr);
        free(acts);
        return MQ_USAGE;
    }
    for (int i = 0; i < n; i++) {
        int r = mq_run(&mq, &acts[i]);
        rc = mq_worse(rc, r);
        if (r == MQ_UNREACHABLE || r == MQ_DENIED)
            break;
    }
    if (mq.fd >= 0)
        close(mq.fd);
    if (mq.conf != NULL)
        conf_free(mq.conf);
    free(acts);
    return rc;
}
