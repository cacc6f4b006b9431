/*
 * policy_rewrite - the content a group's recipients get (policy.h):
 * objects removed or replaced by a placeholder part, our X-Anti-Virus
 * header on top, an optional disclaimer.
 *
 * Interface: policy_rewrite().
 *
 * How: the original is walked as lib/mime parsed it.  Each cut object is
 * lifted to the nearest "clean" entity: a MIME entity (not a uuencoded
 * block or an alternative decoding) of the primary parse, whose bytes lie
 * in the message itself (not in a decoded container) and whose parent
 * was split one way only (no competing boundaries); the whole message is
 * always clean.  Entities without a cut below them are copied byte for
 * byte; a multipart with cuts below is re-emitted as its preamble, the
 * delimiters and kept children as they were, and its epilogue; a removed
 * child disappears with its delimiter (a multipart left without children
 * gets an empty text/plain part); a replaced one becomes a text/plain
 * part with PlaceholderTemplate's text.  The top headers are copied field
 * by field without earlier X-Anti-Virus fields.  The disclaimer goes at
 * the end of a text/plain identity body, as a last part of a
 * multipart/mixed, or else the message is wrapped into a new
 * multipart/mixed.  Line ends are CRLF (the queue content already is).
 *
 * Security: only byte ranges the parser established are copied; nothing
 * from the message is interpreted except through lib/mime.
 */
#include "policy/policy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <time.h>

#include "conf/conf.h"
#include "mime/mime.h"
#include "util/mem.h"

struct cut {
    struct mime_part *part;
    enum policy_action action;
    struct template_object *objs;   /* placeholder: the objects it replaces */
    size_t nobjs;
};

struct rewrite {
    const struct conf *c;
    const struct policy_verdict *v;
    const struct policy_object *objs;
    struct mime_msg *msg;
    const struct policy_facts *f;
    const unsigned char *data;      /* the message bytes */
    size_t len;
    struct cut *cuts;
    size_t ncuts;
    policy_sink_fn sink;
    void *arg;
    int err;
};

static void out(struct rewrite *w, const void *p, size_t n)
{
    if (w->err == 0 && n > 0 && w->sink(w->arg, p, n) < 0)
        w->err = -1;
}

static void out_str(struct rewrite *w, const char *s)
{
    out(w, s, strlen(s));
}

static bool part_clean(const struct rewrite *w, const struct mime_part *p)
{
    if (p->parent == NULL)
        return true;
    if (p->role != 0 || p->view != 0 || p->src != w->msg->root->src)
        return false;
    for (const struct mime_part *s = p->parent->child; s; s = s->next) {
        if (s->view != 0 || s->role != 0)
            return false;
    }
    return true;
}

/* The entity an object's cut applies to. */
static struct mime_part *cut_target(const struct rewrite *w, struct mime_part *p)
{
    struct mime_part *t = p ? p : w->msg->root;
    for (struct mime_part *q = t; q; q = q->parent) {
        if (!part_clean(w, q))
            t = q->parent;
    }
    return t ? t : w->msg->root;
}

static bool is_below(const struct mime_part *p, const struct mime_part *anc)
{
    for (; p; p = p->parent) {
        if (p == anc)
            return true;
    }
    return false;
}

static struct cut *cut_of(const struct rewrite *w, const struct mime_part *p)
{
    for (size_t i = 0; i < w->ncuts; i++) {
        if (w->cuts[i].part == p)
            return &w->cuts[i];
    }
    return NULL;
}

static bool has_cut_below(const struct rewrite *w, const struct mime_part *p)
{
    for (size_t i = 0; i < w->ncuts; i++) {
        if (is_below(w->cuts[i].part, p))
            return true;
    }
    return false;
}

static void cut_add(struct rewrite *w, struct mime_part *t, size_t obj)
{
    struct cut *k = cut_of(w, t);
    if (k == NULL) {
        w->cuts = xreallocarray(w->cuts, w->ncuts + 1, sizeof *w->cuts);
        k = &w->cuts[w->ncuts++];
        *k = (struct cut){ t, POLICY_REMOVE, NULL, 0 };
    }
    if (w->v->actions[obj] == POLICY_PLACEHOLDER)
        k->action = POLICY_PLACEHOLDER;
    k->objs = xreallocarray(k->objs, k->nobjs + 1, sizeof *k->objs);
    k->objs[k->nobjs++] = (struct template_object){
        w->objs[obj].name, w->objs[obj].type, policy_status_name(w->objs[obj].status),
        w->objs[obj].virus ? w->objs[obj].virus : "", policy_action_name(w->v->actions[obj]),
    };
}

