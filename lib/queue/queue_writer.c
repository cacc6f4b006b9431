/*
 * queue_writer - writes a queue file (format in queue_file.h).
 *
 * Interface: queue_writer_open(), queue_writer_envelope(),
 * queue_writer_content(), queue_writer_finish(), queue_writer_close().
 *
 * Records are assembled in one buffer and written with one write(2) per
 * ~64 KiB.  Content arrives in pieces of any size; the open CONTENT
 * record's length is patched in the buffer when the record closes (full
 * chunk, flush, or finish), so a record is never split across a flush
 * with an unknown length.  finish writes END, truncates the file to what
 * was written (the fd may be a recycled file with older bytes after
 * ours; writing starts at offset 0) and fsync()s: only then may the
 * caller send "commit" to qmgr.
 *
 * Diagnostics: -1 with errno and w->error (a static reason); a writer
 * that failed once refuses every further call (a half-written file must
 * never be committed).
 */
#include "queue/queue_file.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"

#define QUEUE_WRITER_FLUSH 65536

enum { QW_OPEN, QW_CONTENT, QW_DONE, QW_FAILED };

static int queue_writer_fail(struct queue_writer *w, int err, const char *why)
{
    w->state = QW_FAILED;
    w->error = why;
    errno = err;
    return -1;
}

int queue_writer_open(struct queue_writer *w, int fd)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    buf_init(&w->out);
    w->chunk_hdr = SIZE_MAX;
    w->state = QW_OPEN;
    if (fd < 0)
        return queue_writer_fail(w, EBADF, "bad file descriptor");
    return 0;
}

static int queue_writer_write_all(struct queue_writer *w)
{
    size_t done = 0;

    while (done < w->out.len) {
        ssize_t n = write(w->fd, w->out.data + done, w->out.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return queue_writer_fail(w, n < 0 ? errno : EIO, "queue file write error");
        done += (size_t)n;
    }
    w->written += done;
    buf_reset(&w->out);
    return 0;
}

static void queue_writer_close_chunk(struct queue_writer *w)
{
    uint32_t len;
    unsigned char *p;

    if (w->chunk_hdr == SIZE_MAX)
        return;
    len = (uint32_t)(w->out.len - w->chunk_hdr - QUEUE_REC_HEADER);
    p = (unsigned char *)w->out.data + w->chunk_hdr + 1;
    p[0] = (unsigned char)(len >> 24);
    p[1] = (unsigned char)(len >> 16);
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
    w->chunk_hdr = SIZE_MAX;
}

static void queue_writer_rec(struct queue_writer *w, int type, const void *p, size_t n)
{
    buf_put_u8(&w->out, (uint8_t)type);
    buf_put_u32(&w->out, (uint32_t)n);
    buf_append(&w->out, p, n);
}

static int queue_writer_str(struct queue_writer *w, int type, const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strnlen(s, QUEUE_MAX_STRING + 1);
    if (n > QUEUE_MAX_STRING || !queue_string_ok(s, n))
        return queue_writer_fail(w, EINVAL, "bad envelope string");
    queue_writer_rec(w, type, s, n);
    return 0;
}

static int queue_writer_rcpt(struct queue_writer *w, const struct queue_rcpt *r)
{
    size_t alen, olen = 0;

    if (r->addr == NULL || r->status > QUEUE_RCPT_STATUS_MAX || (r->notify & ~QUEUE_NOTIFY_MASK))
        return queue_writer_fail(w, EINVAL, "bad recipient");
    alen = strnlen(r->addr, QUEUE_MAX_STRING + 1);
    if (r->orcpt)
        olen = strnlen(r->orcpt, QUEUE_MAX_STRING + 1);
    if (alen == 0 || alen > QUEUE_MAX_STRING || olen > QUEUE_MAX_STRING ||
        !queue_string_ok(r->addr, alen) || (r->orcpt && !queue_string_ok(r->orcpt, olen)))
        return queue_writer_fail(w, EINVAL, "bad recipient address");
    buf_put_u8(&w->out, QREC_RCPT);
    buf_put_u32(&w->out, (uint32_t)(2 + 4 + alen + 4 + olen));
    buf_put_u8(&w->out, r->status);
    buf_put_u8(&w->out, (uint8_t)r->notify);
    buf_put_u32(&w->out, (uint32_t)alen);
    buf_append(&w->out, r->addr, alen);
    buf_put_u32(&w->out, (uint32_t)olen);
    if (olen)
        buf_append(&w->out, r->orcpt, olen);
    if (w->out.len >= QUEUE_WRITER_FLUSH)
        return queue_writer_write_all(w);
    return 0;
}

static int queue_writer_strings(struct queue_writer *w, const struct queue_envelope *env)
{
    if (queue_writer_str(w, QREC_CLIENT_ADDR, env->client_addr) < 0 ||
        queue_writer_str(w, QREC_CLIENT_NAME, env->client_name) < 0 ||
        queue_writer_str(w, QREC_HELO, env->helo) < 0 ||
        queue_writer_str(w, QREC_PROTO, env->proto) < 0 ||
        queue_writer_str(w, QREC_TLS, env->tls) < 0 ||
        queue_writer_str(w, QREC_SENDER, env->sender) < 0 ||
        queue_writer_str(w, QREC_ENVID, env->envid) < 0)
        return -1;
    return 0;
}

int queue_writer_envelope(struct queue_writer *w, const struct queue_envelope *env)
{
    uint8_t u8;

    if (w->state != QW_OPEN)
        return queue_writer_fail(w, EINVAL, "envelope written out of order");
    if (env->sender == NULL || env->nrcpts == 0 || env->nrcpts > QUEUE_MAX_RCPTS ||
        env->ret < QUEUE_RET_NONE || env->ret > QUEUE_RET_HDRS ||
        env->body_type < QUEUE_BODY_NONE || env->body_type > QUEUE_BODY_BINARYMIME)
        return queue_writer_fail(w, EINVAL, "bad envelope");
    buf_put_u8(&w->out, QREC_VERSION);
    buf_put_u32(&w->out, 4);
    buf_put_u32(&w->out, QUEUE_FILE_VERSION);
    buf_put_u8(&w->out, QREC_ARRIVAL);
    buf_put_u32(&w->out, 8);
    buf_put_u64(&w->out, env->arrival_us);
    if (queue_writer_strings(w, env) < 0)
        return -1;
    if (env->ret != QUEUE_RET_NONE) {
        u8 = (uint8_t)env->ret;
        queue_writer_rec(w, QREC_RET, &u8, 1);
    }
    if (env->body_type != QUEUE_BODY_NONE) {
        u8 = (uint8_t)env->body_type;
        queue_writer_rec(w, QREC_BODY_TYPE, &u8, 1);
    }
    if (env->smtputf8) {
        u8 = 1;
        queue_writer_rec(w, QREC_SMTPUTF8, &u8, 1);
    }
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (queue_writer_rcpt(w, &env->rcpts[i]) < 0)
            return -1;
    }
    w->state = QW_CONTENT;
    return 0;
}

