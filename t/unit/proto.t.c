/*
 * proto.t - unit tests for lib/proto: codec round trips, malformed frames,
 * fd passing (blocking and proto_conn), partial reads and floods.
 */
#include "proto/proto.h"
#include "proto/proto_sock.h"
#include "tap.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void make_pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        exit(2);
    }
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Raw attribute appender for hand-made (possibly bad) bodies. */
static void raw_attr(struct buf *b, uint8_t type, const char *name, size_t namelen,
                     const void *v, size_t vlen)
{
    buf_put_u8(b, type);
    buf_put_u16(b, (uint16_t)namelen);
    buf_append(b, name, namelen);
    buf_put_u32(b, (uint32_t)vlen);
    buf_append(b, v, vlen);
}

static const char *decode_why(const struct buf *body)
{
    struct proto_msg m;
    const char *why = "none";
    proto_msg_init(&m);
    if (proto_decode_body(body->data, body->len, &m, &why) == 0)
        why = "ok";
    proto_msg_free(&m);
    return why;
}

static void test_roundtrip(void)
{
    struct proto_msg m, d;
    struct buf enc;
    const char *why = NULL;
    const uint8_t bin[] = { 0, 1, 2, '\r', '\n', 0, 0xff, 0x80 };

    proto_msg_init(&m);
    proto_msg_init(&d);
    buf_init(&enc);
    proto_put_str(&m, "op", "commit");
    proto_put_str(&m, "empty", "");
    proto_put_int(&m, "neg", -42);
    proto_put_int(&m, "max", INT64_MAX);
    proto_put_int(&m, "min", INT64_MIN);
    proto_put_data(&m, "bin", bin, sizeof(bin));
    proto_put_data(&m, "nodata", "", 0);
    for (int i = 0; i < 100; i++) {
        char v[32];
        snprintf(v, sizeof(v), "rcpt%d@example.test", i);
        proto_put_str(&m, "rcpt", v);
    }
    proto_put_strn(&m, "A-Z_a.z-0", "abcdef", 3);
    ok(proto_encode(&m, &enc) == 0, "encode a message of every type");
    is_int(get_u32(enc.data), enc.len - PROTO_HEADER_LEN, "header has the body length");
    is_int(get_u16(enc.data + 4), 0, "header has 0 fds");
    ok(proto_decode_body(enc.data + PROTO_HEADER_LEN, enc.len - PROTO_HEADER_LEN, &d, &why) == 0,
       "decode it back");
    is_int(d.nattrs, m.nattrs, "same attribute count");
    is_str(proto_get_str(&d, "op"), "commit", "STR round trip");
    is_str(proto_get_str(&d, "empty"), "", "empty STR round trip");
    int64_t v = 0;
    ok(proto_get_int(&d, "neg", &v) == 0 && v == -42, "negative INT round trip");
    ok(proto_get_int(&d, "max", &v) == 0 && v == INT64_MAX, "INT64_MAX round trip");
    ok(proto_get_int(&d, "min", &v) == 0 && v == INT64_MIN, "INT64_MIN round trip");
    size_t len = 0;
    const void *p = proto_get_data(&d, "bin", &len);
    ok(p && len == sizeof(bin) && memcmp(p, bin, len) == 0, "binary DATA round trip");
    p = proto_get_data(&d, "nodata", &len);
    ok(p && len == 0, "empty DATA round trip");
    is_int(proto_count(&d, "rcpt"), 100, "repeated names kept");
    const struct proto_attr *a = proto_get_nth(&d, "rcpt", 57);
    is_str(a ? (const char *)a->value : NULL, "rcpt57@example.test", "n-th of a list");
    ok(proto_get_nth(&d, "rcpt", 100) == NULL, "past the end of a list is NULL");
    is_str(proto_get_str(&d, "A-Z_a.z-0"), "abc", "proto_put_strn takes len bytes");
    ok(proto_get_str(&d, "bin") == NULL, "get_str of a DATA attribute is NULL");
    ok(proto_get_int(&d, "op", &v) < 0, "get_int of a STR attribute fails");
    ok(proto_get_data(&d, "op", &len) == NULL, "get_data of a STR attribute is NULL");
    ok(proto_get_str(&d, "nosuch") == NULL, "absent attribute is NULL");
    is_int(proto_take_fd(&d, 0), -1, "take_fd with no fds is -1");

    /* A big DATA value makes the store move: earlier pointers must follow. */
    char *big = xmalloc(300000);
    memset(big, 'x', 300000);
    proto_put_data(&m, "big", big, 300000);
    is_str(proto_get_str(&m, "op"), "commit", "values survive the store growing");
    ok(proto_encode(&m, &enc) == 0, "encode with a 300000-byte value");
    ok(proto_decode_body(enc.data + 6, enc.len - 6, &d, &why) == 0 &&
           proto_get_data(&d, "big", &len) && len == 300000,
       "decode a 300000-byte value");
    free(big);
    buf_free(&enc);
    proto_msg_free(&m);
    proto_msg_free(&d);
}

