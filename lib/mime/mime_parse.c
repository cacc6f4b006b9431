/*
 * mime_parse - builds the part tree: headers of each entity, its type,
 * encoding, disposition and names, then multipart splitting and
 * message/rfc822 recursion.
 *
 * Interface (internal, mime_int.h): mime_part_new(), mime_parse_entity().
 *
 * Inclusive decisions (each flagged):
 *  - several Content-Type headers: a multipart one wins over a message
 *    one over the first; the boundaries of all of them (and boundary=
 *    parameters found in Content-Disposition) are tried, each giving its
 *    own set of children (view 0, 1, ...);
 *  - no boundary, or a boundary that never occurs: the first "--xxx" line
 *    of the body is tried as the boundary, and the body is also scanned
 *    flat;
 *  - a delimiter after the close-delimiter opens a new part again;
 *  - a missing close-delimiter ends the last part at the end of its
 *    parent;
 *  - several transfer encodings: the part is decoded with the first,
 *    and one MIME_ROLE_ALT child per other encoding;
 *  - multipart or message/rfc822 with base64/quoted-printable: the body
 *    is decoded into memory (bounded by max_mem) and parsed, and the
 *    decoded whole is scanned too;
 *  - depth, part, memory and work limits: the container is not split
 *    further and its body is scanned flat.
 *
 * Security: recursion depth is bounded by lim.max_depth (capped at
 * MIME_DEPTH_CAP); the boundary search work is bounded per message, so
 * alternative views cannot multiply the cost without limit.
 */
#include "mime/mime_int.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mime_bounds {
    char *b[MIME_MAX_BOUNDARIES];
    size_t n;
};

struct mime_part *mime_part_new(struct mime_msg *m, struct mime_part *parent,
                                const struct mime_src *src, size_t off,
                                size_t len)
{
    if (parent && m->nparts >= m->lim.max_parts) {
        mime_flag(parent, MIME_ANOM_PART_LIMIT);
        return NULL;
    }
    if (parent && mime_over_budget(m)) {
        mime_flag(parent, MIME_ANOM_WORK_LIMIT);
        return NULL;
    }
    struct mime_part *p = xcalloc(1, sizeof *p);
    p->msg = m;
    p->parent = parent;
    p->src = src;
    p->off = p->body_off = off;
    p->body_len = len;
    if (parent) {
        p->depth = parent->depth + 1;
        if (parent->last_child)
            parent->last_child->next = p;
        else
            parent->child = p;
        parent->last_child = p;
    }
    m->nparts++;
    mime_account(m, sizeof *p);
    return p;
}

static void mime_bounds_add(struct mime_part *p, struct mime_bounds *bd,
                            const char *b)
{
    if (b == NULL || b[0] == 0)
        return;
    for (size_t i = 0; i < bd->n; i++)
        if (strcmp(bd->b[i], b) == 0)
            return;
    if (bd->n > 0)
        mime_flag(p, MIME_ANOM_DUP_BOUNDARY);
    if (bd->n < MIME_MAX_BOUNDARIES)
        bd->b[bd->n++] = xstrdup(b);
}

static bool mime_is_multipart(const char *t)
{
    return strncmp(t, "multipart/", 10) == 0 || strcmp(t, "multipart") == 0;
}

static bool mime_is_message(const char *t)
{
    return strcmp(t, "message/rfc822") == 0 ||
           strcmp(t, "message/global") == 0 || strcmp(t, "message/news") == 0;
}

/* Chooses the type among all Content-Type headers; gathers boundaries. */
static void mime_entity_type(struct mime_part *p, const char *dflt,
                             struct mime_bounds *bd)
{
    size_t nct = 0, pick = SIZE_MAX, rank = 0;

    for (size_t i = 0; i < p->nheaders; i++) {
        if (!mime_header_is(&p->headers[i], "content-type"))
            continue;
        struct mime_params pp;
        mime_params_parse(p->headers[i].value, &pp);
        size_t r = mime_is_multipart(pp.value) ? 3 : mime_is_message(pp.value) ? 2 : 1;
        if (pp.value[0] && strchr(pp.value, '/') == NULL)
            pp.anom |= MIME_ANOM_BAD_PARAM;
        if (pp.value[0] && r > rank) {
            rank = r;
            pick = nct;
            free(p->type);
            p->type = xstrdup(pp.value);
            free(p->charset);
            const char *cs = mime_params_get(&pp, "charset", 0);
            p->charset = cs ? xstrdup(cs) : NULL;
        }
        if (r == 3)
            for (size_t k = 0; mime_params_get(&pp, "boundary", k); k++)
                mime_bounds_add(p, bd, mime_params_get(&pp, "boundary", k));
        if (pp.anom)
            mime_flag(p, pp.anom);
        mime_params_free(&pp);
        nct++;
    }
    if (nct > 1)
        mime_flag(p, MIME_ANOM_DUP_CT);
    if (pick == SIZE_MAX)
        p->type = xstrdup(dflt);
}

