/*
 * store_write - writes a new store entry (format in store.h).
 *
 * Interface: store_dir_prepare(), store_writer_open/header/content/
 * commit/abort(), store_put_queue_file().
 *
 * Durability: the entry is written to AREA/tmp/ID (buffered, one write
 * per ~64 KiB), END appended, fsync()ed, renamed to AREA/ID, then AREA/
 * is fsync()ed; only after that does store_writer_commit() return 0, so
 * a caller that answers "ok" afterwards never loses the copy.  Any
 * failure removes the temp file.
 *
 * Diagnostics: -1 with w->error (a static reason) and errno; nothing here
 * logs.  Security: strings are checked (no NUL/CR/LF, length limit) as
 * the queue writer does, so a reader never sees what it would reject.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/mem.h"

#define STORE_FLUSH_AT 65536

static int store_mkdir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -1;
    char *parent = xstrdup(path);
    char *slash = strrchr(parent, '/');
    int rc = -1;

    if (slash != NULL && slash != parent) {
        *slash = 0;
        if (store_mkdir(parent) == 0)
            rc = mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
    }
    free(parent);
    return rc;
}

int store_dir_prepare(const char *dir)
{
    char *tmp;
    int rc;

    if (dir == NULL || *dir != '/') {
        errno = EINVAL;
        return -1;
    }
    if (store_mkdir(dir) < 0)
        return -1;
    tmp = xasprintf("%s/tmp", dir);
    rc = store_mkdir(tmp);
    free(tmp);
    return rc;
}

static int store_writer_fail(struct store_writer *w, int err, const char *why)
{
    if (w->error == NULL)
        w->error = why;
    errno = err;
    return -1;
}

int store_writer_open(struct store_writer *w, const char *dir)
{
    memset(w, 0, sizeof(*w));
    w->fd = w->dirfd = w->tmpfd = -1;
    w->chunk_hdr = SIZE_MAX;
    if (store_dir_prepare(dir) < 0)
        return store_writer_fail(w, errno, "cannot create the area directory");
    w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0)
        return store_writer_fail(w, errno, "cannot open the area directory");
    w->tmpfd = openat(w->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->tmpfd < 0)
        return store_writer_fail(w, errno, "cannot open the area's tmp directory");
    w->fd = queue_id_create(w->tmpfd, w->id);
    if (w->fd < 0)
        return store_writer_fail(w, errno, "cannot create a temporary file");
    buf_put_u8(&w->out, SREC_VERSION);
    buf_put_u32(&w->out, 4);
    buf_put_u32(&w->out, STORE_VERSION);
    return 0;
}

static int store_writer_flush(struct store_writer *w)
{
    size_t off = 0;

    while (off < w->out.len) {
        ssize_t n = write(w->fd, w->out.data + off, w->out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return store_writer_fail(w, n < 0 ? errno : EIO, "write error");
        off += (size_t)n;
    }
    buf_reset(&w->out);
    return 0;
}

static void store_rec(struct store_writer *w, int type, const void *p, size_t n)
{
    buf_put_u8(&w->out, (uint8_t)type);
    buf_put_u32(&w->out, (uint32_t)n);
    buf_append(&w->out, p, n);
}

static int store_str(struct store_writer *w, int type, const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strlen(s);
    if (n > QUEUE_MAX_STRING || !queue_string_ok(s, n))
        return store_writer_fail(w, EINVAL, "string with CR/LF or too long");
    store_rec(w, type, s, n);
    return 0;
}

static void store_u8(struct store_writer *w, int type, unsigned v)
{
    uint8_t b = (uint8_t)v;

    store_rec(w, type, &b, 1);
}

static void store_u64(struct store_writer *w, int type, uint64_t v)
{
    buf_put_u8(&w->out, (uint8_t)type);
    buf_put_u32(&w->out, 8);
    buf_put_u64(&w->out, v);
}

static uint64_t store_now_us(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static int store_writer_verdict(struct store_writer *w, const struct store_verdict *v)
{
    if ((unsigned)v->area >= STORE_NAREAS)
        return store_writer_fail(w, EINVAL, "bad area");
    store_u8(w, SREC_AREA, v->area);
    if (store_str(w, SREC_QUEUE_ID, v->queue_id) < 0)
        return -1;
    store_u64(w, SREC_STORED, v->stored_us ? v->stored_us : store_now_us());
    if (store_str(w, SREC_STATUS, v->status) < 0 || store_str(w, SREC_NAMES, v->names) < 0
        || store_str(w, SREC_GROUP, v->group) < 0 || store_str(w, SREC_REASON, v->reason) < 0)
        return -1;
    return 0;
}

static int store_writer_rcpt(struct store_writer *w, const struct queue_rcpt *r)
{
    size_t alen = r->addr ? strlen(r->addr) : 0;
    size_t olen = r->orcpt ? strlen(r->orcpt) : 0;

    if (alen == 0 || alen > QUEUE_MAX_STRING || olen > QUEUE_MAX_STRING
        || !queue_string_ok(r->addr, alen) || (olen && !queue_string_ok(r->orcpt, olen))
        || (r->notify & ~(unsigned)QUEUE_NOTIFY_MASK))
        return store_writer_fail(w, EINVAL, "bad recipient");
    buf_put_u8(&w->out, SREC_RCPT);
    buf_put_u32(&w->out, (uint32_t)(1 + 4 + alen + 4 + olen));
    buf_put_u8(&w->out, (uint8_t)r->notify);
    buf_put_u32(&w->out, (uint32_t)alen);
    buf_append(&w->out, r->addr, alen);
    buf_put_u32(&w->out, (uint32_t)olen);
    buf_append(&w->out, r->orcpt ? r->orcpt : "", olen);
    return w->out.len >= STORE_FLUSH_AT ? store_writer_flush(w) : 0;
}

int store_writer_header(struct store_writer *w, const struct store_verdict *v,
                        const struct queue_envelope *env)
{
    if (w->fd < 0 || w->error)
        return store_writer_fail(w, EINVAL, "writer not open");
    if (env->sender == NULL || env->nrcpts == 0 || env->nrcpts > QUEUE_MAX_RCPTS
        || env->ret < 0 || env->ret > QUEUE_RET_HDRS || env->body_type < 0
        || env->body_type > QUEUE_BODY_BINARYMIME)
        return store_writer_fail(w, EINVAL, "bad envelope");
    if (store_writer_verdict(w, v) < 0)
        return -1;
    store_u64(w, SREC_ARRIVAL, env->arrival_us);
    if (store_str(w, SREC_CLIENT_ADDR, env->client_addr) < 0
        || store_str(w, SREC_CLIENT_NAME, env->client_name) < 0
        || store_str(w, SREC_HELO, env->helo) < 0 || store_str(w, SREC_PROTO, env->proto) < 0
        || store_str(w, SREC_SENDER, env->sender) < 0 || store_str(w, SREC_ENVID, env->envid) < 0)
        return -1;
    store_u8(w, SREC_RET, (unsigned)env->ret);
    store_u8(w, SREC_BODY_TYPE, (unsigned)env->body_type);
    store_u8(w, SREC_SMTPUTF8, env->smtputf8);
    for (size_t i = 0; i < env->nrcpts; i++)
        if (store_writer_rcpt(w, &env->rcpts[i]) < 0)
            return -1;
    return 0;
}

/* Patch the length of the open CONTENT record. */
static void store_close_chunk(struct store_writer *w)
{
    if (w->chunk_hdr == SIZE_MAX)
        return;
    uint32_t len = (uint32_t)(w->out.len - w->chunk_hdr - 5);
    unsigned char *p = (unsigned char *)w->out.data + w->chunk_hdr + 1;

    p[0] = (unsigned char)(len >> 24);
    p[1] = (unsigned char)(len >> 16);
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
    w->chunk_hdr = SIZE_MAX;
}

