/*
 * addr.t - unit tests for lib/addr: RFC 5321 paths and ESMTP parameters,
 * wildcard/address/domain/IP masks and mask lists.
 */
#include "addr/addr.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define M ADDR_MAIL
#define R ADDR_RCPT
#define U8 ADDR_UTF8
#define U8OK ADDR_SMTPUTF8_OK

struct good_case {
    enum addr_path_kind kind;
    unsigned flags;
    const char *arg;
    const char *addr;   /* expected address */
    const char *domain; /* expected domain */
};

static const struct good_case good[] = {
    { M, 0, "<user@example.com>", "user@example.com", "example.com" },
    { M, 0, "<>", "", "" },
    { M, 0, "  <a@b.c>  ", "a@b.c", "b.c" },
    { M, 0, "<a@b>", "a@b", "b" },
    { M, 0, "<first.last+tag@sub.example.co.uk>", "first.last+tag@sub.example.co.uk",
      "sub.example.co.uk" },
    { M, 0, "<!#$%&'*+-/=?^_`{|}~@x-y.example>", "!#$%&'*+-/=?^_`{|}~@x-y.example", "x-y.example" },
    { M, 0, "<\"a b\"@x.org>", "\"a b\"@x.org", "x.org" },
    { M, 0, "<\"a\\\"b\"@x.org>", "\"a\\\"b\"@x.org", "x.org" },
    { M, 0, "<\"a>b@c\"@x.org>", "\"a>b@c\"@x.org", "x.org" },
    { M, 0, "<\"\"@x.org>", "\"\"@x.org", "x.org" },
    { M, 0, "<@a.example,@b.example:user@d.example>", "user@d.example", "d.example" },
    { M, 0, "<@a.example:user@d.example>", "user@d.example", "d.example" },
    { M, 0, "<user@[192.0.2.1]>", "user@[192.0.2.1]", "[192.0.2.1]" },
    { M, 0, "<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]" },
    { M, 0, "<user@[ipv6:::1]>", "user@[ipv6:::1]", "[ipv6:::1]" },
    { M, 0, "<user@[IPv6:::ffff:192.0.2.1]>", "user@[IPv6:::ffff:192.0.2.1]",
      "[IPv6:::ffff:192.0.2.1]" },
    { M, 0, "<a@1.2.3.4>", "a@1.2.3.4", "1.2.3.4" },
    { M, 0, "<a@xn--bcher-kva.example>", "a@xn--bcher-kva.example", "xn--bcher-kva.example" },
    { M, U8OK, "<\xc3\xbcser@ex\xc3\xa4mple.com> SMTPUTF8", "\xc3\xbcser@ex\xc3\xa4mple.com",
      "ex\xc3\xa4mple.com" },
    { M, U8OK, "<\"\xe2\x82\xac\"@x> SMTPUTF8", "\"\xe2\x82\xac\"@x", "x" },
    { M, U8OK, "<\xf0\x9f\x98\x80@x> smtputf8", "\xf0\x9f\x98\x80@x", "x" },
    { M, ADDR_BARE_OK, "user@example.com", "user@example.com", "example.com" },
    { M, ADDR_BARE_OK, "user@example.com SIZE=10", "user@example.com", "example.com" },
    { M, ADDR_BARE_OK, "<user@example.com>", "user@example.com", "example.com" },
    { R, 0, "<Postmaster>", "Postmaster", "" },
    { R, 0, "<postmaster>", "postmaster", "" },
    { R, 0, "<a@b> NOTIFY=NEVER", "a@b", "b" },
    { R, U8, "<\xc3\xbc@\xc3\xa4.example>", "\xc3\xbc@\xc3\xa4.example", "\xc3\xa4.example" },
    { R, 0, "<user@example.com>", "user@example.com", "example.com" },
};

struct bad_case {
    enum addr_path_kind kind;
    unsigned flags;
    const char *arg;
    size_t len;         /* 0: strlen */
    int code;
    const char *why;
};

#define SS "5.1.7 Bad sender address syntax"
#define RS "5.1.3 Bad recipient address syntax"
#define PS "5.5.2 Syntax error in parameters"
#define UP "5.5.4 Unsupported parameter"

