/*
 * conf.t - unit tests of lib/conf: types, units, ranges, lists, file:
 * lists, syntax checks, diagnostics, the golden configs of t/conf/ and the
 * rule that every table parameter is documented in mailgw.conf(5).
 *
 * Run from the source tree (prove does); MAILGW_SRCDIR overrides.
 */
#include "conf/conf.h"
#include "tap.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char srcdir[4096], tmpdir[256];

#define BASE "[mailgw.network]\nHostname = gw.example.com\nPostmaster = postmaster@example.com\n" \
             "ProtectedDomains = example.com\n[mailgw.path]\nQueuePath = /var/spool/mailgw\n"

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
}

/* Load text as "t.conf" in the temp dir; diag gets the diagnostics. */
static struct conf *load_text(const char *text, struct buf *diag)
{
    if (chdir(tmpdir) != 0)
        return NULL;
    write_file("t.conf", text, strlen(text));
    buf_reset(diag);
    return conf_load("t.conf", diag);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    struct buf b = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    return b.data ? b.data : strdup("");
}

static void test_defaults(void)
{
    struct buf d = BUF_INIT;
    struct conf *c = load_text(BASE, &d);
    ok(c != NULL, "minimal config loads");
    is_str(d.data ? d.data : "", "", "no diagnostics for the minimal config");
    if (c == NULL)
        return;
    is_int(conf_int(c, "mailgw.limits", "IncomingSessions"), 100, "default IncomingSessions");
    is_int(conf_int(c, "mailgw.limits", "MaximalIncomingMessageSize"), 10240 * 1024LL,
           "default size in bytes (bare number = KB)");
    is_int(conf_int(c, "mailgw.timeouts", "MaximalQueueLifetime"), 5 * 86400,
           "default lifetime in seconds (bare number = days)");
    is_int(conf_int(c, "mailgw.options", "HeartbeatTimeout"), 30, "HeartbeatTimeout default");
    is_int(conf_int(c, "mailgw.options", "LogLevel"), 4, "LogLevel default");
    ok(conf_bool(c, "mailgw.tls", "OfferStartTLS"), "OfferStartTLS default true");
    is_int(conf_int(c, "mailgw.tls", "ClientTLS"), 1, "enum index of default 'may'");
    is_str(conf_str(c, "mailgw.tls", "ClientTLS"), "may", "enum text");
    is_str(conf_str(c, "mailgw.tls", "Protocols"), "TLSv1.2 TLSv1.3", "Protocols default");
    is_str(conf_str(c, "mailgw.options", "User"), "mailgw", "User default");
    is_str(conf_str(c, "mailgw.path", "PidFile"), "", "PidFile default empty");
    const char *const *items;
    is_int(conf_list(c, "mailgw.network", "ListenOn", &items), 1, "ListenOn default count");
    is_str(items[0], "0.0.0.0:25", "ListenOn default value");
    is_int(conf_list(c, "mailgw.resolve", "Nameserver", &items), 0, "Nameserver default empty");
    ok(items != NULL && items[0] == NULL, "empty list is a NULL-terminated array");
    ok(conf_is_set(c, "mailgw.network", "Hostname"), "Hostname is set");
    ok(!conf_is_set(c, "mailgw.limits", "IncomingSessions"), "IncomingSessions not set");
    is_str(conf_str(c, "mailgw.network", "ProtectedDomains"), "example.com", "list as string");
    conf_free(c);
    buf_free(&d);
}