int store_writer_content(struct store_writer *w, const void *p, size_t n)
{
    const char *s = p;

    if (w->fd < 0 || w->error)
        return store_writer_fail(w, EINVAL, "writer not open");
    while (n > 0) {
        if (w->chunk_hdr == SIZE_MAX) {
            w->chunk_hdr = w->out.len;
            buf_put_u8(&w->out, SREC_CONTENT);
            buf_put_u32(&w->out, 0);
        }
        size_t room = QUEUE_CONTENT_CHUNK - (w->out.len - w->chunk_hdr - 5);
        size_t take = n < room ? n : room;
        buf_append(&w->out, s, take);
        s += take;
        n -= take;
        w->content_size += take;
        if (w->out.len - w->chunk_hdr - 5 == QUEUE_CONTENT_CHUNK) {
            store_close_chunk(w);
            if (store_writer_flush(w) < 0)
                return -1;
        }
    }
    return 0;
}

static void store_writer_close_fds(struct store_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmpfd >= 0)
        close(w->tmpfd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    w->fd = w->tmpfd = w->dirfd = -1;
    buf_free(&w->out);
}

int store_writer_commit(struct store_writer *w)
{
    if (w->fd < 0 || w->error) {
        store_writer_abort(w);
        return store_writer_fail(w, EINVAL, "writer not open");
    }
    store_close_chunk(w);
    store_rec(w, SREC_END, NULL, 0);
    if (store_writer_flush(w) < 0) {
        store_writer_abort(w);
        return -1;
    }
    if (fsync(w->fd) < 0) {
        store_writer_fail(w, errno, "fsync");
        store_writer_abort(w);
        return -1;
    }
    /* rename, then fsync the directory: only now is the entry durable. */
    if (renameat(w->tmpfd, w->id, w->dirfd, w->id) < 0) {
        store_writer_fail(w, errno, "rename");
        store_writer_abort(w);
        return -1;
    }
    if (fsync(w->dirfd) < 0) {
        int err = errno;
        unlinkat(w->dirfd, w->id, 0);
        store_writer_close_fds(w);
        return store_writer_fail(w, err, "fsync of the area directory");
    }
    store_writer_close_fds(w);
    return 0;
}