static enum mime_enc mime_enc_parse(struct mime_part *p, const char *v)
{
    struct mime_params pp;
    enum mime_enc e = MIME_ENC_IDENTITY;

    mime_params_parse(v, &pp);
    if (strcmp(pp.value, "base64") == 0)
        e = MIME_ENC_BASE64;
    else if (strcmp(pp.value, "quoted-printable") == 0)
        e = MIME_ENC_QP;
    else if (strcmp(pp.value, "x-uuencode") == 0 ||
             strcmp(pp.value, "uuencode") == 0 ||
             strcmp(pp.value, "x-uue") == 0)
        e = MIME_ENC_UU;
    else if (strcmp(pp.value, "7bit") != 0 && strcmp(pp.value, "8bit") != 0 &&
             strcmp(pp.value, "binary") != 0 && pp.value[0] != 0)
        mime_flag(p, MIME_ANOM_UNKNOWN_CTE);
    mime_params_free(&pp);
    return e;
}

/* First encoding in p->enc; the other distinct ones in alt (bitmask). */
static unsigned mime_entity_cte(struct mime_part *p)
{
    unsigned seen = 0, n = 0;

    for (size_t i = 0; i < p->nheaders; i++) {
        if (!mime_header_is(&p->headers[i], "content-transfer-encoding"))
            continue;
        enum mime_enc e = mime_enc_parse(p, p->headers[i].value);
        if (n++ == 0)
            p->enc = e;
        seen |= 1u << e;
    }
    if (n > 1)
        mime_flag(p, MIME_ANOM_DUP_CTE);
    return seen & ~(1u << p->enc);
}

static void mime_name_add(struct mime_part *p, const char *v)
{
    bool bad = false;
    char *name = strstr(v, "=?") ? mime_decode_words(v, strlen(v), &bad)
                                 : xstrdup(v);

    if (bad)
        mime_flag(p, MIME_ANOM_BAD_ENCODED_WORD);
    for (size_t i = 0; i < p->nnames; i++)
        if (strcmp(p->names[i], name) == 0) {
            free(name);
            return;
        }
    if (p->nnames >= 16) {           /* enough to show the conflict */
        free(name);
        return;
    }
    p->names = xreallocarray(p->names, p->nnames + 1, sizeof *p->names);
    p->names[p->nnames++] = name;
    mime_account(p->msg, strlen(name) + sizeof(char *));
}

static void mime_names_from(struct mime_part *p, const char *hdr,
                            const char *param, struct mime_bounds *bd)
{
    for (size_t i = 0; i < p->nheaders; i++) {
        if (!mime_header_is(&p->headers[i], hdr))
            continue;
        struct mime_params pp;
        mime_params_parse(p->headers[i].value, &pp);
        if (bd && p->disposition == NULL && pp.value[0])
            p->disposition = xstrdup(pp.value);
        for (size_t k = 0; mime_params_get(&pp, param, k); k++)
            mime_name_add(p, mime_params_get(&pp, param, k));
        for (size_t k = 0; bd && mime_params_get(&pp, "boundary", k); k++) {
            mime_flag(p, MIME_ANOM_STRAY_BOUNDARY);
            if (mime_is_multipart(p->type))
                mime_bounds_add(p, bd, mime_params_get(&pp, "boundary", k));
        }
        if (pp.anom)
            mime_flag(p, pp.anom);
        mime_params_free(&pp);
    }
}

static void mime_entity_names(struct mime_part *p, struct mime_bounds *bd)
{
    mime_names_from(p, "content-disposition", "filename", bd);
    mime_names_from(p, "content-type", "name", NULL);
    if (p->nnames > 0)
        p->filename = xstrdup(p->names[0]);
    if (p->nnames > 1)
        mime_flag(p, MIME_ANOM_DUP_FILENAME_CONFLICT);
}

/* 0 not a delimiter, 1 delimiter, 2 close-delimiter (RFC 2046 5.1.1;
 * transport padding allowed after it).  loose: the count of leading
 * dashes of line and boundary is ignored ("----ABC" for boundary "-ABC"),
 * as some clients do. */