/* Cuts inside another cut are dropped: the outer one takes them along. */
static void cuts_collect(struct rewrite *w)
{
    for (size_t i = 0; i < w->v->nobjs; i++) {
        if (w->v->actions[i] != POLICY_PASS)
            cut_add(w, cut_target(w, w->objs[i].part), i);
    }
    for (size_t i = 0; i < w->ncuts; i++) {
        for (size_t j = 0; j < w->ncuts; j++) {
            if (i != j && w->cuts[j].part && w->cuts[i].part &&
                w->cuts[i].part != w->cuts[j].part && is_below(w->cuts[i].part, w->cuts[j].part))
                w->cuts[i].part = NULL;     /* inactive */
        }
    }
}

static void out_text_crlf(struct rewrite *w, const struct buf *b)
{
    out(w, b->data, b->len);
    if (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0)
        out_str(w, "\r\n");
}

static void out_placeholder_body(struct rewrite *w, const struct cut *k)
{
    struct policy_vars pv;
    struct buf text = BUF_INIT;
    policy_vars_fill(w->c, w->v, w->objs, w->msg, w->f, &pv);
    pv.v.objects = k->objs;
    pv.v.nobjects = k->nobjs;
    template_expand(policy_template(w->c, w->v->group, "PlaceholderTemplate"), &pv.v,
                    TEMPLATE_CRLF, &text);
    out_text_crlf(w, &text);
    buf_free(&text);
    policy_vars_free(&pv);
}

static const char text_part_headers[] =
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n";

/* A cut entity in place: a placeholder part, or (root only) an empty
 * text body. */
static void out_cut_entity(struct rewrite *w, const struct cut *k)
{
    out_str(w, text_part_headers);
    if (k->action == POLICY_PLACEHOLDER) {
        out_str(w, "Content-Disposition: inline\r\n\r\n");
        out_placeholder_body(w, k);
    } else {
        out_str(w, "\r\n");
    }
}

static void out_body(struct rewrite *w, const struct mime_part *p, bool disclaimer);

static size_t part_end(const struct mime_part *p)
{
    return p->body_off + p->body_len;
}

static void out_part(struct rewrite *w, const struct mime_part *p)
{
    const struct cut *k = cut_of(w, p);
    if (k != NULL) {
        out_cut_entity(w, k);
        return;
    }
    if (!has_cut_below(w, p)) {
        out(w, w->data + p->off, part_end(p) - p->off);
        return;
    }
    out(w, w->data + p->off, p->body_off - p->off);
    out_body(w, p, false);
}

static void out_disclaimer_text(struct rewrite *w)
{
    struct policy_vars pv;
    struct buf text = BUF_INIT;
    policy_vars_fill(w->c, w->v, w->objs, w->msg, w->f, &pv);
    template_expand(policy_template(w->c, w->v->group, "DisclaimerTemplate"), &pv.v,
                    TEMPLATE_CRLF, &text);
    out_text_crlf(w, &text);
    buf_free(&text);
    policy_vars_free(&pv);
}

static void out_disclaimer_part(struct rewrite *w, const char *boundary)
{
    out_str(w, "\r\n--");
    out_str(w, boundary);
    out_str(w, "\r\n");
    out_str(w, text_part_headers);
    out_str(w, "Content-Disposition: inline\r\n\r\n");
    out_disclaimer_text(w);
}

/* A container's body with its children re-emitted (cuts below it): the
 * preamble and first delimiter, then each kept child preceded (from the
 * second on) by the delimiter before it in the original, then from the end
 * of the last child on: the close delimiter and the epilogue. */