static void test_units(void)
{
    struct buf d = BUF_INIT;
    struct conf *c = load_text(BASE "[mailgw.limits]\nMaximalIncomingMessageSize=10M\n"
                               "MaximalIncomingSessionSize = 1 GB\nMinimalQueueFreeSpaceSize=2g\n"
                               "MaximalCommandLineLength=4K\nMaximalTextLineLength=1000\n"
                               "[mailgw.timeouts]\nReadTimeout=2m\nMaximalQueueLifetime=1w\n"
                               "MaximalBackoffTime=6h\nMinimalBackoffTime=100\n"
                               "[mailgw.resolve]\nUnreachableTTL=0\n", &d);
    ok(c != NULL, "units load");
    if (c == NULL) {
        tap_diag("%s", d.data);
        return;
    }
    is_int(conf_int(c, "mailgw.limits", "MaximalIncomingMessageSize"), 10485760, "10M");
    is_int(conf_int(c, "mailgw.limits", "MaximalIncomingSessionSize"), 1073741824, "1 GB");
    is_int(conf_int(c, "mailgw.limits", "MinimalQueueFreeSpaceSize"), 2147483648LL, "2g");
    is_int(conf_int(c, "mailgw.limits", "MaximalCommandLineLength"), 4096, "4K");
    is_int(conf_int(c, "mailgw.limits", "MaximalTextLineLength"), 1000, "bare bytes");
    is_int(conf_int(c, "mailgw.timeouts", "ReadTimeout"), 120, "2m");
    is_int(conf_int(c, "mailgw.timeouts", "MaximalQueueLifetime"), 604800, "1w");
    is_int(conf_int(c, "mailgw.timeouts", "MaximalBackoffTime"), 21600, "6h");
    is_int(conf_int(c, "mailgw.timeouts", "MinimalBackoffTime"), 100, "bare seconds");
    conf_free(c);
    buf_free(&d);
}

static void test_bools(void)
{
    static const char *const yes[] = { "true", "yes", "y", "1", "TRUE", "Yes" };
    static const char *const no[] = { "false", "no", "n", "0", "False", "N" };
    struct buf d = BUF_INIT;
    char text[512];
    int good = 0;
    for (size_t i = 0; i < 6; i++) {
        snprintf(text, sizeof text, BASE "[mailgw.access]\nDenyUnresolvedConnect=%s\n"
                 "[mailgw.tls]\nOfferStartTLS=%s\n", yes[i], no[i]);
        struct conf *c = load_text(text, &d);
        if (c && conf_bool(c, "mailgw.access", "DenyUnresolvedConnect") &&
            !conf_bool(c, "mailgw.tls", "OfferStartTLS"))
            good++;
        conf_free(c);
    }
    is_int(good, 6, "every boolean spelling");
    ok(load_text(BASE "[mailgw.tls]\nOfferStartTLS=maybe\n", &d) == NULL, "bad boolean fails");
    is_str(d.data, "t.conf:8: OfferStartTLS: invalid boolean 'maybe' (allowed: true, false, "
           "yes, no, y, n, 1, 0)\n", "bad boolean diagnostic");
    buf_free(&d);
}

struct bad_case {
    const char *text, *diag, *name;
};

