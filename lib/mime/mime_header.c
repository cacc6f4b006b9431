/*
 * mime_header - the header block of a message or body part: lines up to
 * the first empty line, folded lines joined (RFC 5322 2.2.3), each field
 * kept raw (offset/length) and unfolded (name, value).
 *
 * Interface: mime_header_parse(m, part, s, len, skip_from) returns the
 * offset of the body; mime_header_is(h, "content-type").
 *
 * Leniency (each flagged on the part): a line that is not a field ends
 * the header block and starts the body (BAD_HEADER), as Postfix and
 * Python do; a field name with a comment, "Content-Type(x):", counts as
 * the named field (HEADER_COMMENT: some clients read it so); NUL bytes are
 * kept raw but turned into spaces in the value (NUL); fields over
 * max_header_len are cut in the value (HEADER_LIMIT); past max_headers
 * only Content-Type/-Transfer-Encoding/-Disposition are stored (up to
 * twice the limit), so no MIME header can be pushed out of sight by junk; data ending inside the header block gives NO_BODY.
 */
#include "mime/mime_int.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mime_line {
    size_t start, end, next;    /* text [start,end), next line at next */
};

static struct mime_line mime_line_at(const unsigned char *s, size_t len,
                                     size_t pos)
{
    struct mime_line l = { pos, len, len };
    const unsigned char *nl = memchr(s + pos, '\n', len - pos);

    if (nl) {
        l.end = (size_t)(nl - s);
        l.next = l.end + 1;
        if (l.end > pos && s[l.end - 1] == '\r')
            l.end--;
    }
    return l;
}

/* Field name of the line, comment and trailing blanks removed; NULL when
 * the line is not a header field. */
static char *mime_field_name(const unsigned char *s, size_t n, size_t *colon,
                             bool *comment)
{
    const unsigned char *c = memchr(s, ':', n);
    size_t k, out = 0;
    int nest = 0;

    if (c == NULL || c == s)
        return NULL;
    k = (size_t)(c - s);
    *colon = k;
    while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t'))
        k--;
    char *name = xmalloc(k + 1);
    for (size_t i = 0; i < k; i++) {
        if (s[i] == '(' && i > 0) {
            nest++;
            *comment = true;
        } else if (s[i] == ')' && nest > 0) {
            nest--;
        } else if (nest == 0) {
            if (s[i] <= 32 || s[i] >= 127) {
                free(name);
                return NULL;
            }
            name[out++] = (char)s[i];
        }
    }
    name[out] = 0;
    if (out == 0) {
        free(name);
        return NULL;
    }
    return name;
}

static bool mime_name_is_content(const char *name)
{
    return strcasecmp(name, "content-type") == 0 ||
           strcasecmp(name, "content-transfer-encoding") == 0 ||
           strcasecmp(name, "content-disposition") == 0;
}

static void mime_header_store(struct mime_msg *m, struct mime_part *p,
                              char *name, struct buf *val, size_t off,
                              size_t rawlen)
{
    /* past the limit only the fields that decide the structure count,
     * and those only up to twice the limit or the memory budget */
    if (p->nheaders >= m->lim.max_headers &&
        (!mime_name_is_content(name) || mime_over_budget(m) ||
         p->nheaders / 2 >= m->lim.max_headers)) {
        mime_flag(p, MIME_ANOM_HEADER_LIMIT);
        free(name);
        return;
    }
    if (p->nheaders >= m->lim.max_headers)
        mime_flag(p, MIME_ANOM_HEADER_LIMIT);
    if (val->len > m->lim.max_header_len) {
        val->len = m->lim.max_header_len;
        mime_flag(p, MIME_ANOM_HEADER_LIMIT);
    }
    for (size_t i = 0; i < val->len; i++)
        if (val->data[i] == 0) {
            val->data[i] = ' ';
            mime_flag(p, MIME_ANOM_NUL);
        }
    if ((p->nheaders & (p->nheaders - 1)) == 0)
        p->headers = xreallocarray(p->headers, p->nheaders ? p->nheaders * 2 : 1,
                                   sizeof *p->headers);
    struct mime_header *h = &p->headers[p->nheaders++];
    h->name = name;
    h->value = xstrndup(val->data ? val->data : "", val->len);
    h->raw_off = off;
    h->raw_len = rawlen;
    mime_account(m, sizeof *h + strlen(name) + val->len + 2);
}

/* Appends the text of a line to the value being unfolded, bounded so a
 * 50 MB header line costs at most max_header_len + one line of memory. */
static void mime_value_add(struct mime_msg *m, struct buf *val,
                           const unsigned char *s, size_t n)
{
    size_t room = m->lim.max_header_len + 1;

    if (val->len >= room)
        return;
    buf_append(val, s, n < room - val->len ? n : room - val->len);
}

/* An mbox "From " line (or its mboxrd escape ">From ") opening a message:
 * a file's first line, or left inside a forwarded message. */
static bool mime_skip_mbox_from(const unsigned char *s, size_t len,
                                struct mime_line *l)
{
    return l->start == 0 && ((len >= 5 && memcmp(s, "From ", 5) == 0) ||
                             (len >= 6 && memcmp(s, ">From ", 6) == 0));
}

size_t mime_header_parse(struct mime_msg *m, struct mime_part *p,
                         const unsigned char *s, size_t len, bool skip_from)
{
    struct buf val = BUF_INIT;
    char *name = NULL;
    size_t pos = 0, field_off = 0;

    while (pos < len) {
        struct mime_line l = mime_line_at(s, len, pos);
        size_t n = l.end - l.start, colon = 0;
        bool comment = false;
        if (n > MIME_LINE_MAX)
            mime_flag(p, MIME_ANOM_LONG_LINE);
        if (n == 0) {                                   /* end of headers */
            if (name)
                mime_header_store(m, p, name, &val, field_off,
                                  l.start - field_off);
            buf_free(&val);
            return l.next;
        }
        if (s[l.start] == ' ' || s[l.start] == '\t') {  /* folded */
            if (name == NULL)
                mime_flag(p, MIME_ANOM_BAD_HEADER);
            else
                mime_value_add(m, &val, s + l.start, n);
            pos = l.next;
            continue;
        }
        if (skip_from && mime_skip_mbox_from(s, len, &l)) {
            if (p->parent)
                mime_flag(p, MIME_ANOM_BAD_HEADER);
            pos = l.next;
            continue;
        }
        if (name)
            mime_header_store(m, p, name, &val, field_off, l.start - field_off);
        name = mime_field_name(s + l.start, n, &colon, &comment);
        if (name == NULL) {            /* not a field: the body starts here */
            mime_flag(p, MIME_ANOM_BAD_HEADER);
            buf_free(&val);
            return pos;
        }
        if (comment)
            mime_flag(p, MIME_ANOM_HEADER_COMMENT);
        field_off = l.start;
        buf_reset(&val);
        size_t v = l.start + colon + 1;
        while (v < l.end && (s[v] == ' ' || s[v] == '\t'))
            v++;
        mime_value_add(m, &val, s + v, l.end - v);
        pos = l.next;
    }
    if (name) {
        mime_flag(p, MIME_ANOM_NO_BODY);
        mime_header_store(m, p, name, &val, field_off, len - field_off);
    }
    buf_free(&val);
    return len;
}

bool mime_header_is(const struct mime_header *h, const char *name)
{
    return strcasecmp(h->name, name) == 0;
}