static int mime_delim_kind(const unsigned char *s, size_t n, const char *b,
                           size_t bl, bool loose)
{
    size_t i = 2;

    if (n < 2 || s[0] != '-' || s[1] != '-')
        return 0;
    if (loose) {
        while (i < n && s[i] == '-')
            i++;
        while (bl > 0 && *b == '-') {
            b++;
            bl--;
        }
        if (bl == 0)
            return 0;
    }
    if (n - i < bl || memcmp(s + i, b, bl) != 0)
        return 0;
    i += bl;
    int kind = 1;
    if (n - i >= 2 && s[i] == '-' && s[i + 1] == '-') {
        kind = 2;
        i += 2;
    }
    for (; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return kind;
}

static void mime_part_flat(struct mime_part *p, uint32_t why)
{
    p->scan = true;
    if (why)
        mime_flag(p, why);
}

struct mime_split {
    struct mime_part *p;
    const struct mime_src *src;
    const char *b;
    size_t bl;
    unsigned view;
    const char *child_type;
    bool stop;                  /* a limit was hit */
    bool loose;                 /* match delimiters loosely */
    size_t loose_only;          /* lines only a loose match accepts */
};

static void mime_split_child(struct mime_split *sp, size_t start, size_t end)
{
    const unsigned char *s = sp->src->p;

    /* the line break before a delimiter belongs to the delimiter */
    if (end > start && s[end - 1] == '\n')
        end--;
    if (end > start && s[end - 1] == '\r')
        end--;
    struct mime_part *c = mime_part_new(sp->p->msg, sp->p, sp->src, start,
                                        end - start);
    if (c == NULL) {
        mime_part_flat(sp->p, 0);
        sp->stop = true;
        return;
    }
    c->view = sp->view;
    mime_parse_entity(sp->p->msg, c, sp->child_type);
}

/* Splits src[start,end) at the delimiters of sp->b; returns how many
 * delimiter lines it found. */
static size_t mime_split_run(struct mime_split *sp, size_t start, size_t end)
{
    const unsigned char *s = sp->src->p;
    size_t pos = start, part = 0, found = 0;
    bool open = false, closed = false;

    if (!mime_work_add(sp->p->msg, end - start)) {
        mime_part_flat(sp->p, MIME_ANOM_WORK_LIMIT);
        return 0;
    }
    while (pos < end && !sp->stop) {
        const unsigned char *nl = memchr(s + pos, '\n', end - pos);
        size_t lend = nl ? (size_t)(nl - s) : end, next = nl ? lend + 1 : end;
        if (lend - pos > MIME_LINE_MAX)
            mime_flag(sp->p, MIME_ANOM_LONG_LINE);
        int kind = mime_delim_kind(s + pos, lend - pos, sp->b, sp->bl,
                                   sp->loose);
        if (!kind && !sp->loose && s[pos] == '-' &&
            mime_delim_kind(s + pos, lend - pos, sp->b, sp->bl, true))
            sp->loose_only++;
        if (kind) {
            found++;
            if (open)
                mime_split_child(sp, part, pos);
            else if (closed && kind == 1)
                mime_flag(sp->p, MIME_ANOM_PART_AFTER_CLOSE);
            open = kind == 1;
            closed = closed || kind == 2;
            part = next;
        }
        pos = next;
    }
    if (open && !sp->stop) {
        mime_split_child(sp, part, end);
        mime_flag(sp->p, MIME_ANOM_NO_CLOSE_BOUNDARY);
    }
    return found;
}

/* The first "--xxx" line of the body, as a guessed boundary. */
static char *mime_guess_boundary(const struct mime_src *src, size_t start,
                                 size_t end)
{
    const unsigned char *s = src->p;

    for (size_t pos = start; pos < end;) {
        const unsigned char *nl = memchr(s + pos, '\n', end - pos);
        size_t lend = nl ? (size_t)(nl - s) : end;
        while (lend > pos && (s[lend - 1] == '\r' || s[lend - 1] == ' '))
            lend--;
        if (lend - pos > 2 && lend - pos <= 2 + 200 && s[pos] == '-' &&
            s[pos + 1] == '-')
            return xstrndup((const char *)s + pos + 2, lend - pos - 2);
        pos = nl ? (size_t)(nl - s) + 1 : end;
    }
    return NULL;
}

static size_t mime_split_views(struct mime_part *p, const struct mime_src *src,
                               size_t start, size_t end,
                               struct mime_bounds *bd)
{
    struct mime_split sp = { p, src, NULL, 0, 0, "text/plain", false, false,
                             0 };
    size_t found = 0;
    unsigned view = (unsigned)bd->n;

    if (strcmp(p->type, "multipart/digest") == 0)
        sp.child_type = "message/rfc822";
    for (size_t i = 0; i < bd->n && !sp.stop; i++) {
        sp.b = bd->b[i];
        sp.bl = strlen(sp.b);
        sp.view = (unsigned)i;
        sp.loose_only = 0;
        found += mime_split_run(&sp, start, end);
        if (sp.loose_only > 0 && !sp.stop) {
            /* a client matching loosely sees other parts: show them too */
            mime_flag(p, MIME_ANOM_LOOSE_BOUNDARY);
            sp.loose = true;
            sp.view = view++;
            found += mime_split_run(&sp, start, end);
            sp.loose = false;
        }
    }
    if (found == 0 && !sp.stop) {
        char *guess = mime_guess_boundary(src, start, end);
        mime_part_flat(p, bd->n ? MIME_ANOM_NO_OPEN_BOUNDARY : 0);
        if (guess) {
            sp.b = guess;
            sp.bl = strlen(guess);
            sp.view = view;
            found = mime_split_run(&sp, start, end);
            free(guess);
        }
    }
    return found;
}

struct mime_membuf {
    struct buf b;
    size_t room;
};

static int mime_mem_cb(const void *p, size_t n, void *arg)
{
    struct mime_membuf *mb = arg;

    if (n > mb->room - mb->b.len)
        return -1;
    buf_append(&mb->b, p, n);
    return 0;
}

struct mime_src *mime_decode_to_src(struct mime_msg *m, struct mime_part *p)
{
    struct mime_membuf mb = { BUF_INIT, 0 };

    if (mime_over_budget(m))
        return NULL;
    mb.room = m->lim.max_mem - m->mem_used;
    if (mime_part_decode(p, mime_mem_cb, &mb) < 0) {
        buf_free(&mb.b);
        return NULL;
    }
    if (mb.b.data == NULL)
        buf_reserve(&mb.b, 1);
    return mime_src_add(m, (unsigned char *)mb.b.data, mb.b.len);
}

/* The body of a container as a source: itself, or decoded. */
static const struct mime_src *mime_container_src(struct mime_msg *m,
                                                 struct mime_part *p,
                                                 size_t *start, size_t *end)
{
    *start = p->body_off;
    *end = p->body_off + p->body_len;
    if (p->enc == MIME_ENC_IDENTITY)
        return p->src;
    mime_flag(p, MIME_ANOM_ENCODED_CONTAINER);
    p->scan = true;
    struct mime_src *s = mime_decode_to_src(m, p);
    if (s == NULL) {
        mime_flag(p, MIME_ANOM_WORK_LIMIT);
        return NULL;
    }
    *start = 0;
    *end = s->len;
    return s;
}

static void mime_entity_multipart(struct mime_msg *m, struct mime_part *p,
                                  struct mime_bounds *bd)
{
    size_t start, end;

    if (bd->n == 0)
        mime_flag(p, MIME_ANOM_MISSING_BOUNDARY);
    else
        p->boundary = xstrdup(bd->b[0]);
    const struct mime_src *src = mime_container_src(m, p, &start, &end);
    if (src == NULL)
        return;
    p->container = true;
    mime_split_views(p, src, start, end, bd);
    if (p->child == NULL)
        mime_part_flat(p, 0);
}

static void mime_entity_message(struct mime_msg *m, struct mime_part *p)
{
    size_t start, end;
    const struct mime_src *src = mime_container_src(m, p, &start, &end);

    if (src == NULL)
        return;
    struct mime_part *c = mime_part_new(m, p, src, start, end - start);
    if (c == NULL) {
        mime_part_flat(p, 0);
        return;
    }
    p->container = true;
    mime_parse_entity(m, c, "text/plain");
}

static void mime_entity_leaf(struct mime_msg *m, struct mime_part *p,
                             unsigned alt)
{
    unsigned view = 0;

    p->scan = true;
    for (unsigned e = 0; alt; e++) {
        if (!(alt & (1u << e)))
            continue;
        alt &= ~(1u << e);
        struct mime_part *c = mime_part_new(m, p, p->src, p->body_off,
                                            p->body_len);
        if (c == NULL)
            return;
        c->role = MIME_ROLE_ALT;
        c->view = ++view;
        c->enc = (enum mime_enc)e;
        c->scan = true;
        c->type = xstrdup(p->type);
    }
    if (strncmp(p->type, "text/", 5) == 0)
        mime_uu_find(m, p);
}

void mime_parse_entity(struct mime_msg *m, struct mime_part *p,
                       const char *dflt)
{
    struct mime_bounds bd = { { NULL }, 0 };
    size_t len = p->body_len;
    bool message = p->parent == NULL || mime_is_message(p->parent->type);
    size_t h = mime_header_parse(m, p, p->src->p + p->off, len, message);

    p->hdr_len = h;
    p->body_off = p->off + h;
    p->body_len = len - h;
    mime_entity_type(p, dflt, &bd);
    unsigned alt = mime_entity_cte(p);
    mime_entity_names(p, &bd);
    bool container = mime_is_multipart(p->type) || mime_is_message(p->type);
    if (container && p->depth >= m->lim.max_depth)
        mime_part_flat(p, MIME_ANOM_DEPTH_LIMIT);
    else if (mime_is_multipart(p->type))
        mime_entity_multipart(m, p, &bd);
    else if (mime_is_message(p->type))
        mime_entity_message(m, p);
    else
        mime_entity_leaf(m, p, alt);
    for (size_t i = 0; i < bd.n; i++)
        free(bd.b[i]);
}
