/*
 * store_read - reads and validates a store entry (format in store.h);
 * streams its content.
 *
 * Interface: store_entry_read(), store_entry_open(), store_entry_free(),
 * store_content_open(), store_content_read().
 *
 * The reader walks the records with pread() (the fd offset is untouched),
 * checks every length against the file size and the per-type limit
 * before reading or allocating, requires the record order of store.h and
 * an END record that ends the file exactly.  Content is skipped, not
 * loaded.
 *
 * Diagnostics: -1 with a static reason ("truncated record", "record out
 * of order", ...).  Nothing here logs or aborts.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/io.h"
#include "util/mem.h"

#define SR_RCPT_MAX (1 + 4 + QUEUE_MAX_STRING + 4 + QUEUE_MAX_STRING)

struct store_reader {
    int fd;
    off_t size;
    int last_type;
    size_t rcpt_cap;
    const char *why;
};

static int sr_fail(struct store_reader *r, const char *why)
{
    if (r->why == NULL)
        r->why = why;
    return -1;
}

static char **sr_string_field(struct store_entry *e, int type)
{
    switch (type) {
    case SREC_QUEUE_ID: return (char **)&e->verdict.queue_id;
    case SREC_STATUS: return (char **)&e->verdict.status;
    case SREC_NAMES: return (char **)&e->verdict.names;
    case SREC_GROUP: return (char **)&e->verdict.group;
    case SREC_REASON: return (char **)&e->verdict.reason;
    case SREC_CLIENT_ADDR: return (char **)&e->env.client_addr;
    case SREC_CLIENT_NAME: return (char **)&e->env.client_name;
    case SREC_HELO: return (char **)&e->env.helo;
    case SREC_PROTO: return (char **)&e->env.proto;
    case SREC_SENDER: return (char **)&e->env.sender;
    case SREC_ENVID: return (char **)&e->env.envid;
    }
    return NULL;
}

static int sr_small(struct store_reader *r, struct store_entry *e, int type, const uint8_t *v,
                    uint32_t len)
{
    switch (type) {
    case SREC_AREA:
        if (len != 1 || v[0] >= STORE_NAREAS)
            return sr_fail(r, "bad AREA record");
        e->verdict.area = v[0];
        return 0;
    case SREC_STORED:
    case SREC_ARRIVAL:
        if (len != 8)
            return sr_fail(r, "bad time record");
        *(type == SREC_STORED ? &e->verdict.stored_us : &e->env.arrival_us) = get_u64(v);
        return 0;
    case SREC_RET:
        if (len != 1 || v[0] > QUEUE_RET_HDRS)
            return sr_fail(r, "bad RET record");
        e->env.ret = v[0];
        return 0;
    case SREC_BODY_TYPE:
        if (len != 1 || v[0] > QUEUE_BODY_BINARYMIME)
            return sr_fail(r, "bad BODY_TYPE record");
        e->env.body_type = v[0];
        return 0;
    case SREC_SMTPUTF8:
        if (len != 1 || v[0] > 1)
            return sr_fail(r, "bad SMTPUTF8 record");
        e->env.smtputf8 = v[0];
        return 0;
    }
    return sr_fail(r, "unknown record type");
}

static int sr_header(struct store_reader *r, struct store_entry *e, int type, off_t off,
                     uint32_t len)
{
    char **field = sr_string_field(e, type);
    uint8_t small[8];

    if (type <= r->last_type)
        return sr_fail(r, "record out of order");
    r->last_type = type;
    if (field == NULL) {
        if (len > sizeof(small) || io_pread_full(r->fd, small, len, off) < 0)
            return sr_fail(r, len > sizeof(small) ? "bad record length" : "read error");
        return sr_small(r, e, type, small, len);
    }
    if (len > QUEUE_MAX_STRING)
        return sr_fail(r, "string record too long");
    char *s = xmalloc((size_t)len + 1);
    if (io_pread_full(r->fd, s, len, off) < 0) {
        free(s);
        return sr_fail(r, "read error");
    }
    s[len] = 0;
    *field = s;
    if (!queue_string_ok(s, len))
        return sr_fail(r, "string with NUL/CR/LF");
    return 0;
}

static int sr_rcpt(struct store_reader *r, struct store_entry *e, off_t off, uint32_t len)
{
    uint8_t *v;
    struct queue_rcpt rc = { 0 };
    uint32_t alen, olen;

    if (len < 9 || len > SR_RCPT_MAX)
        return sr_fail(r, "bad RCPT length");
    if (e->env.nrcpts >= QUEUE_MAX_RCPTS)
        return sr_fail(r, "too many recipients");
    v = xmalloc(len);
    if (io_pread_full(r->fd, v, len, off) < 0) {
        free(v);
        return sr_fail(r, "read error");
    }
    alen = get_u32(v + 1);
    olen = alen <= len - 9 ? get_u32(v + 5 + alen) : 0;
    if (alen == 0 || alen > QUEUE_MAX_STRING || (size_t)alen + 9 > len
        || (size_t)alen + 9 + olen != len || olen > QUEUE_MAX_STRING || (v[0] & ~QUEUE_NOTIFY_MASK)
        || !queue_string_ok((char *)v + 5, alen) || !queue_string_ok((char *)v + 9 + alen, olen)) {
        free(v);
        return sr_fail(r, "bad RCPT record");
    }
    rc.notify = v[0];
    rc.addr = xstrndup((char *)v + 5, alen);
    rc.orcpt = olen ? xstrndup((char *)v + 9 + alen, olen) : NULL;
    free(v);
    if (e->env.nrcpts == r->rcpt_cap) {
        r->rcpt_cap = r->rcpt_cap ? r->rcpt_cap * 2 : 4;
        e->env.rcpts = xreallocarray(e->env.rcpts, r->rcpt_cap, sizeof(*e->env.rcpts));
    }
    e->env.rcpts[e->env.nrcpts++] = rc;
    return 0;
}

static int sr_content(struct store_reader *r, struct store_entry *e, off_t pos, uint32_t len)
{
    if (len == 0 || len > QUEUE_CONTENT_CHUNK)
        return sr_fail(r, "bad CONTENT length");
    if (e->env.nrcpts == 0)
        return sr_fail(r, "CONTENT before any RCPT");
    if (r->last_type != SREC_CONTENT)
        e->content_offset = pos;
    r->last_type = SREC_CONTENT;
    e->content_size += len;
    e->content_end = pos + QUEUE_REC_HEADER + len;
    return 0;
}

static int sr_end(struct store_reader *r, struct store_entry *e, off_t pos, uint32_t len)
{
    if (len != 0)
        return sr_fail(r, "END with a value");
    if (pos + QUEUE_REC_HEADER != r->size)
        return sr_fail(r, "data after END");
    if (e->env.nrcpts == 0)
        return sr_fail(r, "no recipient");
    if (e->env.sender == NULL || e->verdict.stored_us == 0)
        return sr_fail(r, "missing mandatory record");
    if (r->last_type != SREC_CONTENT)
        e->content_offset = e->content_end = pos;
    e->file_size = r->size;
    return 1;
}

/* One record at *pos: 1 = END seen, 0 = continue, -1 = bad. */
static int sr_record(struct store_reader *r, struct store_entry *e, off_t *pos)
{
    uint8_t hdr[QUEUE_REC_HEADER];
    off_t off = *pos;
    uint32_t len;
    int type, rc;

    if (r->size - off < QUEUE_REC_HEADER || io_pread_full(r->fd, hdr, sizeof(hdr), off) < 0)
        return sr_fail(r, "truncated record header");
    type = hdr[0];
    len = get_u32(hdr + 1);
    if ((off_t)len > r->size - off - QUEUE_REC_HEADER)
        return sr_fail(r, "record past the end of the file");
    *pos = off + QUEUE_REC_HEADER + len;
    if (type == SREC_END)
        return sr_end(r, e, off, len);
    if (type == SREC_CONTENT)
        return sr_content(r, e, off, len);
    if (r->last_type == SREC_CONTENT)
        return sr_fail(r, "record after CONTENT");
    if (type == SREC_RCPT) {
        if (r->last_type > SREC_RCPT || r->last_type < SREC_SENDER)
            return sr_fail(r, "RCPT out of order");
        r->last_type = SREC_RCPT;
        return sr_rcpt(r, e, off + QUEUE_REC_HEADER, len);
    }
    if (r->last_type == SREC_RCPT || type == SREC_VERSION || type > SREC_SMTPUTF8)
        return sr_fail(r, type > SREC_SMTPUTF8 ? "unknown record type" : "record out of order");
    rc = sr_header(r, e, type, off + QUEUE_REC_HEADER, len);
    return rc < 0 ? -1 : 0;
}

