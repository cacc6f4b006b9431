/*
 * proto - messages of named attributes and their frame codec (see proto.h
 * for the wire format).
 *
 * Interface: proto_msg_init/free/reset, proto_put_* to build a message,
 * proto_get_* / proto_get_nth / proto_count / proto_take_fd to read one,
 * proto_encode (header + body) and proto_decode_body (body only).  The
 * socket side lives in proto_io.c (blocking) and proto_conn.c (event
 * driven).
 *
 * Storage: every value is copied into m->store followed by a NUL byte, so
 * STR values are C strings.  attrs[].value points into store; when store has
 * to grow, the pointers are moved to the new block (msg_store()).
 *
 * Diagnostics: proto_decode_body fails with a static reason for the log;
 * proto_encode fails (-1) on a message that breaks the limits (bad name, STR
 * with NUL/CR/LF, too big, too many fds, an fd that could not be dup'ed).
 * The put functions never fail: a bad name is recorded as an empty name so
 * that encoding fails later, where the caller checks a result.
 *
 * Security: the decoder trusts no length or count from the peer; all sizes
 * are checked against what is left of the body before use.
 */
#include "proto/proto.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ATTR_FIXED_LEN 7 /* u8 type, u16 name length, u32 value length */
/* Longer than PROTO_MAX_NAME reads as invalid; never reads past that. */
#define NAMELEN(name) strnlen((name), PROTO_MAX_NAME + 1)

void proto_msg_init(struct proto_msg *m)
{
    m->attrs = NULL;
    m->nattrs = m->cap = 0;
    buf_init(&m->store);
    for (size_t i = 0; i < PROTO_MAX_FDS; i++)
        m->fds[i] = -1;
    m->nfds = 0;
}

static void msg_close_fds(struct proto_msg *m)
{
    size_t n = m->nfds < PROTO_MAX_FDS ? m->nfds : PROTO_MAX_FDS;

    for (size_t i = 0; i < n; i++) {
        if (m->fds[i] >= 0)
            close(m->fds[i]);
        m->fds[i] = -1;
    }
    m->nfds = 0;
}

void proto_msg_free(struct proto_msg *m)
{
    msg_close_fds(m);
    free(m->attrs);
    buf_free(&m->store);
    proto_msg_init(m);
}

void proto_msg_reset(struct proto_msg *m)
{
    proto_msg_free(m);
}

/* Copy n bytes plus a NUL into the store; return where they landed.  When
 * the store must grow, the block is moved by hand so the attribute
 * pointers can be rebased while the old block is still valid. */
static const uint8_t *msg_store(struct proto_msg *m, const void *p, size_t n)
{
    struct buf *s = &m->store;
    size_t need;

    /* value, its NUL, and the NUL buf keeps after len */
    if (!size_add(s->len, n, &need) || !size_add(need, 2, &need))
        need = SIZE_MAX; /* buf_reserve reports the overflow */
    if (need > s->cap && s->data != NULL) {
        char *old = s->data;
        struct buf grown;
        buf_init(&grown);
        buf_reserve(&grown, need > s->cap * 2 ? need : s->cap * 2);
        memcpy(grown.data, old, s->len + 1);
        grown.len = s->len;
        for (size_t i = 0; i < m->nattrs; i++)
            if (m->attrs[i].value != NULL)
                m->attrs[i].value = (const uint8_t *)grown.data +
                                    (m->attrs[i].value - (const uint8_t *)old);
        buf_free(s);
        *s = grown;
    }
    size_t off = s->len;
    buf_append(s, p, n);
    buf_append_byte(s, 0);
    return (const uint8_t *)s->data + off;
}

static bool name_ok(const char *name, size_t len)
{
    if (len == 0 || len > PROTO_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool str_value_ok(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] == 0 || p[i] == '\r' || p[i] == '\n')
            return false;
    return true;
}

