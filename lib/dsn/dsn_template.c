/*
 * dsn_template - the human-readable part of a report: the template
 * (conf/dsn.tmpl, or the built-in copy) with %MACRO% substitution.
 *
 * Interface: dsn_template_load(), dsn_template_default() (dsn.h);
 * dsn_template_expand(), dsn_text_part() (dsn_int.h).
 *
 * The template language is deliberately tiny: %NAME% is replaced by a
 * value, %% is a percent sign, '#' at the start of a line makes a
 * comment; there is nothing else (no code, no conditionals).  Values come
 * from the envelope and from remote servers' replies, so they are copied
 * literally and the scan continues after them: "%SENDER%" inside a
 * diagnostic is text, never a macro.  Values are cleaned (dsn_text.c)
 * before they get here.
 *
 * Diagnostics: dsn_template_load returns -1 with a static reason.
 */
#include "dsn/dsn_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DSN_TEMPLATE_MAX 65536
#define DSN_MACRO_NAME_MAX 32

static const char dsn_builtin[] =
    "This is the mail system at host %HOSTNAME%.\n"
    "\n"
    "%ACTION_TEXT%\n"
    "\n"
    "For further assistance, please send mail to postmaster.\n"
    "\n"
    "If you do so, please include this problem report. You can\n"
    "delete your own text from the attached returned message.\n"
    "\n"
    "                   The mail system\n"
    "\n"
    "Queue ID: %QUEUE_ID%\n"
    "Sender:   <%SENDER%>\n"
    "Arrived:  %DATE%\n"
    "\n"
    "%RECIPIENTS%\n";

const char *dsn_template_default(void)
{
    return dsn_builtin;
}

int dsn_template_load(const char *path, struct buf *out, const char **why)
{
    char chunk[8192];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    ssize_t r;

    if (fd < 0) {
        *why = "cannot open the template";
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "the template is not a regular file";
        close(fd);
        return -1;
    }
    buf_reset(out);
    while ((r = read(fd, chunk, sizeof chunk)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || out->len + (size_t)r > DSN_TEMPLATE_MAX) {
            *why = r < 0 ? "cannot read the template" : "the template is over 64 KiB";
            close(fd);
            return -1;
        }
        buf_append(out, chunk, (size_t)r);
    }
    close(fd);
    return 0;
}

static const char *dsn_macro_find(const struct dsn_macro *macros, size_t n, const char *name,
                                  size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(macros[i].name) == len && memcmp(macros[i].name, name, len) == 0)
            return macros[i].value;
    }
    return NULL;
}

/* Length of the macro name after the '%' at p (up to the closing '%'),
 * or 0 when p does not start a macro reference. */
