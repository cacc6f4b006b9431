/*
 * conf_syntax - the syntax of values beyond their type: host names, e-mail
 * addresses, masks, listen addresses, forward routes, access rules, DNSBL
 * entries, name servers, TLS protocol lists (enum conf_syntax).
 *
 * Interface: conf_syntax_check(), conf_ipmask_valid() (conf_impl.h) and
 * conf_rule_split() (conf.h).
 *
 * Grammar (reference §1.4-1.6):
 *   ListenOn      IPv4:PORT | [IPv6]:PORT                (PORT 1..65535)
 *   ForwardRoute  MASK DOMAIN | MASK [HOST] | MASK [HOST:PORT] | MASK [IPv6]
 *   RelayRule     allow|deny from IP|IP/NN|IP/MASK|any|file:/P to RCPT|file:/P
 *   ConnectRule   allow|deny from in_dnsbl|out_dnsbl|has_name|no_name|any to RCPT
 *   HeloRule      allow|deny from has_ip|no_ip|same_ip|diff_ip|any to RCPT
 *   MailfromRule  allow|deny from has_ip|no_ip|has_mx|no_mx|any to RCPT
 *   DNSBlackList  ZONE | ZONE=IPv4[,IPv4...]
 *   Nameserver    IP | IPv4:PORT | [IPv6] | [IPv6]:PORT
 * RCPT is an address mask with * and ?, "*" or "any".  A file: named in a
 * RelayRule is read now and each line checked (IP mask or recipient mask),
 * so a typo shows at `mailgw check`, not at the first message.
 *
 * Diagnostics: the reason text ("invalid rule '...': ...") for the caller
 * to put after "FILE:LINE: NAME: ".
 */
#include "conf/conf_impl.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool conf_ip4_valid(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static bool conf_ip6_valid(const char *s)
{
    struct in6_addr a;
    return inet_pton(AF_INET6, s, &a) == 1;
}

static bool conf_port_valid(const char *s)
{
    long v = 0;
    if (*s == 0 || strlen(s) > 5)
        return false;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return false;
        v = v * 10 + (*s - '0');
    }
    return v >= 1 && v <= 65535;
}

static bool conf_hostname_valid(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || *s == '.' || *s == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return s[n - 1] != '-';
}

/* Dotted IPv4 netmask: contiguous ones. */
static bool conf_ip4_mask_valid(const char *s)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return false;
    unsigned long m = ntohl(a.s_addr);
    unsigned long inv = ~m & 0xFFFFFFFFUL;
    return (inv & (inv + 1)) == 0;
}

bool conf_ipmask_valid(const char *s)
{
    char tmp[128];
    if (str_copy(tmp, s, sizeof tmp) >= sizeof tmp)
        return false;
    char *slash = strchr(tmp, '/');
    if (slash == NULL)
        return conf_ip4_valid(tmp) || conf_ip6_valid(tmp);
    *slash++ = 0;
    bool v6 = conf_ip6_valid(tmp);
    if (!v6 && !conf_ip4_valid(tmp))
        return false;
    if (!v6 && strchr(slash, '.'))
        return conf_ip4_mask_valid(slash);
    if (*slash == 0 || strlen(slash) > 3)
        return false;
    int bits = 0;
    for (const char *p = slash; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        bits = bits * 10 + (*p - '0');
    }
    return bits <= (v6 ? 128 : 32);
}

/* Address/recipient mask: no blanks, no controls, no angle brackets. */
static bool conf_addrmask_valid(const char *s)
{
    if (*s == 0)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == '"')
            return false;
    }
    return true;
}

static bool conf_domainmask_valid(const char *s)
{
    if (*s == 0)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(isalnum(c) || c >= 0x80 || strchr("-._*?@+", c)))
            return false;
    }
    return true;
}

static bool conf_email_valid(const char *s)
{
    const char *at = strrchr(s, '@');
    if (at == NULL || at == s || !conf_addrmask_valid(s) || strpbrk(s, "*?"))
        return false;
    const char *dom = at + 1;
    size_t dl = strlen(dom);
    if (dl > 2 && dom[0] == '[' && dom[dl - 1] == ']') {
        char ip[64];
        if (dl - 2 >= sizeof ip)
            return false;
        memcpy(ip, dom + 1, dl - 2);
        ip[dl - 2] = 0;
        return conf_ip4_valid(ip) || (strncasecmp(ip, "IPv6:", 5) == 0 && conf_ip6_valid(ip + 5));
    }
    return conf_hostname_valid(dom);
}