static struct proto_attr *msg_add(struct proto_msg *m, enum proto_type type,
                                  const char *name, size_t namelen)
{
    if (m->nattrs == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        m->attrs = xreallocarray(m->attrs, cap, sizeof(*m->attrs));
        m->cap = cap;
    }
    struct proto_attr *a = &m->attrs[m->nattrs++];
    memset(a, 0, sizeof(*a));
    a->type = type;
    /* A bad name is kept empty: proto_encode then refuses the message. */
    if (name_ok(name, namelen)) {
        memcpy(a->name, name, namelen);
        a->name[namelen] = 0;
    }
    return a;
}

static void msg_put(struct proto_msg *m, enum proto_type type, const char *name,
                    size_t namelen, const void *p, size_t len)
{
    const uint8_t *v = msg_store(m, p, len);
    struct proto_attr *a = msg_add(m, type, name, namelen);

    a->value = v;
    a->len = len;
}

void proto_put_str(struct proto_msg *m, const char *name, const char *value)
{
    msg_put(m, PROTO_STR, name, NAMELEN(name), value, strlen(value));
}

void proto_put_strn(struct proto_msg *m, const char *name, const char *value, size_t len)
{
    msg_put(m, PROTO_STR, name, NAMELEN(name), value, len);
}

void proto_put_int(struct proto_msg *m, const char *name, int64_t value)
{
    uint8_t be[8];
    uint64_t u = (uint64_t)value;

    for (int i = 7; i >= 0; i--, u >>= 8)
        be[i] = (uint8_t)u;
    msg_put(m, PROTO_INT, name, NAMELEN(name), be, sizeof(be));
    m->attrs[m->nattrs - 1].num = value;
}

void proto_put_data(struct proto_msg *m, const char *name, const void *p, size_t len)
{
    msg_put(m, PROTO_DATA, name, NAMELEN(name), p, len);
}

void proto_give_fd(struct proto_msg *m, int fd)
{
    /* Past the limit nfds still counts up, so proto_encode refuses. */
    if (m->nfds < PROTO_MAX_FDS)
        m->fds[m->nfds] = fd;
    else if (fd >= 0)
        close(fd);
    m->nfds++;
}

