/*
 * queue_post - qmgr's post records (FLAGS, REASON; format in
 * queue_file.h) and the two safe ways to put them in a queue file.
 *
 * Interface: queue_post_flags(), queue_post_reason(), queue_file_append(),
 * queue_file_rewrite().
 *
 * A committed queue file is never changed but for its status bytes:
 * appending in place would move END, and a crash in the middle would
 * leave a file without END (corrupt: a lost message).  So post records
 * go either into a file nobody acknowledged yet (queue_file_append, at
 * commit time) or into a fresh copy that replaces the file by rename
 * (queue_file_rewrite).
 *
 * Diagnostics: 0 / -1 with errno; nothing here logs.
 *
 * Security: reason texts come from remote servers: control characters are
 * replaced and the length is cut before they are written, so the reader's
 * rules (queue_string_ok, QUEUE_MAX_STRING) always hold.
 */
#include "queue/queue_file.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define QUEUE_POST_COPY 65536

static void queue_post_header(struct buf *b, int type, uint32_t len)
{
    buf_put_u8(b, (uint8_t)type);
    buf_put_u32(b, len);
}

int queue_post_flags(struct buf *b, uint32_t flags)
{
    if (flags & ~(uint32_t)QUEUE_FLAGS_KNOWN) {
        errno = EINVAL;
        return -1;
    }
    queue_post_header(b, QREC_FLAGS, 4);
    buf_put_u32(b, flags);
    return 0;
}

int queue_post_reason(struct buf *b, uint32_t rcpt_index, const char *dsn, const char *reason)
{
    size_t dlen = dsn ? strlen(dsn) : 0, rlen = reason ? strlen(reason) : 0;

    if (dlen > 15) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < dlen; i++) {
        if (!((dsn[i] >= '0' && dsn[i] <= '9') || dsn[i] == '.')) {
            errno = EINVAL;
            return -1;
        }
    }
    if (rlen > QUEUE_MAX_STRING)
        rlen = QUEUE_MAX_STRING;
    queue_post_header(b, QREC_REASON, (uint32_t)(5 + dlen + rlen));
    buf_put_u32(b, rcpt_index);
    buf_put_u8(b, (uint8_t)dlen);
    buf_append(b, dsn, dlen);
    for (size_t i = 0; i < rlen; i++) {
        unsigned char c = (unsigned char)reason[i];
        buf_append_byte(b, c < 0x20 || c == 0x7f ? ' ' : c);
    }
    return 0;
}

static int queue_post_pwrite(int fd, const void *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* The post records and END at off, then fsync. */
static int queue_post_finish(int fd, const struct buf *post, off_t off)
{
    static const unsigned char end[QUEUE_REC_HEADER] = { QREC_END, 0, 0, 0, 0 };

    if (post && post->len > 0 && queue_post_pwrite(fd, post->data, post->len, off) < 0)
        return -1;
    off += post ? (off_t)post->len : 0;
    if (queue_post_pwrite(fd, end, sizeof end, off) < 0 || ftruncate(fd, off + QUEUE_REC_HEADER) < 0)
        return -1;
    return fsync(fd);
}

int queue_file_append(int fd, const struct queue_file *qf, const struct buf *post)
{
    if (qf->file_size < QUEUE_REC_HEADER) {
        errno = EINVAL;
        return -1;
    }
    return queue_post_finish(fd, post, qf->file_size - QUEUE_REC_HEADER);
}

/* Bytes [0, n) of from into to at the same offsets. */
static int queue_post_copy(int from, int to, off_t n)
{
    char tmp[QUEUE_POST_COPY];
    off_t off = 0;

    while (off < n) {
        size_t want = n - off < (off_t)sizeof tmp ? (size_t)(n - off) : sizeof tmp;
        ssize_t got = pread(from, tmp, want, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO;
            return -1;
        }
        if (queue_post_pwrite(to, tmp, (size_t)got, off) < 0)
            return -1;
        off += got;
    }
    return 0;
}

int queue_file_rewrite(int from_fd, const struct queue_file *qf, int to_fd,
                       const struct buf *post)
{
    if (qf->post_offset <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (queue_post_copy(from_fd, to_fd, qf->post_offset) < 0)
        return -1;
    return queue_post_finish(to_fd, post, qf->post_offset);
}
