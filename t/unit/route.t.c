/* route.t - ForwardRoute table, lookups and nexthop strings. */
#include "route/route.h"
#include "tap.h"

#include <string.h>

static const char *lookup(const struct route_table *t, const char *rcpt)
{
    static struct buf out;
    if (route_lookup(t, rcpt, &out) < 0)
        return "(none)";
    return out.data;
}

static void test_masks(void)
{
    ok(route_mask_match("*", "a@b.c"), "* matches all");
    ok(route_mask_match("*@Example.COM", "joe@example.com"), "case-insensitive");
    ok(!route_mask_match("*@example.com", "joe@example.com.evil"), "anchored at the end");
    ok(route_mask_match("j?e@*.example.com", "joe@mx.example.com"), "? and *");
    ok(!route_mask_match("j?e@*.example.com", "jooe@mx.example.com"), "? is one char");
    ok(route_mask_match("*a*b*c", "xxaxxbxxbxc"), "backtracking");
    ok(!route_mask_match("*a*b*c", "xxaxxbxxbx"), "backtracking, no match");
    ok(route_mask_match("", "") && !route_mask_match("", "x"), "empty mask");
}

static void test_table(void)
{
    const char *items[] = {
        "*@domain1.com [localhost:1025]",
        "*@domain2.com [somehost.somedomain.com]",
        "*@domain3.com otherdomain.com",
        "sub.domain4.com [10.0.0.1]:2525",
        "*@*.domain5.com  [::1]:26",
        "*@domain1.com [never.used]",
        "special@domain6.com [first]",
        "*@domain6.com [second]",
        "*@domain7.com relay.example:2525",
        "*@domain8.com relay.example:25",
    };
    struct buf diag = BUF_INIT;
    struct route_table *t = route_table_new(items, sizeof(items) / sizeof(items[0]), &diag);
    ok(t != NULL, "table parses");
    is_str(lookup(t, "a@domain1.com"), "[localhost]:1025", "[host:port]");
    is_str(lookup(t, "a@DOMAIN1.com"), "[localhost]:1025", "mask case-insensitive");
    is_str(lookup(t, "a@domain2.com"), "[somehost.somedomain.com]", "[host] = port 25");
    is_str(lookup(t, "a@domain3.com"), "otherdomain.com", "host = MX of host");
    is_str(lookup(t, "a@sub.domain4.com"), "[10.0.0.1]:2525", "domain mask (5.0 form)");
    is_str(lookup(t, "a@x.domain5.com"), "[::1]:26", "IPv6 literal with port");
    is_str(lookup(t, "special@domain6.com"), "[first]", "first match wins");
    is_str(lookup(t, "other@domain6.com"), "[second]", "next line");
    is_str(lookup(t, "a@domain7.com"), "relay.example:2525", "MX of host on a port");
    is_str(lookup(t, "a@domain8.com"), "relay.example", "port 25 is the default");
    is_str(lookup(t, "a@Unrouted.Example"), "unrouted.example", "fallback: own domain, lower-cased");
    is_str(lookup(t, "a@[192.0.2.7]"), "[192.0.2.7]", "domain literal");
    is_str(lookup(t, "a@[IPv6:2001:db8::1]"), "[2001:db8::1]", "IPv6 domain literal");
    is_str(lookup(t, "nodomain"), "(none)", "no domain: no route");
    is_str(lookup(t, "a@bad/domain"), "(none)", "bad domain characters");
    is_str(lookup(NULL, "a@b.example"), "b.example", "no table: MX of domain");
    route_table_free(t);
    buf_free(&diag);
}

static void test_bad_entries(void)
{
    const char *bad[] = { "*@x.com", "*@x.com [h:0]", "*@x.com [h:99999]", "*@x.com [h",
                          "*@x.com [h] extra", "*@x.com [h]x", "*@x.com h:0", "*@x.com [a/b]", "*@x.com a:b:c" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf diag = BUF_INIT;
        struct route_table *t = route_table_new(&bad[i], 1, &diag);
        if (diag.len && diag.data[diag.len - 1] == '\n')
            diag.data[--diag.len] = 0;
        ok(t == NULL && diag.len > 0 && strstr(diag.data, "ForwardRoute"),
           "rejected: '%s' (%s)", bad[i], diag.data ? diag.data : "");
        route_table_free(t);
        buf_free(&diag);
    }
}

static void test_nexthop(void)
{
    struct route_nexthop nh;
    ok(route_nexthop_parse("example.com", &nh) == 0 && nh.use_mx && nh.port == 25 &&
           strcmp(nh.host, "example.com") == 0, "domain: MX");
    ok(route_nexthop_parse("[mx.example.com]", &nh) == 0 && !nh.use_mx && nh.port == 25 &&
           strcmp(nh.host, "mx.example.com") == 0, "[host]");
    ok(route_nexthop_parse("[127.0.0.1]:2525", &nh) == 0 && !nh.use_mx && nh.port == 2525 &&
           strcmp(nh.host, "127.0.0.1") == 0, "[host]:port");
    ok(route_nexthop_parse("[127.0.0.1:2526]", &nh) == 0 && nh.port == 2526, "[host:port]");
    ok(route_nexthop_parse("[::1]", &nh) == 0 && nh.port == 25 && strcmp(nh.host, "::1") == 0,
       "[IPv6]");
    ok(route_nexthop_parse("[::1]:587", &nh) == 0 && nh.port == 587, "[IPv6]:port");
    ok(route_nexthop_parse("example.com:2525", &nh) == 0 && nh.use_mx && nh.port == 2525 &&
           strcmp(nh.host, "example.com") == 0, "domain:port: MX on a port");
    ok(route_nexthop_parse("", &nh) < 0, "empty rejected");
    ok(route_nexthop_parse("[]", &nh) < 0, "empty brackets rejected");
    ok(route_nexthop_parse("[h]:", &nh) < 0, "empty port rejected");
    ok(route_nexthop_parse("[h]:65536", &nh) < 0, "port range");
    ok(route_nexthop_parse("a b", &nh) < 0, "space rejected");
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    ok(route_nexthop_parse(longname, &nh) < 0, "over-long host rejected");
}

int main(void)
{
    test_masks();
    test_table();
    test_bad_entries();
    test_nexthop();
    return tap_done();
}