static void test_encode_limits(void)
{
    struct proto_msg m;
    struct buf enc;
    char longname[PROTO_MAX_NAME + 2];

    buf_init(&enc);
    proto_msg_init(&m);
    proto_put_str(&m, "bad name", "x");
    ok(proto_encode(&m, &enc) < 0, "encode refuses a name with a space");
    proto_msg_reset(&m);
    proto_put_str(&m, "", "x");
    ok(proto_encode(&m, &enc) < 0, "encode refuses an empty name");
    proto_msg_reset(&m);
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    proto_put_str(&m, longname, "x");
    ok(proto_encode(&m, &enc) < 0, "encode refuses a 65-byte name");
    proto_msg_reset(&m);
    longname[PROTO_MAX_NAME] = 0;
    proto_put_str(&m, longname, "x");
    ok(proto_encode(&m, &enc) == 0, "encode takes a 64-byte name");
    proto_msg_reset(&m);
    proto_put_str(&m, "s", "a\r\nb");
    ok(proto_encode(&m, &enc) < 0, "encode refuses STR with CR LF");
    proto_msg_reset(&m);
    proto_put_strn(&m, "s", "a\0b", 3);
    ok(proto_encode(&m, &enc) < 0, "encode refuses STR with NUL");
    proto_msg_reset(&m);
    char *big = xcalloc(1, PROTO_MAX_FRAME);
    proto_put_data(&m, "d", big, PROTO_MAX_FRAME - 8);
    ok(proto_encode(&m, &enc) == 0, "encode a frame of exactly PROTO_MAX_FRAME");
    is_int(enc.len, PROTO_MAX_FRAME + PROTO_HEADER_LEN, "its size");
    proto_msg_reset(&m);
    proto_put_data(&m, "d", big, PROTO_MAX_FRAME - 7);
    ok(proto_encode(&m, &enc) < 0, "encode refuses PROTO_MAX_FRAME + 1");
    proto_msg_reset(&m);
    free(big);
    for (int i = 0; i <= PROTO_MAX_ATTRS; i++)
        proto_put_int(&m, "i", i);
    ok(proto_encode(&m, &enc) < 0, "encode refuses PROTO_MAX_ATTRS + 1 attributes");
    proto_msg_reset(&m);
    for (int i = 0; i <= PROTO_MAX_FDS; i++)
        proto_put_fd(&m, 0);
    ok(proto_encode(&m, &enc) < 0, "encode refuses PROTO_MAX_FDS + 1 fds");
    proto_msg_free(&m);
    buf_free(&enc);
}

