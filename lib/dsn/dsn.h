/*
 * dsn - delivery status notifications (RFC 3461-3464): the bounce, delay
 * and success reports qmgr queues back to a message's sender.
 *
 * qmgr decides *when* to report; this module builds *what* is sent:
 *   dsn_should_bounce()     never a report to the null sender <>, never a
 *                           report about a report (checks the envelope,
 *                           and the content through dsn_is_notification)
 *   dsn_rcpt_wants()        does a recipient's NOTIFY ask for this action
 *   dsn_build()             the complete RFC 5322 message, CRLF, as bytes:
 *                           multipart/report; report-type=delivery-status
 *                           1. text/plain from the template (conf/dsn.tmpl)
 *                           2. message/delivery-status (RFC 3464 fields)
 *                           3. message/rfc822 (full original, failures with
 *                              RET=FULL or no RET) or text/rfc822-headers
 *                              (RET=HDRS, and every delay/success report)
 *   dsn_envelope_make()     the new message's envelope: null sender, one
 *                           recipient = the original sender
 *   dsn_queue_write()       writes envelope + report into a queue file fd
 *                           with the lib/queue writer (END + fsync), ready
 *                           for the ordinary commit
 *
 * Use (qmgr, for one message already read with queue_file_read):
 *   if (dsn_should_bounce(&qf.env, fd, &qf, &why) != DSN_SEND)
 *       log_info("%s: %s", id, why);            // "no bounce to <>"
 *   else {
 *       struct dsn_rcpt_report r[] = {{ rcpt->addr, rcpt->orcpt,
 *           DSN_ACTION_FAILED, "5.1.1", relay, reply, now, 0 }};
 *       struct dsn_request req = { .fd = fd, .qf = &qf, .hostname = host,
 *           .queue_id = id, .reports = r, .nreports = 1 };
 *       dsn_build(&req, &msg, &why);             // then:
 *       dsn_envelope_make(&de, &qf.env, &msg, now_us);
 *       dsn_queue_write(newfd, &de, &msg, &why); // newfd: tmp/NEWID
 *       ... commit NEWID like any message, mark rcpt QUEUE_RCPT_BOUNCED,
 *       dsn_envelope_free(&de); dsn_message_free(&msg);
 *   }
 *
 * One report has one type: any "failed" recipient makes it a failure
 * report, else any "delayed" a delay report, else a success report.  qmgr
 * sends one report per type (as Postfix), so it groups recipients first.
 *
 * Security: every string here may come from the network (envelope from
 * SMTP, diagnostic text from a remote server).  No CR, LF, NUL or other
 * control character reaches a header or a report field; 8-bit addresses
 * appear raw only when the original was SMTPUTF8 (else in xtext form);
 * diagnostic text is reduced to printable ASCII; template values are
 * inserted literally and never re-scanned; no line exceeds 998 octets;
 * the MIME boundary is checked against every part.
 */
#ifndef MAILGW_DSN_H
#define MAILGW_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "queue/queue_file.h"
#include "util/buf.h"

/* Postfix's bounce_size_limit: bytes of original text returned. */
#define DSN_DEFAULT_CONTENT_LIMIT 50000
/* Diagnostic text longer than this is cut (a hostile server's reply). */
#define DSN_MAX_DIAGNOSTIC 2048

enum dsn_action {
    DSN_ACTION_FAILED,
    DSN_ACTION_DELAYED,
    DSN_ACTION_DELIVERED,
    DSN_ACTION_RELAYED,
    DSN_ACTION_EXPANDED,
};

enum dsn_type { DSN_TYPE_FAILURE, DSN_TYPE_DELAY, DSN_TYPE_SUCCESS };

struct dsn_rcpt_report {
    const char *final_rcpt;     /* recipient address, without <> */
    const char *orcpt;          /* ORCPT as received ("rfc822;a+2Bb@x",
                                 * xtext allowed) or NULL */
    enum dsn_action action;
    const char *status;         /* "5.1.1"; NULL or malformed = the
                                 * action's default (5.0.0/4.0.0/2.0.0) */
    const char *remote_mta;     /* "host", "NAME[IP]:PORT" (smtp's relay=)
                                 * or NULL/"none" */
    const char *diagnostic;     /* SMTP reply text or our own, or NULL */
    time_t last_attempt;        /* 0 = now */
    time_t will_retry_until;    /* delayed only; 0 = not given */
};