static const struct bad_case bad_cases[] = {
    { "[mailgw.limits]\nMaximalIncomingRcptsPerMessage=0\n",
      "t.conf:8: MaximalIncomingRcptsPerMessage: value 0 out of range 1..1024\n", "int range" },
    { "[mailgw.limits]\nMaximalIncomingMessageSize=300M\n",
      "t.conf:8: MaximalIncomingMessageSize: value 300M out of range 64..204800 KB\n",
      "size range in KB" },
    { "[mailgw.limits]\nMaximalIncomingMessageSize=99999999999999999999\n",
      "t.conf:8: MaximalIncomingMessageSize: invalid size '99999999999999999999' (number with "
      "unit B, K, KB, M, MB, G, GB; bare = KB)\n", "number overflow" },
    { "[mailgw.limits]\nMaximalIncomingMessageSize=9999999999999G\n",
      "t.conf:8: MaximalIncomingMessageSize: invalid size '9999999999999G' (number with unit "
      "B, K, KB, M, MB, G, GB; bare = KB)\n", "unit multiplication overflow" },
    { "[mailgw.limits]\nMaximalIncomingMessageSize=-1\n",
      "t.conf:8: MaximalIncomingMessageSize: invalid size '-1' (number with unit B, K, KB, M, "
      "MB, G, GB; bare = KB)\n", "negative size" },
    { "[mailgw.timeouts]\nMaximalQueueLifetime=15\n",
      "t.conf:8: MaximalQueueLifetime: value 15 out of range 1..14 d\n", "time range in days" },
    { "[mailgw.timeouts]\nReadTimeout=5x\n",
      "t.conf:8: ReadTimeout: invalid time '5x' (number with unit s, m, h, d, w; bare = s)\n",
      "bad time unit" },
    { "[mailgw.options]\nLogLevel=5\n",
      "t.conf:8: LogLevel: invalid value '5' (allowed: 1, 2, 3, 4, 9)\n", "LogLevel words" },
    { "[mailgw.tls]\nClientTLS=always\n",
      "t.conf:8: ClientTLS: invalid value 'always' (allowed: none, may, encrypt, verify)\n",
      "enum" },
    { "[mailgw.network]\nHostname=other.example.com\n",
      "t.conf:8: Hostname: repeated (first at line 2); only list parameters may repeat\n",
      "repeated scalar" },
    { "[mailgw.network]\nListenOn=127.0.0.1:0\n",
      "t.conf:8: ListenOn: invalid address '127.0.0.1:0' (expected IPv4:PORT or [IPv6]:PORT, "
      "PORT 1..65535)\n", "ListenOn port 0" },
    { "[mailgw.forward]\nForwardRoute=* [host:99999]\n",
      "t.conf:8: ForwardRoute: invalid route '* [host:99999]' (expected 'MASK domain', "
      "'MASK [host]' or 'MASK [host:port]')\n", "ForwardRoute port" },
    { "[mailgw.access]\nConnectRule=deny from is_bad to *\n",
      "t.conf:8: ConnectRule: invalid rule 'deny from is_bad to *': unknown condition 'is_bad' "
      "(allowed: in_dnsbl|out_dnsbl|has_name|no_name|any)\n", "ConnectRule condition" },
    { "[mailgw.access]\nRelayRule=allow from 10.0.0.0/33 to *\n",
      "t.conf:8: RelayRule: invalid rule 'allow from 10.0.0.0/33 to *': '10.0.0.0/33' is not "
      "any, an IP, IP/NN, IP/MASK or file:/PATH\n", "RelayRule CIDR" },
    { "[mailgw.access]\nRelayRule=permit from any to *\n",
      "t.conf:8: RelayRule: invalid rule 'permit from any to *' (expected 'allow|deny from "
      "IP|IP/MASK|any|file:/PATH to RCPTMASK')\n", "RelayRule verb" },
    { "[mailgw.access]\nRelayRule=allow from any to file:/nonexistent/mailgw.list\n",
      "t.conf:8: RelayRule: /nonexistent/mailgw.list: cannot open: No such file or directory\n",
      "unreadable rule file" },
    { "[mailgw.access]\nDNSBlackList=zen.example=127.0.0.2,x\n",
      "t.conf:8: DNSBlackList: invalid DNSBL entry 'zen.example=127.0.0.2,x' (expected ZONE or "
      "ZONE=127.0.0.2,127.0.0.4)\n", "DNSBL codes" },
    { "[mailgw.access]\nAllowClients=file:relative.list\n",
      "t.conf:8: AllowClients: list file 'file:relative.list' needs an absolute path\n",
      "relative list file" },
    { "[mailgw.resolve]\nNameserver=[::1]:70000\n",
      "t.conf:8: Nameserver: invalid name server '[::1]:70000' (expected IP, IPv4:PORT or "
      "[IPv6]:PORT)\n", "Nameserver" },
    { "Foo\n", "t.conf:7: syntax error: expected Name=value or [section]\n", "no equals" },
    { "[mailgw.timeouts]\nMinimalBackoffTime=7200\nMaximalBackoffTime=3600\n",
      "t.conf:8: MinimalBackoffTime: 7200s is above MaximalBackoffTime 3600s\n",
      "backoff order" },
};

static void test_bad_values(void)
{
    struct buf d = BUF_INIT;
    char text[1024];
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        snprintf(text, sizeof text, BASE "%s", bad_cases[i].text);
        struct conf *c = load_text(text, &d);
        ok(c == NULL, "%s: load fails", bad_cases[i].name);
        is_str(d.data ? d.data : "", bad_cases[i].diag, bad_cases[i].name);
        conf_free(c);
    }
    buf_free(&d);
}

