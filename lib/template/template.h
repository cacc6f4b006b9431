/*
 * template - the small, safe template language of notifications,
 * placeholders and disclaimers (issue 6; mailgw-templates(5)).
 *
 * Syntax:
 *   %NAME%              a macro (names in the table of template.c, e.g.
 *                       %SENDER%, %VIRUS_NAMES%, %QUEUE_ID%); unset
 *                       macros expand to nothing; %DATE% defaults to now
 *                       (RFC 5322), %CRLF% and %TAB% are fixed
 *   %%                  a literal percent sign
 *   %FOREACH OBJECT% ... %END%
 *                       repeats the body once per scanned object; inside,
 *                       %OBJECT_NAME% %OBJECT_TYPE% %OBJECT_STATUS%
 *                       %OBJECT_VIRUS% %OBJECT_ACTION%
 *   %FOREACH RECIPIENT% ... %END%
 *                       once per recipient; inside, %RECIPIENT_ADDR%
 * Blocks do not nest.  A macro never spans lines.
 *
 * A template is compiled once (template_compile / template_load); errors
 * are reported as "FILE:LINE: unknown macro %FOO%", "FILE:LINE:
 * unterminated block %FOREACH OBJECT%", ... one per line in err, and the
 * template is refused (a config error at start or reload for whoever
 * loads it).
 *
 * Security: expansion copies values literally into the output; a value is
 * never scanned for template syntax (a subject "%SENDER%" stays that
 * text), and nothing is executed.  Header-safe expansion replaces CR, LF
 * and other control characters in values by a space (runs collapse), so
 * a value cannot start a new header line.
 */
#ifndef MAILGW_TEMPLATE_H
#define MAILGW_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define TEMPLATE_MAX_SIZE (64 * 1024)

/* Macros a caller can set (template_vars.value[]). */
enum template_macro {
    TEMPLATE_SENDER,        /* envelope sender ("" for <>) */
    TEMPLATE_RECIPIENTS,    /* all recipients, comma separated */
    TEMPLATE_RECIPIENT,     /* the recipient a notice goes to */
    TEMPLATE_CLIENT_IP,
    TEMPLATE_CLIENT_NAME,
    TEMPLATE_HELO,
    TEMPLATE_FROM,          /* the message's From: header */
    TEMPLATE_TO,            /* the message's To: header */
    TEMPLATE_SUBJECT,
    TEMPLATE_MESSAGE_ID,
    TEMPLATE_STATUS,        /* worst object status */
    TEMPLATE_VIRUS_NAMES,
    TEMPLATE_ACTIONS,       /* actions taken, e.g. "blocked, quarantined" */
    TEMPLATE_GROUP,
    TEMPLATE_QUEUE_ID,
    TEMPLATE_QUARANTINE_ID,
    TEMPLATE_DATE,          /* NULL = now, RFC 5322 */
    TEMPLATE_ARRIVAL_DATE,
    TEMPLATE_SIZE,
    TEMPLATE_HOSTNAME,
    TEMPLATE_POSTMASTER,
    TEMPLATE_ADMIN,         /* AdminNotifyAddress */
    TEMPLATE_NOTIFY_FROM,   /* NotifyFromAddress */
    TEMPLATE_REASON,
    TEMPLATE_PRODUCT,       /* e.g. "mailgw 1.0" */
    TEMPLATE_NMACROS,
};

struct template_object {
    const char *name;       /* file name or part description */
    const char *type;       /* MIME type */
    const char *status;     /* clean, infected, ... */
    const char *virus;      /* virus name or "" */
    const char *action;     /* pass, remove, placeholder */
};

struct template_vars {
    const char *value[TEMPLATE_NMACROS];    /* NULL = unset */
    const struct template_object *objects;
    size_t nobjects;
    const char *const *recipients;
    size_t nrecipients;
};

/* Expansion flags. */
enum template_flag {
    TEMPLATE_HEADER_SAFE = 1 << 0,  /* every value header-safe */
    TEMPLATE_MESSAGE = 1 << 1,      /* the template is a message: values in
                                     * the lines before its first empty
                                     * line (the headers) are header-safe */
    TEMPLATE_CRLF = 1 << 2,         /* line ends of the output as CRLF
                                     * (text and body values) */
};

struct template;

/* Compile text (len bytes, at most TEMPLATE_MAX_SIZE) named name (for the
 * diagnostics).  NULL on errors, each appended to err as one line. */
struct template *template_compile(const char *name, const char *text, size_t len,
                                   struct buf *err);
/* Read and compile a file.  NULL on errors (err has "PATH: ..." lines). */
struct template *template_load(const char *path, struct buf *err);
void template_free(struct template *t);
const char *template_name(const struct template *t);

void template_vars_init(struct template_vars *v);
/* Set a macro by its name (without %).  -1 when no such settable macro. */
int template_vars_set(struct template_vars *v, const char *name, const char *value);

/* Append the expansion to out (v NULL: every macro unset).  Returns 0 (expansion cannot fail on a
 * compiled template; the flags only change how values are copied). */
int template_expand(const struct template *t, const struct template_vars *v, unsigned flags,
                    struct buf *out);

/* Copy value into out made header-safe (CR/LF/controls -> one space). */
void template_header_safe(struct buf *out, const char *value);

/* Every macro name the language knows, NULL-terminated (for the docs). */
const char *const *template_macro_names(void);

#endif
