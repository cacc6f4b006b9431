/*
 * queue_file - reads and validates a queue file; streams its content;
 * records recipient outcomes in place (format in queue_file.h).
 *
 * Interface: queue_file_read(), queue_file_free(), queue_content_open(),
 * queue_content_read(), queue_rcpt_set_status(), queue_rcpt_mark_status(),
 * queue_file_sync(), queue_rec_name(), queue_string_ok().  The post
 * record writers are in queue_post.c.
 *
 * The reader walks the records through pread() and a 64 KiB window, so
 * the fd's file offset is untouched and content is never loaded.  Every
 * length is checked against the file size and the per-type limit before
 * anything is read or allocated; the file must end exactly after END.
 *
 * Diagnostics: -1 with a static reason naming what was wrong (for the
 * "moved to corrupt/" log line).  Nothing here logs or aborts.
 */
#include "queue/queue_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/io.h"
#include "util/mem.h"

#define QR_WINDOW 65536
#define QR_SMALL_READ 4096
#define QR_RCPT_MAX_LEN (2 + 4 + QUEUE_MAX_STRING + 4 + QUEUE_MAX_STRING)

enum { QR_START, QR_ENVELOPE, QR_RCPT, QR_CONTENT, QR_POST };

struct queue_reader {
    int fd;
    off_t size;
    char *win;
    off_t win_off;
    size_t win_len;
    int phase;
    int last_type;
    bool seen_arrival;
    bool seen_flags;
    size_t rcpt_cap;
};

const char *queue_rec_name(int type)
{
    static const char *const names[] = {
        [QREC_VERSION] = "VERSION", [QREC_ARRIVAL] = "ARRIVAL",
        [QREC_CLIENT_ADDR] = "CLIENT_ADDR", [QREC_CLIENT_NAME] = "CLIENT_NAME",
        [QREC_HELO] = "HELO", [QREC_PROTO] = "PROTO", [QREC_TLS] = "TLS",
        [QREC_SENDER] = "SENDER", [QREC_ENVID] = "ENVID", [QREC_RET] = "RET",
        [QREC_BODY_TYPE] = "BODY_TYPE", [QREC_SMTPUTF8] = "SMTPUTF8",
        [QREC_RCPT] = "RCPT", [QREC_CONTENT] = "CONTENT", [QREC_FLAGS] = "FLAGS",
        [QREC_REASON] = "REASON", [QREC_END] = "END",
    };
    if (type >= 0 && (size_t)type < sizeof names / sizeof names[0] && names[type])
        return names[type];
    return "unknown";
}

bool queue_string_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0 || s[i] == '\r' || s[i] == '\n')
            return false;
    }
    return true;
}

/* Bytes [off, off+n) of the file (n <= QR_WINDOW, range already checked
 * to be inside the file), valid until the next call. */
static const char *queue_reader_map(struct queue_reader *r, off_t off, size_t n)
{
    if (off < r->win_off || off + (off_t)n > r->win_off + (off_t)r->win_len) {
        /* from the content on, records are headers far apart: a page,
         * not a window of content nobody looks at */
        size_t want = r->phase >= QR_CONTENT && n <= QR_SMALL_READ ? QR_SMALL_READ : QR_WINDOW;
        if ((off_t)want > r->size - off)
            want = (size_t)(r->size - off);
        if (io_pread_full(r->fd, r->win, want, off) < 0)
            return NULL;
        r->win_off = off;
        r->win_len = want;
    }
    return r->win + (off - r->win_off);
}

static int queue_reader_get(struct queue_reader *r, off_t off, void *p, size_t n)
{
    const char *s = queue_reader_map(r, off, n);

    if (s == NULL)
        return -1;
    memcpy(p, s, n);
    return 0;
}