static const struct bad_case bad[] = {
    { M, 0, "", 0, 501, SS },
    { M, 0, "user@example.com", 0, 501, SS },
    { M, 0, "<user@example.com", 0, 501, SS },
    { M, 0, "user@example.com>", 0, 501, SS },
    { M, 0, "<user@example.com>x", 0, 501, SS },
    { M, 0, "<<user@example.com>>", 0, 501, SS },
    { M, 0, "<user>", 0, 501, SS },
    { R, 0, "<user>", 0, 501, RS },
    { R, 0, "<>", 0, 501, RS },
    { M, 0, "<postmaster>", 0, 501, SS },
    { R, 0, "<a..b@x>", 0, 501, RS },
    { R, 0, "<.a@x>", 0, 501, RS },
    { R, 0, "<a.@x>", 0, 501, RS },
    { R, 0, "<@x>", 0, 501, RS },
    { R, 0, "<a@>", 0, 501, RS },
    { R, 0, "<a@-x.com>", 0, 501, RS },
    { R, 0, "<a@x-.com>", 0, 501, RS },
    { R, 0, "<a@x..com>", 0, 501, RS },
    { R, 0, "<a@.x>", 0, 501, RS },
    { R, 0, "<a@x.>", 0, 501, RS },
    { R, 0, "<a@x_y.com>", 0, 501, RS },
    { R, 0, "<a@b@c>", 0, 501, RS },
    { R, 0, "<a b@x>", 0, 501, RS },
    { R, 0, "<a(b)@x>", 0, 501, RS },
    { R, 0, "<\"a@x>", 0, 501, RS },
    { R, 0, "<\"a\"b@x>", 0, 501, RS },
    { R, 0, "<a@x\r>", 0, 501, RS },
    { R, 0, "<a@x\n>", 0, 501, RS },
    { R, 0, "<a\x01@x>", 0, 501, RS },
    { R, 0, "<a\x7f@x>", 0, 501, RS },
    { R, 0, "<a@x>\r\n", 0, 501, RS },
    { R, 0, "<a\0@x>", 6, 501, RS },
    { R, 0, "<\"a\tb\"@x>", 0, 501, RS },
    { R, 0, "<@a:@b:u@x>", 0, 501, RS },
    { R, 0, "<@a,u@x>", 0, 501, RS },
    { R, 0, "<@:u@x>", 0, 501, RS },
    { R, 0, "<a@[1.2.3.256]>", 0, 501, RS },
    { R, 0, "<a@[1.2.3]>", 0, 501, RS },
    { R, 0, "<a@[IPv6:zz::1]>", 0, 501, RS },
    { R, 0, "<a@[IPv6:1.2.3.4]>", 0, 501, RS },
    { R, 0, "<a@[foo]>", 0, 501, RS },
    { R, 0, "<a@[]>", 0, 501, RS },
    { R, 0, "<a@[1.2.3.4>", 0, 501, RS },
    { R, 0, "<a@[1.2.3.4]x>", 0, 501, RS },
    { M, 0, "<\xc3\xbcser@x>", 0, 553, "5.6.7 Non-ASCII sender address requires SMTPUTF8" },
    { R, 0, "<a@\xc3\xa4.example>", 0, 553, "5.6.7 Non-ASCII recipient address requires SMTPUTF8" },
    { M, 0, "<\xc3\xbc@x> SMTPUTF8", 0, 555, "5.5.4 SMTPUTF8 not supported" },
    { M, U8OK, "<\xff@x> SMTPUTF8", 0, 501, SS },
    { M, U8OK, "<\xc0\xaf@x> SMTPUTF8", 0, 501, SS },
    { M, U8OK, "<\xed\xa0\x80@x> SMTPUTF8", 0, 501, SS },
    { M, U8OK, "<\xf4\x90\x80\x80@x> SMTPUTF8", 0, 501, SS },
    { M, U8OK, "<\xc3@x> SMTPUTF8", 0, 501, SS },
    { M, U8OK, "<a@x\xc3> SMTPUTF8", 0, 501, SS },
    { R, U8, "<\xe2\x82@x>", 0, 501, RS },
    { M, 0, "<a@b> FOO=bar", 0, 555, UP },
    { M, 0, "<a@b> NOTIFY=NEVER", 0, 555, UP },
    { M, 0, "<a@b> AUTH=<>", 0, 555, UP },
    { R, 0, "<a@b> SIZE=1", 0, 555, UP },
    { R, 0, "<a@b> SMTPUTF8", 0, 555, UP },
    { M, 0, "<a@b> SIZE=abc", 0, 501, "5.5.4 Bad SIZE value" },
    { M, 0, "<a@b> SIZE", 0, 501, "5.5.4 Bad SIZE value" },
    { M, 0, "<a@b> SIZE=-1", 0, 501, "5.5.4 Bad SIZE value" },
    { M, 0, "<a@b> SIZE=18446744073709551616", 0, 501, "5.5.4 Bad SIZE value" },
    { M, 0, "<a@b> SIZE=999999999999999999999", 0, 501, "5.5.4 Bad SIZE value" },
    { M, 0, "<a@b> SIZE=", 0, 501, PS },
    { M, 0, "<a@b> SIZE=1=2", 0, 501, PS },
    { M, 0, "<a@b> =1", 0, 501, PS },
    { M, 0, "<a@b> -A=1", 0, 501, PS },
    { M, 0, "<a@b> A_B=1", 0, 501, PS },
    { M, 0, "<a@b> BODY=9BIT", 0, 501, "5.5.4 Bad BODY value" },
    { M, 0, "<a@b> BODY", 0, 501, "5.5.4 Bad BODY value" },
    { M, 0, "<a@b> RET=ALL", 0, 501, "5.5.4 Bad RET value" },
    { M, 0, "<a@b> ENVID=a+2", 0, 501, "5.5.4 Bad ENVID value" },
    { M, 0, "<a@b> ENVID=a+00b", 0, 501, "5.5.4 Bad ENVID value" },
    { M, 0, "<a@b> ENVID=a+0Db", 0, 501, "5.5.4 Bad ENVID value" },
    { M, 0, "<a@b> ENVID=a+ZZ", 0, 501, "5.5.4 Bad ENVID value" },
    { M, 0, "<a@b> ENVID=a+C3+A9", 0, 501, "5.5.4 Bad ENVID value" },
    { M, 0, "<a@b> ENVID", 0, 501, "5.5.4 Bad ENVID value" },
    { M, U8OK, "<a@b> SMTPUTF8=yes", 0, 501, "5.5.4 SMTPUTF8 takes no value" },
    { M, 0, "<a@b> SMTPUTF8", 0, 555, "5.5.4 SMTPUTF8 not supported" },
    { M, 0, "<a@b> SIZE=1 size=2", 0, 501, "5.5.4 Duplicate parameter" },
    { M, 0, "<a@b> BODY=8BITMIME\xc3\xa4", 0, 501, PS },
    { M, 0, "<a@b> A=1 B=1 C=1 D=1 E=1 F=1 G=1 H=1 I=1 J=1 K=1 L=1 M=1 N=1 O=1 P=1 Q=1", 0,
      501, "5.5.4 Too many parameters" },
    { R, 0, "<a@b> NOTIFY=NEVER,SUCCESS", 0, 501, "5.5.4 Bad NOTIFY value" },
    { R, 0, "<a@b> NOTIFY=SUCCESS,SUCCESS", 0, 501, "5.5.4 Bad NOTIFY value" },
    { R, 0, "<a@b> NOTIFY=SUCCESS,", 0, 501, "5.5.4 Bad NOTIFY value" },
    { R, 0, "<a@b> NOTIFY=,DELAY", 0, 501, "5.5.4 Bad NOTIFY value" },
    { R, 0, "<a@b> NOTIFY=ALWAYS", 0, 501, "5.5.4 Bad NOTIFY value" },
    { R, 0, "<a@b> NOTIFY", 0, 501, "5.5.4 Bad NOTIFY value" },
    { R, 0, "<a@b> ORCPT=rfc822", 0, 501, "5.5.4 Bad ORCPT value" },
    { R, 0, "<a@b> ORCPT=;a@b", 0, 501, "5.5.4 Bad ORCPT value" },
    { R, 0, "<a@b> ORCPT=rfc822;", 0, 501, "5.5.4 Bad ORCPT value" },
    { R, 0, "<a@b> ORCPT=rfc(822;a", 0, 501, "5.5.4 Bad ORCPT value" },
    { R, 0, "<a@b> ORCPT=rfc822;a+0Ab", 0, 501, "5.5.4 Bad ORCPT value" },
    { R, 0, "<a@b> ORCPT=rfc822;a+2", 0, 501, "5.5.4 Bad ORCPT value" },
    { R, 0, "<a@b>\tNOTIFY=NEVER", 0, 501, RS },
};