int queue_writer_content(struct queue_writer *w, const void *p, size_t n)
{
    const char *s = p;

    if (w->state != QW_CONTENT)
        return queue_writer_fail(w, EINVAL, "content written out of order");
    while (n > 0) {
        size_t room, take;
        if (w->chunk_hdr == SIZE_MAX) {
            w->chunk_hdr = w->out.len;
            buf_put_u8(&w->out, QREC_CONTENT);
            buf_put_u32(&w->out, 0);
        }
        room = QUEUE_CONTENT_CHUNK - (w->out.len - w->chunk_hdr - QUEUE_REC_HEADER);
        take = n < room ? n : room;
        buf_append(&w->out, s, take);
        s += take;
        n -= take;
        w->content_size += take;
        if (take == room) {
            queue_writer_close_chunk(w);
            if (w->out.len >= QUEUE_WRITER_FLUSH && queue_writer_write_all(w) < 0)
                return -1;
        }
    }
    return 0;
}

int queue_writer_finish(struct queue_writer *w)
{
    if (w->state != QW_CONTENT)
        return queue_writer_fail(w, EINVAL, "finish out of order");
    queue_writer_close_chunk(w);
    queue_writer_rec(w, QREC_END, NULL, 0);
    if (queue_writer_write_all(w) < 0)
        return -1;
    /* A recycled file (queue_id_recycle) still has its old bytes past
     * ours: the file must end exactly after END. */
    if (ftruncate(w->fd, (off_t)w->written) < 0)
        return queue_writer_fail(w, errno, "queue file truncate error");
    if (fsync(w->fd) < 0)
        return queue_writer_fail(w, errno, "queue file fsync error");
    w->state = QW_DONE;
    return 0;
}

void queue_writer_close(struct queue_writer *w)
{
    buf_free(&w->out);
    w->chunk_hdr = SIZE_MAX;
}