static int sr_version(struct store_reader *r)
{
    uint8_t v[QUEUE_REC_HEADER + 4];

    if (r->size < (off_t)sizeof(v) || io_pread_full(r->fd, v, sizeof(v), 0) < 0)
        return sr_fail(r, "truncated VERSION record");
    if (v[0] != SREC_VERSION || get_u32(v + 1) != 4)
        return sr_fail(r, "not a store entry");
    if (get_u32(v + QUEUE_REC_HEADER) != STORE_VERSION)
        return sr_fail(r, "unsupported store version");
    r->last_type = SREC_VERSION;
    return 0;
}

int store_entry_read(int fd, struct store_entry *e, const char **why)
{
    struct store_reader r = { .fd = fd };
    struct stat st;
    off_t pos = QUEUE_REC_HEADER + 4;
    int rc = 0;
    char id[STORE_ID_SIZE];

    memcpy(id, e->id, sizeof(id));
    memset(e, 0, sizeof(*e));
    memcpy(e->id, id, sizeof(id));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        return -1;
    }
    r.size = st.st_size;
    if (sr_version(&r) == 0) {
        while ((rc = sr_record(&r, e, &pos)) == 0)
            ;
    } else {
        rc = -1;
    }
    if (rc < 0) {
        *why = r.why ? r.why : "bad entry";
        store_entry_free(e);
        memcpy(e->id, id, sizeof(id));
        return -1;
    }
    return 0;
}

