/* smtpd_data fuzz target: the DATA framing state machine and the header
 * watcher.  The first byte picks the mode and a split point; invariants:
 * feeding in two pieces gives the same result as in one, output never
 * exceeds input, a clean end of data means the input really held
 * CRLF.CRLF (or started with .CRLF), and the fast path (runs of plain
 * bytes a word at a time) gives what the byte-at-a-time machine gives. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtpd/smtpd_data.c"

static int run(int mode, const char *p, size_t n, size_t split, struct buf *out, size_t *consumed,
               unsigned *flags)
{
    struct smtpd_data d;
    size_t used, total = 0;
    int end;

    smtpd_data_init(&d, mode, 1000);
    end = smtpd_data_feed(&d, p, split, &used, out);
    total += used;
    if (!end) {
        end = smtpd_data_feed(&d, p + split, n - split, &used, out);
        total += used;
    }
    if (mode == SMTPD_DATA_RAW)
        smtpd_data_finish(&d, out);
    *consumed = total;
    *flags = d.flags;
    return end;
}

/* The reference: every byte through data_byte, no fast path. */
static int run_bytes(int mode, const char *p, size_t n, struct buf *out, size_t *consumed,
                     unsigned *flags)
{
    struct smtpd_data d;
    size_t i;
    char *o;

    smtpd_data_init(&d, mode, 1000);
    buf_reserve(out, n + 2);
    o = out->data + out->len;
    for (i = 0; i < n; i++) {
        o = data_byte(&d, o, p[i]);
        if (d.state == ST_END) {
            i++;
            break;
        }
    }
    out->len = (size_t)(o - out->data);
    if (mode == SMTPD_DATA_RAW)
        smtpd_data_finish(&d, out);
    *consumed = i;
    *flags = d.flags;
    return d.state == ST_END;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf a = BUF_INIT, b = BUF_INIT, r = BUF_INIT;
    struct smtpd_hdr h;
    size_t ca, cb, cr, split;
    unsigned fa, fb, fr;
    int mode, ea, eb, er;

    if (size < 1)
        return 0;
    mode = (data[0] & 1) ? SMTPD_DATA_RAW : SMTPD_DATA_DOT;
    data++, size--;
    split = size ? data[-1] % (size + 1) : 0;
    ea = run(mode, (const char *)data, size, size, &a, &ca, &fa);
    eb = run(mode, (const char *)data, size, split, &b, &cb, &fb);
    if (ea != eb || ca != cb || fa != fb || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        abort();
    er = run_bytes(mode, (const char *)data, size, &r, &cr, &fr);
    if (ea != er || ca != cr || fa != fr || a.len != r.len ||
        (a.len && memcmp(a.data, r.data, a.len) != 0))
        abort();
    buf_free(&r);
    if (mode == SMTPD_DATA_DOT && a.len > size)
        abort();
    if (ea) {
        if (mode == SMTPD_DATA_RAW)
            abort();
        if (!(ca == 3 && memcmp(data, ".\r\n", 3) == 0) &&
            !(ca >= 5 && memcmp(data + ca - 5, "\r\n.\r\n", 5) == 0))
            abort();
    }
    smtpd_hdr_init(&h);
    smtpd_hdr_feed(&h, a.data ? a.data : "", a.len);
    if (strlen(h.msgid) > SMTPD_MSGID_MAX)
        abort();
    buf_free(&a);
    buf_free(&b);
    return 0;
}
