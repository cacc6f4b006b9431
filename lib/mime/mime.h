/*
 * mime - RFC 5322 + MIME (RFC 2045-2049, 2231, 2047) parser for scanning.
 *
 * The parser turns one message into a tree of parts without decoding any
 * body: a part records where its headers and body lie and how the body is
 * encoded; mime_part_decode() decodes it later, chunk by chunk, straight
 * from the message bytes (an mmap of the queue content region), so a
 * 50 MB attachment is never held decoded in memory.
 *
 * Inclusive parsing (the amavisd-new CVE-2024-28054 lesson): where clients
 * may disagree about a message, every plausible view is exposed and the
 * part is flagged with an anomaly bit.  Duplicate Content-Type headers or
 * boundary parameters give one set of children per candidate boundary
 * (part->view tells them apart); duplicate Content-Transfer-Encoding gives
 * one extra child per other encoding; content beyond the depth, part or
 * work limits stays scannable as one flat part.  The raw message is always
 * scannable too (mime_msg_raw).
 *
 * What scand scans: the raw message, then every part with part->scan set
 * (leaves, flattened containers, encoded containers, uuencoded blocks,
 * alternative decodings), decoded with mime_part_decode[_to_fd].
 *
 * Interface:
 *   mime_msg_parse_fd(fd, off, len, lim)   mmap (or pread) a region
 *   mime_msg_parse_mem(p, len, lim)        caller keeps p alive
 *   mime_msg_parse_reader(fn, arg, lim)    read a stream (e.g. queue
 *                                          content records) into memory
 *   mime_msg_free(msg)
 *   mime_part_decode(part, cb, arg)        0, -1 (cb returned -1)
 *   mime_part_decode_to_fd(part, fd)       0, -1 with errno
 *   mime_part_header(part, name, i)        i-th header value by name
 *   mime_decode_words(text, len)           RFC 2047 -> UTF-8 (malloc'd)
 *   mime_anom_names(mask, buf)             "DUP_CT,TRUNCATED_B64"
 *   mime_msg_dump(msg, buf, flags)         the golden-test tree (.ref)
 *
 * Security: all input is peer data.  Limits (struct mime_limits) bound
 * depth, parts, header sizes, metadata memory and the boundary-search
 * work per message; every size sum is checked.  Nothing here logs or
 * aborts on bad input: it is reported through the anomaly bits.
 */
#ifndef MAILGW_MIME_H
#define MAILGW_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

/* Structural anomalies, per part and (OR of all) per message. */
enum mime_anom {
    MIME_ANOM_DUP_CT = 1u << 0,            /* two Content-Type headers */
    MIME_ANOM_DUP_CTE = 1u << 1,           /* two Content-Transfer-Encodings */
    MIME_ANOM_MISSING_BOUNDARY = 1u << 2,  /* multipart without boundary= */
    MIME_ANOM_NO_OPEN_BOUNDARY = 1u << 3,  /* boundary never occurs */
    MIME_ANOM_NO_CLOSE_BOUNDARY = 1u << 4, /* closing delimiter missing */
    MIME_ANOM_DUP_BOUNDARY = 1u << 5,      /* several candidate boundaries */
    MIME_ANOM_DUP_FILENAME_CONFLICT = 1u << 6, /* name/filename disagree */
    MIME_ANOM_TRUNCATED_B64 = 1u << 7,     /* base64 ends mid-quantum */
    MIME_ANOM_BAD_B64 = 1u << 8,           /* invalid base64 characters */
    MIME_ANOM_BAD_QP = 1u << 9,            /* invalid =XX sequence */
    MIME_ANOM_DEPTH_LIMIT = 1u << 10,      /* nesting cut, content flat */
    MIME_ANOM_PART_LIMIT = 1u << 11,       /* part count cut, content flat */
    MIME_ANOM_HEADER_LIMIT = 1u << 12,     /* header too long / too many */
    MIME_ANOM_NUL = 1u << 13,              /* NUL byte in headers/text */
    MIME_ANOM_BARE_LF = 1u << 14,          /* LF without CR (message only) */
    MIME_ANOM_LONG_LINE = 1u << 15,        /* line over 998 octets */
    MIME_ANOM_NO_BODY = 1u << 16,          /* headers end at end of data */
    MIME_ANOM_BAD_HEADER = 1u << 17,       /* line without colon, odd name */
    MIME_ANOM_HEADER_COMMENT = 1u << 18,   /* "Content-Type(x):" accepted */
    MIME_ANOM_STRAY_BOUNDARY = 1u << 19,   /* boundary= outside Content-Type */
    MIME_ANOM_UNKNOWN_CTE = 1u << 20,      /* unknown transfer encoding */
    MIME_ANOM_ENCODED_CONTAINER = 1u << 21, /* multipart/message with b64/qp */
    MIME_ANOM_UU_TRUNCATED = 1u << 22,     /* uuencoded block without end */
    MIME_ANOM_WORK_LIMIT = 1u << 23,       /* parse work or memory cut */
    MIME_ANOM_BAD_PARAM = 1u << 24,        /* unparsable / duplicate param */
    MIME_ANOM_BAD_ENCODED_WORD = 1u << 25, /* RFC 2047/2231 decode failed */
    MIME_ANOM_PART_AFTER_CLOSE = 1u << 26, /* delimiter after close-delimiter */
    MIME_ANOM_LOOSE_BOUNDARY = 1u << 27,   /* "----b" lines for boundary "-b" */
};
#define MIME_ANOM_COUNT 28

