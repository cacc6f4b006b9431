/*
 * mime - message life cycle of the MIME parser: mapping the input,
 * limits, memory accounting, the pre-order walk, raw access, freeing.
 *
 * Interface: see mime.h (mime_msg_parse_fd/_mem/_reader, mime_msg_free,
 * mime_msg_raw[_to_fd], mime_part_next, mime_part_header, mime_anom_names).
 *
 * Diagnostics: NULL with errno for I/O errors only; bad input is reported
 * through anomaly bits, never logged here.
 *
 * Security: the region is mapped read-only and private; mime_account()
 * charges every allocation that depends on input to the message, so a
 * hostile message cannot grow the metadata past lim.max_mem.
 */
#include "mime/mime_int.h"
#include "util/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void mime_limits_default(struct mime_limits *lim)
{
    lim->max_depth = 32;
    lim->max_parts = 10000;
    lim->max_header_len = 65536;
    lim->max_headers = 1000;
    lim->max_mem = 64u << 20;
    lim->max_read = 256u << 20;
}

void mime_account(struct mime_msg *m, size_t n)
{
    if (!size_add(m->mem_used, n, &m->mem_used))
        m->mem_used = SIZE_MAX;
}

bool mime_over_budget(const struct mime_msg *m)
{
    return m->mem_used > m->lim.max_mem;
}

bool mime_work_add(struct mime_msg *m, size_t n)
{
    uint64_t budget = (uint64_t)(m->lim.max_depth + 8) * m->len + (64u << 20);

    m->work_used += n;
    return m->work_used <= budget;
}

void mime_flag(struct mime_part *p, uint32_t bits)
{
    p->anom |= bits;
    p->msg->anom |= bits;
}

struct mime_src *mime_src_add(struct mime_msg *m, unsigned char *owned,
                              size_t len)
{
    struct mime_src *s = xcalloc(1, sizeof *s);

    s->p = owned;
    s->len = len;
    s->owned = owned;
    s->next = m->srcs;
    m->srcs = s;
    mime_account(m, sizeof *s + len);
    return s;
}

/* Bare LF is normal in files but never in queue content (CRLF). */
static void mime_check_eol(struct mime_msg *m)
{
    const unsigned char *p = m->data, *end = m->data + m->len;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (p == m->data || p[-1] != '\r') {
            m->anom |= MIME_ANOM_BARE_LF;
            return;
        }
        p++;
    }
}

static struct mime_msg *mime_msg_build(const void *p, size_t len,
                                       const struct mime_limits *lim)
{
    struct mime_msg *m = xcalloc(1, sizeof *m);

    if (lim)
        m->lim = *lim;
    else
        mime_limits_default(&m->lim);
    if (m->lim.max_depth > MIME_DEPTH_CAP)
        m->lim.max_depth = MIME_DEPTH_CAP;
    if (m->lim.max_parts == 0)
        m->lim.max_parts = 1;
    m->data = p;
    m->len = len;
    struct mime_src *s = mime_src_add(m, NULL, len);
    s->p = p;
    mime_check_eol(m);
    m->root = mime_part_new(m, NULL, s, 0, len);
    mime_parse_entity(m, m->root, "text/plain");
    return m;
}

struct mime_msg *mime_msg_parse_mem(const void *p, size_t len,
                                    const struct mime_limits *lim)
{
    return mime_msg_build(len ? p : "", len, lim);
}

/* Maps [off, off+len) of fd; falls back to pread into the heap for files
 * that cannot be mapped (pipes are not supported: use the reader). */
struct mime_msg *mime_msg_parse_fd(int fd, off_t off, size_t len,
                                   const struct mime_limits *lim)
{
    long pg = sysconf(_SC_PAGESIZE);
    off_t base = off - off % (pg > 0 ? pg : 4096);
    size_t lead = (size_t)(off - base), maplen;
    void *map = MAP_FAILED;

    struct stat st;

    if (off < 0 || !size_add(len, lead, &maplen)) {
        errno = EINVAL;
        return NULL;
    }
    /* mapping past the end of the file would SIGBUS on access */
    if (fstat(fd, &st) < 0)
        return NULL;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < (uint64_t)off + len) {
        errno = EINVAL;
        return NULL;
    }
    if (len > 0)
        map = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fd, base);
    if (map != MAP_FAILED) {
        struct mime_msg *m = mime_msg_build((char *)map + lead, len, lim);
        m->map = map;
        m->map_len = maplen;
        return m;
    }
    unsigned char *heap = xmalloc(len + 1);
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, heap + got, len - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(heap);
            if (r == 0)
                errno = EIO;
            return NULL;
        }
        got += (size_t)r;
    }
    struct mime_msg *m = mime_msg_build(heap, len, lim);
    m->map = heap;
    m->map_is_heap = true;
    return m;
}