struct dsn_request {
    int fd;                     /* original queue file, read-only */
    const struct queue_file *qf;        /* parsed with queue_file_read */
    const char *hostname;       /* Reporting-MTA ([mailgw.network] Hostname) */
    const char *queue_id;       /* the original message's ID */
    const char *template_text;  /* NULL = the built-in default */
    size_t template_len;
    size_t content_limit;       /* 0 = DSN_DEFAULT_CONTENT_LIMIT */
    time_t now;                 /* 0 = time(NULL) */
    const struct dsn_rcpt_report *reports;
    size_t nreports;
    /* Boundaries to try before random ones; NULL normally (tests use it
     * to prove that a boundary found in the content is never used). */
    const char *const *boundary_candidates;
};

struct dsn_message {
    struct buf text;            /* the whole message, CRLF line ends */
    enum dsn_type type;
    bool eight_bit;             /* has 8-bit octets: send as 8BITMIME */
    bool smtputf8;              /* raw UTF-8 addresses: needs SMTPUTF8 */
    bool truncated;             /* the returned original was cut */
    char boundary[64];
    char message_id[320];
};

/* Result of dsn_should_bounce. */
enum dsn_verdict {
    DSN_SEND = 0,
    DSN_NO_NULL_SENDER,         /* "no bounce to <>" */
    DSN_NO_NOTIFICATION,        /* "no bounce about a delivery report" */
};

/* Whether a report about this message may be sent.  fd/qf may be -1/NULL
 * (envelope check only); with them the content's headers are checked by
 * dsn_is_notification.  *why (if not NULL) gets a static text for the
 * caller's log line when the answer is not DSN_SEND. */
enum dsn_verdict dsn_should_bounce(const struct queue_envelope *env, int fd,
                                   const struct queue_file *qf, const char **why);

/* true when the message header block at the start of content (len bytes,
 * any prefix of the message is fine) is a delivery status notification:
 * Content-Type multipart/report with report-type=delivery-status, or
 * From MAILER-DAEMON with Auto-Submitted: auto-replied (ours). */
bool dsn_is_notification(const char *content, size_t len);

/* Whether a recipient's NOTIFY bits (enum queue_notify, 0 = not given)
 * ask for a report with this action.  Without NOTIFY: failures and
 * delays yes, successes no (RFC 3461 §4.1). */
bool dsn_rcpt_wants(unsigned notify, enum dsn_action action);

/* The report type a list of actions makes (see above). */
enum dsn_type dsn_type_of(const struct dsn_rcpt_report *reports, size_t n);

/* Build the report into msg (initialised here; dsn_message_free after,
 * also on failure).  -1 with *why on an unreadable original, no reports,
 * or a null sender (nothing is built for <>). */
int dsn_build(const struct dsn_request *req, struct dsn_message *msg, const char **why);
void dsn_message_free(struct dsn_message *msg);

/* Envelope of the report: sender "" (null), one recipient = the original
 * sender (NOTIFY=NEVER: no report about a report), body type 8BITMIME
 * when the report has 8-bit octets, SMTPUTF8 when it needs it. */
struct dsn_envelope {
    struct queue_envelope env;
    struct queue_rcpt rcpt;
    char *rcpt_addr;
};

void dsn_envelope_make(struct dsn_envelope *de, const struct queue_envelope *orig,
                       const struct dsn_message *msg, uint64_t now_us);
void dsn_envelope_free(struct dsn_envelope *de);

/* Write de + msg into fd (an empty queue file from tmp/) with the lib/queue
 * writer, END and fsync included.  0, or -1 with *why (errno kept). */
int dsn_queue_write(int fd, const struct dsn_envelope *de, const struct dsn_message *msg,
                    const char **why);

/* Read a template file (at most 64 KiB) into out.  0 / -1 with *why. */
int dsn_template_load(const char *path, struct buf *out, const char **why);
/* The built-in template (the same text as conf/dsn.tmpl). */
const char *dsn_template_default(void);

/* Names for log lines and the Action field ("failed", ...). */
const char *dsn_action_name(enum dsn_action a);

#endif
