/*
 * mime_int - internal interfaces between the lib/mime files.
 */
#ifndef MAILGW_MIME_INT_H
#define MAILGW_MIME_INT_H

#include "mime/mime.h"

/* A contiguous byte range parts live in: the message itself, or a body
 * decoded into memory (an encoded container, a text part holding
 * uuencoded blocks). */
struct mime_src {
    struct mime_src *next;
    const unsigned char *p;
    size_t len;
    unsigned char *owned;
};

/* Part roles (struct mime_part's role field). */
enum mime_role {
    MIME_ROLE_BODY = 0,         /* a MIME entity */
    MIME_ROLE_UU,               /* uuencoded block found in a text part */
    MIME_ROLE_ALT,              /* the parent decoded another way */
};

#define MIME_LINE_MAX 998       /* RFC 5322 2.1.1 */
#define MIME_DEPTH_CAP 256      /* hard cap on a configured max_depth */
#define MIME_MAX_BOUNDARIES 4   /* candidate boundaries tried per part */
#define MIME_CHUNK 65536        /* decode output chunk */

/* A parsed header value: main token plus parameters (RFC 2045 + 2231). */
struct mime_param {
    char *name;                 /* lower case, without "*N*" */
    char *value;                /* decoded (UTF-8 where possible) */
};
struct mime_params {
    char *value;                /* "multipart/mixed", lower case */
    struct mime_param *v;
    size_t n;
    uint32_t anom;              /* BAD_PARAM, BAD_ENCODED_WORD */
};

/* mime.c */
void mime_account(struct mime_msg *m, size_t n);
bool mime_over_budget(const struct mime_msg *m);
struct mime_src *mime_src_add(struct mime_msg *m, unsigned char *owned,
                              size_t len);
void mime_flag(struct mime_part *p, uint32_t bits);
/* Charges n bytes of searching; false once the message's budget is spent. */
bool mime_work_add(struct mime_msg *m, size_t n);

/* mime_header.c: parses the header block at s[0..len); fills p->headers;
 * returns the offset of the body.  skip_from: ignore a leading mbox
 * "From " line (root of a message file). */
size_t mime_header_parse(struct mime_msg *m, struct mime_part *p,
                         const unsigned char *s, size_t len, bool skip_from);
/* "content-type" for "Content-Type(comment) ", NULL when not a header. */
bool mime_header_is(const struct mime_header *h, const char *name);

/* mime_param.c */
void mime_params_parse(const char *s, struct mime_params *out);
void mime_params_free(struct mime_params *pp);
const char *mime_params_get(const struct mime_params *pp, const char *name,
                            size_t i);

/* mime_word.c: bytes in charset -> malloc'd NUL-terminated UTF-8; raw
 * bytes (NUL replaced) when the charset is unknown (*ok false). */
char *mime_charset_to_utf8(const char *charset, const char *in, size_t n,
                           bool *ok);

/* mime_parse.c */
void mime_parse_entity(struct mime_msg *m, struct mime_part *p,
                       const char *default_type);
/* Decodes p's body into a new in-memory source (NULL over budget). */
struct mime_src *mime_decode_to_src(struct mime_msg *m, struct mime_part *p);
struct mime_part *mime_part_new(struct mime_msg *m, struct mime_part *parent,
                                const struct mime_src *src, size_t off,
                                size_t len);

/* mime_uu.c: finds uuencoded (and begin-base64) blocks in a text part and
 * adds them as MIME_ROLE_UU children. */
void mime_uu_find(struct mime_msg *m, struct mime_part *p);

/* mime_decode.c: decodes src[off..off+len) with enc. */
int mime_decode_range(const unsigned char *s, size_t len, enum mime_enc enc,
                      uint32_t *anom, mime_decode_cb cb, void *arg);

#endif