int store_entry_open(const char *dir, const char *id, struct store_entry *e, const char **why)
{
    char *path;
    int fd;

    memset(e, 0, sizeof(*e));
    if (!store_id_valid(id)) {
        *why = "invalid ID";
        errno = EINVAL;
        return -1;
    }
    str_copy(e->id, id, sizeof(e->id));
    path = xasprintf("%s/%s", dir, id);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    if (fd < 0) {
        *why = errno == ENOENT ? "no such entry" : "cannot open the entry";
        return -1;
    }
    if (store_entry_read(fd, e, why) < 0) {
        int err = errno;
        close(fd);
        errno = err ? err : EINVAL;
        return -1;
    }
    return fd;
}

void store_entry_free(struct store_entry *e)
{
    free((char *)e->verdict.queue_id);
    free((char *)e->verdict.status);
    free((char *)e->verdict.names);
    free((char *)e->verdict.group);
    free((char *)e->verdict.reason);
    free((char *)e->env.client_addr);
    free((char *)e->env.client_name);
    free((char *)e->env.helo);
    free((char *)e->env.proto);
    free((char *)e->env.sender);
    free((char *)e->env.envid);
    for (size_t i = 0; i < e->env.nrcpts; i++) {
        free((char *)e->env.rcpts[i].addr);
        free((char *)e->env.rcpts[i].orcpt);
    }
    free(e->env.rcpts);
    memset(e, 0, sizeof(*e));
}

void store_content_open(struct store_content *c, int fd, const struct store_entry *e)
{
    c->fd = fd;
    c->pos = e->content_offset;
    c->end = e->content_end;
    c->left = 0;
}

ssize_t store_content_read(struct store_content *c, void *p, size_t n, const char **why)
{
    uint8_t hdr[QUEUE_REC_HEADER];

    while (c->left == 0) {
        if (c->pos >= c->end)
            return 0;
        if (io_pread_full(c->fd, hdr, sizeof(hdr), c->pos) < 0 || hdr[0] != SREC_CONTENT) {
            *why = "entry changed while reading";
            return -1;
        }
        c->left = get_u32(hdr + 1);
        c->pos += QUEUE_REC_HEADER;
    }
    if (n > c->left)
        n = c->left;
    if (io_pread_full(c->fd, p, n, c->pos) < 0) {
        *why = "read error";
        return -1;
    }
    c->pos += (off_t)n;
    c->left -= (uint32_t)n;
    return (ssize_t)n;
}
