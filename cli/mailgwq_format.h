/*
 * mailgwq_format - the queue listing of `mailgwq -p` and `mailgwq -j`.
 *
 * A listing comes from qmgr's queue-list reply (CONTRACTS.md "Queue
 * administration"): per message q_id, q_state, q_size, q_arrival,
 * q_sender, then per pending recipient q_rcpt and q_reason; a new q_id
 * starts the next message.
 *
 * mailgwq_format_postfix() writes exactly what Postfix's `postqueue -p`
 * writes for the same queue (showq_compat, short-ID layout):
 *   "%-11s %7s %-20s %s"  heading "-Queue ID-" "--Size--"
 *                         "----Arrival Time----" "-Sender/Recipient-------"
 *   "%-11s %7ld %20.20s %s"  ID plus '*' (active) or '!' (hold), size,
 *                         asctime() cut to 20 columns, sender
 *                         ("MAILER-DAEMON" for the null sender)
 *   "%*s(%s)"             reason right-aligned to column 78, printed when
 *                         it differs from the previous recipient's
 *                         ("reason unavailable" after one that had one)
 *   41 spaces + recipient
 *   a blank line between messages and before the summary
 *   "-- N Kbytes in M Request(s)." (total size / 1024, truncated) or
 *   "Mail queue is empty".
 * Messages in corrupt/ are not listed by -p (Postfix does not show its
 * corrupt queue either); -j lists them with queue_name "corrupt".
 *
 * mailgwq_format_json() writes `postqueue -j`'s objects, one per line:
 *   {"queue_name": ..., "queue_id": ..., "arrival_time": N,
 *    "message_size": N, "forced_expire": false, "sender": ...,
 *    "recipients": [{"address": ..., "delay_reason": ...}, ...]}
 * with "delay_reason" only when there is one, strings escaped as Postfix
 * does (\" \\ \b \f \n \r \t, other controls \u00XX).
 *
 * Strings are made printable as Postfix does: control characters and
 * bytes that are not valid UTF-8 become '?'.
 */
#ifndef MAILGW_MAILGWQ_FORMAT_H
#define MAILGW_MAILGWQ_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "util/buf.h"

struct mailgwq_rcpt {
    char *addr;
    char *reason;               /* "" when none */
};

struct mailgwq_entry {
    char *id;
    char *state;                /* incoming|active|deferred|hold|corrupt */
    int64_t size;               /* content bytes */
    int64_t arrival;            /* unix seconds */
    char *sender;               /* "" = null sender */
    struct mailgwq_rcpt *rcpts;
    size_t nrcpts, caprcpts;
};

struct mailgwq_queue {
    struct mailgwq_entry *v;
    size_t n, cap;
};

void mailgwq_queue_init(struct mailgwq_queue *q);
void mailgwq_queue_free(struct mailgwq_queue *q);

/* Append a message / a recipient of the last message (copies strings). */
struct mailgwq_entry *mailgwq_queue_add(struct mailgwq_queue *q, const char *id,
                                        const char *state, int64_t size, int64_t arrival,
                                        const char *sender);
void mailgwq_entry_add_rcpt(struct mailgwq_entry *e, const char *addr, const char *reason);

/* Append the messages of one queue-list reply.  0, or -1 with *why when
 * the reply is malformed (a q_ attribute before the first q_id, a wrong
 * type). */
int mailgwq_queue_parse(struct mailgwq_queue *q, const struct proto_msg *m, const char **why);

void mailgwq_format_postfix(const struct mailgwq_queue *q, struct buf *out);
void mailgwq_format_json(const struct mailgwq_queue *q, struct buf *out);

/* Append s (n bytes) with control characters and invalid UTF-8 as '?'. */
void mailgwq_printable(struct buf *out, const char *s, size_t n);
/* Append s (n bytes) as the inside of a JSON string (postqueue -j rules). */
void mailgwq_json_quote(struct buf *out, const char *s, size_t n);

#endif