static int queue_reader_string(struct queue_reader *r, off_t off, uint32_t len,
                               const char **out, const char **why)
{
    const char *tmp;

    if (len > QUEUE_MAX_STRING) {
        *why = "envelope string too long";
        return -1;
    }
    if ((tmp = queue_reader_map(r, off, len)) == NULL) {
        *why = "read error";
        return -1;
    }
    if (!queue_string_ok(tmp, len)) {
        *why = "envelope string with NUL, CR or LF";
        return -1;
    }
    *out = xstrndup(tmp, len);
    return 0;
}

static int queue_reader_small(struct queue_reader *r, off_t off, uint32_t len,
                              uint32_t want, void *p, const char **why)
{
    if (len != want) {
        *why = "bad record length";
        return -1;
    }
    if (queue_reader_get(r, off, p, len) < 0) {
        *why = "read error";
        return -1;
    }
    return 0;
}

static const char **queue_envelope_field(struct queue_envelope *env, int type)
{
    switch (type) {
    case QREC_CLIENT_ADDR: return &env->client_addr;
    case QREC_CLIENT_NAME: return &env->client_name;
    case QREC_HELO: return &env->helo;
    case QREC_PROTO: return &env->proto;
    case QREC_TLS: return &env->tls;
    case QREC_SENDER: return &env->sender;
    case QREC_ENVID: return &env->envid;
    default: return NULL;
    }
}

static int queue_reader_envelope(struct queue_reader *r, struct queue_file *qf, int type,
                                 off_t off, uint32_t len, const char **why)
{
    unsigned char v[8];
    const char **field = queue_envelope_field(&qf->env, type);

    if (r->phase != QR_ENVELOPE || type <= r->last_type) {
        *why = "envelope record out of order";
        return -1;
    }
    r->last_type = type;
    if (field)
        return queue_reader_string(r, off, len, field, why);
    if (type == QREC_ARRIVAL) {
        if (queue_reader_small(r, off, len, 8, v, why) < 0)
            return -1;
        qf->env.arrival_us = get_u64(v);
        r->seen_arrival = true;
        return 0;
    }
    if (queue_reader_small(r, off, len, 1, v, why) < 0)
        return -1;
    if ((type == QREC_RET && (v[0] < QUEUE_RET_FULL || v[0] > QUEUE_RET_HDRS)) ||
        (type == QREC_BODY_TYPE && (v[0] < QUEUE_BODY_7BIT || v[0] > QUEUE_BODY_BINARYMIME)) ||
        (type == QREC_SMTPUTF8 && v[0] != 1)) {
        *why = "bad envelope value";
        return -1;
    }
    if (type == QREC_RET)
        qf->env.ret = v[0];
    else if (type == QREC_BODY_TYPE)
        qf->env.body_type = v[0];
    else
        qf->env.smtputf8 = true;
    return 0;
}

/* Split and check one RCPT value (len bytes at v). */
static int queue_rcpt_parse(const unsigned char *v, uint32_t len, struct queue_rcpt *rc,
                            const char **why)
{
    uint64_t alen, olen;

    *why = "bad RCPT record";
    if (len < 2 + 4 + 1 + 4 || v[0] > QUEUE_RCPT_STATUS_MAX || (v[1] & ~QUEUE_NOTIFY_MASK))
        return -1;
    alen = get_u32(v + 2);
    if (alen == 0 || alen > QUEUE_MAX_STRING || 6 + alen + 4 > len)
        return -1;
    olen = get_u32(v + 6 + alen);
    if (olen > QUEUE_MAX_STRING || 6 + alen + 4 + olen != len)
        return -1;
    if (!queue_string_ok((const char *)v + 6, alen) ||
        !queue_string_ok((const char *)v + 10 + alen, olen)) {
        *why = "recipient with NUL, CR or LF";
        return -1;
    }
    rc->status = v[0];
    rc->notify = v[1];
    rc->addr = xstrndup((const char *)v + 6, alen);
    rc->orcpt = olen ? xstrndup((const char *)v + 10 + alen, olen) : NULL;
    return 0;
}

