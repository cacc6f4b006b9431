/*
 * fuzz/proto - libFuzzer target for lib/proto.
 *
 * Input: one mode byte, then the payload.
 *   mode & 3 == 0: payload is a frame body for proto_decode_body; a body
 *                  that decodes must re-encode to the same bytes.
 *   mode & 3 == 1: payload is a byte stream fed to a proto_conn through a
 *                  socketpair, in chunks of (mode >> 4) + 1 bytes; with
 *                  mode & 4, a /dev/null fd rides on the first byte of every
 *                  chunk; with mode & 8, frames are echoed back through
 *                  proto_conn_queue/flush and read again.
 *   mode & 3 == 2: the same stream read with the blocking proto_recv.
 *   mode & 3 == 3: the payload is split into attributes and encoded.
 * Checks: no crash, no leak of memory or fds (the next free fd number must
 * not change between runs).
 */
#include "proto/proto.h"
#include "proto/proto_sock.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int devnull = -1, fd_mark = -1;

static void fuzz_decode(const uint8_t *p, size_t n)
{
    struct proto_msg m;
    struct buf enc;
    const char *why = NULL;

    proto_msg_init(&m);
    buf_init(&enc);
    if (proto_decode_body(p, n, &m, &why) == 0) {
        if (proto_encode(&m, &enc) != 0 || enc.len != n + PROTO_HEADER_LEN ||
            memcmp(enc.data + PROTO_HEADER_LEN, p, n) != 0)
            abort();
        for (size_t i = 0; i < m.nattrs; i++) {
            const struct proto_attr *a = &m.attrs[i];
            if (a->type == PROTO_STR && strlen((const char *)a->value) != a->len)
                abort();
            (void)proto_count(&m, a->name);
            (void)proto_get_nth(&m, a->name, 1);
        }
        int64_t v;
        (void)proto_get_int(&m, "version", &v);
        (void)proto_check_hello(&m, "qmgr-commit", 1, &why);
    }
    buf_free(&enc);
    proto_msg_free(&m);
}

/* Drain complete frames; echo them back when asked. */
static int conn_drain(struct proto_conn *c, struct proto_conn *echo)
{
    struct proto_msg m;
    const char *why = NULL;
    int rc;

    proto_msg_init(&m);
    while ((rc = proto_conn_next(c, &m, &why)) == 1) {
        if (echo && proto_conn_queue(echo, &m) == 0)
            (void)proto_conn_flush(echo);
        proto_msg_reset(&m);
    }
    proto_msg_free(&m);
    return rc;
}

static void fuzz_conn(uint8_t mode, const uint8_t *p, size_t n)
{
    int sv[2], ev[2] = { -1, -1 };
    struct proto_conn c, echo, back;
    const char *why = NULL;
    size_t chunk = (size_t)(mode >> 4) + 1, off = 0;
    bool do_echo = mode & 8;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        abort();
    if (do_echo && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, ev) < 0)
        abort();
    proto_conn_init(&c, sv[1]);
    proto_conn_init(&echo, ev[0]);
    proto_conn_init(&back, ev[1]);
    for (int rounds = 0; rounds < 100000; rounds++) {
        if (off < n) {
            size_t k = n - off < chunk ? n - off : chunk;
            ssize_t w = proto_sock_send(sv[0], p + off, k, &devnull, (mode & 4) ? 1 : 0, 0);
            if (w > 0)
                off += (size_t)w;
            if (off == n)
                shutdown(sv[0], SHUT_WR);
        }
        int r = proto_conn_read(&c, &why);
        if (r < 0 || conn_drain(&c, do_echo ? &echo : NULL) < 0)
            break;
        if (do_echo && (proto_conn_read(&back, &why) < 0 || conn_drain(&back, NULL) < 0))
            break;
        if (r == 0 && off == n)
            break;
    }
    proto_conn_close(&c);
    if (do_echo) {
        proto_conn_close(&echo);
        proto_conn_close(&back);
    }
    close(sv[0]);
}

static void fuzz_recv(const uint8_t *p, size_t n)
{
    int sv[2];
    struct proto_msg m;
    const char *why = NULL;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (n > 0 && proto_sock_send(sv[0], p, n, &devnull, 1, MSG_DONTWAIT) < 0) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    shutdown(sv[0], SHUT_WR);
    proto_msg_init(&m);
    for (int i = 0; i < 1000 && proto_recv(sv[1], &m, 0, &why) == 0; i++)
        ;
    proto_msg_free(&m);
    close(sv[0]);
    close(sv[1]);
}

/* Build a message from the payload: name NUL value NUL ... */
static void fuzz_encode(const uint8_t *p, size_t n)
{
    struct proto_msg m, d;
    struct buf enc;
    const char *why = NULL;
    size_t i = 0;

    proto_msg_init(&m);
    proto_msg_init(&d);
    buf_init(&enc);
    while (i < n) {
        const char *name = (const char *)p + i;
        const uint8_t *z = memchr(p + i, 0, n - i);
        if (z == NULL)
            break;
        i = (size_t)(z - p) + 1;
        const uint8_t *v = p + i, *z2 = memchr(v, 0, n - i);
        size_t vl = z2 ? (size_t)(z2 - v) : n - i;
        switch (vl % 3) {
        case 0: proto_put_strn(&m, name, (const char *)v, vl); break;
        case 1: proto_put_int(&m, name, (int64_t)vl * 7919); break;
        default: proto_put_data(&m, name, v, vl); break;
        }
        i += vl + 1;
    }
    if (proto_encode(&m, &enc) == 0) {
        if (proto_decode_body(enc.data + PROTO_HEADER_LEN, enc.len - PROTO_HEADER_LEN, &d, &why) != 0 ||
            d.nattrs != m.nattrs)
            abort();
    }
    buf_free(&enc);
    proto_msg_free(&m);
    proto_msg_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (devnull < 0) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        fd_mark = dup(0);
        close(fd_mark);
    }
    if (size == 0 || size > 200000)
        return 0;
    uint8_t mode = data[0];
    switch (mode & 3) {
    case 0: fuzz_decode(data + 1, size - 1); break;
    case 1: fuzz_conn(mode, data + 1, size - 1); break;
    case 2: fuzz_recv(data + 1, size - 1); break;
    default: fuzz_encode(data + 1, size - 1); break;
    }
    int probe = dup(0);
    if (probe != fd_mark)
        abort(); /* an fd leaked */
    close(probe);
    return 0;
}
