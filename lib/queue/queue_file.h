/*
 * queue_file - the on-disk queue file of one message (DESIGN §4).
 *
 * A queue file is a sequence of typed, length-prefixed records:
 *   u8 type, u32 length (big-endian), length bytes of value.
 * Order (the reader enforces it):
 *   VERSION                      first, value u32 = QUEUE_FILE_VERSION
 *   envelope records             in increasing type order, each at most
 *                                once; ARRIVAL and SENDER are mandatory
 *   RCPT records                 at least one, at most QUEUE_MAX_RCPTS
 *   CONTENT records              zero or more, 1..QUEUE_CONTENT_CHUNK bytes
 *                                each: the raw message, CRLF line ends,
 *                                already dot-unstuffed
 *   post records                 range QREC_POST_FIRST..LAST, after
 *                                the RCPT and CONTENT records, before
 *                                END; defined: FLAGS (at most once) and
 *                                REASON (at most once per recipient);
 *                                the other types are rejected until a
 *                                later version defines them
 *   END                          last, length 0, nothing after it
 *
 * Value formats:
 *   ARRIVAL      u64 microseconds since the epoch
 *   string recs  bytes, no NUL/CR/LF, at most QUEUE_MAX_STRING
 *                (SENDER may be empty: the null sender <>)
 *   RET          u8 enum queue_ret;  BODY_TYPE u8 enum queue_body
 *   SMTPUTF8     u8 0/1
 *   RCPT         u8 status, u8 notify bits, u32 addr len, addr,
 *                u32 orcpt len, orcpt (len 0 = no ORCPT).  The status byte
 *                is the first byte of the value, so it sits at a fixed
 *                file offset (record offset + 5) and is updated in place
 *                by queue_rcpt_set_status() (pwrite + fdatasync).
 *   FLAGS        u32 bits, enum queue_flags (unknown bits are rejected)
 *   REASON       u32 recipient index (< number of RCPT records), u8 dsn
 *                length (0..15), dsn ("X.Y.Z", digits and dots), then the
 *                reason text (string rules, may be empty): the last
 *                deferral reason of that recipient, written by qmgr
 *
 * Post records are written by qmgr only, never in place on a committed
 * file: queue_file_append() on a file not yet committed (still in tmp/),
 * queue_file_rewrite() into a fresh file that then replaces the old one
 * by rename(2) (a crash leaves the old or the new file, both complete).
 *
 * Writer (smtpd): buffered, one write(2) per ~64 KiB;
 *   queue_writer_open, queue_writer_envelope (once), queue_writer_content
 *   (any number of times, any sizes: chunks are cut at 64 KiB),
 *   queue_writer_finish (END + fsync), queue_writer_close.
 * Every writer function returns 0 or -1 with errno set and w->error set to
 * a static reason; after an error every further call fails.
 *
 * Reader (qmgr, smtp, mailgwq): queue_file_read() parses through the fd
 * with pread (the file offset is not used or moved), never trusts a
 * length, does not load the content; queue_content_* streams the content.
 * Failures give -1 and a static reason ("truncated record header", ...).
 *
 * Security: every file is peer-controlled data (the envelope came from
 * the network).  Lengths are checked against the file size and the limits
 * below before any allocation.
 */
#ifndef MAILGW_QUEUE_FILE_H
#define MAILGW_QUEUE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

#define QUEUE_FILE_VERSION 1
#define QUEUE_REC_HEADER 5              /* u8 type + u32 length */
#define QUEUE_CONTENT_CHUNK 65536       /* max bytes of one CONTENT record */
#define QUEUE_MAX_STRING 8192           /* max bytes of one envelope string */
#define QUEUE_MAX_RCPTS 100000