static void test_good(void)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        const struct good_case *c = &good[i];
        struct addr_path p;
        const char *why = "none";
        int rc = addr_path_parse(c->arg, strlen(c->arg), c->kind, c->flags, &p, &why);
        if (!ok(rc == 0, "accept %s %s", c->kind == M ? "MAIL" : "RCPT", c->arg)) {
            tap_diag("why: %s (%d)", why, p.code);
            continue;
        }
        is_str(p.addr, c->addr, "  address");
        is_str(addr_path_domain(&p), c->domain, "  domain");
    }
}

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        const struct bad_case *c = &bad[i];
        struct addr_path p;
        const char *why = "none";
        size_t len = c->len ? c->len : strlen(c->arg);
        char name[200];
        snprintf(name, sizeof(name), "refuse %s case %zu", c->kind == M ? "MAIL" : "RCPT", i);
        int rc = addr_path_parse(c->arg, len, c->kind, c->flags, &p, &why);
        if (!ok(rc < 0 && p.code == c->code && strcmp(why, c->why) == 0, "%s", name))
            tap_diag("arg '%s': rc %d code %d why '%s', want %d '%s'", c->arg, rc, p.code,
                     rc < 0 ? why : "", c->code, c->why);
    }
}

static void test_params(void)
{
    struct addr_path p;
    const char *why = NULL;
    const char *a = "<a@b> SIZE=1000 BODY=8bitmime RET=HDRS ENVID=QQ+2Bx+3Dy";
    ok(addr_path_parse(a, strlen(a), M, 0, &p, &why) == 0, "MAIL with SIZE BODY RET ENVID");
    ok(p.has_size && p.size == 1000, "SIZE=1000");
    is_int(p.body, ADDR_BODY_8BITMIME, "BODY=8BITMIME (any case)");
    is_int(p.ret, ADDR_RET_HDRS, "RET=HDRS");
    ok(p.has_envid, "ENVID present");
    is_str(p.envid, "QQ+x=y", "ENVID xtext decoded");
    ok(!p.smtputf8 && !p.utf8, "no SMTPUTF8");

    a = "<a@b> SIZE=18446744073709551615 BODY=BINARYMIME RET=full";
    ok(addr_path_parse(a, strlen(a), M, 0, &p, &why) == 0 && p.size == UINT64_MAX &&
           p.body == ADDR_BODY_BINARYMIME && p.ret == ADDR_RET_FULL,
       "SIZE=2^64-1, BINARYMIME, RET=full");
    a = "<a@b>  BODY=7BIT   SMTPUTF8 ";
    ok(addr_path_parse(a, strlen(a), M, U8OK, &p, &why) == 0 && p.body == ADDR_BODY_7BIT &&
           p.smtputf8 && !p.utf8,
       "several blanks between parameters; SMTPUTF8 with an ASCII address");

    a = "<a@b> NOTIFY=success,FAILURE,Delay ORCPT=rfc822;Joe+2BX+40example.com";
    ok(addr_path_parse(a, strlen(a), R, 0, &p, &why) == 0, "RCPT with NOTIFY ORCPT");
    is_int(p.notify, ADDR_NOTIFY_SUCCESS | ADDR_NOTIFY_FAILURE | ADDR_NOTIFY_DELAY,
           "NOTIFY bits");
    ok(p.has_orcpt, "ORCPT present");
    is_str(p.orcpt_type, "rfc822", "ORCPT type");
    is_str(p.orcpt, "Joe+X@example.com", "ORCPT decoded");
    a = "<a@b> NOTIFY=NEVER";
    ok(addr_path_parse(a, strlen(a), R, 0, &p, &why) == 0 && p.notify == ADDR_NOTIFY_NEVER,
       "NOTIFY=NEVER");
    a = "<a@b> ORCPT=utf-8;\xc3\xa4@b";
    ok(addr_path_parse(a, strlen(a), R, U8, &p, &why) == 0 && strcmp(p.orcpt, "\xc3\xa4@b") == 0,
       "ORCPT utf-8 in an SMTPUTF8 transaction");
    ok(addr_path_parse(a, strlen(a), R, 0, &p, &why) < 0, "raw UTF-8 ORCPT refused otherwise");

    char envid[140];
    memset(envid, 0, sizeof(envid));
    memcpy(envid, "<a@b> ENVID=", 12);
    memset(envid + 12, 'e', 100);
    ok(addr_path_parse(envid, strlen(envid), M, 0, &p, &why) == 0 && strlen(p.envid) == 100,
       "ENVID of 100 characters");
    envid[112] = 'e';
    ok(addr_path_parse(envid, strlen(envid), M, 0, &p, &why) < 0 &&
           strcmp(why, "5.5.4 Bad ENVID value") == 0,
       "ENVID of 101 characters refused");

    char out[8];
    ok(addr_xtext_decode("ab+41", 5, false, out, sizeof(out)) == 0 && strcmp(out, "abA") == 0,
       "xtext +41");
    ok(addr_xtext_decode("abcdefgh", 8, false, out, sizeof(out)) < 0, "xtext output too long");
    ok(addr_xtext_decode("a=b", 3, false, out, sizeof(out)) < 0, "xtext '=' refused");
    ok(addr_xtext_decode("a b", 3, false, out, sizeof(out)) < 0, "xtext space refused");
    ok(addr_xtext_decode("+20", 3, false, out, sizeof(out)) == 0 && strcmp(out, " ") == 0,
       "xtext +20 is a space");
    ok(addr_xtext_decode("+7F", 3, false, out, sizeof(out)) < 0, "xtext +7F (DEL) refused");
}

