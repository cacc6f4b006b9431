/*
 * policy_notify - notifications to the admin, the sender and the
 * recipients (policy.h; reference §10, issue 6), and the template
 * variables every policy text uses.
 *
 * Interface: policy_notification(), policy_is_notification(),
 * policy_vars_fill(), policy_vars_free(), policy_msg_header()
 * (policy_int.h).
 *
 * A notification is the group's template expanded as a message
 * (TEMPLATE_MESSAGE | TEMPLATE_CRLF: header values made header-safe),
 * then completed: From:, To:, Date:, Message-ID:, Auto-Submitted:
 * auto-generated are added when the template lacks them, and
 * X-Mailgw-Notification: KIND always.  With an original to attach (admin)
 * the text becomes the first part of a multipart/mixed and the original
 * the second, as message/rfc822; when that would pass the byte budget the
 * original is left out and the text says so.
 *
 * Security: values from the message (subject, names, addresses) reach
 * the text only as template values: never parsed as template syntax,
 * header-safe in headers.
 */
#include "policy/policy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf.h"
#include "mime/mime.h"
#include "util/mem.h"

char *policy_msg_header(struct mime_msg *msg, const char *name)
{
    const char *v = msg && msg->root ? mime_part_header(msg->root, name, 0) : NULL;
    bool bad = false;
    if (v == NULL)
        return xstrdup("");
    return mime_decode_words(v, strlen(v), &bad);
}

bool policy_is_notification(struct mime_msg *msg)
{
    const char *as = msg && msg->root ? mime_part_header(msg->root, "Auto-Submitted", 0) : NULL;
    const char *mark = msg && msg->root ? mime_part_header(msg->root, POLICY_NOTIFY_HEADER, 0)
                                        : NULL;
    if (as == NULL || mark == NULL)
        return false;
    while (*as == ' ' || *as == '\t')
        as++;
    return strncasecmp(as, "no", 2) != 0 || (as[2] && as[2] != ' ' && as[2] != ';');
}

static const char *keep(struct buf *b, const char *s)
{
    buf_reset(b);
    buf_append_str(b, s ? s : "");
    buf_append_byte(b, 0);
    return b->data;
}

