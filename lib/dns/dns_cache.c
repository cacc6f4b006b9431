/*
 * dns_cache - the resolver's answer cache, keyed by (type, name) with the
 * name compared case-insensitively.
 *
 * Interface (dns_int.h): dns_cache_get() returns a copy of a live entry or
 * NULL; dns_cache_put() stores a copy of an OK or NXDOMAIN result for ttl
 * seconds (0 = not stored); dns_cache_clear() empties it.
 *
 * Expired entries are not looked at; they are dropped when met in a
 * bucket.  The cache holds at most DNS_CACHE_MAX entries: when full, the
 * oldest insertion goes (FIFO), so a flood of distinct names costs bounded
 * memory.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/dns_int.h"
#include "util/mem.h"

#define DNS_CACHE_BUCKETS 2048
#define DNS_CACHE_MAX 20000

struct cache_entry {
    struct cache_entry *hnext;          /* bucket chain */
    struct cache_entry *fprev, *fnext;  /* FIFO, oldest first */
    enum dns_type type;
    char *key;                          /* lower-case name */
    time_t expires;                     /* CLOCK_MONOTONIC seconds */
    struct dns_result *result;
};

static struct cache_entry *buckets[DNS_CACHE_BUCKETS];
static struct cache_entry *fifo_head, *fifo_tail;
static size_t cache_count;

static time_t cache_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static char *cache_key(const char *name)
{
    size_t n = strlen(name);
    char *k;

    if (n > 0 && name[n - 1] == '.')
        n--;
    k = xstrndup(name, n);
    for (char *p = k; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return k;
}

static size_t cache_hash(enum dns_type type, const char *key)
{
    size_t h = 5381 + (size_t)type;

    for (const char *p = key; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h % DNS_CACHE_BUCKETS;
}

static void cache_unlink(struct cache_entry *e)
{
    struct cache_entry **pp = &buckets[cache_hash(e->type, e->key)];

    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->fprev)
        e->fprev->fnext = e->fnext;
    else
        fifo_head = e->fnext;
    if (e->fnext)
        e->fnext->fprev = e->fprev;
    else
        fifo_tail = e->fprev;
    dns_result_free(e->result);
    free(e->key);
    free(e);
    cache_count--;
}

/* The live entry for (type, key); expired ones met on the way go. */
static struct cache_entry *cache_find(enum dns_type type, const char *key)
{
    struct cache_entry *e = buckets[cache_hash(type, key)], *next;
    time_t now = cache_now();

    for (; e; e = next) {
        next = e->hnext;
        if (e->expires <= now) {
            cache_unlink(e);
            continue;
        }
        if (e->type == type && strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

struct dns_result *dns_cache_get(enum dns_type type, const char *name)
{
    char *key = cache_key(name);
    struct cache_entry *e = cache_find(type, key);
    struct dns_result *r = NULL;

    free(key);
    if (e) {
        r = dns_result_dup(e->result);
        /* The asker's spelling of the name, not the first asker's. */
        free(r->name);
        r->name = xstrdup(name);
    }
    return r;
}

void dns_cache_put(const struct dns_result *r, uint32_t ttl)
{
    struct cache_entry *e;
    char *key;
    size_t h;

    if (ttl == 0 || (r->status != DNS_OK && r->status != DNS_NXDOMAIN))
        return;
    key = cache_key(r->name);
    e = cache_find(r->type, key);
    if (e)
        cache_unlink(e);
    while (cache_count >= DNS_CACHE_MAX && fifo_head)
        cache_unlink(fifo_head);
    e = xcalloc(1, sizeof *e);
    e->type = r->type;
    e->key = key;
    e->expires = cache_now() + ttl;
    e->result = dns_result_dup(r);
    h = cache_hash(e->type, key);
    e->hnext = buckets[h];
    buckets[h] = e;
    e->fprev = fifo_tail;
    if (fifo_tail)
        fifo_tail->fnext = e;
    else
        fifo_head = e;
    fifo_tail = e;
    cache_count++;
}

void dns_cache_clear(void)
{
    while (fifo_head)
        cache_unlink(fifo_head);
}
