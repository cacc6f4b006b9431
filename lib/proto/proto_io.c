/*
 * proto_io - blocking use of the proto codec over a unix stream socket:
 * proto_send, proto_recv, proto_connect and the hello frame helpers, plus
 * the sendmsg/recvmsg primitives shared with proto_conn.c.
 *
 * fd passing: a frame's fds go as one SCM_RIGHTS control message with the
 * first sendmsg of that frame, i.e. with its first byte.  The kernel never
 * merges two fd-carrying writes into one read, so the fds a read returns
 * belong to exactly one frame.  proto_recv reads exactly one frame (header,
 * then body), so every fd it receives belongs to that frame; a count that
 * differs from the header's fails the frame and closes them all.
 *
 * Diagnostics: *why is "closed" (end of stream between frames), "timeout",
 * "I/O error" (errno kept), or a frame/decode reason.  Nothing here logs.
 *
 * Security: received fds are O_CLOEXEC (MSG_CMSG_CLOEXEC); a truncated
 * control message (MSG_CTRUNC) is an error; sends use MSG_NOSIGNAL so a
 * peer that went away gives EPIPE, not SIGPIPE.
 */
#include "proto/proto.h"
#include "proto/proto_sock.h"
#include "util/mem.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

union proto_cmsg {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
};

ssize_t proto_sock_send(int sock, const void *p, size_t n, const int *fds,
                        size_t nfds, int flags)
{
    struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    union proto_cmsg cm;
    ssize_t r;

    if (nfds > PROTO_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        memset(&cm, 0, sizeof(cm));
        mh.msg_control = cm.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
    }
    do
        r = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Collect the SCM_RIGHTS fds of a received message; -1 if too many. */
static int sock_take_fds(struct msghdr *mh, int *fds, size_t *nfds, size_t room)
{
    int bad = 0;

    for (struct cmsghdr *h = CMSG_FIRSTHDR(mh); h; h = CMSG_NXTHDR(mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
            if (room > 0) {
                fds[(*nfds)++] = fd;
                room--;
            } else {
                close(fd);
                bad = 1;
            }
        }
    }
    return bad ? -1 : 0;
}

ssize_t proto_sock_recv(int sock, void *p, size_t n, int *fds, size_t *nfds,
                        size_t room, int flags, const char **why)
{
    struct iovec iov = { .iov_base = p, .iov_len = n };
    union proto_cmsg cm;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cm.space, .msg_controllen = sizeof(cm.space) };
    size_t before = *nfds;
    ssize_t r;

    do
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        *why = "I/O error";
        return -1;
    }
    int toomany = sock_take_fds(&mh, fds, nfds, room);
    if (toomany < 0 || (mh.msg_flags & MSG_CTRUNC)) {
        for (size_t i = before; i < *nfds; i++)
            close(fds[i]);
        *nfds = before;
        *why = toomany < 0 ? "too many fds" : "fd control message truncated";
        errno = EPROTO;
        return -1;
    }
    return r;
}

/* Wait until sock is ready for events; 0 ready, -1 timeout/error. */
static int io_wait(int sock, short events, const struct timespec *deadline,
                   const char **why)
{
    struct pollfd pfd = { .fd = sock, .events = events };
    int ms = -1, r;

    if (deadline) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = (deadline->tv_sec - now.tv_sec) * 1000LL +
                         (deadline->tv_nsec - now.tv_nsec) / 1000000;
        ms = left < 0 ? 0 : left > 86400000 ? 86400000 : (int)left;
    }
    do
        r = poll(&pfd, 1, ms);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        *why = "I/O error";
        return -1;
    }
    if (r == 0) {
        *why = "timeout";
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

int proto_send(int sock, const struct proto_msg *m)
{
    struct buf frame;
    size_t off = 0;
    int rc = -1;
    const char *why;

    buf_init(&frame);
    if (proto_encode(m, &frame) < 0)
        goto out;
    while (off < frame.len) {
        ssize_t r = proto_sock_send(sock, frame.data + off, frame.len - off,
                                    off == 0 ? m->fds : NULL, off == 0 ? m->nfds : 0,
                                    MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (io_wait(sock, POLLOUT, NULL, &why) < 0)
                goto out;
            continue;
        }
        if (r < 0)
            goto out;
        off += (size_t)r;
    }
    rc = 0;
out:
    buf_free(&frame);
    return rc;
}

/* Read exactly n bytes (fds collected); *got counts frame bytes so far. */
static int recv_exact(int sock, void *p, size_t n, int *fds, size_t *nfds,
                      const struct timespec *deadline, size_t *got, const char **why)
{
    size_t off = 0;

    while (off < n) {
        if (io_wait(sock, POLLIN, deadline, why) < 0)
            return -1;
        ssize_t r = proto_sock_recv(sock, (char *)p + off, n - off, fds, nfds,
                                    PROTO_MAX_FDS - *nfds, MSG_DONTWAIT, why);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            *why = *got + off == 0 ? "closed" : "connection closed mid-frame";
            return -1;
        }
        off += (size_t)r;
    }
    *got += n;
    return 0;
}