static void test_malformed(void)
{
    struct buf b, ok8;
    uint8_t eight[8] = { 0 };

    buf_init(&b);
    buf_init(&ok8);
    raw_attr(&ok8, PROTO_INT, "n", 1, eight, 8);
    buf_append(&b, ok8.data, ok8.len);
    is_str(decode_why(&b), "ok", "hand-made INT attribute decodes");
    buf_reset(&b);
    is_str(decode_why(&b), "ok", "empty body is a message without attributes");

    buf_append(&b, ok8.data, 2);
    is_str(decode_why(&b), "truncated attribute header", "2-byte attribute");
    buf_reset(&b);
    buf_append(&b, ok8.data, 6);
    is_str(decode_why(&b), "truncated attribute header", "attribute cut in the value length");
    buf_reset(&b);
    buf_append(&b, ok8.data, ok8.len - 1);
    is_str(decode_why(&b), "truncated attribute value", "attribute cut in the value");

    buf_reset(&b);
    raw_attr(&b, PROTO_INT, "n", 1, eight, 7);
    is_str(decode_why(&b), "bad INT length", "INT of 7 bytes");
    buf_reset(&b);
    raw_attr(&b, PROTO_INT, "n", 1, "123456789", 9);
    is_str(decode_why(&b), "bad INT length", "INT of 9 bytes");
    buf_reset(&b);
    raw_attr(&b, 4, "n", 1, "x", 1);
    is_str(decode_why(&b), "bad attribute type", "type 4");
    buf_reset(&b);
    raw_attr(&b, 0, "n", 1, "x", 1);
    is_str(decode_why(&b), "bad attribute type", "type 0");
    buf_reset(&b);
    raw_attr(&b, PROTO_STR, "", 0, "x", 1);
    is_str(decode_why(&b), "bad attribute name length", "empty name");
    buf_reset(&b);
    char name[70];
    memset(name, 'a', sizeof(name));
    raw_attr(&b, PROTO_STR, name, 65, "x", 1);
    is_str(decode_why(&b), "bad attribute name length", "65-byte name");
    buf_reset(&b);
    raw_attr(&b, PROTO_STR, name, 64, "x", 1);
    is_str(decode_why(&b), "ok", "64-byte name");
    const char *badnames[] = { "a b", "a/b", "a\0b", "a=b", "\xc3\xa9", "a\nb" };
    for (size_t i = 0; i < sizeof(badnames) / sizeof(*badnames); i++) {
        buf_reset(&b);
        raw_attr(&b, PROTO_STR, badnames[i], i == 4 ? 2 : 3, "x", 1);
        is_str(decode_why(&b), "bad character in attribute name", "bad name char");
    }
    const char *badstr[] = { "a\0b", "a\rb", "a\nb", "\r\n" };
    for (size_t i = 0; i < 4; i++) {
        buf_reset(&b);
        raw_attr(&b, PROTO_STR, "s", 1, badstr[i], i == 3 ? 2 : 3);
        is_str(decode_why(&b), "bad character in STR value", "STR with NUL/CR/LF");
    }
    buf_reset(&b);
    raw_attr(&b, PROTO_DATA, "d", 1, "a\0\r\n", 4);
    is_str(decode_why(&b), "ok", "DATA may hold NUL/CR/LF");
    buf_reset(&b);
    raw_attr(&b, PROTO_STR, "s", 1, "", 0);
    b.data[4] = b.data[5] = b.data[6] = b.data[7] = (char)0xff; /* claims 4 GiB */
    is_str(decode_why(&b), "truncated attribute value", "value length of 4 GiB");

    buf_reset(&b);
    for (int i = 0; i < PROTO_MAX_ATTRS; i++)
        raw_attr(&b, PROTO_DATA, "d", 1, "", 0);
    is_str(decode_why(&b), "ok", "PROTO_MAX_ATTRS attributes");
    raw_attr(&b, PROTO_DATA, "d", 1, "", 0);
    is_str(decode_why(&b), "too many attributes", "PROTO_MAX_ATTRS + 1 attributes");

    struct proto_msg m;
    const char *why = NULL;
    proto_msg_init(&m);
    ok(proto_decode_body("", PROTO_MAX_FRAME + 1, &m, &why) < 0, "decode refuses an oversized body");
    is_str(why, "frame too long", "oversized body reason");
    proto_msg_free(&m);
    buf_free(&b);
    buf_free(&ok8);
}

/* sendmsg with any number of fds (proto_sock_send refuses > 8). */
static void send_many_fds(int sock, const void *p, size_t n, const int *fds, size_t nfds)
{
    char space[CMSG_SPACE(sizeof(int) * 64)];
    struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = space,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * nfds) };
    struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
    if (sendmsg(sock, &mh, 0) != (ssize_t)n)
        exit(2);
}