static int queue_reader_rcpt(struct queue_reader *r, struct queue_file *qf,
                             off_t off, uint32_t len, const char **why)
{
    const unsigned char *v;
    struct queue_envelope *env = &qf->env;

    if (r->phase == QR_ENVELOPE) {
        if (!r->seen_arrival || env->sender == NULL) {
            *why = !r->seen_arrival ? "missing ARRIVAL record" : "missing SENDER record";
            return -1;
        }
        r->phase = QR_RCPT;
    }
    if (r->phase != QR_RCPT) {
        *why = "RCPT record out of order";
        return -1;
    }
    if (env->nrcpts >= QUEUE_MAX_RCPTS || len > QR_RCPT_MAX_LEN) {
        *why = env->nrcpts >= QUEUE_MAX_RCPTS ? "too many recipients" : "bad RCPT record";
        return -1;
    }
    if ((v = (const unsigned char *)queue_reader_map(r, off, len)) == NULL) {
        *why = "read error";
        return -1;
    }
    if (env->nrcpts == r->rcpt_cap) {
        r->rcpt_cap = r->rcpt_cap ? r->rcpt_cap * 2 : 8;
        env->rcpts = xreallocarray(env->rcpts, r->rcpt_cap, sizeof *env->rcpts);
    }
    memset(&env->rcpts[env->nrcpts], 0, sizeof env->rcpts[0]);
    if (queue_rcpt_parse(v, len, &env->rcpts[env->nrcpts], why) < 0)
        return -1;
    env->rcpts[env->nrcpts++].status_offset = off;
    return 0;
}

static int queue_reader_content(struct queue_reader *r, struct queue_file *qf,
                                off_t hdr, uint32_t len, const char **why)
{
    if (r->phase != QR_RCPT && r->phase != QR_CONTENT) {
        *why = r->phase == QR_ENVELOPE ? "no recipients" : "CONTENT record out of order";
        return -1;
    }
    if (len == 0 || len > QUEUE_CONTENT_CHUNK) {
        *why = "bad CONTENT record length";
        return -1;
    }
    if (r->phase == QR_RCPT)
        qf->content_offset = hdr;
    r->phase = QR_CONTENT;
    qf->content_size += len;
    qf->content_end = hdr + QUEUE_REC_HEADER + len;
    return 0;
}

static int queue_reader_end(struct queue_reader *r, struct queue_file *qf,
                            off_t hdr, uint32_t len, const char **why)
{
    if (r->phase != QR_RCPT && r->phase != QR_CONTENT && r->phase != QR_POST) {
        *why = r->phase == QR_ENVELOPE ? "no recipients" : "missing VERSION record";
        return -1;
    }
    if (len != 0 || hdr + QUEUE_REC_HEADER != r->size) {
        *why = len != 0 ? "bad END record length" : "data after END record";
        return -1;
    }
    if (r->phase == QR_RCPT)
        qf->content_offset = qf->content_end = hdr;
    if (r->phase != QR_POST)
        qf->post_offset = hdr;
    qf->file_size = r->size;
    return 0;
}

static int queue_reader_version(struct queue_reader *r, struct queue_file *qf,
                                off_t off, uint32_t len, const char **why)
{
    unsigned char v[4];

    if (r->phase != QR_START) {
        *why = "VERSION record out of order";
        return -1;
    }
    if (queue_reader_small(r, off, len, 4, v, why) < 0)
        return -1;
    qf->version = get_u32(v);
    if (qf->version != QUEUE_FILE_VERSION) {
        *why = "unsupported queue file version";
        return -1;
    }
    r->phase = QR_ENVELOPE;
    return 0;
}

/* FLAGS: u32 of known bits, once. */
static int queue_reader_flags(struct queue_reader *r, struct queue_file *qf, off_t off,
                              uint32_t len, const char **why)
{
    unsigned char v[4];

    if (r->seen_flags) {
        *why = "duplicate FLAGS record";
        return -1;
    }
    if (queue_reader_small(r, off, len, 4, v, why) < 0)
        return -1;
    qf->flags = get_u32(v);
    if (qf->flags & ~(uint32_t)QUEUE_FLAGS_KNOWN) {
        *why = "bad FLAGS record";
        return -1;
    }
    r->seen_flags = true;
    return 0;
}

