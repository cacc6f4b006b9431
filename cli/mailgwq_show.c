/*
 * mailgwq_show - print one queue file for `mailgwq -c ID`, in the shape
 * of Postfix's postcat(1):
 *
 *   *** ENVELOPE RECORDS ID ***
 *   message_size: N
 *   message_arrival_time: Fri Nov 27 20:57:35 2026
 *   client_address: / client_name: / helo_name: / protocol_name: /
 *   tls: / sender: / envelope_id: / dsn_ret: / body_type: / smtputf8:
 *                              (each only when the record is present)
 *   per recipient: original_recipient: ORCPT, dsn_notify_flags: LIST,
 *   then recipient: ADDR (still to deliver) or
 *   done_recipient: ADDR (delivered|failed|bounced|dropped)
 *   *** MESSAGE CONTENTS ID ***
 *   the content, CRLF shown as LF
 *   *** MESSAGE FILE END ID ***
 *
 * Interface: mailgwq_show() (mailgwq_show.h).
 *
 * Diagnostics: a file the reader refuses (corrupt, truncated) fails with
 * the reader's reason before anything is printed.
 *
 * Security: the fd comes from qmgr (read-only); the file's contents are
 * peer data.  The lib/queue reader checks every length; envelope strings
 * are printed through mailgwq_printable().  The message content is
 * printed as it is, as postcat does.
 */
#include "mailgwq_show.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "mailgwq_format.h"
#include "queue/queue_file.h"
#include "util/buf.h"

static void show_field(struct buf *out, const char *name, const char *value)
{
    if (value == NULL)
        return;
    buf_printf(out, "%s: ", name);
    mailgwq_printable(out, value, strlen(value));
    buf_append_str(out, "\n");
}

static void show_notify(struct buf *out, unsigned notify)
{
    static const struct { unsigned bit; const char *name; } bits[] = {
        { QUEUE_NOTIFY_NEVER, "NEVER" },     { QUEUE_NOTIFY_SUCCESS, "SUCCESS" },
        { QUEUE_NOTIFY_FAILURE, "FAILURE" }, { QUEUE_NOTIFY_DELAY, "DELAY" },
    };
    const char *sep = "";

    if (notify == 0)
        return;
    buf_append_str(out, "dsn_notify_flags: ");
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        if (notify & bits[i].bit) {
            buf_printf(out, "%s%s", sep, bits[i].name);
            sep = ",";
        }
    }
    buf_append_str(out, "\n");
}

static void show_rcpt(struct buf *out, const struct queue_rcpt *r)
{
    static const char *const done[] = { "", "delivered", "failed", "bounced", "dropped" };

    show_field(out, "original_recipient", r->orcpt);
    show_notify(out, r->notify);
    if (r->status == QUEUE_RCPT_PENDING || r->status > QUEUE_RCPT_STATUS_MAX) {
        show_field(out, "recipient", r->addr);
        return;
    }
    buf_append_str(out, "done_recipient: ");
    mailgwq_printable(out, r->addr, strlen(r->addr));
    buf_printf(out, " (%s)\n", done[r->status]);
}

static void show_envelope(struct buf *out, const struct queue_file *qf)
{
    static const char *const ret[] = { NULL, "FULL", "HDRS" };
    static const char *const body[] = { NULL, "7BIT", "8BITMIME", "BINARYMIME" };
    const struct queue_envelope *env = &qf->env;
    time_t t = (time_t)(env->arrival_us / 1000000);
    struct tm tm;
    char when[64] = "??";

    if (localtime_r(&t, &tm) != NULL)
        strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm);
    buf_printf(out, "message_size: %" PRIu64 "\n", qf->content_size);
    buf_printf(out, "message_arrival_time: %s\n", when);
    show_field(out, "client_address", env->client_addr);
    show_field(out, "client_name", env->client_name);
    show_field(out, "helo_name", env->helo);
    show_field(out, "protocol_name", env->proto);
    show_field(out, "tls", env->tls);
    show_field(out, "sender", env->sender);
    show_field(out, "envelope_id", env->envid);
    if (env->ret > 0 && env->ret <= QUEUE_RET_HDRS)
        show_field(out, "dsn_ret", ret[env->ret]);
    if (env->body_type > 0 && env->body_type <= QUEUE_BODY_BINARYMIME)
        show_field(out, "body_type", body[env->body_type]);
    if (env->smtputf8)
        show_field(out, "smtputf8", "yes");
    for (size_t i = 0; i < env->nrcpts; i++)
        show_rcpt(out, &env->rcpts[i]);
}

/* Copy the content to out with CRLF turned into LF (a CR at the end of
 * one read and its LF at the start of the next included). */
static int show_content(int fd, const struct queue_file *qf, FILE *out, const char **why)
{
    struct queue_content qc;
    char in[65536];
    bool cr = false;
    char last = '\n';
    ssize_t n;

    queue_content_open(&qc, fd, qf);
    while ((n = queue_content_read(&qc, in, sizeof(in), why)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (cr && in[i] != '\n')
                fputc('\r', out);
            cr = in[i] == '\r';
            if (!cr)
                fputc(in[i], out);
            last = in[i];
        }
    }
    if (cr)
        fputc('\r', out);
    if (last != '\n')
        fputc('\n', out);  /* the end marker goes on a line of its own */
    return n < 0 ? -1 : 0;
}

int mailgwq_show(int fd, const char *id, FILE *out, const char **why)
{
    struct queue_file qf;
    struct buf text = BUF_INIT;
    int rc;

    memset(&qf, 0, sizeof(qf));
    if (queue_file_read(fd, &qf, why) < 0) {
        queue_file_free(&qf);
        return -1;
    }
    buf_printf(&text, "*** ENVELOPE RECORDS %s ***\n", id);
    show_envelope(&text, &qf);
    buf_printf(&text, "*** MESSAGE CONTENTS %s ***\n", id);
    fwrite(text.data, 1, text.len, out);
    rc = show_content(fd, &qf, out, why);
    if (rc == 0)
        fprintf(out, "*** MESSAGE FILE END %s ***\n", id);
    buf_free(&text);
    queue_file_free(&qf);
    return rc;
}