/* Send raw bytes, then read one frame with proto_recv; give the reason. */
static const char *recv_raw(const void *p, size_t n, const int *fds, size_t nfds, bool shut)
{
    int sv[2];
    struct proto_msg m;
    static char why_copy[128];
    const char *why = "ok";

    make_pair(sv);
    if (nfds > PROTO_MAX_FDS)
        send_many_fds(sv[0], p, n, fds, nfds);
    else if (n && proto_sock_send(sv[0], p, n, fds, nfds, 0) != (ssize_t)n)
        return "send failed";
    if (shut)
        shutdown(sv[0], SHUT_WR);
    proto_msg_init(&m);
    if (proto_recv(sv[1], &m, 300, &why) == 0)
        why = "ok";
    snprintf(why_copy, sizeof(why_copy), "%s", why);
    proto_msg_free(&m);
    close(sv[0]);
    close(sv[1]);
    return why_copy;
}

/* Nothing else holds the pipe's write end once read() gives EOF. */
static bool pipe_at_eof(int rfd)
{
    char c[256];
    ssize_t r;
    set_nonblock(rfd);
    while ((r = read(rfd, c, sizeof(c))) > 0)
        ;
    return r == 0;
}


static void test_recv_errors(void)
{
    uint8_t hdr[PROTO_HEADER_LEN] = { 0, 0, 0, 3, 0, 0 };

    is_str(recv_raw(hdr, 3, NULL, 0, true), "connection closed mid-frame", "truncated header");
    is_str(recv_raw(hdr, 6, NULL, 0, true), "connection closed mid-frame", "truncated body");
    is_str(recv_raw(hdr, 0, NULL, 0, true), "closed", "end of stream between frames");
    is_str(recv_raw(hdr, 0, NULL, 0, false), "timeout", "nothing sent: timeout");
    uint8_t big[PROTO_HEADER_LEN] = { 0, 0x10, 0, 1, 0, 0 };
    is_str(recv_raw(big, 6, NULL, 0, false), "frame too long", "length PROTO_MAX_FRAME + 1");
    uint8_t manyfds[PROTO_HEADER_LEN] = { 0, 0, 0, 0, 0, 9 };
    is_str(recv_raw(manyfds, 6, NULL, 0, false), "too many fds", "header announces 9 fds");
    uint8_t onefd[PROTO_HEADER_LEN] = { 0, 0, 0, 0, 0, 1 };
    is_str(recv_raw(onefd, 6, NULL, 0, false), "fd count mismatch", "announced fd missing");

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        exit(2);
    uint8_t nofd[PROTO_HEADER_LEN] = { 0, 0, 0, 0, 0, 0 };
    is_str(recv_raw(nofd, 6, &pfd[1], 1, false), "fd count mismatch", "unannounced fd");
    close(pfd[1]);
    ok(pipe_at_eof(pfd[0]), "the unannounced fd was closed by the receiver");
    close(pfd[0]);

    /* A bad body after a good header: the reason of the decoder. */
    struct buf b;
    buf_init(&b);
    buf_put_u32(&b, 9);
    buf_put_u16(&b, 0);
    raw_attr(&b, PROTO_INT, "n", 1, "1234", 1);
    is_str(recv_raw(b.data, b.len, NULL, 0, false), "bad INT length", "bad body over a socket");
    buf_free(&b);

    /* More fds than any frame may carry: the kernel truncates, we fail. */
    int fds[PROTO_MAX_FDS + 4];
    for (size_t i = 0; i < PROTO_MAX_FDS + 4; i++)
        fds[i] = 0;
    uint8_t eight[PROTO_HEADER_LEN] = { 0, 0, 0, 0, 0, 8 };
    const char *why = recv_raw(eight, 6, fds, PROTO_MAX_FDS + 4, false);
    ok(strcmp(why, "fd control message truncated") == 0 || strcmp(why, "too many fds") == 0,
       "12 fds on one frame fail (%s)", why);
}