enum mime_enc {
    MIME_ENC_IDENTITY = 0,      /* 7bit, 8bit, binary, absent */
    MIME_ENC_BASE64,
    MIME_ENC_QP,
    MIME_ENC_UU,                /* x-uuencode body or uuencoded block */
};

struct mime_limits {
    unsigned max_depth;         /* container nesting, default 32 */
    size_t max_parts;           /* parts per message, default 10000 */
    size_t max_header_len;      /* one unfolded header, default 64 KiB */
    size_t max_headers;         /* stored headers per part, default 1000 */
    size_t max_mem;             /* metadata + decoded containers, 64 MiB */
    size_t max_read;            /* mime_msg_parse_reader, default 256 MiB */
};

struct mime_header {
    char *name;                 /* as written, comment/space stripped */
    char *value;                /* unfolded, leading space stripped, raw
                                 * bytes (may hold UTF-8 or 8-bit) */
    size_t raw_off, raw_len;    /* the field as in the part's source */
};

struct mime_src;                /* bytes a part lives in (internal) */
struct mime_msg;

struct mime_part {
    struct mime_part *parent, *child, *next;   /* tree */
    struct mime_part *last_child;              /* internal: append */
    struct mime_msg *msg;
    unsigned depth;             /* root 0 */
    unsigned view;              /* 0 primary, n: n-th alternative parse */
    unsigned role;              /* 0 MIME entity, 1 uuencoded block,
                                 * 2 the parent decoded another way */
    bool scan;                  /* scand decodes and scans this part */
    bool container;             /* children are its multipart/message parts */
    char *type;                 /* "text/plain", lower case, never NULL */
    char *charset;              /* lower case or NULL */
    char *disposition;          /* "attachment", "inline", ... or NULL */
    char *filename;             /* decoded, UTF-8 where possible, or NULL */
    char **names;               /* every distinct file name seen */
    size_t nnames;
    char *boundary;             /* the boundary this part's children use */
    enum mime_enc enc;
    uint32_t anom;              /* enum mime_anom bits of this part */
    struct mime_header *headers;
    size_t nheaders;
    /* where the part lies in its source */
    const struct mime_src *src;
    size_t off, hdr_len, body_off, body_len;
};

struct mime_msg {
    struct mime_part *root;
    uint32_t anom;              /* OR of every part's bits + message bits */
    size_t nparts;
    struct mime_limits lim;
    /* internal */
    const unsigned char *data;
    size_t len;
    void *map;                  /* mmap base or heap copy to release */
    size_t map_len;
    bool map_is_heap;
    struct mime_src *srcs;      /* list of sources (message + decoded) */
    size_t mem_used;
    uint64_t work_used;
};

typedef int (*mime_decode_cb)(const void *buf, size_t n, void *arg);
typedef ssize_t (*mime_read_fn)(void *arg, void *buf, size_t n);

void mime_limits_default(struct mime_limits *lim);

/* All return NULL only for I/O errors (errno set); malformed input always
 * gives a tree.  lim may be NULL for the defaults. */
struct mime_msg *mime_msg_parse_fd(int fd, off_t off, size_t len,
                                   const struct mime_limits *lim);
struct mime_msg *mime_msg_parse_mem(const void *p, size_t len,
                                    const struct mime_limits *lim);
struct mime_msg *mime_msg_parse_reader(mime_read_fn fn, void *arg,
                                       const struct mime_limits *lim);
void mime_msg_free(struct mime_msg *msg);

/* The whole message as received. */
void mime_msg_raw(const struct mime_msg *msg, const void **p, size_t *len);
int mime_msg_raw_to_fd(const struct mime_msg *msg, int fd);

/* Pre-order walk: mime_part_next(msg->root) ... NULL. */
struct mime_part *mime_part_next(struct mime_part *p);

/* Decodes the body in chunks of at most 64 KiB; cb returning -1 stops
 * the decode (result -1).  Decode-time anomalies (TRUNCATED_B64, BAD_B64,
 * BAD_QP, UU_TRUNCATED) are added to part->anom and msg->anom. */
int mime_part_decode(struct mime_part *part, mime_decode_cb cb, void *arg);
int mime_part_decode_to_fd(struct mime_part *part, int fd);

/* i-th header called name (case-insensitive), or NULL. */
const char *mime_part_header(const struct mime_part *part, const char *name,
                             size_t i);

/* RFC 2047 encoded words decoded to UTF-8 where the charset is known,
 * raw bytes kept otherwise; *bad set when a word was malformed. */
char *mime_decode_words(const char *text, size_t len, bool *bad);

/* Comma-separated names of the bits in mask, "" for none. */
void mime_anom_names(uint32_t mask, struct buf *out);
const char *mime_enc_name(enum mime_enc enc);

/* The .ref format of the golden tests: a message line, then one line per
 * part (decodes every scanned part for its size and sha256). */
#define MIME_DUMP_SUMMARY 1     /* "Content-Type: x" lines only (MimeKit) */
void mime_msg_dump(struct mime_msg *msg, struct buf *out, int flags);

#endif