static void test_lengths(void)
{
    char buf[600], local[80], label[70];
    struct addr_path p;
    const char *why = NULL;

    memset(local, 'l', 64);
    local[64] = 0;
    snprintf(buf, sizeof(buf), "<%s@x.example>", local);
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) == 0, "local part of 64");
    snprintf(buf, sizeof(buf), "<\"%.62s\"@x.example>", local);
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) == 0, "quoted local part of 64");
    local[64] = 'l';
    local[65] = 0;
    snprintf(buf, sizeof(buf), "<%s@x.example>", local);
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) < 0 &&
           strcmp(why, "5.1.3 Recipient local part too long") == 0,
       "local part of 65 refused");
    ok(addr_path_parse(buf, strlen(buf), M, 0, &p, &why) < 0 &&
           strcmp(why, "5.1.7 Sender local part too long") == 0 && p.code == 501,
       "sender local part of 65 refused");

    memset(label, 'd', 63);
    label[63] = 0;
    /* <a@ + 63.63.63.60 + > = 4 + 252: the path limit allows no more */
    snprintf(buf, sizeof(buf), "<a@%s.%s.%s.%.60s>", label, label, label, label);
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) == 0 && p.len == 254,
       "domain of 252 (path of 256)");
    snprintf(buf, sizeof(buf), "<a@%s%s>", label, "d");
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) < 0, "label of 64 refused");

    /* path: "<" + 64 + "@" + 189 + ">" = 256 */
    memset(local, 'l', 64);
    local[64] = 0;
    snprintf(buf, sizeof(buf), "<%s@%s.%s.%.61s>", local, label, label, label);
    is_int(strlen(buf), 256, "test path is 256 long");
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) == 0, "path of 256");
    is_int(p.len, 254, "address of 254");
    snprintf(buf, sizeof(buf), "<%s@%s.%s.%.62s>", local, label, label, label);
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) < 0 &&
           strcmp(why, "5.1.3 Recipient address too long") == 0,
       "path of 257 refused");
    snprintf(buf, sizeof(buf), "<@%s.%s.%s:a@b>", label, label, label);
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) == 0 && strcmp(p.addr, "a@b") == 0,
       "long source route dropped");
    snprintf(buf, sizeof(buf), "<@%s.%s.%s.%s:a@b>", label, label, label, label);
    ok(addr_path_parse(buf, strlen(buf), R, 0, &p, &why) < 0, "route making the path > 256");
}