static void test_fd_passing(void)
{
    int sv[2], pfd[2];
    struct proto_msg m, r;
    const char *why = NULL;
    char got[16] = { 0 };

    make_pair(sv);
    if (pipe2(pfd, O_CLOEXEC) < 0)
        exit(2);
    proto_msg_init(&m);
    proto_msg_init(&r);
    proto_put_str(&m, "op", "new");
    proto_put_fd(&m, pfd[1]);
    close(pfd[1]);
    ok(proto_send(sv[0], &m) == 0, "send a frame with a pipe fd");
    proto_msg_free(&m);
    ok(proto_recv(sv[1], &r, 2000, &why) == 0, "receive it");
    is_int(r.nfds, 1, "one fd received");
    int wfd = proto_take_fd(&r, 0);
    ok(wfd >= 0 && (fcntl(wfd, F_GETFD) & FD_CLOEXEC), "received fd is close-on-exec");
    ok(write(wfd, "hello", 5) == 5, "write through the passed fd");
    close(wfd);
    proto_msg_free(&r);
    ok(read(pfd[0], got, sizeof(got) - 1) == 5 && strcmp(got, "hello") == 0,
       "read it on the other side of the pipe");
    ok(pipe_at_eof(pfd[0]), "no stray copy of the write end remains");
    close(pfd[0]);

    /* proto_msg_free closes fds that were not taken. */
    if (pipe2(pfd, O_CLOEXEC) < 0)
        exit(2);
    proto_msg_init(&m);
    proto_put_fd(&m, pfd[1]);
    close(pfd[1]);
    proto_send(sv[0], &m);
    proto_msg_free(&m);
    proto_recv(sv[1], &r, 2000, &why);
    proto_msg_free(&r);
    ok(pipe_at_eof(pfd[0]), "proto_msg_free closes untaken fds");
    close(pfd[0]);
    close(sv[0]);
    close(sv[1]);
}

/* Send nframes frames, frame i with i % 4 pipe fds, in one burst; the
 * receiver (blocking or proto_conn) checks each frame's fds by writing
 * through them.  Returns the number of frames whose fds were right. */
static int burst(bool use_conn, int nframes)
{
    int sv[2], right = 0;
    int pipes[64][PROTO_MAX_FDS][2];
    struct proto_msg m;
    struct proto_conn conn;
    const char *why = NULL;

    make_pair(sv);
    for (int i = 0; i < nframes; i++) {
        proto_msg_init(&m);
        proto_put_int(&m, "i", i);
        for (int k = 0; k < i % 4; k++) {
            if (pipe2(pipes[i][k], O_CLOEXEC) < 0)
                exit(2);
            proto_put_fd(&m, pipes[i][k][1]);
            close(pipes[i][k][1]);
        }
        if (proto_send(sv[0], &m) < 0)
            exit(2);
        proto_msg_free(&m);
    }
    set_nonblock(sv[1]);
    proto_conn_init(&conn, sv[1]);
    for (int i = 0, tries = 0; i < nframes && tries < 1000; tries++) {
        int rc;
        proto_msg_init(&m);
        if (use_conn) {
            rc = proto_conn_next(&conn, &m, &why);
            if (rc == 0) {
                if (proto_conn_read(&conn, &why) < 0)
                    break;
                proto_msg_free(&m);
                continue;
            }
        } else {
            rc = proto_recv(sv[1], &m, 2000, &why) == 0 ? 1 : -1;
        }
        int64_t n = -1;
        if (rc != 1 || proto_get_int(&m, "i", &n) < 0 || n != i) {
            tap_diag("frame %d: rc %d why %s", i, rc, why);
            proto_msg_free(&m);
            break;
        }
        bool good = m.nfds == (size_t)(i % 4);
        for (size_t k = 0; good && k < m.nfds; k++) {
            char c = 0;
            good = write(m.fds[k], "k", 1) == 1 && read(pipes[i][k][0], &c, 1) == 1;
        }
        right += good;
        proto_msg_free(&m);
        i++;
    }
    for (int i = 0; i < nframes; i++)
        for (int k = 0; k < i % 4; k++)
            close(pipes[i][k][0]);
    proto_conn_close(&conn);
    close(sv[0]);
    return right;
}

static void test_burst(void)
{
    is_int(burst(false, 40), 40, "burst of 40 frames with fds, proto_recv: each its own fds");
    is_int(burst(true, 40), 40, "burst of 40 frames with fds, proto_conn: each its own fds");
}