/* "[v6]:port", "[v6]", "v4:port", "v4".  need_port: the port must be there. */
static bool conf_hostport_valid(const char *s, bool need_port, bool names)
{
    char tmp[300];
    if (str_copy(tmp, s, sizeof tmp) >= sizeof tmp)
        return false;
    if (tmp[0] == '[') {
        char *close = strchr(tmp, ']');
        if (close == NULL)
            return false;
        *close = 0;
        if (!conf_ip6_valid(tmp + 1))
            return false;
        if (close[1] == 0)
            return !need_port;
        return close[1] == ':' && conf_port_valid(close + 2);
    }
    char *colon = strrchr(tmp, ':');
    if (colon == NULL)
        return !need_port && (conf_ip4_valid(tmp) || conf_ip6_valid(tmp));
    if (strchr(tmp, ':') != colon)
        return !need_port && conf_ip6_valid(tmp);
    *colon = 0;
    if (!conf_port_valid(colon + 1))
        return false;
    return conf_ip4_valid(tmp) || (names && conf_hostname_valid(tmp));
}

static bool conf_route_dest_valid(const char *d)
{
    size_t n = strlen(d);
    if (d[0] != '[')
        return conf_hostname_valid(d);
    if (n < 3 || d[n - 1] != ']')
        return false;
    char tmp[300];
    if (n - 2 >= sizeof tmp)
        return false;
    memcpy(tmp, d + 1, n - 2);
    tmp[n - 2] = 0;
    char *colon = strchr(tmp, ':');
    if (colon && strchr(colon + 1, ':'))
        return conf_ip6_valid(tmp);
    if (colon) {
        *colon = 0;
        if (!conf_port_valid(colon + 1))
            return false;
    }
    return conf_ip4_valid(tmp) || conf_hostname_valid(tmp);
}

static bool conf_route_valid(const char *s)
{
    char tmp[1024];
    if (str_copy(tmp, s, sizeof tmp) >= sizeof tmp)
        return false;
    char *save = NULL;
    char *mask = strtok_r(tmp, " \t", &save);
    char *dest = strtok_r(NULL, " \t", &save);
    if (mask == NULL || dest == NULL || strtok_r(NULL, " \t", &save) != NULL)
        return false;
    return conf_addrmask_valid(mask) && conf_route_dest_valid(dest);
}

static bool conf_dnsbl_valid(const char *s)
{
    char tmp[1024];
    if (str_copy(tmp, s, sizeof tmp) >= sizeof tmp)
        return false;
    char *eq = strchr(tmp, '=');
    if (eq)
        *eq++ = 0;
    if (!conf_hostname_valid(conf_trim(tmp)))
        return false;
    if (eq == NULL)
        return true;
    char *save = NULL;
    int n = 0;
    for (char *code = strtok_r(eq, ",", &save); code; code = strtok_r(NULL, ",", &save), n++) {
        if (!conf_ip4_valid(conf_trim(code)))
            return false;
    }
    return n > 0;
}

static bool conf_tlsproto_valid(const char *s)
{
    static const char *const known[] = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL };
    char tmp[256];
    if (str_copy(tmp, s, sizeof tmp) >= sizeof tmp)
        return false;
    char *save = NULL;
    int n = 0;
    for (char *w = strtok_r(tmp, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save), n++) {
        size_t i = 0;
        while (known[i] && strcmp(known[i], w) != 0)
            i++;
        if (known[i] == NULL)
            return false;
    }
    return n > 0;
}

