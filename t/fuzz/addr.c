/*
 * fuzz/addr - libFuzzer target for lib/addr.
 *
 * Input: one mode byte, then the payload.
 *   mode & 7 == 0/1: MAIL/RCPT argument for addr_path_parse (bit 3
 *     ADDR_UTF8, bit 4 ADDR_SMTPUTF8_OK, bit 5 ADDR_BARE_OK).  An accepted
 *     path must hold no control character, respect the length limits and
 *     parse again to the same address when written back as "<addr>".
 *   2: "mask\0string" for addr_wildmatch / addr_mask_match.
 *   3: "mask\0ip" for addr_ipmask_parse / addr_ipmask_match.
 *   4: "item\0item\0...\0\0probe" for addr_masklist_*.
 *   5: xtext for addr_xtext_decode.
 *   6: a string for the mask checks.
 */
#include "addr/addr.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void check_path(const struct addr_path *p, enum addr_path_kind kind, unsigned flags)
{
    if (strlen(p->addr) != p->len || p->len > ADDR_PATH_MAX - 2)
        abort();
    for (size_t i = 0; i < p->len; i++)
        if ((unsigned char)p->addr[i] < 32 || p->addr[i] == 127)
            abort();
    if (p->has_domain && (p->at >= p->len || p->addr[p->at] != '@' || p->at > ADDR_LOCAL_MAX))
        abort();
    if (p->utf8 && !(flags & ADDR_UTF8) && !p->smtputf8)
        abort();
    /* Written back as a plain path, it parses to the same address. */
    char again[ADDR_PATH_MAX + 8];
    struct addr_path q;
    const char *why = NULL;
    size_t n = 0;
    again[n++] = '<';
    memcpy(again + n, p->addr, p->len);
    n += p->len;
    again[n++] = '>';
    unsigned f2 = (flags & ADDR_UTF8) | (p->smtputf8 ? ADDR_UTF8 : 0);
    if (addr_path_parse(again, n, kind, f2, &q, &why) != 0 || strcmp(q.addr, p->addr) != 0)
        abort();
    for (size_t i = 0; i < strlen(p->envid); i++)
        if ((unsigned char)p->envid[i] < 32)
            abort();
}

static void fuzz_path(uint8_t mode, const char *s, size_t n)
{
    enum addr_path_kind kind = (mode & 7) == 0 ? ADDR_MAIL : ADDR_RCPT;
    unsigned flags = ((mode & 8) ? ADDR_UTF8 : 0) | ((mode & 16) ? ADDR_SMTPUTF8_OK : 0) |
                     ((mode & 32) ? ADDR_BARE_OK : 0);
    struct addr_path p;
    const char *why = NULL;

    if (addr_path_parse(s, n, kind, flags, &p, &why) == 0) {
        check_path(&p, kind, flags);
        (void)addr_path_domain(&p);
    } else if (why == NULL || strlen(why) < 6 || (p.code != 501 && p.code != 553 && p.code != 555)) {
        abort();
    }
}

/* s holds n bytes with a NUL added; split at the first NUL. */
static void fuzz_pair(int mode, const char *s, size_t n)
{
    const char *second = memchr(s, 0, n);
    second = second ? second + 1 : s + n;
    if ((mode & 7) == 2) {
        (void)addr_wildmatch(s, second);
        (void)addr_mask_match(s, second);
        if (!addr_wildmatch("*", second))
            abort();
        if (strchr(s, '*') == NULL && strchr(s, '?') == NULL && strlen(s) == strlen(second) &&
            strcasecmp(s, second) == 0 && !addr_wildmatch(s, second))
            abort();
        return;
    }
    struct addr_ipmask m;
    struct addr_ip ip;
    const char *why = NULL;
    if (addr_ipmask_parse(s, &m, &why) == 0 && addr_ip_parse(second, &ip) == 0)
        (void)addr_ipmask_match(&m, &ip);
    if (addr_ip_parse(s, &ip) == 0 && addr_ipmask_parse(s, &m, &why) == 0 &&
        !addr_ipmask_match(&m, &ip))
        abort(); /* an address matches its own mask */
}

static void fuzz_list(const char *s, size_t n)
{
    const char *items[64];
    size_t ni = 0, i = 0;
    struct addr_masklist l;
    const char *why = NULL;
    size_t bad;

    while (i < n && ni < 63 && s[i] != 0) {
        items[ni++] = s + i;
        i += strlen(s + i) + 1;
    }
    items[ni] = NULL;
    const char *probe = i + 1 < n ? s + i + 1 : "";
    if (addr_masklist_init(&l, items, ADDR_LIST_IP | ADDR_LIST_ADDR, &why, &bad) == 0) {
        (void)addr_masklist_match_ip(&l, probe);
        (void)addr_masklist_match_addr(&l, probe);
        addr_masklist_free(&l);
    } else if (bad >= ni) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    uint8_t mode = data[0];
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    size_t n = size - 1;
    char out[128];
    const char *why = NULL;

    switch (mode & 7) {
    case 0: case 1: fuzz_path(mode, s, n); break;
    case 2: case 3: fuzz_pair(mode, s, n); break;
    case 4: fuzz_list(s, n); break;
    case 5:
        if (addr_xtext_decode(s, n, mode & 8, out, sizeof(out)) == 0)
            for (size_t i = 0; out[i]; i++)
                if ((unsigned char)out[i] < 32)
                    abort();
        break;
    default:
        (void)addr_mask_check(s, &why);
        (void)addr_domainmask_check(s, &why);
        (void)addr_ipmask_check(s, &why);
        (void)addr_utf8_len((const unsigned char *)s, n);
        break;
    }
    free(s);
    return 0;
}