enum queue_rec_type {
    QREC_VERSION = 1,
    QREC_ARRIVAL = 2,
    QREC_CLIENT_ADDR = 3,
    QREC_CLIENT_NAME = 4,
    QREC_HELO = 5,
    QREC_PROTO = 6,
    QREC_TLS = 7,
    QREC_SENDER = 8,
    QREC_ENVID = 9,
    QREC_RET = 10,
    QREC_BODY_TYPE = 11,
    QREC_SMTPUTF8 = 12,
    /* 13..31 reserved for more envelope records */
    QREC_RCPT = 32,
    QREC_CONTENT = 48,
    QREC_POST_FIRST = 64,               /* post records (64..95) */
    QREC_FLAGS = 80,                    /* qmgr: enum queue_flags */
    QREC_REASON = 81,                   /* qmgr: a recipient's last
                                         * deferral reason */
    QREC_POST_LAST = 95,
    QREC_END = 127,
};

/* Recipient status byte. */
enum queue_rcpt_status {
    QUEUE_RCPT_PENDING = 0,     /* not yet delivered (new or deferred) */
    QUEUE_RCPT_DELIVERED = 1,   /* accepted by the next hop */
    QUEUE_RCPT_FAILED = 2,      /* permanent failure, bounce not yet sent */
    QUEUE_RCPT_BOUNCED = 3,     /* permanent failure, bounce queued */
    QUEUE_RCPT_DROPPED = 4,     /* removed by policy (scan verdict, admin) */
    QUEUE_RCPT_STATUS_MAX = 4,
};

/* DSN NOTIFY bits (RFC 3461); 0 = NOTIFY not given. */
enum queue_notify {
    QUEUE_NOTIFY_NEVER = 1 << 0,
    QUEUE_NOTIFY_SUCCESS = 1 << 1,
    QUEUE_NOTIFY_FAILURE = 1 << 2,
    QUEUE_NOTIFY_DELAY = 1 << 3,
    QUEUE_NOTIFY_MASK = 0x0f,
};

/* FLAGS record bits. */
enum queue_flags {
    QUEUE_FLAG_NOSCAN = 1 << 0,     /* released from quarantine: never scan */
    QUEUE_FLAGS_KNOWN = QUEUE_FLAG_NOSCAN,
};

enum queue_ret { QUEUE_RET_NONE = 0, QUEUE_RET_FULL = 1, QUEUE_RET_HDRS = 2 };
enum queue_body {
    QUEUE_BODY_NONE = 0,        /* BODY= not given */
    QUEUE_BODY_7BIT = 1,
    QUEUE_BODY_8BITMIME = 2,
    QUEUE_BODY_BINARYMIME = 3,
};

struct queue_rcpt {
    const char *addr;           /* without <>; never empty */
    const char *orcpt;          /* ORCPT= value as given, NULL if none */
    unsigned notify;            /* enum queue_notify bits */
    uint8_t status;             /* enum queue_rcpt_status */
    off_t status_offset;        /* reader: file offset of the status byte */
    const char *reason;         /* reader: REASON text, NULL if none */
    const char *reason_dsn;     /* reader: its X.Y.Z ("" if none), NULL
                                 * when there is no REASON record */
};

/* Strings: NULL = record absent (sender: "" = null sender, never NULL).
 * Writer: the caller owns everything.  Reader: owned by struct
 * queue_file, freed by queue_file_free(). */
struct queue_envelope {
    uint64_t arrival_us;
    const char *client_addr;    /* "192.0.2.1" / "2001:db8::1" */
    const char *client_name;    /* verified name or "unknown" */
    const char *helo;
    const char *proto;          /* "SMTP", "ESMTP", "ESMTPS", ... */
    const char *tls;            /* "TLSv1.3 with cipher ..." or NULL */
    const char *sender;
    const char *envid;          /* DSN ENVID= */
    int ret;                    /* enum queue_ret */
    int body_type;              /* enum queue_body */
    bool smtputf8;
    struct queue_rcpt *rcpts;
    size_t nrcpts;
};

/* ---- writer ---- */

struct queue_writer {
    int fd;
    struct buf out;             /* pending bytes, flushed at ~64 KiB */
    size_t chunk_hdr;           /* offset in out of the open CONTENT
                                 * record header, SIZE_MAX if none */
    uint64_t content_size;      /* content bytes written so far */
    uint64_t written;           /* file bytes written so far */
    int state;                  /* internal */
    const char *error;          /* static reason after a failure */
};