static void rfc5322_date(char *d, size_t size, time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(d, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* Message facts: From, To, Subject, Message-ID of the original. */
static void vars_message(struct policy_vars *pv, struct mime_msg *msg)
{
    static const struct { int macro; const char *header; } hs[] = {
        { TEMPLATE_FROM, "From" }, { TEMPLATE_TO, "To" }, { TEMPLATE_SUBJECT, "Subject" },
        { TEMPLATE_MESSAGE_ID, "Message-ID" },
    };
    for (size_t i = 0; i < 4; i++) {
        char *v = policy_msg_header(msg, hs[i].header);
        pv->v.value[hs[i].macro] = keep(&pv->strs[i], v);
        free(v);
    }
}

static void vars_objects(struct policy_vars *pv, const struct policy_verdict *v,
                         const struct policy_object *objs)
{
    pv->objs = xcalloc(v->nobjs ? v->nobjs : 1, sizeof *pv->objs);
    for (size_t i = 0; i < v->nobjs; i++) {
        if (objs[i].status == POLICY_CLEAN)
            continue;
        pv->objs[pv->v.nobjects++] = (struct template_object){
            objs[i].name, objs[i].type, policy_status_name(objs[i].status),
            objs[i].virus ? objs[i].virus : "", policy_action_name(v->actions[i]),
        };
    }
    pv->v.objects = pv->objs;
}

void policy_vars_fill(const struct conf *c, const struct policy_verdict *v,
                      const struct policy_object *objs, struct mime_msg *msg,
                      const struct policy_facts *f, struct policy_vars *pv)
{
    char d[64];
    struct buf *rc = &pv->strs[4];

    memset(pv, 0, sizeof *pv);
    template_vars_init(&pv->v);
    vars_message(pv, msg);
    for (size_t i = 0; i < f->nrcpts; i++)
        buf_printf(rc, "%s%s", i ? ", " : "", f->rcpts[i]);
    buf_append_byte(rc, 0);
    pv->v.value[TEMPLATE_RECIPIENTS] = rc->data;
    pv->v.recipients = f->rcpts;
    pv->v.nrecipients = f->nrcpts;
    policy_actions_text(v, &pv->strs[5]);
    buf_append_byte(&pv->strs[5], 0);
    pv->v.value[TEMPLATE_ACTIONS] = pv->strs[5].data;
    rfc5322_date(d, sizeof d, (time_t)(f->arrival_us / 1000000));
    pv->v.value[TEMPLATE_ARRIVAL_DATE] = keep(&pv->strs[6], d);
    snprintf(d, sizeof d, "%llu", (unsigned long long)f->size);
    pv->v.value[TEMPLATE_SIZE] = keep(&pv->strs[7], d);
    pv->v.value[TEMPLATE_SENDER] = f->sender;
    pv->v.value[TEMPLATE_CLIENT_IP] = f->client_ip;
    pv->v.value[TEMPLATE_CLIENT_NAME] = f->client_name;
    pv->v.value[TEMPLATE_HELO] = f->helo;
    pv->v.value[TEMPLATE_STATUS] = v->checked ? policy_status_name(v->status) : "not_checked";
    pv->v.value[TEMPLATE_VIRUS_NAMES] = v->names.len ? v->names.data : "";
    pv->v.value[TEMPLATE_GROUP] = policy_group_name(c, v->group);
    pv->v.value[TEMPLATE_QUEUE_ID] = f->queue_id;
    pv->v.value[TEMPLATE_QUARANTINE_ID] = v->save == POLICY_SAVE_QUARANTINE ? "quarantine"
                                          : v->save == POLICY_SAVE_BACKUP ? "backup"
                                                                          : "not stored";
    pv->v.value[TEMPLATE_HOSTNAME] = f->hostname;
    pv->v.value[TEMPLATE_POSTMASTER] = f->postmaster;
    pv->v.value[TEMPLATE_ADMIN] = policy_admin_address(c, v->group);
    pv->v.value[TEMPLATE_NOTIFY_FROM] = policy_notify_from(c, v->group);
    pv->v.value[TEMPLATE_PRODUCT] = POLICY_PRODUCT;
    vars_objects(pv, v, objs);
}

void policy_vars_free(struct policy_vars *pv)
{
    for (size_t i = 0; i < sizeof pv->strs / sizeof pv->strs[0]; i++)
        buf_free(&pv->strs[i]);
    free(pv->objs);
}

/* Split an expanded message at its first empty line. */
static void split_message(const struct buf *m, size_t *hdr_end, size_t *body_off)
{
    const char *p = m->data ? memmem(m->data, m->len, "\r\n\r\n", 4) : NULL;
    if (m->len >= 2 && memcmp(m->data, "\r\n", 2) == 0) {
        *hdr_end = 0;
        *body_off = 2;
    } else if (p == NULL) {
        *hdr_end = *body_off = m->len;
    } else {
        *hdr_end = (size_t)(p - m->data) + 2;
        *body_off = *hdr_end + 2;
    }
}

/* Is there a field called name in the header block h (len bytes)? */
static bool has_field(const char *h, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < len;) {
        if (strncasecmp(h + i, name, nl) == 0 && h[i + nl] == ':')
            return true;
        const char *e = memmem(h + i, len - i, "\r\n", 2);
        if (e == NULL)
            break;
        i = (size_t)(e - h) + 2;
    }
    return false;
}

enum fields { FIELDS_ALL, FIELDS_NO_CONTENT, FIELDS_CONTENT };

/* Copy the header fields of h that which selects. */
static void copy_fields(struct buf *out, const char *h, size_t len, enum fields which)
{
    for (size_t i = 0; i < len;) {
        const char *e = memmem(h + i, len - i, "\r\n", 2);
        size_t end = e ? (size_t)(e - h) + 2 : len;
        /* a field with its continuation lines */
        while (end < len && (h[end] == ' ' || h[end] == '\t')) {
            e = memmem(h + end, len - end, "\r\n", 2);
            end = e ? (size_t)(e - h) + 2 : len;
        }
        bool version = strncasecmp(h + i, "MIME-Version:", 13) == 0;
        bool content = strncasecmp(h + i, "Content-", 8) == 0;
        if (which == FIELDS_ALL || (which == FIELDS_CONTENT && content) ||
            (which == FIELDS_NO_CONTENT && !content && !version))
            buf_append(out, h + i, end - i);
        i = end;
    }
}

static void add_missing_fields(struct buf *out, const char *h, size_t len,
                               const struct conf *c, const struct policy_verdict *v,
                               const struct policy_facts *f, const char *target,
                               enum policy_notify kind)
{
    char d[64];
    if (!has_field(h, len, "From"))
        buf_printf(out, "From: %s\r\n", policy_notify_from(c, v->group));
    if (!has_field(h, len, "To"))
        buf_printf(out, "To: %s\r\n", target);
    if (!has_field(h, len, "Date")) {
        rfc5322_date(d, sizeof d, time(NULL));
        buf_printf(out, "Date: %s\r\n", d);
    }
    if (!has_field(h, len, "Message-ID"))
        buf_printf(out, "Message-ID: <%s.%s.%lld@%s>\r\n", f->queue_id, policy_notify_name(kind),
                   (long long)time(NULL), f->hostname);
    if (!has_field(h, len, "Auto-Submitted"))
        buf_append_str(out, "Auto-Submitted: auto-generated\r\n");
    buf_printf(out, "%s: %s\r\n", POLICY_NOTIFY_HEADER, policy_notify_name(kind));
}

static void attach_original(struct buf *out, const char *h, size_t hlen, const struct buf *m,
                            size_t body_off, const void *original, size_t orig_len)
{
    char b[80];
    snprintf(b, sizeof b, "=_mailgw_notice_%llx", (unsigned long long)time(NULL) * 2654435761ULL);
    buf_printf(out, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
               "--%s\r\n", b, b);
    copy_fields(out, h, hlen, FIELDS_CONTENT);
    if (!has_field(h, hlen, "Content-Type"))
        buf_append_str(out, "Content-Type: text/plain; charset=utf-8\r\n");
    buf_append_str(out, "\r\n");
    buf_append(out, m->data + body_off, m->len - body_off);
    buf_printf(out, "\r\n--%s\r\nContent-Type: message/rfc822\r\n"
               "Content-Disposition: attachment; filename=\"original.eml\"\r\n\r\n", b);
    buf_append(out, original, orig_len);
    if (orig_len < 2 || memcmp((const char *)original + orig_len - 2, "\r\n", 2) != 0)
        buf_append_str(out, "\r\n");
    buf_printf(out, "--%s--\r\n", b);
}

static const char *const notify_param[3] = {
    "NotifyAdminTemplate", "NotifySenderTemplate", "NotifyRecipientTemplate",
};

void policy_notification(const struct conf *c, const struct policy_verdict *v,
                         const struct policy_object *objs, struct mime_msg *msg,
                         const struct policy_facts *f, enum policy_notify kind,
                         const char *target, const void *original, size_t orig_len,
                         size_t budget, struct buf *out)
{
    struct policy_vars pv;
    struct buf m = BUF_INIT;
    size_t hdr_end, body_off;

    policy_vars_fill(c, v, objs, msg, f, &pv);
    pv.v.value[TEMPLATE_RECIPIENT] = target;
    template_expand(policy_template(c, v->group, notify_param[kind]), &pv.v,
                    TEMPLATE_MESSAGE | TEMPLATE_CRLF, &m);
    policy_vars_free(&pv);
    split_message(&m, &hdr_end, &body_off);
    const char *h = m.data ? m.data : "";
    if (original != NULL && m.len + orig_len + 1024 > budget) {
        buf_printf(&m, "\r\nThe original message (%zu bytes) is too large to be attached "
                   "to this notice.\r\n", orig_len);
        h = m.data;
        original = NULL;
    }
    add_missing_fields(out, h, hdr_end, c, v, f, target, kind);
    if (original != NULL) {
        copy_fields(out, h, hdr_end, FIELDS_NO_CONTENT);
        attach_original(out, h, hdr_end, &m, body_off, original, orig_len);
    } else {
        copy_fields(out, h, hdr_end, FIELDS_ALL);
        buf_append_str(out, "\r\n");
        if (body_off < m.len)
            buf_append(out, m.data + body_off, m.len - body_off);
    }
    buf_free(&m);
}