/* REASON: u32 index, u8 dsn length, dsn, text; once per recipient. */
static int queue_reader_reason(struct queue_reader *r, struct queue_file *qf, off_t off,
                               uint32_t len, const char **why)
{
    const unsigned char *v;
    struct queue_rcpt *rc;
    uint32_t idx, dlen;

    *why = "bad REASON record";
    if (len < 5 || len > 5 + 15 + QUEUE_MAX_STRING ||
        (v = (const unsigned char *)queue_reader_map(r, off, len)) == NULL)
        return -1;
    idx = get_u32(v);
    dlen = v[4];
    if (idx >= qf->env.nrcpts || dlen > 15 || 5 + dlen > len ||
        len - 5 - dlen > QUEUE_MAX_STRING || qf->env.rcpts[idx].reason_dsn != NULL)
        return -1;
    for (uint32_t i = 0; i < dlen; i++) {
        if (!((v[5 + i] >= '0' && v[5 + i] <= '9') || v[5 + i] == '.'))
            return -1;
    }
    if (!queue_string_ok((const char *)v + 5 + dlen, len - 5 - dlen)) {
        *why = "reason with NUL, CR or LF";
        return -1;
    }
    rc = &qf->env.rcpts[idx];
    rc->reason_dsn = xstrndup((const char *)v + 5, dlen);
    rc->reason = xstrndup((const char *)v + 5 + dlen, len - 5 - dlen);
    return 0;
}

/* A post record: after the recipients and the content, before END. */
static int queue_reader_post(struct queue_reader *r, struct queue_file *qf, int type,
                             off_t hdr, uint32_t len, const char **why)
{
    if (r->phase != QR_RCPT && r->phase != QR_CONTENT && r->phase != QR_POST) {
        *why = r->phase == QR_ENVELOPE ? "no recipients" : "post record out of order";
        return -1;
    }
    if (r->phase == QR_RCPT)
        qf->content_offset = qf->content_end = hdr;
    if (r->phase != QR_POST)
        qf->post_offset = hdr;
    r->phase = QR_POST;
    if (type == QREC_FLAGS)
        return queue_reader_flags(r, qf, hdr + QUEUE_REC_HEADER, len, why);
    return queue_reader_reason(r, qf, hdr + QUEUE_REC_HEADER, len, why);
}

/* One record at *pos; 1 = END seen, 0 = more, -1 = bad. */
static int queue_reader_record(struct queue_reader *r, struct queue_file *qf, off_t *pos,
                               const char **why)
{
    unsigned char h[QUEUE_REC_HEADER];
    off_t hdr = *pos, val = hdr + QUEUE_REC_HEADER;
    uint32_t len;
    int type, rc;

    if (r->size - hdr < QUEUE_REC_HEADER) {
        *why = hdr == r->size ? "missing END record" : "truncated record header";
        return -1;
    }
    if (queue_reader_get(r, hdr, h, sizeof h) < 0) {
        *why = "read error";
        return -1;
    }
    type = h[0];
    len = get_u32(h + 1);
    if ((off_t)len > r->size - val) {
        *why = "record length past end of file";
        return -1;
    }
    if (r->phase == QR_START && type != QREC_VERSION) {
        *why = "missing VERSION record";
        return -1;
    }
    if (type == QREC_VERSION)
        rc = queue_reader_version(r, qf, val, len, why);
    else if (type >= QREC_ARRIVAL && type <= QREC_SMTPUTF8)
        rc = queue_reader_envelope(r, qf, type, val, len, why);
    else if (type == QREC_RCPT)
        rc = queue_reader_rcpt(r, qf, val, len, why);
    else if (type == QREC_CONTENT)
        rc = queue_reader_content(r, qf, hdr, len, why);
    else if (type == QREC_FLAGS || type == QREC_REASON)
        rc = queue_reader_post(r, qf, type, hdr, len, why);
    else if (type == QREC_END)
        return queue_reader_end(r, qf, hdr, len, why) < 0 ? -1 : 1;
    else {
        *why = "unknown record type";
        rc = -1;
    }
    *pos = val + len;
    return rc;
}