static void out_children(struct rewrite *w, const struct mime_part *p, bool disclaimer)
{
    const struct mime_part *prev = NULL, *last = NULL;
    size_t kept = 0;

    for (const struct mime_part *ch = p->child; ch; prev = ch, ch = ch->next) {
        const struct cut *k = cut_of(w, ch);
        last = ch;
        if (k && k->action == POLICY_REMOVE)
            continue;
        if (kept++ == 0)
            out(w, w->data + p->body_off, p->child->off - p->body_off);
        else
            out(w, w->data + part_end(prev), ch->off - part_end(prev));
        out_part(w, ch);
    }
    if (kept == 0) {
        out(w, w->data + p->body_off, p->child->off - p->body_off);
        out_str(w, "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    }
    if (disclaimer && p->boundary)
        out_disclaimer_part(w, p->boundary);
    out(w, w->data + part_end(last), part_end(p) - part_end(last));
}

static void out_body(struct rewrite *w, const struct mime_part *p, bool disclaimer)
{
    if (p->child && p->container && has_cut_below(w, p)) {
        out_children(w, p, disclaimer);
        return;
    }
    out(w, w->data + p->body_off, p->body_len);
    if (disclaimer && p->child && p->container && p->boundary)
        out_disclaimer_part(w, p->boundary);
}

static bool is_content_header(const char *name)
{
    return strncasecmp(name, "Content-", 8) == 0 || strcasecmp(name, "MIME-Version") == 0;
}

/* The top part's fields: without X-Anti-Virus; content fields only when
 * want_content, other fields only when want_other. */
static void out_top_headers(struct rewrite *w, bool want_content, bool want_other)
{
    const struct mime_part *r = w->msg->root;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct mime_header *h = &r->headers[i];
        bool content = is_content_header(h->name);
        if (strcasecmp(h->name, "X-Anti-Virus") == 0 || (content ? !want_content : !want_other))
            continue;
        if (h->raw_off + h->raw_len > r->hdr_len)
            continue;
        const unsigned char *f = w->data + r->off + h->raw_off;
        out(w, f, h->raw_len);
        if (h->raw_len < 2 || f[h->raw_len - 1] != '\n')
            out_str(w, "\r\n");
    }
}

/* Disclaimer placement for the top part. */
enum disclaimer_mode { DISC_NONE, DISC_APPEND, DISC_PART, DISC_WRAP };

static enum disclaimer_mode disclaimer_mode(const struct rewrite *w)
{
    const struct mime_part *r = w->msg->root;
    if (!conf_group_bool(w->c, w->v->group, "AddDisclaimer"))
        return DISC_NONE;
    if (strcmp(r->type, "text/plain") == 0 && !r->container && r->enc == MIME_ENC_IDENTITY &&
        r->child == NULL)
        return DISC_APPEND;
    if (strcmp(r->type, "multipart/mixed") == 0 && r->container && r->child && r->boundary &&
        r->enc == MIME_ENC_IDENTITY) {
        for (const struct mime_part *c = r->child; c; c = c->next) {
            if (c->view != 0 || c->role != 0)
                return DISC_WRAP;
        }
        return DISC_PART;
    }
    return DISC_WRAP;
}

static void wrap_boundary(const struct rewrite *w, char *b, size_t size)
{
    unsigned long long x = (unsigned long long)time(NULL) ^ (unsigned long long)(uintptr_t)w;
    for (int tries = 0; tries < 100; tries++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(b, size, "=_mailgw_%016llx", x);
        if (memmem(w->data, w->len, b, strlen(b)) == NULL)
            return;
    }
}

static void out_wrapped(struct rewrite *w)
{
    char b[64];
    const struct mime_part *r = w->msg->root;
    wrap_boundary(w, b, sizeof b);
    out_top_headers(w, false, true);
    out_str(w, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"");
    out_str(w, b);
    out_str(w, "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n--");
    out_str(w, b);
    out_str(w, "\r\n");
    out_top_headers(w, true, false);
    out_str(w, "\r\n");
    out_body(w, r, false);
    out_disclaimer_part(w, b);
    out_str(w, "\r\n--");
    out_str(w, b);
    out_str(w, "--\r\n");
}

static void out_message(struct rewrite *w)
{
    const struct mime_part *r = w->msg->root;
    const struct cut *k = cut_of(w, r);
    enum disclaimer_mode dm = disclaimer_mode(w);

    if (conf_group_bool(w->c, w->v->group, "AddXHeader")) {
        struct buf h = BUF_INIT;
        policy_xheader(w->v, w->f, &h);
        buf_append_str(&h, "\r\n");
        out(w, h.data, h.len);
        buf_free(&h);
    }
    if (k != NULL) {
        out_top_headers(w, false, true);
        out_str(w, "MIME-Version: 1.0\r\n");
        out_cut_entity(w, k);
        if (dm != DISC_NONE)
            out_disclaimer_text(w);
        return;
    }
    if (dm == DISC_WRAP) {
        out_wrapped(w);
        return;
    }
    out_top_headers(w, true, true);
    out_str(w, "\r\n");
    out_body(w, r, dm == DISC_PART);
    if (dm == DISC_APPEND) {
        if (r->body_len >= 2 && memcmp(w->data + part_end(r) - 2, "\r\n", 2) != 0)
            out_str(w, "\r\n");
        else if (r->body_len == 1)
            out_str(w, "\r\n");
        out_disclaimer_text(w);
    }
}

int policy_rewrite(const struct conf *c, const struct policy_verdict *v,
                   const struct policy_object *objs, struct mime_msg *msg,
                   const struct policy_facts *f, policy_sink_fn sink, void *arg)
{
    struct rewrite w = { c, v, objs, msg, f, NULL, 0, NULL, 0, sink, arg, 0 };
    const void *data;

    mime_msg_raw(msg, &data, &w.len);
    w.data = data;
    cuts_collect(&w);
    out_message(&w);
    for (size_t i = 0; i < w.ncuts; i++)
        free(w.cuts[i].objs);
    free(w.cuts);
    return w.err;
}