static void test_warnings_and_required(void)
{
    struct buf d = BUF_INIT;
    struct conf *c = load_text(BASE "[mailgw.limits]\nIncomingsessions=5\nBogus=1\n[nosuch]\nX=1\n"
                               "[smtpgw.limits]\nIncomingSessions=7\n", &d);
    ok(c != NULL, "unknown parameters and sections are only warnings");
    is_str(d.data, "t.conf:8: warning: unknown parameter [mailgw.limits] Incomingsessions (did "
           "you mean [mailgw.limits] IncomingSessions?)\n"
           "t.conf:9: warning: unknown parameter [mailgw.limits] Bogus\n"
           "t.conf:10: warning: unknown section [nosuch]\n", "warning lines");
    if (c)
        is_int(conf_int(c, "mailgw.limits", "IncomingSessions"), 7, "[smtpgw.X] alias");
    conf_free(c);
    c = load_text("[mailgw.network]\nHostname=gw.example.com\n", &d);
    ok(c == NULL, "missing required parameters fail");
    is_str(d.data, "t.conf: missing required parameter [mailgw.network] Postmaster\n"
           "t.conf: missing required parameter [mailgw.network] ProtectedDomains\n"
           "t.conf: missing required parameter [mailgw.path] QueuePath\n", "missing lines");
    c = load_text("Hostname=x\n", &d);
    is_str(d.data, "t.conf:1: Hostname: parameter outside any [section]\n"
           "t.conf: missing required parameter [mailgw.network] Hostname\n"
           "t.conf: missing required parameter [mailgw.network] Postmaster\n"
           "t.conf: missing required parameter [mailgw.network] ProtectedDomains\n"
           "t.conf: missing required parameter [mailgw.path] QueuePath\n",
           "parameter before any section");
    ok(conf_load("/nonexistent/mailgw.conf", &d) == NULL, "missing file fails");
    buf_free(&d);
}

static void test_lists(void)
{
    struct buf d = BUF_INIT;
    char text[2048], path[512];
    snprintf(path, sizeof path, "%s/clients.list", tmpdir);
    static const char list1[] = "# trusted\n10.0.0.0/8\n\n  192.168.1.1  \n";
    write_file(path, list1, sizeof list1 - 1);
    snprintf(text, sizeof text, BASE "[mailgw.network]\nListenOn=127.0.0.1:25, [::1]:25\nListenOn = 10.1.1.1:2525\n"
             "[mailgw.access]\nAllowClients=file:%s\nAllowClients=172.16.0.0/255.240.0.0\n"
             "RelayRule=allow from file:%s to *\n", path, path);
    struct conf *c = load_text(text, &d);
    ok(c != NULL, "lists load");
    if (c == NULL) {
        tap_diag("%s", d.data);
        return;
    }
    const char *const *it;
    is_int(conf_list(c, "mailgw.network", "ListenOn", &it), 3, "comma list plus repeated line");
    is_str(it[1], "[::1]:25", "second ListenOn");
    is_int(conf_list(c, "mailgw.access", "AllowClients", &it), 3, "file: list expanded");
    is_str(it[1], "192.168.1.1", "file: list items trimmed");
    is_str(it[2], "172.16.0.0/255.240.0.0", "item after the file");
    conf_free(c);

    static const char list2[] = "10.0.0.0/8\nnot-an-ip\n";
    write_file(path, list2, sizeof list2 - 1);
    snprintf(text, sizeof text, BASE "[mailgw.access]\nDenyClients=file:%s\n", path);
    c = load_text(text, &d);
    ok(c == NULL, "bad item in a list file fails");
    char want[1024];
    snprintf(want, sizeof want, "%s:2: DenyClients: invalid IP mask 'not-an-ip' (expected IP, "
             "IP/NN or IP/MASK)\n", path);
    is_str(d.data, want, "list file diagnostic names listfile:line");
    snprintf(text, sizeof text, BASE "[mailgw.access]\nRelayRule=allow from file:%s to *\n", path);
    c = load_text(text, &d);
    snprintf(want, sizeof want, "%s:2: RelayRule: invalid IP mask 'not-an-ip'\n", path);
    ok(c == NULL, "bad line in a rule's file fails");
    is_str(d.data, want, "rule file diagnostic");
    buf_free(&d);
}

