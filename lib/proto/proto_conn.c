/*
 * proto_conn - non-blocking proto connection for event-driven daemons.
 *
 * Interface: proto_conn_init; on readable: proto_conn_read, then
 * proto_conn_next until it returns 0 (every complete frame buffered is
 * taken before the next read); proto_conn_queue + proto_conn_flush (on
 * writable while proto_conn_outlen() != 0); proto_conn_close.
 *
 * fd bookkeeping: each received fd is queued with the stream position at
 * the end of the read that brought it (a "batch"; the kernel gives one
 * read the fds of at most one write, i.e. of one frame).  When a frame
 * that starts at stream offset S is complete: batches that ended at or
 * before S belonged to earlier frames that announced fewer fds and are
 * closed; the frame takes its announced count from the front (all from one
 * batch, else "fd count mismatch"); the rest of that batch is closed.
 *
 * Sending: a frame's fds ride on the first sendmsg of that frame; frames
 * without fds are written together with the frame before them.
 *
 * Limits: input is buffered up to one maximal frame plus one read; at most
 * PROTO_MAX_FDS * 4 received fds are held (a peer that sends more without
 * completing frames fails with "too many fds").
 */
#include "proto/proto.h"
#include "proto/proto_sock.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_READ_CHUNK 65536
#define CONN_IN_LIMIT (PROTO_HEADER_LEN + PROTO_MAX_FRAME + CONN_READ_CHUNK)
#define CONN_FDQ_CAP (sizeof(((struct proto_conn *)0)->fdq) / sizeof(int))

struct proto_pending {
    size_t off; /* where the frame starts in out.data */
    int fds[PROTO_MAX_FDS];
    size_t nfds;
};

void proto_conn_init(struct proto_conn *c, int fd)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    buf_init(&c->in);
    buf_init(&c->out);
    c->pending = NULL;
}

static void pending_drop_first(struct proto_conn *c, bool close_fds)
{
    struct proto_pending *p = &c->pending[0];

    if (close_fds)
        for (size_t i = 0; i < p->nfds; i++)
            close(p->fds[i]);
    c->npending--;
    memmove(c->pending, c->pending + 1, c->npending * sizeof(*c->pending));
}

/* Close the first n queued fds. */
static void fdq_drop(struct proto_conn *c, size_t n, bool close_fds)
{
    if (close_fds)
        for (size_t i = 0; i < n; i++)
            close(c->fdq[i]);
    c->nfdq -= n;
    memmove(c->fdq, c->fdq + n, c->nfdq * sizeof(c->fdq[0]));
    memmove(c->fdqpos, c->fdqpos + n, c->nfdq * sizeof(c->fdqpos[0]));
}

void proto_conn_close(struct proto_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    fdq_drop(c, c->nfdq, true);
    while (c->npending > 0)
        pending_drop_first(c, true);
    free(c->pending);
    c->pending = NULL;
    c->cappending = 0;
    buf_free(&c->in);
    buf_free(&c->out);
    c->inoff = c->outoff = 0;
}

/* Is a complete frame (or a bad header) waiting in the input buffer? */
static bool conn_frame_ready(const struct proto_conn *c)
{
    size_t have = c->in.len - c->inoff;

    if (have < PROTO_HEADER_LEN)
        return false;
    size_t bodylen = get_u32(c->in.data + c->inoff);
    return bodylen > PROTO_MAX_FRAME || have - PROTO_HEADER_LEN >= bodylen;
}

static void conn_compact_in(struct proto_conn *c)
{
    if (c->inoff == 0)
        return;
    memmove(c->in.data, c->in.data + c->inoff, c->in.len - c->inoff);
    c->in.len -= c->inoff;
    c->in.data[c->in.len] = 0;
    c->inoff = 0;
}

static int conn_stash_fds(struct proto_conn *c, const int *fds, size_t n, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        if (c->nfdq == CONN_FDQ_CAP) {
            for (size_t j = i; j < n; j++)
                close(fds[j]);
            *why = "too many fds";
            return -1;
        }
        c->fdq[c->nfdq] = fds[i];
        c->fdqpos[c->nfdq++] = c->rpos;
    }
    return 0;
}

int proto_conn_read(struct proto_conn *c, const char **why)
{
    int fds[PROTO_MAX_FDS];
    size_t nfds = 0;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    /* Full: the caller must take the frames buffered before reading on. */
    if (c->in.len - c->inoff >= CONN_IN_LIMIT - CONN_READ_CHUNK ||
        c->nfdq + PROTO_MAX_FDS > CONN_FDQ_CAP) {
        if (conn_frame_ready(c))
            return 1;
        *why = "too many fds";
        return -1;
    }
    conn_compact_in(c);
    buf_reserve(&c->in, CONN_READ_CHUNK);
    ssize_t r = proto_sock_recv(c->fd, c->in.data + c->in.len, CONN_READ_CHUNK, fds,
                                &nfds, PROTO_MAX_FDS, MSG_DONTWAIT, why);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (r == 0) {
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        *why = c->in.len > 0 ? "connection closed mid-frame" : "closed";
        return -1;
    }
    c->in.len += (size_t)r;
    c->in.data[c->in.len] = 0;
    c->rpos += (uint64_t)r;
    if (conn_stash_fds(c, fds, nfds, why) < 0)
        return -1;
    return 1;
}

