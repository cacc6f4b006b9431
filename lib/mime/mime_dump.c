/*
 * mime_dump - the part tree as text, the format of the golden tests
 * (t/mime/NAME.ref) and of t/helpers/mimetree.
 *
 * Interface: mime_msg_dump(msg, out, flags).  Format: one message line
 *   message parts=N [anom=A,B] [subject="..."]
 * then one line per part, indented two spaces per depth:
 *   TYPE [view=N] [role=uu|alt] [disp=D] [name="F"] [names="F1","F2"]
 *   [boundary="B"] enc=E [scan size=N sha256=HEX] [anom=A,B]
 * Scanned parts are decoded to get their size and SHA-256, so decode
 * time anomalies show too.  Strings are printed with bytes outside
 * printable ASCII, '"' and '\' as \xNN.
 * MIME_DUMP_SUMMARY prints MimeKit's summary shape instead: only view 0
 * MIME entities, "Content-Type: TYPE" indented three spaces per depth.
 */
#include "mime/mime_int.h"
#include "util/mem.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mime_dump_quoted(struct buf *out, const char *s)
{
    buf_append_byte(out, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            buf_printf(out, "\\x%02x", c);
        else
            buf_append_byte(out, c);
    }
    buf_append_byte(out, '"');
}

static void mime_dump_str(struct buf *out, const char *key, const char *s)
{
    buf_printf(out, " %s=", key);
    mime_dump_quoted(out, s);
}

struct mime_hash {
    EVP_MD_CTX *ctx;
    uint64_t size;
};

static int mime_hash_cb(const void *p, size_t n, void *arg)
{
    struct mime_hash *h = arg;

    h->size += n;
    return EVP_DigestUpdate(h->ctx, p, n) == 1 ? 0 : -1;
}

static void mime_dump_hash(struct mime_part *p, struct buf *out)
{
    struct mime_hash h = { EVP_MD_CTX_new(), 0 };
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (h.ctx == NULL || EVP_DigestInit_ex(h.ctx, EVP_sha256(), NULL) != 1 ||
        mime_part_decode(p, mime_hash_cb, &h) < 0 ||
        EVP_DigestFinal_ex(h.ctx, md, &mdlen) != 1) {
        buf_append_str(out, " scan error");
        EVP_MD_CTX_free(h.ctx);
        return;
    }
    EVP_MD_CTX_free(h.ctx);
    buf_printf(out, " scan size=%llu sha256=", (unsigned long long)h.size);
    for (unsigned i = 0; i < mdlen; i++)
        buf_printf(out, "%02x", md[i]);
}

static void mime_dump_part(struct mime_part *p, struct buf *out)
{
    static const char *const role[] = { "", "uu", "alt" };

    buf_printf(out, "%*s%s", (int)(2 * p->depth), "", p->type);
    if (p->view)
        buf_printf(out, " view=%u", p->view);
    if (p->role && p->role < 3)
        buf_printf(out, " role=%s", role[p->role]);
    if (p->disposition)
        buf_printf(out, " disp=%s", p->disposition);
    if (p->filename)
        mime_dump_str(out, "name", p->filename);
    for (size_t i = 0; p->nnames > 1 && i < p->nnames; i++) {
        buf_append_str(out, i ? "," : " names=");
        mime_dump_quoted(out, p->names[i]);
    }
    if (p->boundary)
        mime_dump_str(out, "boundary", p->boundary);
    buf_printf(out, " enc=%s", mime_enc_name(p->enc));
    if (p->scan)
        mime_dump_hash(p, out);
    if (p->anom) {
        buf_append_str(out, " anom=");
        mime_anom_names(p->anom, out);
    }
    buf_append_byte(out, '\n');
}

static void mime_dump_summary(struct mime_msg *msg, struct buf *out)
{
    for (struct mime_part *p = msg->root; p; p = mime_part_next(p)) {
        bool shown = true;
        for (struct mime_part *q = p; q; q = q->parent)
            if (q->view != 0 || q->role != MIME_ROLE_BODY)
                shown = false;
        if (shown)
            buf_printf(out, "%*sContent-Type: %s\n", (int)(3 * p->depth), "",
                       p->type);
    }
}

void mime_msg_dump(struct mime_msg *msg, struct buf *out, int flags)
{
    struct buf parts = BUF_INIT;

    if (flags & MIME_DUMP_SUMMARY) {
        mime_dump_summary(msg, out);
        return;
    }
    for (struct mime_part *p = msg->root; p; p = mime_part_next(p))
        mime_dump_part(p, &parts);
    buf_printf(out, "message parts=%zu", msg->nparts);
    if (msg->anom) {
        buf_append_str(out, " anom=");
        mime_anom_names(msg->anom, out);
    }
    const char *subj = mime_part_header(msg->root, "subject", 0);
    if (subj) {
        char *d = mime_decode_words(subj, strlen(subj), NULL);
        mime_dump_str(out, "subject", d);
        free(d);
    }
    buf_append_byte(out, '\n');
    buf_append(out, parts.data ? parts.data : "", parts.len);
    buf_free(&parts);
}