int queue_writer_open(struct queue_writer *w, int fd);
/* Writes VERSION, the envelope records and every RCPT record.  Fails with
 * EINVAL when a string has CR/LF or is too long, sender is NULL, there is
 * no recipient, or a value is out of range. */
int queue_writer_envelope(struct queue_writer *w, const struct queue_envelope *env);
int queue_writer_content(struct queue_writer *w, const void *p, size_t n);
/* Writes END, flushes, truncates the file to the bytes written, fsync()s. */
int queue_writer_finish(struct queue_writer *w);
/* Frees the buffer; does not close the fd. */
void queue_writer_close(struct queue_writer *w);

/* ---- reader ---- */

struct queue_file {
    uint32_t version;
    struct queue_envelope env;  /* env.rcpts[i].status_offset set */
    off_t content_offset;       /* offset of the first CONTENT record (or
                                 * of END when there is no content) */
    off_t content_end;          /* offset just after the last CONTENT
                                 * record */
    uint64_t content_size;      /* total content bytes */
    off_t file_size;            /* offset just after END */
    off_t post_offset;          /* offset of the first post record (or of
                                 * END when there is none) */
    uint32_t flags;             /* FLAGS record, 0 if none */
};

/* Parse and validate the whole file.  Returns 0 and fills qf (free with
 * queue_file_free), or -1 with *why set to a static reason and qf left
 * empty (queue_file_free on it is harmless). */
int queue_file_read(int fd, struct queue_file *qf, const char **why);
void queue_file_free(struct queue_file *qf);

/* Streaming the content of a file read with queue_file_read. */
struct queue_content {
    int fd;
    off_t pos;                  /* next byte to read */
    off_t end;                  /* qf->content_end */
    uint32_t left;              /* bytes left in the current record */
};

void queue_content_open(struct queue_content *c, int fd, const struct queue_file *qf);
/* Copies up to n content bytes.  Returns the count, 0 at the end, -1 on
 * an I/O error or a file changed under us (*why set). */
ssize_t queue_content_read(struct queue_content *c, void *p, size_t n, const char **why);

/* Record a recipient's outcome in place: pwrite of the status byte, then
 * fdatasync.  Updates rcpt->status.  0 / -1 (errno). */
int queue_rcpt_set_status(int fd, struct queue_rcpt *rcpt, uint8_t status);
/* The same without the fdatasync, for marking many recipients and then
 * calling queue_file_sync() once. */
int queue_rcpt_mark_status(int fd, struct queue_rcpt *rcpt, uint8_t status);
int queue_file_sync(int fd);

/* ---- post records (qmgr) ---- */

/* Append a FLAGS / REASON record to b.  A REASON's text is made safe
 * (CR, LF, NUL and other control characters become spaces; cut at
 * QUEUE_MAX_STRING); dsn must be "" or digits and dots, at most 15 bytes.
 * 0 / -1 (EINVAL). */
int queue_post_flags(struct buf *b, uint32_t flags);
int queue_post_reason(struct buf *b, uint32_t rcpt_index, const char *dsn, const char *reason);
/* Write the post records in post (made with the functions above) and a
 * new END where END is now (qf read from fd), then fsync.  Only for a
 * file that is not committed yet.  0 / -1 (errno). */
int queue_file_append(int fd, const struct queue_file *qf, const struct buf *post);
/* Write to the empty file to_fd a copy of from_fd's records up to its
 * post records (qf read from from_fd), then the post records in post
 * (they replace the old ones) and END; fsync to_fd.  0 / -1 (errno). */
int queue_file_rewrite(int from_fd, const struct queue_file *qf, int to_fd,
                       const struct buf *post);

/* Name of a record type for diagnostics ("RCPT", "unknown"). */
const char *queue_rec_name(int type);
/* true when s has no NUL/CR/LF in its n bytes. */
bool queue_string_ok(const char *s, size_t n);

#endif
