/*
 * fuzz/mime - libFuzzer target for lib/mime: the input is parsed as a
 * message with small limits (so deep and wide trees are reached fast),
 * every scanned part is decoded, the tree is dumped (which decodes again
 * and hashes) and freed.  Any crash, leak, hang or sanitizer report is a
 * bug: malformed mail must only give anomaly bits.  Seeds: t/fuzz/mime/
 * (small messages written for this target: one per feature/anomaly).
 */
#include "mime/mime.h"
#include "util/buf.h"

#include <stdint.h>
#include <string.h>

static int fuzz_sink(const void *p, size_t n, void *arg)
{
    size_t *total = arg;
    *total += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mime_limits lim;
    struct buf out = BUF_INIT;
    size_t total = 0;

    mime_limits_default(&lim);
    lim.max_depth = 8;
    lim.max_parts = 200;
    lim.max_header_len = 4096;
    lim.max_headers = 50;
    lim.max_mem = 1 << 20;
    struct mime_msg *m = mime_msg_parse_mem(data, size, &lim);
    for (struct mime_part *p = m->root; p; p = mime_part_next(p)) {
        if (p->scan)
            mime_part_decode(p, fuzz_sink, &total);
        (void)mime_part_header(p, "content-type", 0);
    }
    mime_msg_dump(m, &out, 0);
    mime_msg_dump(m, &out, MIME_DUMP_SUMMARY);
    buf_free(&out);
    mime_msg_free(m);
    return 0;
}
