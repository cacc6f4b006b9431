/*
 * proto - the IPC codec every mailgw daemon speaks over unix stream
 * sockets (DESIGN §5), with file descriptor passing (SCM_RIGHTS).
 *
 * Wire format of one frame (all integers big-endian):
 *   u32  body length (<= PROTO_MAX_FRAME)
 *   u16  number of fds that travel with this frame (<= PROTO_MAX_FDS)
 *   body: a sequence of attributes, each
 *     u8   type  (PROTO_STR, PROTO_INT, PROTO_DATA)
 *     u16  name length (1..PROTO_MAX_NAME), name bytes [A-Za-z0-9_.-]
 *     u32  value length; STR: bytes with no NUL/CR/LF; INT: exactly 8
 *          bytes, signed two's complement; DATA: any bytes
 *   at most PROTO_MAX_ATTRS attributes.
 * The fds are sent as ancillary data with the first byte of the frame; the
 * receiver keeps received fds in arrival order and gives each frame the
 * number its header announces.
 *
 * Each connection starts with a hello frame: attributes "proto" (STR, the
 * protocol name, e.g. "qmgr-commit") and "version" (INT).
 *
 * Decoding checks every length, count and type.  A bad frame fails with a
 * reason (for the log) and the connection is closed by the caller; it is
 * never fatal.  All fds are created O_CLOEXEC (MSG_CMSG_CLOEXEC).
 */
#ifndef MAILGW_PROTO_H
#define MAILGW_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define PROTO_MAX_FRAME (1024 * 1024)
#define PROTO_MAX_ATTRS 4096
#define PROTO_MAX_NAME 64
#define PROTO_MAX_FDS 8
#define PROTO_HEADER_LEN 6

enum proto_type { PROTO_STR = 1, PROTO_INT = 2, PROTO_DATA = 3 };

struct proto_attr {
    enum proto_type type;
    char name[PROTO_MAX_NAME + 1];
    const uint8_t *value;   /* points into the message's storage */
    size_t len;
    int64_t num;            /* PROTO_INT */
};

/* A message being built or one decoded.  Attribute names may repeat
 * (lists: e.g. one "rcpt" per recipient, in order). */
struct proto_msg {
    struct proto_attr *attrs;
    size_t nattrs, cap;
    struct buf store;       /* owns the bytes attrs point to */
    int fds[PROTO_MAX_FDS];
    size_t nfds;
};

void proto_msg_init(struct proto_msg *m);
/* Frees memory and closes any fds still owned by the message. */
void proto_msg_free(struct proto_msg *m);
/* Free memory, keep nothing, close fds: ready to be reused. */
void proto_msg_reset(struct proto_msg *m);

void proto_put_str(struct proto_msg *m, const char *name, const char *value);
void proto_put_strn(struct proto_msg *m, const char *name, const char *value, size_t len);
void proto_put_int(struct proto_msg *m, const char *name, int64_t value);
void proto_put_data(struct proto_msg *m, const char *name, const void *p, size_t len);
/* The message takes a dup of fd (caller keeps its own). */
void proto_put_fd(struct proto_msg *m, int fd);
/* The message takes fd itself (closed when the message is freed). */
void proto_give_fd(struct proto_msg *m, int fd);

/* Lookups: first attribute of that name and type.  NULL / -1 when absent
 * or of another type.  proto_get_str returns a NUL-terminated string. */
const char *proto_get_str(const struct proto_msg *m, const char *name);
int proto_get_int(const struct proto_msg *m, const char *name, int64_t *out);
const void *proto_get_data(const struct proto_msg *m, const char *name, size_t *len);
/* The n-th attribute named name (for lists); NULL past the end. */
const struct proto_attr *proto_get_nth(const struct proto_msg *m, const char *name, size_t n);
size_t proto_count(const struct proto_msg *m, const char *name);
/* Take ownership of the i-th fd (returns -1 if none); the message will not
 * close it. */
int proto_take_fd(struct proto_msg *m, size_t i);

/* Encode the attributes into out (header + body).  Returns 0, or -1 when
 * the frame would exceed the limits. */
int proto_encode(const struct proto_msg *m, struct buf *out);
/* The same, appending the frame to what out already holds. */
int proto_encode_append(const struct proto_msg *m, struct buf *out);
/* Decode one frame body (no header) of len bytes.  Returns 0, or -1 with
 * *why set to a static reason. */
int proto_decode_body(const void *body, size_t len, struct proto_msg *out, const char **why);

/* Blocking helpers (for CLIs, tests, simple daemons).  proto_send writes
 * the whole frame with its fds; proto_recv reads exactly one frame with
 * its fds.  Timeouts in milliseconds (<0 = none).  Return 0, or -1 with
 * *why set ("closed", "timeout", or a decode reason; errno for I/O). */
int proto_send(int sock, const struct proto_msg *m);
int proto_recv(int sock, struct proto_msg *m, int timeout_ms, const char **why);

/* Non-blocking connection for event-driven daemons: feed it when the
 * socket is readable, then take complete frames. */
struct proto_conn {
    int fd;
    /* The fields below are private to lib/proto. */
    struct buf in;              /* received bytes; in.data[inoff..] not taken */
    size_t inoff;
    uint64_t inpos;             /* stream offset of in.data[inoff] */
    uint64_t rpos;              /* stream bytes received so far */
    int fdq[PROTO_MAX_FDS * 4]; /* received fds, arrival order */
    uint64_t fdqpos[PROTO_MAX_FDS * 4]; /* rpos after the read that brought each */
    size_t nfdq;
    struct buf out;             /* pending output bytes */
    size_t outoff;              /* out.data[outoff..out.len) not yet written */
    /* Queue of (offset into out, fds) for frames not yet flushed. */
    struct proto_pending *pending;
    size_t npending, cappending;
};

void proto_conn_init(struct proto_conn *c, int fd);
/* Closes the socket and any queued fds. */
void proto_conn_close(struct proto_conn *c);
/* Read what is available.  Returns 1 data read, 0 would block,
 * -1 closed or error (*why set). */
int proto_conn_read(struct proto_conn *c, const char **why);
/* Take the next complete frame: 1 got one, 0 need more, -1 bad frame. */
int proto_conn_next(struct proto_conn *c, struct proto_msg *m, const char **why);
/* Queue a frame for sending (fds are dup'ed). */
int proto_conn_queue(struct proto_conn *c, const struct proto_msg *m);
/* Write what can be written.  Returns 1 all flushed, 0 more pending,
 * -1 error. */
int proto_conn_flush(struct proto_conn *c);
/* Bytes queued and not yet written (an event loop watches for writability
 * while this is not 0). */
size_t proto_conn_outlen(const struct proto_conn *c);

/* Connect to a unix socket path (blocking), O_CLOEXEC.  -1 on error. */
int proto_connect(const char *path);
/* Convenience: send the hello frame / check a received hello. */
int proto_send_hello(int sock, const char *protoname, int version);
int proto_check_hello(const struct proto_msg *m, const char *protoname, int version, const char **why);
/* Blocking: send the hello on sock and wait (timeout_ms) for an answer
 * with status="ok".  0, or -1 with *why (the socket stays open). */
int proto_hello_call(int sock, const char *protoname, int version, int timeout_ms,
                     const char **why);

#endif