struct wm_case {
    const char *mask, *s;
    bool match;
};

static const struct wm_case wm[] = {
    { "*", "", true }, { "*", "abc", true }, { "", "", true }, { "", "a", false },
    { "a*c", "abc", true }, { "a*c", "ac", true }, { "a*c", "acb", false },
    { "a?c", "abc", true }, { "a?c", "ac", false }, { "?", "", false },
    { "a*b*c*d", "aXbYcZd", true }, { "a*b*c*d", "aXbYcZ", false },
    { "*@example.com", "User@EXAMPLE.com", true }, { "*@example.com", "u@sub.example.com", false },
    { "*example.com", "u@sub.example.com", true },
    { "user@*", "user@x", true }, { "user@*", "other@x", false }, { "USER@*", "user@x", true },
    { "*.example.com", "a.b.example.com", true }, { "*.example.com", "example.com", false },
    { "example.com", "EXAMPLE.COM", true }, { "example.com", "example.co", false },
    { "**a**", "xxaxx", true }, { "*a", "aaaa", true }, { "*ab", "aaab", true },
    { "*ab", "aaba", false }, { "\xc3\xa4*", "\xc3\xa4x", true },
    { "?.example", "\xc3\xa4.example", true }, { "??.example", "\xc3\xa4.example", false },
};