static void test_conn_bytewise(void)
{
    int sv[2], pfd[2];
    struct proto_msg m, r;
    struct proto_conn conn;
    struct buf enc;
    const char *why = NULL;
    int early = 0, got = 0;

    make_pair(sv);
    set_nonblock(sv[1]);
    proto_conn_init(&conn, sv[1]);
    proto_msg_init(&m);
    proto_msg_init(&r);
    buf_init(&enc);
    if (pipe2(pfd, O_CLOEXEC) < 0)
        exit(2);
    proto_put_str(&m, "proto", "qmgr-commit");
    proto_put_data(&m, "blob", "\0\1\2", 3);
    proto_put_fd(&m, pfd[1]);
    close(pfd[1]);
    proto_encode(&m, &enc);
    for (size_t i = 0; i < enc.len; i++) {
        proto_sock_send(sv[0], enc.data + i, 1, i == 0 ? m.fds : NULL, i == 0 ? 1 : 0, 0);
        int rr = proto_conn_read(&conn, &why);
        int rc = proto_conn_next(&conn, &r, &why);
        if (rr != 1 || rc < 0)
            break;
        if (rc == 1 && i + 1 < enc.len)
            early++;
        got += rc;
    }
    is_int(early, 0, "no frame before its last byte");
    is_int(got, 1, "frame complete after the last byte");
    is_str(proto_get_str(&r, "proto"), "qmgr-commit", "byte-by-byte frame content");
    is_int(r.nfds, 1, "byte-by-byte frame got its fd");
    ok(r.nfds == 1 && write(r.fds[0], "z", 1) == 1, "the fd works");
    is_int(proto_conn_read(&conn, &why), 0, "then read would block");
    is_int(proto_conn_next(&conn, &r, &why), 0, "and there is no next frame");
    close(sv[0]);
    is_int(proto_conn_read(&conn, &why), -1, "peer closed: read fails");
    is_str(why, "closed", "with reason closed");
    proto_conn_close(&conn);
    proto_msg_free(&m);
    proto_msg_free(&r);
    buf_free(&enc);
    close(pfd[0]);
}

/* One frame announces 1 fd but carries 2: it gets the first, the other is
 * closed; a frame that announces 0 but carries 1 gets none and its fd is
 * closed when the next frame is taken. */
static void test_conn_extra_fds(void)
{
    int sv[2], p1[2], p2[2], p3[2];
    struct proto_conn conn;
    struct proto_msg r;
    const char *why = NULL;
    uint8_t hdr1[PROTO_HEADER_LEN] = { 0, 0, 0, 0, 0, 1 };
    uint8_t hdr0[PROTO_HEADER_LEN] = { 0, 0, 0, 0, 0, 0 };

    make_pair(sv);
    set_nonblock(sv[1]);
    if (pipe2(p1, O_CLOEXEC) < 0 || pipe2(p2, O_CLOEXEC) < 0 || pipe2(p3, O_CLOEXEC) < 0)
        exit(2);
    int two[2] = { p1[1], p2[1] };
    proto_sock_send(sv[0], hdr1, 6, two, 2, 0);
    proto_sock_send(sv[0], hdr0, 6, &p3[1], 1, 0);
    proto_sock_send(sv[0], hdr0, 6, NULL, 0, 0);
    close(p1[1]);
    close(p2[1]);
    close(p3[1]);
    proto_conn_init(&conn, sv[1]);
    proto_msg_init(&r);
    int n = 0, rc = 0;
    size_t nfds[3] = { 99, 99, 99 };
    bool p1_closed = false, p2_closed = false;
    for (int tries = 0; tries < 100 && n < 3 && rc >= 0; tries++) {
        while ((rc = proto_conn_next(&conn, &r, &why)) == 1) {
            nfds[n] = r.nfds;
            proto_msg_reset(&r);
            if (n == 0) {
                p1_closed = pipe_at_eof(p1[0]);
                p2_closed = pipe_at_eof(p2[0]);
            }
            n++;
        }
        if (rc == 0 && proto_conn_read(&conn, &why) < 0)
            break;
    }
    is_int(n, 3, "three frames taken");
    is_int(nfds[0], 1, "the frame announcing 1 of 2 fds got one");
    ok(p1_closed, "its fd closed with its message");
    ok(p2_closed, "the extra fd of the same write was closed");
    is_int(nfds[1], 0, "the frame announcing 0 fds got none");
    ok(pipe_at_eof(p3[0]), "its unannounced fd was closed");
    proto_msg_free(&r);
    proto_conn_close(&conn);
    close(sv[0]);
    close(p1[0]);
    close(p2[0]);
    close(p3[0]);
}