struct mime_msg *mime_msg_parse_reader(mime_read_fn fn, void *arg,
                                       const struct mime_limits *lim)
{
    struct mime_limits l;
    struct buf b = BUF_INIT;
    char chunk[MIME_CHUNK];
    ssize_t r;

    if (lim)
        l = *lim;
    else
        mime_limits_default(&l);
    while ((r = fn(arg, chunk, sizeof chunk)) != 0) {
        if (r < 0 || b.len + (size_t)r > l.max_read) {
            buf_free(&b);
            errno = r < 0 ? errno : EFBIG;
            return NULL;
        }
        buf_append(&b, chunk, (size_t)r);
    }
    struct mime_msg *m = mime_msg_build(b.data ? b.data : "", b.len, &l);
    m->map = b.data;
    m->map_is_heap = true;
    return m;
}

static void mime_part_free(struct mime_part *p)
{
    while (p) {
        struct mime_part *next = p->next;
        mime_part_free(p->child);
        for (size_t i = 0; i < p->nheaders; i++) {
            free(p->headers[i].name);
            free(p->headers[i].value);
        }
        free(p->headers);
        for (size_t i = 0; i < p->nnames; i++)
            free(p->names[i]);
        free(p->names);
        free(p->type);
        free(p->charset);
        free(p->disposition);
        free(p->filename);
        free(p->boundary);
        free(p);
        p = next;
    }
}

void mime_msg_free(struct mime_msg *m)
{
    if (m == NULL)
        return;
    mime_part_free(m->root);
    while (m->srcs) {
        struct mime_src *s = m->srcs;
        m->srcs = s->next;
        free(s->owned);
        free(s);
    }
    if (m->map_is_heap)
        free(m->map);
    else if (m->map)
        munmap(m->map, m->map_len);
    free(m);
}

void mime_msg_raw(const struct mime_msg *m, const void **p, size_t *len)
{
    *p = m->data;
    *len = m->len;
}

int mime_msg_raw_to_fd(const struct mime_msg *m, int fd)
{
    size_t done = 0;

    while (done < m->len) {
        ssize_t w = write(fd, m->data + done, m->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

struct mime_part *mime_part_next(struct mime_part *p)
{
    if (p->child)
        return p->child;
    while (p) {
        if (p->next)
            return p->next;
        p = p->parent;
    }
    return NULL;
}

const char *mime_part_header(const struct mime_part *p, const char *name,
                             size_t i)
{
    for (size_t k = 0; k < p->nheaders; k++)
        if (strcasecmp(p->headers[k].name, name) == 0 && i-- == 0)
            return p->headers[k].value;
    return NULL;
}

static const char *const mime_anom_name[MIME_ANOM_COUNT] = {
    "DUP_CT", "DUP_CTE", "MISSING_BOUNDARY", "NO_OPEN_BOUNDARY",
    "NO_CLOSE_BOUNDARY", "DUP_BOUNDARY", "DUP_FILENAME_CONFLICT",
    "TRUNCATED_B64", "BAD_B64", "BAD_QP", "DEPTH_LIMIT", "PART_LIMIT",
    "HEADER_LIMIT", "NUL", "BARE_LF", "LONG_LINE", "NO_BODY", "BAD_HEADER",
    "HEADER_COMMENT", "STRAY_BOUNDARY", "UNKNOWN_CTE", "ENCODED_CONTAINER",
    "UU_TRUNCATED", "WORK_LIMIT", "BAD_PARAM", "BAD_ENCODED_WORD",
    "PART_AFTER_CLOSE", "LOOSE_BOUNDARY",
};

void mime_anom_names(uint32_t mask, struct buf *out)
{
    bool first = true;

    for (unsigned i = 0; i < MIME_ANOM_COUNT; i++) {
        if (!(mask & (1u << i)))
            continue;
        if (!first)
            buf_append_byte(out, ',');
        buf_append_str(out, mime_anom_name[i]);
        first = false;
    }
}

const char *mime_enc_name(enum mime_enc enc)
{
    switch (enc) {
    case MIME_ENC_BASE64:
        return "base64";
    case MIME_ENC_QP:
        return "quoted-printable";
    case MIME_ENC_UU:
        return "uuencode";
    default:
        return "identity";
    }
}