static size_t dsn_macro_len(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && i <= DSN_MACRO_NAME_MAX && ((p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_'))
        i++;
    return (i > 0 && i < n && p[i] == '%') ? i : 0;
}

void dsn_template_expand(struct buf *out, const char *tmpl, size_t len,
                         const struct dsn_macro *macros, size_t nmacros)
{
    size_t i = 0;

    while (i < len) {
        if (tmpl[i] == '#' && (i == 0 || tmpl[i - 1] == '\n')) {
            while (i < len && tmpl[i] != '\n')
                i++;
            i++;
            continue;
        }
        if (tmpl[i] == '%' && i + 1 < len && tmpl[i + 1] == '%') {
            buf_append_byte(out, '%');
            i += 2;
            continue;
        }
        if (tmpl[i] == '%') {
            size_t n = dsn_macro_len(tmpl + i + 1, len - i - 1);
            const char *v = n ? dsn_macro_find(macros, nmacros, tmpl + i + 1, n) : NULL;
            if (v) {
                buf_append_str(out, v);
                i += n + 2;
                continue;
            }
        }
        buf_append_byte(out, (uint8_t)tmpl[i]);
        i++;
    }
}

static const char *dsn_action_text(enum dsn_type type)
{
    switch (type) {
    case DSN_TYPE_FAILURE:
        return "I'm sorry to have to inform you that your message could not\n"
               "be delivered to one or more recipients. It's attached below.";
    case DSN_TYPE_DELAY:
        return "####################################################################\n"
               "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
               "####################################################################\n"
               "\n"
               "Your message could not be delivered yet to the recipients below.\n"
               "The mail system will keep trying to deliver it.";
    case DSN_TYPE_SUCCESS:
        break;
    }
    return "Your message was successfully delivered to the destination(s)\n"
           "listed below. If the message was delivered to a mailbox you will\n"
           "receive no further notifications. Otherwise you may still receive\n"
           "notifications of mail delivery errors from other systems.";
}

/* The address part of an ORCPT ("type;xtext"), decoded and cleaned. */
static void dsn_orcpt_text(struct buf *out, const char *orcpt, bool utf8_ok)
{
    const char *semi = strchr(orcpt, ';');
    struct buf dec = BUF_INIT;

    semi = semi ? semi + 1 : orcpt;
    dsn_xtext_decode(&dec, semi, strlen(semi));
    dsn_clean_addr(out, dec.data ? dec.data : "", utf8_ok);
    buf_free(&dec);
}

static void dsn_rcpt_line(struct buf *out, const struct dsn_rcpt_report *r, bool utf8_ok)
{
    struct buf remote = BUF_INIT, orig = BUF_INIT;
    size_t start = out->len;

    buf_append_byte(out, '<');
    dsn_clean_addr(out, r->final_rcpt ? r->final_rcpt : "", utf8_ok);
    buf_append_byte(out, '>');
    if (r->orcpt) {
        dsn_orcpt_text(&orig, r->orcpt, utf8_ok);
        if (orig.len && (orig.len != out->len - start - 2 ||
                         strncasecmp(orig.data, out->data + start + 1, orig.len) != 0))
            buf_printf(out, " (expanded from <%s>)", orig.data);
    }
    buf_append_str(out, ": ");
    dsn_remote_name(&remote, r->remote_mta);
    if (r->diagnostic && *r->diagnostic) {
        if (remote.len)
            buf_printf(out, r->action == DSN_ACTION_FAILED || r->action == DSN_ACTION_DELAYED
                                ? "host %s said: "
                                : "delivery via %s: ",
                       remote.data);
        dsn_clean_text(out, r->diagnostic, DSN_MAX_DIAGNOSTIC);
    } else {
        buf_printf(out, "%s (%s)", dsn_action_name(r->action), dsn_status_code(r));
    }
    buf_append_byte(out, '\n');
    buf_free(&remote);
    buf_free(&orig);
}

void dsn_text_part(struct buf *out, const struct dsn_request *req, enum dsn_type type,
                   bool utf8_ok)
{
    struct buf host = BUF_INIT, qid = BUF_INIT, sender = BUF_INIT, rcpts = BUF_INIT;
    struct buf text = BUF_INIT;
    char date[64];
    const char *tmpl = req->template_text ? req->template_text : dsn_builtin;
    size_t tlen = req->template_text ? req->template_len : strlen(dsn_builtin);

    dsn_clean_host(&host, req->hostname);
    dsn_clean_id(&qid, req->queue_id);
    dsn_clean_addr(&sender, req->qf->env.sender, utf8_ok);
    dsn_date(date, sizeof date, (time_t)(req->qf->env.arrival_us / 1000000));
    for (size_t i = 0; i < req->nreports; i++)
        dsn_rcpt_line(&rcpts, &req->reports[i], utf8_ok);
    if (rcpts.len)
        rcpts.data[--rcpts.len] = 0;    /* the template ends the line */
    const struct dsn_macro macros[] = {
        { "HOSTNAME", host.data ? host.data : "" },
        { "SENDER", sender.data ? sender.data : "" },
        { "RECIPIENTS", rcpts.data ? rcpts.data : "" },
        { "QUEUE_ID", qid.data ? qid.data : "" },
        { "DATE", date },
        { "ACTION_TEXT", dsn_action_text(type) },
    };
    dsn_template_expand(&text, tmpl, tlen, macros, sizeof macros / sizeof macros[0]);
    dsn_text_lines(out, text.data ? text.data : "", text.len);
    buf_free(&host);
    buf_free(&qid);
    buf_free(&sender);
    buf_free(&rcpts);
    buf_free(&text);
}