static void test_conn_flood(void)
{
    int sv[2], pfd[2];
    struct proto_conn tx, rx;
    struct proto_msg m;
    const char *why = NULL;
    enum { N = 20000 };
    int next = 0, bad = 0, fdframes = 0;

    make_pair(sv);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    proto_conn_init(&tx, sv[0]);
    proto_conn_init(&rx, sv[1]);
    if (pipe2(pfd, O_CLOEXEC) < 0)
        exit(2);
    for (int i = 0; i < N; i++) {
        proto_msg_init(&m);
        proto_put_int(&m, "seq", i);
        proto_put_str(&m, "rcpt", "someone@example.test");
        if (i % 1000 == 0)
            proto_put_fd(&m, pfd[1]);
        if (i % 5000 == 0) {
            char *big = xcalloc(1, 200000);
            proto_put_data(&m, "big", big, 200000);
            free(big);
        }
        if (proto_conn_queue(&tx, &m) < 0)
            bad++;
        proto_msg_free(&m);
    }
    close(pfd[1]);
    ok(proto_conn_outlen(&tx) > 0, "output queued");
    for (int rounds = 0; next < N && rounds < 1000000; rounds++) {
        if (proto_conn_flush(&tx) < 0)
            break;
        int rr = proto_conn_read(&rx, &why);
        if (rr < 0)
            break;
        int rc;
        proto_msg_init(&m);
        while ((rc = proto_conn_next(&rx, &m, &why)) == 1) {
            int64_t seq = -1;
            proto_get_int(&m, "seq", &seq);
            if (seq != next || m.nfds != (next % 1000 == 0 ? 1u : 0u))
                bad++;
            if (m.nfds == 1 && write(m.fds[0], "f", 1) == 1)
                fdframes++;
            next++;
            proto_msg_reset(&m);
        }
        proto_msg_free(&m);
        if (rc < 0)
            break;
    }
    is_int(next, N, "flood: every frame arrived");
    is_int(bad, 0, "flood: in order, each with its fds");
    is_int(fdframes, N / 1000, "flood: fds usable");
    is_int(proto_conn_flush(&tx), 1, "flood: output flushed");
    is_int(proto_conn_outlen(&tx), 0, "flood: nothing left queued");
    proto_conn_close(&tx);
    proto_conn_close(&rx);
    ok(pipe_at_eof(pfd[0]), "flood: no fd leaked");
    close(pfd[0]);
}

static void test_hello_connect(void)
{
    char dir[] = "/tmp/proto.t.XXXXXX", path[128];
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct proto_msg m;
    const char *why = NULL;

    if (mkdtemp(dir) == NULL)
        exit(2);
    snprintf(path, sizeof(path), "%s/sock", dir);
    str_copy(sun.sun_path, path, sizeof(sun.sun_path));
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(l, 4) < 0)
        exit(2);
    int c = proto_connect(path);
    ok(c >= 0 && (fcntl(c, F_GETFD) & FD_CLOEXEC), "proto_connect to a unix socket, cloexec");
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ok(proto_send_hello(c, "qmgr-commit", 1) == 0, "send hello");
    proto_msg_init(&m);
    ok(proto_recv(s, &m, 2000, &why) == 0, "receive hello");
    ok(proto_check_hello(&m, "qmgr-commit", 1, &why) == 0, "hello matches");
    ok(proto_check_hello(&m, "other", 1, &why) < 0, "other protocol name refused");
    is_str(why, "unexpected protocol", "reason");
    ok(proto_check_hello(&m, "qmgr-commit", 2, &why) < 0, "other version refused");
    is_str(why, "unsupported protocol version", "reason");
    proto_msg_reset(&m);
    proto_put_str(&m, "op", "new");
    ok(proto_check_hello(&m, "qmgr-commit", 1, &why) < 0, "non-hello frame refused");
    proto_msg_free(&m);
    close(c);
    close(s);
    close(l);
    unlink(path);
    ok(proto_connect(path) < 0, "connect to a missing socket fails");
    rmdir(dir);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = 0;
    errno = 0;
    ok(proto_connect(longpath) < 0 && errno == ENAMETOOLONG, "too long a path fails");
}