static void test_wildmatch(void)
{
    for (size_t i = 0; i < sizeof(wm) / sizeof(*wm); i++)
        ok(addr_wildmatch(wm[i].mask, wm[i].s) == wm[i].match, "wildmatch '%s' '%s' %s",
           wm[i].mask, wm[i].s, wm[i].match ? "matches" : "does not match");

    static char s[20001], m[64];
    memset(s, 'a', 20000);
    snprintf(m, sizeof(m), "*a*a*a*a*a*a*a*a*a*a*b");
    clock_t t0 = clock();
    bool r = addr_wildmatch(m, s);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    ok(!r, "pathological mask does not match");
    if (secs > 2)
        tap_diag("pathological mask took %.2fs", secs);

    ok(addr_mask_match("example.com", "u@example.com"), "domain-only mask matches the domain");
    ok(!addr_mask_match("example.com", "u@sub.example.com"), "and not a subdomain");
    ok(addr_mask_match("*.example.com", "u@sub.example.com"), "*.domain matches a subdomain");
    ok(addr_mask_match("*", ""), "'*' matches the null sender");
    ok(!addr_mask_match("example.com", "postmaster"), "domain mask vs address without domain");
    ok(addr_mask_match("*@*", "a@b"), "*@* matches a@b");
    ok(!addr_mask_match("*@*", "postmaster"), "*@* needs an '@'");
    ok(addr_domain_match("*", "anything.example"), "domain '*'");
}

struct ip_case {
    const char *mask, *ip;
    bool match;
};

static const struct ip_case ipc[] = {
    { "192.168.0.0/16", "192.168.5.5", true }, { "192.168.0.0/16", "192.169.0.1", false },
    { "192.168.0.0/255.255.0.0", "192.168.200.1", true },
    { "192.168.0.0/255.255.0.0", "10.168.200.1", false },
    { "10.0.0.1", "10.0.0.1", true }, { "10.0.0.1", "10.0.0.2", false },
    { "10.0.0.1/32", "10.0.0.1", true }, { "192.168.1.7/24", "192.168.1.200", true },
    { "0.0.0.0/0", "203.0.113.9", true }, { "0.0.0.0/0", "2001:db8::1", false },
    { "0.0.0.0/0.0.0.0", "1.1.1.1", true },
    { "10.1.2.3/255.255.255.255", "10.1.2.3", true },
    { "172.16.0.0/12", "172.31.255.255", true }, { "172.16.0.0/12", "172.32.0.0", false },
    { "2001:db8::/32", "2001:db8:1::1", true }, { "2001:db8::/32", "2001:db9::1", false },
    { "2001:DB8::/32", "2001:db8::", true }, { "::1", "::1", true }, { "::1", "::2", false },
    { "::/0", "2001:db8::1", true }, { "::/0", "127.0.0.1", false },
    { "2001:db8::1/127", "2001:db8::", true }, { "2001:db8::/127", "2001:db8::2", false },
    { "any", "192.0.2.1", true }, { "any", "2001:db8::1", true }, { "ANY", "::1", true },
    { "192.168.0.0/16", "::ffff:192.168.1.1", true },
    { "::ffff:192.168.0.0/112", "192.168.3.4", true },
    { "127.0.0.0/8", "::1", false }, { "127.0.0.0/8", "not-an-ip", false },
};