void store_writer_abort(struct store_writer *w)
{
    if (w->fd >= 0 && w->tmpfd >= 0)
        unlinkat(w->tmpfd, w->id, 0);
    store_writer_close_fds(w);
}

static int store_copy_content(struct store_writer *w, int qfd, const struct queue_file *qf,
                              const char **why)
{
    struct queue_content qc;
    char *chunk = xmalloc(QUEUE_CONTENT_CHUNK);
    ssize_t n;
    int rc = 0;

    queue_content_open(&qc, qfd, qf);
    while ((n = queue_content_read(&qc, chunk, QUEUE_CONTENT_CHUNK, why)) > 0) {
        if (store_writer_content(w, chunk, (size_t)n) < 0) {
            *why = w->error;
            rc = -1;
            break;
        }
    }
    if (n < 0)
        rc = -1;
    free(chunk);
    return rc;
}

int store_put_queue_file(const char *dir, const struct store_verdict *v, int qfd,
                         const struct queue_file *qf, char id[STORE_ID_SIZE], const char **why)
{
    struct store_writer w;

    if (store_writer_open(&w, dir) < 0 || store_writer_header(&w, v, &qf->env) < 0) {
        *why = w.error;
        store_writer_abort(&w);
        return -1;
    }
    if (store_copy_content(&w, qfd, qf, why) < 0) {
        store_writer_abort(&w);
        return -1;
    }
    if (w.content_size != qf->content_size) {
        *why = "content size changed while copying";
        store_writer_abort(&w);
        return -1;
    }
    if (store_writer_commit(&w) < 0) {
        *why = w.error;
        return -1;
    }
    memcpy(id, w.id, STORE_ID_SIZE);
    return 0;
}