/* proto_give_fd: the message owns the fd, sends it, and closes it. */
static void test_give_fd(void)
{
    struct proto_msg m, got;
    const char *why = NULL;
    int sv[2], p[2];

    make_pair(sv);
    if (pipe2(p, O_CLOEXEC) < 0)
        exit(2);
    proto_msg_init(&m);
    proto_give_fd(&m, p[0]);
    ok(proto_send(sv[0], &m) == 0, "a given fd is sent");
    proto_msg_free(&m);
    errno = 0;
    ok(fcntl(p[0], F_GETFD) < 0 && errno == EBADF, "and closed with the message");
    proto_msg_init(&got);
    ok(proto_recv(sv[1], &got, 2000, &why) == 0 && proto_take_fd(&got, 0) >= 0,
       "the peer got it");
    proto_msg_free(&got);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* proto_hello_call: the hello goes out, only status="ok" passes, no
 * answer times out (the peer's answers are queued before the call). */
static void test_hello_call(void)
{
    struct proto_msg m;
    const char *why = NULL;
    int sv[2];

    make_pair(sv);
    proto_msg_init(&m);
    proto_put_str(&m, "status", "error");
    ok(proto_send(sv[1], &m) == 0, "peer queues a refusal");
    ok(proto_hello_call(sv[0], "quarantine", 1, 2000, &why) < 0, "refused hello fails");
    is_str(why, "hello refused", "its reason");
    proto_msg_reset(&m);
    ok(proto_recv(sv[1], &m, 2000, &why) == 0 && proto_check_hello(&m, "quarantine", 1, &why) == 0,
       "the peer got our hello");
    proto_msg_reset(&m);
    proto_put_str(&m, "status", "ok");
    ok(proto_send(sv[1], &m) == 0 && proto_hello_call(sv[0], "quarantine", 1, 2000, &why) == 0,
       "accepted hello passes");
    why = NULL;
    ok(proto_hello_call(sv[0], "quarantine", 1, 100, &why) < 0 && why != NULL,
       "no answer: fails (%s)", why ? why : "?");
    proto_msg_free(&m);
    close(sv[0]);
    close(sv[1]);
}

/* proto_send of a big frame to a peer that reads slowly (partial writes). */
static void test_partial_writes(void)
{
    int sv[2];
    struct proto_msg m, r;
    const char *why = NULL;
    int sndbuf = 4096;

    make_pair(sv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    proto_msg_init(&m);
    proto_msg_init(&r);
    char *big = xmalloc(900000);
    for (size_t i = 0; i < 900000; i++)
        big[i] = (char)(i * 7);
    proto_put_data(&m, "big", big, 900000);
    pid_t pid = fork();
    if (pid == 0) {
        _exit(proto_send(sv[0], &m) == 0 ? 0 : 1);
    }
    close(sv[0]);
    ok(proto_recv(sv[1], &r, 10000, &why) == 0, "receive a 900000-byte frame sent in pieces");
    size_t len = 0;
    const void *p = proto_get_data(&r, "big", &len);
    ok(p && len == 900000 && memcmp(p, big, len) == 0, "content intact");
    int st = -1;
    waitpid(pid, &st, 0);
    ok(st == 0, "sender finished");
    free(big);
    proto_msg_free(&m);
    proto_msg_free(&r);
    close(sv[1]);
}

int main(void)
{
    test_roundtrip();
    test_encode_limits();
    test_malformed();
    test_recv_errors();
    test_fd_passing();
    test_burst();
    test_conn_bytewise();
    test_conn_extra_fds();
    test_conn_flood();
    test_hello_connect();
    test_hello_call();
    test_give_fd();
    test_partial_writes();
    return tap_done();
}