static void test_bad_bytes(void)
{
    struct buf d = BUF_INIT;
    static const char nul[] = BASE "[mailgw.limits]\nIncoming\0Sessions=1\n";
    if (chdir(tmpdir) == 0)
        write_file("t.conf", nul, sizeof nul - 1);
    ok(conf_load("t.conf", &d) == NULL, "NUL byte fails");
    is_str(d.data, "t.conf:8: NUL byte in line\n", "NUL diagnostic");
    ok(load_text(BASE "[mailgw.network]\n# caf\xc3\xa9\nX=\xff\xfe\n", &d) == NULL, "bad UTF-8");
    is_str(d.data, "t.conf:9: line is not valid UTF-8\n", "UTF-8 diagnostic");
    size_t n = 70000;
    char *big = malloc(n + 200);
    int len = snprintf(big, 200, BASE "[mailgw.network]\nX=");
    memset(big + len, 'a', n);
    memcpy(big + len + n, "\n", 2);
    ok(load_text(big, &d) == NULL, "line over 64 KiB fails");
    is_str(d.data, "t.conf:8: line longer than 65536 bytes\n", "long line diagnostic");
    free(big);
    buf_free(&d);
}

static void test_groups_and_lookup(void)
{
    struct buf d = BUF_INIT;
    struct conf *c = load_text(BASE "[mailgw.group:sales]\n[smtpgw.group:dev]\n[mailgw.policy]\n"
                               "[mailgw.group:sales]\n", &d);
    ok(c != NULL, "group sections load");
    if (c) {
        is_int(conf_group_count(c), 2, "two groups");
        is_str(conf_group_name(c, 1), "dev", "groups in file order");
        ok(conf_group_name(c, 2) == NULL, "group index out of range");
    }
    conf_free(c);
    ok(conf_param_lookup("IncomingSessions") != NULL, "lookup by name");
    ok(conf_param_lookup("smtpgw.limits.IncomingSessions") != NULL, "lookup by section.name");
    ok(conf_param_lookup("mailgw.network.IncomingSessions") == NULL, "wrong section");
    ok(conf_param_lookup("NoSuch") == NULL, "unknown name");
    buf_free(&d);
}

static void test_rule_split_and_paths(void)
{
    char r1[] = "deny  from\tin_dnsbl to *@example.com";
    char r2[] = "allow from any";
    char r3[] = "maybe from any to *";
    struct conf_rule rule;
    ok(conf_rule_split(r1, &rule) == 0 && !rule.allow, "rule split: deny");
    is_str(rule.from, "in_dnsbl", "rule split: from");
    is_str(rule.to, "*@example.com", "rule split: to");
    ok(conf_rule_split(r2, &rule) < 0, "rule split: too short");
    ok(conf_rule_split(r3, &rule) < 0, "rule split: bad verb");

    struct buf d = BUF_INIT;
    struct conf *c = load_text("[mailgw.network]\nHostname = gw.example.com\n"
                               "Postmaster = postmaster@example.com\nProtectedDomains = example.com\n"
                               "[mailgw.path]\nQueuePath = q/dir\n[mailgw.options]\n"
                               "LogFilename = /var/log/mailgw.log\n", &d);
    ok(c != NULL, "relative QueuePath loads");
    if (c) {
        char want[600];
        snprintf(want, sizeof want, "%s/q/dir", tmpdir);
        is_str(conf_str(c, "mailgw.path", "QueuePath"), want, "relative path made absolute");
        is_str(conf_str(c, "mailgw.options", "LogFilename"), "/var/log/mailgw.log",
               "absolute path unchanged");
    }
    conf_free(c);
    buf_free(&d);
}

/* Every default parses, every parameter has a doc line and a known type. */
static void test_table(void)
{
    int bad = 0;
    for (size_t i = 0; i < conf_nparams; i++) {
        const struct conf_param *p = &conf_params[i];
        if (p->doc == NULL || *p->doc == 0 || strchr(p->doc, '\n'))
            bad++, tap_diag("%s: doc", p->name);
        if (p->type == CONF_ENUM && p->words == NULL)
            bad++, tap_diag("%s: enum without words", p->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->name, conf_params[j].name) == 0 &&
                strcmp(p->section, conf_params[j].section) == 0)
                bad++, tap_diag("%s: twice", p->name);
        }
    }
    is_int(bad, 0, "table entries are complete and unique");
}