static bool conf_user_valid(const char *s)
{
    if (*s == 0 || *s == '-' || strlen(s) > 32)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

int conf_rule_split(char *text, struct conf_rule *rule)
{
    char *save = NULL, *tok[6];
    int n = 0;
    for (char *t = strtok_r(text, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == 6)
            return -1;
        tok[n++] = t;
    }
    if (n != 5 || strcasecmp(tok[1], "from") != 0 || strcasecmp(tok[3], "to") != 0)
        return -1;
    if (strcasecmp(tok[0], "allow") == 0)
        rule->allow = true;
    else if (strcasecmp(tok[0], "deny") == 0)
        rule->allow = false;
    else
        return -1;
    rule->from = tok[2];
    rule->to = tok[4];
    return 0;
}

/* A file: in a rule: read it now and check every line.  -1 with err set,
 * or -2 when the problems are already in diag. */
static int conf_rule_file_check(const struct conf_param *p, const char *path, bool ipmasks,
                                const char *where, unsigned line, struct buf *err,
                                struct buf *diag)
{
    char **items;
    unsigned *lines;
    if (path[0] != '/') {
        buf_printf(err, "list file 'file:%s' needs an absolute path", path);
        return -1;
    }
    long n = conf_list_file_at(path, where, line, p->name, &items, &lines, diag);
    if (n < 0)
        return -2;
    int rc = 0;
    for (long i = 0; i < n; i++) {
        bool ok = ipmasks ? conf_ipmask_valid(items[i]) : conf_addrmask_valid(items[i]);
        if (!ok) {
            conf_diag(diag, path, lines[i], p->name, "invalid %s '%s'",
                      ipmasks ? "IP mask" : "recipient mask", items[i]);
            rc = -2;
        }
    }
    conf_list_file_free(items);
    free(lines);
    return rc;
}

static const char *conf_rule_conds(enum conf_syntax syn)
{
    switch (syn) {
    case SYN_CONNECTRULE: return "in_dnsbl|out_dnsbl|has_name|no_name|any";
    case SYN_HELORULE: return "has_ip|no_ip|same_ip|diff_ip|any";
    case SYN_MAILFROMRULE: return "has_ip|no_ip|has_mx|no_mx|any";
    default: return NULL;
    }
}

static bool conf_word_in(const char *words, const char *w)
{
    size_t wl = strlen(w);
    for (const char *p = words; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == wl && strncasecmp(p, w, l) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static int conf_rule_check(const struct conf_param *p, const char *text, const char *where,
                           unsigned line, struct buf *err, struct buf *diag)
{
    struct conf_rule r;
    const char *conds = conf_rule_conds(p->syntax);
    char *tmp = xstrdup(text);
    int rc = 0;
    if (conf_rule_split(tmp, &r) < 0) {
        buf_printf(err, "invalid rule '%s' (expected 'allow|deny from %s to RCPTMASK')", text,
                   conds ? conds : "IP|IP/MASK|any|file:/PATH");
        rc = -1;
    } else if (conds && !conf_word_in(conds, r.from)) {
        buf_printf(err, "invalid rule '%s': unknown condition '%s' (allowed: %s)", text, r.from,
                   conds);
        rc = -1;
    } else if (conds == NULL && strncmp(r.from, "file:", 5) == 0) {
        rc = conf_rule_file_check(p, r.from + 5, true, where, line, err, diag);
    } else if (conds == NULL && strcasecmp(r.from, "any") != 0 && !conf_ipmask_valid(r.from)) {
        buf_printf(err, "invalid rule '%s': '%s' is not any, an IP, IP/NN, IP/MASK or file:/PATH",
                   text, r.from);
        rc = -1;
    }
    if (rc == 0 && conds == NULL && strncmp(r.to, "file:", 5) == 0) {
        rc = conf_rule_file_check(p, r.to + 5, false, where, line, err, diag);
    } else if (rc == 0 && !conf_addrmask_valid(r.to)) {
        buf_printf(err, "invalid rule '%s': bad recipient mask '%s'", text, r.to);
        rc = -1;
    }
    free(tmp);
    return rc < 0 ? -1 : 0;
}

static bool conf_listen_valid(const char *s)
{
    return conf_hostport_valid(s, true, false);
}

static bool conf_nameserver_valid(const char *s)
{
    return conf_hostport_valid(s, false, false);
}

/* Checker and complaint per syntax ("%s" is the value). */
static const struct conf_syntax_rule {
    bool (*valid)(const char *text);
    const char *complaint;
} conf_syntax_rules[] = {
    [SYN_HOSTNAME] = { conf_hostname_valid, "invalid host name '%s'" },
    [SYN_EMAIL] = { conf_email_valid, "invalid e-mail address '%s' (expected local@domain)" },
    [SYN_DOMAINMASK] = { conf_domainmask_valid,
                         "invalid domain mask '%s' (letters, digits, '-', '.', '_', '*', '?', '@')" },
    [SYN_IPMASK] = { conf_ipmask_valid, "invalid IP mask '%s' (expected IP, IP/NN or IP/MASK)" },
    [SYN_LISTEN] = { conf_listen_valid,
                     "invalid address '%s' (expected IPv4:PORT or [IPv6]:PORT, PORT 1..65535)" },
    [SYN_ROUTE] = { conf_route_valid, "invalid route '%s' (expected 'MASK domain', "
                                      "'MASK [host]' or 'MASK [host:port]')" },
    [SYN_DNSBL] = { conf_dnsbl_valid,
                    "invalid DNSBL entry '%s' (expected ZONE or ZONE=127.0.0.2,127.0.0.4)" },
    [SYN_NAMESERVER] = { conf_nameserver_valid,
                         "invalid name server '%s' (expected IP, IPv4:PORT or [IPv6]:PORT)" },
    [SYN_TLSPROTO] = { conf_tlsproto_valid, "invalid protocol list '%s' (allowed: TLSv1, "
                                            "TLSv1.1, TLSv1.2, TLSv1.3)" },
    [SYN_USER] = { conf_user_valid, "invalid user or group name '%s'" },
};

int conf_syntax_check(const struct conf_param *p, const char *text, const char *where,
                      unsigned line, struct buf *err, struct buf *diag)
{
    if (conf_rule_conds(p->syntax) != NULL || p->syntax == SYN_RELAYRULE)
        return conf_rule_check(p, text, where, line, err, diag);
    if ((size_t)p->syntax >= sizeof conf_syntax_rules / sizeof conf_syntax_rules[0])
        return 0;
    const struct conf_syntax_rule *r = &conf_syntax_rules[p->syntax];
    if (r->valid == NULL || r->valid(text))
        return 0;
    buf_printf(err, r->complaint, text);
    return -1;
}
