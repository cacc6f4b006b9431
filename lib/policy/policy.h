/*
 * policy - what happens to a scanned message, per policy group (DESIGN §7,
 * reference §1.13, §2.1, §2.2, §2.5, §10; issue 6).
 *
 * Groups: [mailgw.policy] is the default group (index -1, name "policy");
 * [mailgw.group:NAME] sections are tried in file order and the first
 * whose masks match the (sender, recipient) pair wins: Senders must match
 * the sender when given, Recipients the recipient when given (both when
 * both are given; a group with neither matches nothing).  policy_split()
 * cuts a recipient list into one set per group, in order of first
 * appearance.
 *
 * Decision (policy_decide): from the objects' statuses as this group sees
 * them (its own IncludeBy/ExcludeBy filter applied by the caller): the
 * per-object action (Action*), whether the message is blocked
 * (BlockMessage), which notifications go out (NotifyAdmin/Sender/
 * Recipient), the store copy (SaveInQB: quarantine when blocked, backup
 * when delivered) and whether delivered content must be rewritten
 * (objects removed or replaced, X-Anti-Virus header, disclaimer).  In the
 * status lists "error" also covers corrupted; "all" every status; clean
 * is never in a list.  Check=false: nothing is decided from the scan (the
 * message is delivered, X-Anti-Virus says not_checked).
 *
 * Rewriting (policy_rewrite): a complete new content, CRLF line ends,
 * written through a sink: objects removed or replaced by a text/plain
 * part from PlaceholderTemplate, earlier X-Anti-Virus headers dropped and
 * ours added on top, the disclaimer added.  Bytes of the original that
 * are kept are copied verbatim.  An object that cannot be cut out cleanly
 * (inside an encoded container, an ambiguous multipart, a uuencoded
 * block, an alternative decoding) takes its nearest clean ancestor with
 * it, up to the whole body.
 *
 * Notifications (policy_notification): complete messages (headers + body,
 * CRLF) expanded from the group's templates, with Auto-Submitted:
 * auto-generated and X-Mailgw-Notification: KIND; the admin copy may carry
 * the original as message/rfc822 when it fits a byte budget.
 * policy_is_notification() recognises our own notices, about which no
 * notice is ever sent.
 *
 * Security: every input from the message is peer data; template values
 * are copied, never interpreted (lib/template); header values of
 * notifications are made header-safe; nothing is written into the
 * original.
 */
#ifndef MAILGW_POLICY_H
#define MAILGW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

#define POLICY_VERSION "1.0"
#define POLICY_PRODUCT "mailgw " POLICY_VERSION
#define POLICY_NOTIFY_HEADER "X-Mailgw-Notification"

struct conf;
struct mime_msg;
struct mime_part;
struct template;

/* Statuses of reference §2.1 in increasing order of badness. */
enum policy_status {
    POLICY_CLEAN = 0,
    POLICY_DISINFECTED,
    POLICY_FILTERED,
    POLICY_CORRUPTED,
    POLICY_ERROR,
    POLICY_PROTECTED,
    POLICY_SUSPICIOUS,
    POLICY_INFECTED,
    POLICY_NSTATUS
};

enum policy_action { POLICY_PASS = 0, POLICY_REMOVE, POLICY_PLACEHOLDER };
enum policy_save { POLICY_SAVE_NONE = 0, POLICY_SAVE_QUARANTINE, POLICY_SAVE_BACKUP };
enum policy_notify { POLICY_NOTIFY_ADMIN = 0, POLICY_NOTIFY_SENDER, POLICY_NOTIFY_RECIPIENT };

const char *policy_status_name(enum policy_status st);
/* -1 when name is no status. */
int policy_status_parse(const char *name);
const char *policy_action_name(enum policy_action a);
const char *policy_save_name(enum policy_save s);
const char *policy_notify_name(enum policy_notify k);   /* "admin", ... */

/* ---- groups ---- */

/* The group of one (sender, recipient) pair: a group index or -1. */
int policy_group_for(const struct conf *c, const char *sender, const char *rcpt);
/* "policy" for -1, else the section's NAME. */
const char *policy_group_name(const struct conf *c, int group);