int queue_file_read(int fd, struct queue_file *qf, const char **why)
{
    struct queue_reader r;
    struct stat st;
    off_t pos = 0;
    int rc;

    memset(qf, 0, sizeof *qf);
    if (fstat(fd, &st) < 0) {
        *why = "cannot stat queue file";
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        return -1;
    }
    memset(&r, 0, sizeof r);
    r.fd = fd;
    r.size = st.st_size;
    r.win = xmalloc(QR_WINDOW);
    while ((rc = queue_reader_record(&r, qf, &pos, why)) == 0)
        ;
    free(r.win);
    if (rc < 0) {
        queue_file_free(qf);
        return -1;
    }
    return 0;
}

void queue_file_free(struct queue_file *qf)
{
    struct queue_envelope *env = &qf->env;

    for (int t = QREC_CLIENT_ADDR; t <= QREC_ENVID; t++) {
        const char **f = queue_envelope_field(env, t);
        if (f)
            free((void *)*f);
    }
    for (size_t i = 0; i < env->nrcpts; i++) {
        free((void *)env->rcpts[i].addr);
        free((void *)env->rcpts[i].orcpt);
        free((void *)env->rcpts[i].reason);
        free((void *)env->rcpts[i].reason_dsn);
    }
    free(env->rcpts);
    memset(qf, 0, sizeof *qf);
}

void queue_content_open(struct queue_content *c, int fd, const struct queue_file *qf)
{
    c->fd = fd;
    c->pos = qf->content_offset;
    c->end = qf->content_end;
    c->left = 0;
}

static int queue_content_next(struct queue_content *c, const char **why)
{
    unsigned char h[QUEUE_REC_HEADER];

    if (c->end - c->pos < QUEUE_REC_HEADER || io_pread_full(c->fd, h, sizeof h, c->pos) < 0 ||
        h[0] != QREC_CONTENT) {
        *why = "queue file changed while reading content";
        return -1;
    }
    c->left = get_u32(h + 1);
    c->pos += QUEUE_REC_HEADER;
    if (c->left == 0 || c->left > QUEUE_CONTENT_CHUNK || (off_t)c->left > c->end - c->pos) {
        *why = "queue file changed while reading content";
        return -1;
    }
    return 0;
}

ssize_t queue_content_read(struct queue_content *c, void *p, size_t n, const char **why)
{
    size_t done = 0;

    while (done < n && c->pos < c->end) {
        size_t take;
        if (c->left == 0 && queue_content_next(c, why) < 0)
            return -1;
        take = n - done < c->left ? n - done : c->left;
        if (io_pread_full(c->fd, (char *)p + done, take, c->pos) < 0) {
            *why = "queue file read error";
            return -1;
        }
        done += take;
        c->pos += (off_t)take;
        c->left -= (uint32_t)take;
    }
    return (ssize_t)done;
}

int queue_rcpt_mark_status(int fd, struct queue_rcpt *rcpt, uint8_t status)
{
    if (status > QUEUE_RCPT_STATUS_MAX || rcpt->status_offset <= 0) {
        errno = EINVAL;
        return -1;
    }
    for (;;) {
        ssize_t n = pwrite(fd, &status, 1, rcpt->status_offset);
        if (n == 1)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO;
        return -1;
    }
    rcpt->status = status;
    return 0;
}

int queue_file_sync(int fd)
{
    return fdatasync(fd);
}

int queue_rcpt_set_status(int fd, struct queue_rcpt *rcpt, uint8_t status)
{
    if (queue_rcpt_mark_status(fd, rcpt, status) < 0)
        return -1;
    return queue_file_sync(fd);
}