static void golden_dir(const char *sub, bool valid)
{
    char dir[4600];
    snprintf(dir, sizeof dir, "%s/t/conf/%s", srcdir, sub);
    DIR *dh = opendir(dir);
    if (dh == NULL || chdir(dir) != 0) {
        ok(0, "golden dir %s", dir);
        return;
    }
    struct dirent *de;
    int count = 0;
    while ((de = readdir(dh)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".conf") != 0)
            continue;
        char ref[300];
        snprintf(ref, sizeof ref, "%.*s.ref", (int)(n - 5), de->d_name);
        char *want = read_file(ref);
        struct buf d = BUF_INIT;
        struct conf *c = conf_load(de->d_name, &d);
        char *out = NULL;
        size_t outlen = 0;
        FILE *mf = open_memstream(&out, &outlen);
        if (valid && c)
            conf_print(c, mf, CONF_PRINT_NONDEFAULT);
        fclose(mf);
        ok(valid ? c != NULL : c == NULL, "%s/%s %s", sub, de->d_name, valid ? "loads" : "fails");
        is_str(valid ? out : (d.data ? d.data : ""), want ? want : "(no .ref)", ref);
        if (valid && d.len)
            tap_diag("%s", d.data);
        free(out);
        free(want);
        conf_free(c);
        buf_free(&d);
        count++;
    }
    closedir(dh);
    ok(count > 0, "golden %s files found", sub);
}

/* The shipped conf/mailgw.conf is valid, quiet, and not an open relay. */
static void test_shipped(void)
{
    char path[4600];
    struct buf d = BUF_INIT;
    snprintf(path, sizeof path, "%s/conf/mailgw.conf", srcdir);
    struct conf *c = conf_load(path, &d);
    ok(c != NULL, "conf/mailgw.conf loads");
    is_str(d.data ? d.data : "", "", "conf/mailgw.conf gives no diagnostics");
    if (c) {
        const char *const *it;
        size_t n = conf_list(c, "mailgw.access", "RelayRule", &it);
        ok(n > 0 && strcmp(it[n - 1], "deny from any to *") == 0,
           "shipped relay rules end with deny from any to *");
        conf_list(c, "mailgw.network", "ListenOn", &it);
        is_str(it[0], "127.0.0.1:2525", "shipped ListenOn is unprivileged");
    }
    conf_free(c);
    buf_free(&d);
}

/* DESIGN §6: a test fails when a parameter is undocumented. */
static void test_man_page(void)
{
    char path[4600];
    snprintf(path, sizeof path, "%s/man/man5/mailgw.conf.5", srcdir);
    char *man = read_file(path);
    ok(man != NULL, "man page exists");
    if (man == NULL)
        return;
    int missing = 0;
    for (size_t i = 0; i < conf_nparams; i++) {
        char want[200];
        snprintf(want, sizeof want, "\n.B %s\n", conf_params[i].name);
        if (strstr(man, want) == NULL) {
            tap_diag("undocumented: [%s] %s", conf_params[i].section, conf_params[i].name);
            missing++;
        }
    }
    is_int(missing, 0, "every parameter is in mailgw.conf(5) (run t/conf/gen-man.sh)");
    free(man);
}

int main(void)
{
    const char *s = getenv("MAILGW_SRCDIR");
    if (s)
        snprintf(srcdir, sizeof srcdir, "%s", s);
    else if (getcwd(srcdir, sizeof srcdir) == NULL)
        return 1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/conf.t.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    test_table();
    test_defaults();
    test_units();
    test_bools();
    test_bad_values();
    test_warnings_and_required();
    test_lists();
    test_bad_bytes();
    test_groups_and_lookup();
    test_rule_split_and_paths();
    golden_dir("valid", true);
    golden_dir("broken", false);
    test_shipped();
    test_man_page();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        tap_diag("cannot remove %s", tmpdir);
    return tap_done();
}