static void test_ipmask(void)
{
    for (size_t i = 0; i < sizeof(ipc) / sizeof(*ipc); i++) {
        struct addr_ipmask m;
        struct addr_ip ip;
        const char *why = NULL;
        bool got = addr_ipmask_parse(ipc[i].mask, &m, &why) == 0 &&
                   addr_ip_parse(ipc[i].ip, &ip) == 0 && addr_ipmask_match(&m, &ip);
        ok(got == ipc[i].match, "IP mask %s vs %s: %s", ipc[i].mask, ipc[i].ip,
           ipc[i].match ? "match" : "no match");
    }
    static const struct { const char *mask, *why; } badip[] = {
        { "192.168.0.0/33", "prefix length must be 0..32" },
        { "2001:db8::/129", "prefix length must be 0..128" },
        { "1.2.3.4/255.0.255.0", "netmask is not contiguous" },
        { "1.2.3.4/1.2.3", "bad netmask" },
        { "1.2.3.4/", "prefix length must be 0..32" },
        { "1.2.3.4/abc", "prefix length must be 0..32" },
        { "1.2.3.4/-1", "prefix length must be 0..32" },
        { "1.2.3.4/0032", "prefix length must be 0..32" },
        { "::1/1.2.3.4", "prefix length must be 0..128" },
        { "1.2.3", "not an IP address" }, { "256.1.1.1", "not an IP address" },
        { "", "not an IP address" }, { "/8", "not an IP address" },
        { "01.2.3.4", "not an IP address" }, { "1.2.3.4 ", "not an IP address" },
        { "example.com", "not an IP address" }, { "1.2.3.*", "not an IP address" },
    };
    for (size_t i = 0; i < sizeof(badip) / sizeof(*badip); i++) {
        const char *why = "none";
        int rc = addr_ipmask_check(badip[i].mask, &why);
        if (!ok(rc < 0 && strcmp(why, badip[i].why) == 0, "bad IP mask '%s'", badip[i].mask))
            tap_diag("got rc %d '%s', want '%s'", rc, why, badip[i].why);
    }
    struct addr_ip ip;
    ok(addr_ip_parse("::ffff:10.0.0.1", &ip) == 0 && ip.family == AF_INET && ip.b[0] == 10,
       "mapped address parses as IPv4");
}

static void test_maskcheck(void)
{
    static const char *good_masks[] = { "*@example.com", "user@*", "*", "*@*", "example.com",
                                        "*.example.com", "u?er@ex*.com", "*@[192.168.1.1]",
                                        "*@[IPv6:2001:db8::1]", "first.last+x@sub.example",
                                        "\xc3\xbc@example.com", "any" };
    for (size_t i = 0; i < sizeof(good_masks) / sizeof(*good_masks); i++) {
        const char *why = "none";
        if (!ok(addr_mask_check(good_masks[i], &why) == 0, "address mask '%s' valid", good_masks[i]))
            tap_diag("why: %s", why);
    }
    static const struct { const char *mask, *why; } bad_masks[] = {
        { "", "empty mask" }, { "a b@x", "space in mask" },
        { "a@b@c", "more than one '@'" }, { "a\x01@b", "control character or bad UTF-8 in mask" },
        { "\xff@b", "control character or bad UTF-8 in mask" },
        { "x@exa!mple", "bad character in domain (letters, digits, '-', '.', '_', '*', '?')" },
        { "exa/mple", "bad character in domain (letters, digits, '-', '.', '_', '*', '?')" },
        { "<a>@b", "bad character in local part" },
        { "@b", "empty local part or domain (use '*')" },
        { "a@", "empty local part or domain (use '*')" },
    };
    for (size_t i = 0; i < sizeof(bad_masks) / sizeof(*bad_masks); i++) {
        const char *why = "none";
        int rc = addr_mask_check(bad_masks[i].mask, &why);
        if (!ok(rc < 0 && strcmp(why, bad_masks[i].why) == 0, "bad address mask %zu", i))
            tap_diag("'%s': rc %d why '%s'", bad_masks[i].mask, rc, why);
    }
    const char *why = NULL;
    ok(addr_domainmask_check("*.example.com", &why) == 0, "domain mask *.example.com valid");
    ok(addr_domainmask_check("ex?mple.*", &why) == 0, "domain mask ex?mple.* valid");
    ok(addr_domainmask_check("a@b", &why) < 0 && strcmp(why, "a domain mask has no '@'") == 0,
       "domain mask with '@' refused");
    ok(addr_domainmask_check("a,b", &why) < 0, "domain mask with ',' refused");
    char longmask[600];
    memset(longmask, 'a', sizeof(longmask) - 1);
    longmask[sizeof(longmask) - 1] = 0;
    ok(addr_mask_check(longmask, &why) < 0 && strcmp(why, "mask too long") == 0,
       "mask of 599 refused");
}