void proto_put_fd(struct proto_msg *m, int fd)
{
    proto_give_fd(m, fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

static const struct proto_attr *msg_find(const struct proto_msg *m, const char *name,
                                         enum proto_type type)
{
    for (size_t i = 0; i < m->nattrs; i++)
        if (m->attrs[i].type == type && strcmp(m->attrs[i].name, name) == 0)
            return &m->attrs[i];
    return NULL;
}

const char *proto_get_str(const struct proto_msg *m, const char *name)
{
    const struct proto_attr *a = msg_find(m, name, PROTO_STR);
    return a ? (const char *)a->value : NULL;
}

int proto_get_int(const struct proto_msg *m, const char *name, int64_t *out)
{
    const struct proto_attr *a = msg_find(m, name, PROTO_INT);
    if (a == NULL)
        return -1;
    *out = a->num;
    return 0;
}

const void *proto_get_data(const struct proto_msg *m, const char *name, size_t *len)
{
    const struct proto_attr *a = msg_find(m, name, PROTO_DATA);
    if (a == NULL)
        return NULL;
    if (len)
        *len = a->len;
    return a->value;
}

const struct proto_attr *proto_get_nth(const struct proto_msg *m, const char *name, size_t n)
{
    for (size_t i = 0; i < m->nattrs; i++)
        if (strcmp(m->attrs[i].name, name) == 0 && n-- == 0)
            return &m->attrs[i];
    return NULL;
}

size_t proto_count(const struct proto_msg *m, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nattrs; i++)
        if (strcmp(m->attrs[i].name, name) == 0)
            n++;
    return n;
}

int proto_take_fd(struct proto_msg *m, size_t i)
{
    if (i >= m->nfds || i >= PROTO_MAX_FDS)
        return -1;
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

/* Check the message against the limits; *bodylen gets the body size. */
static int msg_check(const struct proto_msg *m, size_t *bodylen)
{
    size_t total = 0;

    if (m->nattrs > PROTO_MAX_ATTRS || m->nfds > PROTO_MAX_FDS)
        return -1;
    for (size_t i = 0; i < m->nfds; i++)
        if (m->fds[i] < 0)
            return -1;
    for (size_t i = 0; i < m->nattrs; i++) {
        const struct proto_attr *a = &m->attrs[i];
        size_t namelen = strlen(a->name);
        if (!name_ok(a->name, namelen))
            return -1;
        if (a->type == PROTO_STR && !str_value_ok(a->value, a->len))
            return -1;
        if (a->type == PROTO_INT && a->len != 8)
            return -1;
        if (!size_add(total, ATTR_FIXED_LEN + namelen, &total) ||
            !size_add(total, a->len, &total) || total > PROTO_MAX_FRAME)
            return -1;
    }
    *bodylen = total;
    return 0;
}

/* Internal: append one frame to out (used by proto_conn_queue too). */
int proto_encode_append(const struct proto_msg *m, struct buf *out)
{
    size_t bodylen;

    if (msg_check(m, &bodylen) < 0) {
        errno = EINVAL;
        return -1;
    }
    buf_reserve(out, PROTO_HEADER_LEN + bodylen);
    buf_put_u32(out, (uint32_t)bodylen);
    buf_put_u16(out, (uint16_t)m->nfds);
    for (size_t i = 0; i < m->nattrs; i++) {
        const struct proto_attr *a = &m->attrs[i];
        size_t namelen = strlen(a->name);
        buf_put_u8(out, (uint8_t)a->type);
        buf_put_u16(out, (uint16_t)namelen);
        buf_append(out, a->name, namelen);
        buf_put_u32(out, (uint32_t)a->len);
        buf_append(out, a->value, a->len);
    }
    return 0;
}

int proto_encode(const struct proto_msg *m, struct buf *out)
{
    buf_reset(out);
    return proto_encode_append(m, out);
}

/* Decode the attribute at *pos; advance *pos.  0 or -1 with *why. */
static int decode_attr(const uint8_t *p, size_t len, size_t *pos,
                       struct proto_msg *out, const char **why)
{
    size_t left = len - *pos;
    const uint8_t *q = p + *pos;

    if (left < 3) {
        *why = "truncated attribute header";
        return -1;
    }
    uint8_t type = q[0];
    size_t namelen = get_u16(q + 1);
    if (type != PROTO_STR && type != PROTO_INT && type != PROTO_DATA) {
        *why = "bad attribute type";
        return -1;
    }
    if (namelen == 0 || namelen > PROTO_MAX_NAME) {
        *why = "bad attribute name length";
        return -1;
    }
    if (left - 3 < namelen + 4) {
        *why = "truncated attribute header";
        return -1;
    }
    if (!name_ok((const char *)q + 3, namelen)) {
        *why = "bad character in attribute name";
        return -1;
    }
    size_t vlen = get_u32(q + 3 + namelen);
    const uint8_t *v = q + 3 + namelen + 4;
    left -= 3 + namelen + 4;
    if (vlen > left) {
        *why = "truncated attribute value";
        return -1;
    }
    if (type == PROTO_INT && vlen != 8) {
        *why = "bad INT length";
        return -1;
    }
    if (type == PROTO_STR && !str_value_ok(v, vlen)) {
        *why = "bad character in STR value";
        return -1;
    }
    msg_put(out, (enum proto_type)type, (const char *)q + 3, namelen, v, vlen);
    if (type == PROTO_INT)
        out->attrs[out->nattrs - 1].num = (int64_t)get_u64(v);
    *pos += 3 + namelen + 4 + vlen;
    return 0;
}

int proto_decode_body(const void *body, size_t len, struct proto_msg *out, const char **why)
{
    const uint8_t *p = body;
    size_t pos = 0;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    proto_msg_reset(out);
    if (len > PROTO_MAX_FRAME) {
        *why = "frame too long";
        return -1;
    }
    /* One reservation: the store holds the body plus a NUL per value. */
    buf_reserve(&out->store, len + len / ATTR_FIXED_LEN + 1);
    while (pos < len) {
        if (out->nattrs >= PROTO_MAX_ATTRS) {
            *why = "too many attributes";
            goto fail;
        }
        if (decode_attr(p, len, &pos, out, why) < 0)
            goto fail;
    }
    return 0;
fail:
    proto_msg_reset(out);
    return -1;
}
