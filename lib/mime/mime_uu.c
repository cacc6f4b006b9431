/*
 * mime_uu - uuencoded blocks inside text parts ("begin 644 name" ...
 * "end") and their base64 cousin ("begin-base64 644 name" ... "===="),
 * as old mailers and some malware send attachments.  Each block becomes
 * a child part of the text part (role MIME_ROLE_UU) with the block's file
 * name, so it is decoded and scanned like a MIME attachment.
 *
 * Interface (internal): mime_uu_find(m, part).
 *
 * A text part with a transfer encoding is first decoded in a streaming
 * pass that only looks for "begin" at a line start; only when one is
 * found is the text decoded into memory (bounded by max_mem) to hold the
 * blocks.  A block without its end line runs to the end of the text
 * (UU_TRUNCATED).
 */
#include "mime/mime_int.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

struct mime_uu_probe {
    int state;                  /* bytes of "begin" matched at line start */
    bool found;
};

static int mime_uu_probe_cb(const void *buf, size_t n, void *arg)
{
    static const char want[] = "begin";
    struct mime_uu_probe *pr = arg;
    const unsigned char *s = buf;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            pr->state = 0;
        else if (pr->state >= 0 && s[i] == (unsigned char)want[pr->state])
            pr->state++;
        else
            pr->state = -1;
        if (pr->state == 5) {
            pr->found = true;
            return -1;
        }
    }
    return 0;
}

/* "begin 644 name" / "begin-base64 644 name": the name, NULL if no. */
static char *mime_uu_begin(const unsigned char *s, size_t n, bool *b64)
{
    size_t i;

    if (n > 13 && memcmp(s, "begin-base64 ", 13) == 0) {
        *b64 = true;
        i = 13;
    } else if (n > 6 && memcmp(s, "begin ", 6) == 0) {
        *b64 = false;
        i = 6;
    } else {
        return NULL;
    }
    size_t digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '7') {
        i++;
        digits++;
    }
    if (digits < 3 || digits > 4 || i >= n || s[i] != ' ')
        return NULL;
    while (i < n && s[i] == ' ')
        i++;
    size_t e = n;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    return xstrndup((const char *)s + i, e - i);
}

static bool mime_uu_is_end(const unsigned char *s, size_t n, bool b64)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return b64 ? n == 4 && memcmp(s, "====", 4) == 0
               : n == 3 && memcmp(s, "end", 3) == 0;
}

static void mime_uu_child(struct mime_msg *m, struct mime_part *p,
                          const struct mime_src *src, size_t start, size_t end,
                          char *name, bool b64, bool truncated)
{
    struct mime_part *c = mime_part_new(m, p, src, start, end - start);

    if (c == NULL) {
        free(name);
        return;
    }
    c->role = MIME_ROLE_UU;
    c->scan = true;
    c->enc = b64 ? MIME_ENC_BASE64 : MIME_ENC_UU;
    c->type = xstrdup("application/octet-stream");
    c->filename = name;
    c->names = xmalloc(sizeof *c->names);
    c->names[0] = xstrdup(name);
    c->nnames = 1;
    mime_account(m, 2 * strlen(name));
    if (truncated)
        mime_flag(c, MIME_ANOM_UU_TRUNCATED);
}

struct mime_uu_block {
    char *name;
    bool b64;
    size_t data;                /* first data line */
};

static void mime_uu_scan(struct mime_msg *m, struct mime_part *p,
                         const struct mime_src *src, size_t pos, size_t end)
{
    const unsigned char *s = src->p;
    struct mime_uu_block blk = { NULL, false, 0 };

    if (!mime_work_add(m, end - pos)) {
        mime_flag(p, MIME_ANOM_WORK_LIMIT);
        return;
    }
    while (pos < end) {
        const unsigned char *nl = memchr(s + pos, '\n', end - pos);
        size_t lend = nl ? (size_t)(nl - s) : end, next = nl ? lend + 1 : end;
        if (lend > pos && s[lend - 1] == '\r')
            lend--;
        if (blk.name == NULL) {
            blk.name = mime_uu_begin(s + pos, lend - pos, &blk.b64);
            blk.data = next;
        } else if (mime_uu_is_end(s + pos, lend - pos, blk.b64)) {
            mime_uu_child(m, p, src, blk.data, pos, blk.name, blk.b64, false);
            blk.name = NULL;
        }
        pos = next;
    }
    if (blk.name)
        mime_uu_child(m, p, src, blk.data, end, blk.name, blk.b64, true);
}

void mime_uu_find(struct mime_msg *m, struct mime_part *p)
{
    if (p->enc == MIME_ENC_IDENTITY) {
        const unsigned char *s = p->src->p + p->body_off;
        /* cheap test first: most text has no line starting "begin" */
        if (p->body_len >= 5 && (memcmp(s, "begin", 5) == 0 ||
                                 memmem(s, p->body_len, "\nbegin", 6)))
            mime_uu_scan(m, p, p->src, p->body_off,
                         p->body_off + p->body_len);
        return;
    }
    if (p->enc == MIME_ENC_UU)
        return;
    struct mime_uu_probe pr = { 0, false };
    mime_part_decode(p, mime_uu_probe_cb, &pr);
    if (!pr.found)
        return;
    struct mime_src *src = mime_decode_to_src(m, p);
    if (src == NULL) {
        mime_flag(p, MIME_ANOM_WORK_LIMIT);
        return;
    }
    mime_uu_scan(m, p, src, 0, src->len);
}