static void test_masklist(void)
{
    struct addr_masklist l;
    const char *why = NULL;
    size_t bad_i = 99;
    const char *items[] = { "192.168.0.0/16", "10.0.0.1", "2001:db8::/32", "*@example.com",
                            "example.org", "Boss@Corp.Example", NULL };

    ok(addr_masklist_init(&l, items, ADDR_LIST_IP | ADDR_LIST_ADDR, &why, &bad_i) == 0,
       "mixed list builds");
    is_int(l.nips, 3, "three IP masks");
    is_int(l.nmasks, 3, "three address masks");
    ok(addr_masklist_match_ip(&l, "192.168.44.1"), "list matches 192.168.44.1");
    ok(addr_masklist_match_ip(&l, "10.0.0.1"), "list matches 10.0.0.1");
    ok(!addr_masklist_match_ip(&l, "10.0.0.2"), "list does not match 10.0.0.2");
    ok(addr_masklist_match_ip(&l, "2001:db8:ffff::1"), "list matches an IPv6 address");
    ok(!addr_masklist_match_ip(&l, "garbage"), "unparsable IP never matches");
    ok(addr_masklist_match_addr(&l, "anyone@EXAMPLE.com"), "list matches *@example.com");
    ok(addr_masklist_match_addr(&l, "x@example.org"), "list matches domain example.org");
    ok(addr_masklist_match_addr(&l, "boss@corp.example"), "list matches an exact address");
    ok(!addr_masklist_match_addr(&l, "x@example.net"), "list does not match example.net");
    ok(!addr_masklist_empty(&l), "not empty");
    addr_masklist_free(&l);

    const char *badlist[] = { "1.2.3.4", "1.2.3.4/40", NULL };
    ok(addr_masklist_init(&l, badlist, ADDR_LIST_IP, &why, &bad_i) < 0, "bad IP list refused");
    is_int(bad_i, 1, "the bad item's index");
    is_str(why, "prefix length must be 0..32", "the reason");
    ok(addr_masklist_empty(&l), "a refused list is empty");
    const char *notip[] = { "example.com", NULL };
    ok(addr_masklist_init(&l, notip, ADDR_LIST_IP, &why, &bad_i) < 0 &&
           strcmp(why, "not an IP address") == 0,
       "a domain in an IP-only list is refused");
    const char *badaddr[] = { "*@example.com", "a@@b", NULL };
    ok(addr_masklist_init(&l, badaddr, ADDR_LIST_ADDR, &why, &bad_i) < 0 && bad_i == 1,
       "bad address list refused at item 1");

    const char *any[] = { "any", NULL };
    ok(addr_masklist_init(&l, any, ADDR_LIST_IP | ADDR_LIST_ADDR, &why, &bad_i) == 0, "'any'");
    ok(addr_masklist_match_ip(&l, "198.51.100.1") && addr_masklist_match_ip(&l, "::1") &&
           addr_masklist_match_addr(&l, "a@b"),
       "'any' matches every IP and address");
    addr_masklist_free(&l);
    const char *none[] = { NULL };
    ok(addr_masklist_init(&l, none, ADDR_LIST_IP, &why, &bad_i) == 0 && addr_masklist_empty(&l) &&
           !addr_masklist_match_ip(&l, "1.2.3.4"),
       "empty list matches nothing");
    ok(addr_masklist_init(&l, NULL, ADDR_LIST_IP, &why, &bad_i) == 0 && addr_masklist_empty(&l),
       "NULL list is empty");
}

int main(void)
{
    test_good();
    test_bad();
    test_params();
    test_lengths();
    test_wildmatch();
    test_ipmask();
    test_maskcheck();
    test_masklist();
    return tap_done();
}
