/*
 * dnsq - test driver for lib/dns (t/integration/dns_resolver.t).
 *
 * Usage: dnsq [-s SERVER[,SERVER...]] [-t TIMEOUT] [-n NEGTTL] [-p] QUERY...
 *   QUERY: A|AAAA|MX|PTR|TXT NAME, fcrdns IP, dnsbl IP SPEC, rev IP,
 *          counters
 * Without -p queries run one after the other through the blocking
 * wrapper; with -p every lookup query is started at once on one event
 * loop and the lines come in completion order.  Each query prints one
 * line: "TYPE NAME STATUS[ reason] | rec | rec"; MX records as PREF:HOST.
 * "counters" prints "total=N cache=N failed=N".  Exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "util/log.h"
#include "util/mem.h"

static void print_result(const char *what, const char *name, const struct dns_result *r)
{
    printf("%s %s %s", what, name, dns_status_name(r->status));
    if (r->status != DNS_OK && r->reason)
        printf(" %s", r->reason);
    for (size_t i = 0; i < r->count; i++) {
        if (r->mx)
            printf(" | %u:%s", r->mx[i].pref, r->mx[i].host);
        else
            printf(" | %s", r->records[i]);
    }
    printf("\n");
    fflush(stdout);
}

static int parse_type(const char *s, enum dns_type *t)
{
    static const struct { const char *n; enum dns_type t; } types[] = {
        { "A", DNS_T_A }, { "AAAA", DNS_T_AAAA }, { "MX", DNS_T_MX },
        { "PTR", DNS_T_PTR }, { "TXT", DNS_T_TXT },
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(s, types[i].n) == 0) {
            *t = types[i].t;
            return 0;
        }
    return -1;
}

struct pending {
    const char *what, *name;
    int *left;
};

static void par_done(const struct dns_result *r, void *arg)
{
    struct pending *p = arg;

    print_result(p->what, p->name, r);
    (*p->left)--;
}

/* -p: start every lookup, then run the loop until all answered. */
static void run_parallel(int argc, char **argv)
{
    struct pending *p = xcalloc((size_t)argc + 1, sizeof *p);
    int left = 0;

    for (int i = 0; i + 1 < argc; i += 2) {
        enum dns_type t;

        if (parse_type(argv[i], &t) < 0)
            log_fatal("dnsq -p: only plain lookups: %s", argv[i]);
        p[i] = (struct pending){ argv[i], argv[i + 1], &left };
        left++;
        dns_lookup(t, argv[i + 1], par_done, &p[i]);
    }
    while (left > 0)
        if (event_base_loop(dns_base(), EVLOOP_ONCE) != 0)
            break;
    free(p);
}

static int run_one(int argc, char **argv)
{
    struct dns_result *r = NULL;
    enum dns_type t;
    char rev[DNS_MAX_NAME];

    if (strcmp(argv[0], "counters") == 0) {
        struct dns_counters c;
        dns_counters(&c);
        printf("total=%llu cache=%llu failed=%llu\n", (unsigned long long)c.queries_total,
               (unsigned long long)c.queries_through_cache,
               (unsigned long long)c.queries_failed);
        return 1;
    }
    if (argc < 2)
        log_fatal("dnsq: %s needs an argument", argv[0]);
    if (strcmp(argv[0], "rev") == 0) {
        printf("rev %s %s\n", argv[1],
               dns_reverse_name(argv[1], NULL, rev, sizeof rev) == 0 ? rev : "ERROR");
        return 2;
    }
    if (strcmp(argv[0], "fcrdns") == 0) {
        r = dns_resolve_fcrdns(argv[1]);
    } else if (strcmp(argv[0], "dnsbl") == 0 && argc >= 3) {
        r = dns_resolve_dnsbl(argv[1], argv[2]);
        print_result(argv[0], argv[1], r);
        dns_result_free(r);
        return 3;
    } else if (parse_type(argv[0], &t) == 0) {
        r = dns_resolve(t, argv[1]);
    } else {
        log_fatal("dnsq: unknown query %s", argv[0]);
    }
    print_result(argv[0], argv[1], r);
    dns_result_free(r);
    return 2;
}

int main(int argc, char **argv)
{
    const char *servers[8];
    size_t nservers = 0;
    unsigned timeout = 2, negttl = 600;
    bool parallel = false;
    int c;

    log_open("dnsq", LOG_DEST_STDERR, NULL);
    while ((c = getopt(argc, argv, "s:t:n:pv")) != -1) {
        switch (c) {
        case 's':
            for (char *s = strtok(optarg, ","); s && nservers < 8; s = strtok(NULL, ","))
                servers[nservers++] = s;
            break;
        case 't': timeout = (unsigned)atoi(optarg); break;
        case 'n': negttl = (unsigned)atoi(optarg); break;
        case 'p': parallel = true; break;
        case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
        default:
            fprintf(stderr, "usage: dnsq [-s servers] [-t timeout] [-n negttl] [-p] query...\n");
            return 2;
        }
    }
    if (dns_init(NULL, NULL) < 0 || dns_configure(servers, nservers, timeout, negttl) < 0)
        log_fatal("dnsq: bad resolver settings");
    argc -= optind;
    argv += optind;
    if (parallel)
        run_parallel(argc, argv);
    else
        for (int i = 0; i < argc;)
            i += run_one(argc - i, argv + i);
    dns_shutdown();
    return 0;
}