/* Give the frame starting at stream offset start its n fds (see top). */
static int conn_take_fds(struct proto_conn *c, uint64_t start, size_t n, int *fds,
                         const char **why)
{
    size_t stale = 0;

    while (stale < c->nfdq && c->fdqpos[stale] <= start)
        stale++;
    fdq_drop(c, stale, true);
    if (n == 0)
        return 0;
    if (c->nfdq < n || c->fdqpos[n - 1] != c->fdqpos[0]) {
        *why = "fd count mismatch";
        return -1;
    }
    uint64_t batch = c->fdqpos[0];
    memcpy(fds, c->fdq, n * sizeof(int));
    fdq_drop(c, n, false);
    size_t extra = 0;
    while (extra < c->nfdq && c->fdqpos[extra] == batch)
        extra++;
    fdq_drop(c, extra, true);
    return 0;
}

int proto_conn_next(struct proto_conn *c, struct proto_msg *m, const char **why)
{
    const char *hdr = c->in.data + c->inoff;
    size_t bodylen, nfds;
    int fds[PROTO_MAX_FDS];
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (c->in.len - c->inoff < PROTO_HEADER_LEN)
        return 0;
    if (proto_header_parse(hdr, &bodylen, &nfds, why) < 0)
        return -1;
    if (c->in.len - c->inoff - PROTO_HEADER_LEN < bodylen)
        return 0;
    if (conn_take_fds(c, c->inpos, nfds, fds, why) < 0)
        return -1;
    if (proto_decode_body(hdr + PROTO_HEADER_LEN, bodylen, m, why) < 0) {
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        return -1;
    }
    memcpy(m->fds, fds, nfds * sizeof(int));
    m->nfds = nfds;
    c->inoff += PROTO_HEADER_LEN + bodylen;
    c->inpos += PROTO_HEADER_LEN + bodylen;
    if (c->inoff == c->in.len)
        c->inoff = c->in.len = 0;
    return 1;
}

/* Drop written output so out does not grow without end. */
static void conn_compact_out(struct proto_conn *c)
{
    if (c->outoff == c->out.len) {
        c->outoff = c->out.len = 0;
        return;
    }
    if (c->outoff < CONN_READ_CHUNK || c->outoff * 2 < c->out.len)
        return;
    memmove(c->out.data, c->out.data + c->outoff, c->out.len - c->outoff);
    c->out.len -= c->outoff;
    for (size_t i = 0; i < c->npending; i++)
        c->pending[i].off -= c->outoff;
    c->outoff = 0;
}

static int conn_add_pending(struct proto_conn *c, size_t off, const struct proto_msg *m)
{
    struct proto_pending p = { .off = off, .nfds = m->nfds };

    for (size_t i = 0; i < m->nfds; i++) {
        p.fds[i] = fcntl(m->fds[i], F_DUPFD_CLOEXEC, 0);
        if (p.fds[i] < 0) {
            while (i-- > 0)
                close(p.fds[i]);
            return -1;
        }
    }
    if (c->npending == c->cappending) {
        c->cappending = c->cappending ? c->cappending * 2 : 4;
        c->pending = xreallocarray(c->pending, c->cappending, sizeof(*c->pending));
    }
    c->pending[c->npending++] = p;
    return 0;
}

int proto_conn_queue(struct proto_conn *c, const struct proto_msg *m)
{
    conn_compact_out(c);
    size_t start = c->out.len;
    if (proto_encode_append(m, &c->out) < 0)
        return -1;
    if (m->nfds > 0 && conn_add_pending(c, start, m) < 0) {
        c->out.len = start;
        c->out.data[start] = 0;
        return -1;
    }
    return 0;
}

int proto_conn_flush(struct proto_conn *c)
{
    while (c->outoff < c->out.len) {
        struct proto_pending *p = c->npending ? &c->pending[0] : NULL;
        bool with_fds = p != NULL && p->off == c->outoff;
        size_t end = c->out.len;
        if (with_fds && c->npending > 1)
            end = c->pending[1].off;
        else if (p != NULL && !with_fds)
            end = p->off;
        ssize_t r = proto_sock_send(c->fd, c->out.data + c->outoff, end - c->outoff,
                                    with_fds ? p->fds : NULL, with_fds ? p->nfds : 0,
                                    MSG_DONTWAIT);
        if (r < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        if (with_fds)
            pending_drop_first(c, true);
        c->outoff += (size_t)r;
    }
    c->outoff = c->out.len = 0;
    return 1;
}

size_t proto_conn_outlen(const struct proto_conn *c)
{
    return c->out.len - c->outoff;
}