/* Check a frame header; 0 and the body length / fd count, or -1. */
int proto_header_parse(const void *hdr, size_t *bodylen, size_t *nfds, const char **why)
{
    *bodylen = get_u32(hdr);
    *nfds = get_u16((const char *)hdr + 4);
    if (*bodylen > PROTO_MAX_FRAME) {
        *why = "frame too long";
        return -1;
    }
    if (*nfds > PROTO_MAX_FDS) {
        *why = "too many fds";
        return -1;
    }
    return 0;
}

static int recv_frame(int sock, struct proto_msg *m, struct buf *body, int *fds,
                      size_t *nfds, const struct timespec *deadline, const char **why)
{
    uint8_t hdr[PROTO_HEADER_LEN];
    size_t got = 0, bodylen, want;

    if (recv_exact(sock, hdr, sizeof(hdr), fds, nfds, deadline, &got, why) < 0 ||
        proto_header_parse(hdr, &bodylen, &want, why) < 0)
        return -1;
    buf_reserve(body, bodylen);
    if (recv_exact(sock, body->data, bodylen, fds, nfds, deadline, &got, why) < 0)
        return -1;
    if (*nfds != want) {
        *why = "fd count mismatch";
        return -1;
    }
    if (proto_decode_body(body->data, bodylen, m, why) < 0)
        return -1;
    memcpy(m->fds, fds, sizeof(int) * *nfds);
    m->nfds = *nfds;
    *nfds = 0;
    return 0;
}

int proto_recv(int sock, struct proto_msg *m, int timeout_ms, const char **why)
{
    struct timespec deadline, *dl = NULL;
    int fds[PROTO_MAX_FDS];
    size_t nfds = 0;
    struct buf body;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        dl = &deadline;
    }
    buf_init(&body);
    proto_msg_reset(m);
    int rc = recv_frame(sock, m, &body, fds, &nfds, dl, why);
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    buf_free(&body);
    return rc;
}

/* connect() was interrupted: the connection goes on; wait for it. */
static int connect_finish(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    int err = 0, r;
    socklen_t len = sizeof(err);

    do
        r = poll(&pfd, 1, -1);
    while (r < 0 && errno == EINTR);
    if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int proto_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd, r;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    str_copy(sun.sun_path, path, sizeof(sun.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    if (r < 0 && errno == EINTR)
        r = connect_finish(fd);
    if (r < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int proto_send_hello(int sock, const char *protoname, int version)
{
    struct proto_msg m;

    proto_msg_init(&m);
    proto_put_str(&m, "proto", protoname);
    proto_put_int(&m, "version", version);
    int rc = proto_send(sock, &m);
    proto_msg_free(&m);
    return rc;
}

int proto_hello_call(int sock, const char *protoname, int version, int timeout_ms,
                     const char **why)
{
    struct proto_msg ans;
    const char *status;
    int rc = -1;

    proto_msg_init(&ans);
    if (proto_send_hello(sock, protoname, version) < 0) {
        *why = "cannot send the hello";
    } else if (proto_recv(sock, &ans, timeout_ms, why) == 0) {
        status = proto_get_str(&ans, "status");
        if (status != NULL && strcmp(status, "ok") == 0)
            rc = 0;
        else
            *why = "hello refused";
    }
    proto_msg_free(&ans);
    return rc;
}

int proto_check_hello(const struct proto_msg *m, const char *protoname, int version,
                      const char **why)
{
    const char *name = proto_get_str(m, "proto");
    int64_t v;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (name == NULL || proto_get_int(m, "version", &v) < 0) {
        *why = "bad hello frame";
        return -1;
    }
    if (strcmp(name, protoname) != 0) {
        *why = "unexpected protocol";
        return -1;
    }
    if (v != version) {
        *why = "unsupported protocol version";
        return -1;
    }
    return 0;
}