struct policy_set {
    int group;
    const char **rcpts;         /* pointers into the caller's list */
    size_t nrcpts;
};

/* One set per group that has recipients, in order of first appearance. */
size_t policy_split(const struct conf *c, const char *sender, const char *const *rcpts,
                    size_t n, struct policy_set **sets);
void policy_sets_free(struct policy_set *sets, size_t n);

/* ---- decision ---- */

/* One scanned object as a group sees it. */
struct policy_object {
    const char *name;
    const char *type;
    const char *virus;              /* "" when none */
    enum policy_status status;
    struct mime_part *part;         /* what was scanned; NULL = the message */
};

struct policy_verdict {
    int group;
    bool checked;                   /* Check=true */
    enum policy_status status;      /* worst object status (clean unchecked) */
    struct buf names;               /* virus names, ", " separated, unique */
    enum policy_action *actions;    /* per object, nobjs of them */
    size_t nobjs;
    bool block;
    bool notify[3];                 /* enum policy_notify */
    enum policy_save save;
    bool cut;                       /* an object is removed or replaced */
    bool rewrite;                   /* delivered content differs */
};

void policy_decide(const struct conf *c, int group, bool checked,
                   const struct policy_object *objs, size_t n, struct policy_verdict *v);
void policy_verdict_free(struct policy_verdict *v);
/* "blocked", "delivered", "delivered with objects removed", plus
 * ", quarantined" / ", backed up". */
void policy_actions_text(const struct policy_verdict *v, struct buf *out);

/* ---- facts the texts use ---- */

struct policy_facts {
    const char *queue_id;
    const char *sender;             /* "" = <> */
    const char *const *rcpts;       /* the group's recipients */
    size_t nrcpts;
    const char *client_ip, *client_name, *helo;
    uint64_t arrival_us;
    uint64_t size;                  /* content bytes */
    const char *hostname, *postmaster;
    time_t bases_time;              /* anti-virus bases date (0 unknown) */
    unsigned bases_records;
    time_t now;                     /* 0 = time(NULL) */
};

/* The scan-status header line without CRLF:
 * "X-Anti-Virus: mailgw 1.0, bases: 20240101 #8700000, check: 20240102 clean" */
void policy_xheader(const struct policy_verdict *v, const struct policy_facts *f,
                    struct buf *out);

/* ---- rewriting ---- */

typedef int (*policy_sink_fn)(void *arg, const void *p, size_t n);

/* Write the content the group's recipients get.  msg is the original,
 * parsed; objs/v as given to and from policy_decide.  0, or -1 when the
 * sink failed. */
int policy_rewrite(const struct conf *c, const struct policy_verdict *v,
                   const struct policy_object *objs, struct mime_msg *msg,
                   const struct policy_facts *f, policy_sink_fn sink, void *arg);

/* ---- notifications ---- */

/* true when msg is one of our notifications (Auto-Submitted other than
 * "no" and an X-Mailgw-Notification header). */
bool policy_is_notification(struct mime_msg *msg);

/* One complete notification message for target (the To: address).
 * original/orig_len: the original message to attach (admin only, may be
 * NULL); it is attached only when the result stays within budget bytes,
 * else the text says it was left out.  The message is appended to out. */
void policy_notification(const struct conf *c, const struct policy_verdict *v,
                         const struct policy_object *objs, struct mime_msg *msg,
                         const struct policy_facts *f, enum policy_notify kind,
                         const char *target, const void *original, size_t orig_len,
                         size_t budget, struct buf *out);

/* Where a group's notices come from / go to (Postmaster when unset). */
const char *policy_notify_from(const struct conf *c, int group);
const char *policy_admin_address(const struct conf *c, int group);

/* The compiled template for a CONF_TEMPLATE parameter of a group: the
 * configured one, or the built-in text (conf/templates/ as shipped). */
const struct template *policy_template(const struct conf *c, int group, const char *param);
/* The built-in text of a template parameter (NULL for an unknown one). */
const char *policy_builtin_text(const char *param);

#endif
