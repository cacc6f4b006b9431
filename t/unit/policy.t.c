/*
 * policy.t - lib/policy and the group half of lib/conf: per-group values
 * and their fallback to [mailgw.policy], group resolution in file order,
 * recipient split, decisions from statuses (BlockMessage, Notify*,
 * SaveInQB, actions, Check=false), rewriting (results parsed again with
 * lib/mime: parts removed, replaced, X-Anti-Virus, disclaimer), our own
 * notifications recognised, template errors refused by conf_load with
 * file:line, and the built-in templates equal to conf/templates/.
 */
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "mime/mime.h"
#include "policy/policy.h"
#include "template/template.h"
#include "util/buf.h"

static char srcdir[4096], tmpdir[256];

#define BASE "[mailgw.network]\nHostname = gw.example.com\nPostmaster = pm@example.com\n" \
             "ProtectedDomains = example.com\n[mailgw.path]\nQueuePath = /var/spool/mailgw\n"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    if (f == NULL)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    buf_append_byte(&b, 0);
    return b.data;
}

static struct conf *load(const char *text, struct buf *d)
{
    if (chdir(tmpdir) != 0)
        return NULL;
    write_file("t.conf", text);
    buf_reset(d);
    return conf_load("t.conf", d);
}

static const char groups_conf[] = BASE
    "[mailgw.policy]\nActionInfected = remove\n"
    "[mailgw.group:sales]\nRecipients = *@sales.example.com\nActionInfected = placeholder\n"
    "BlockMessage = none\nNotifySender = infected\n"
    "[mailgw.group:boss]\nSenders = boss@example.com\nRecipients = *@example.com\nCheck = no\n"
    "[mailgw.group:late]\nRecipients = *@sales.example.com\n";

static void test_groups(void)
{
    struct buf d = BUF_INIT;
    struct conf *c = load(groups_conf, &d);
    if (!ok(c != NULL, "groups config loads"))
        tap_diag("%s", d.data ? d.data : "");
    if (c == NULL)
        return;
    is_str(conf_group_str(c, 0, "ActionInfected"), "placeholder", "group value");
    is_str(conf_group_str(c, 1, "ActionInfected"), "remove", "unset: the policy's value");
    is_int(conf_group_list(c, 0, "BlockMessage", NULL), 1, "group list replaces the policy's");
    is_int(conf_group_list(c, -1, "BlockMessage", NULL), 4, "policy default BlockMessage");
    is_int(conf_group_list(c, -1, "Senders", NULL), 0, "Senders empty for the policy");
    ok(conf_group_bool(c, 1, "Check") == false && conf_group_bool(c, 0, "Check"), "Check");
    is_int(conf_group_index(c, "boss"), 1, "group index by name");
    is_int(policy_group_for(c, "x@y.org", "a@sales.example.com"), 0, "recipient mask");
    is_int(policy_group_for(c, "boss@example.com", "a@sales.example.com"), 0,
           "file order: first match wins");
    is_int(policy_group_for(c, "boss@example.com", "a@example.com"), 1, "both masks match");
    is_int(policy_group_for(c, "boss@example.com", "a@other.org"), -1,
           "sender matches, recipient not: default");
    is_str(policy_group_name(c, -1), "policy", "default group name");

    const char *rcpts[] = { "a@example.com", "b@sales.example.com", "c@x.org",
                            "d@sales.example.com" };
    struct policy_set *sets;
    size_t n = policy_split(c, "boss@example.com", rcpts, 4, &sets);
    is_int(n, 3, "split: three groups");
    if (n == 3) {
        ok(sets[0].group == 1 && sets[0].nrcpts == 1, "first set: boss, a@");
        ok(sets[1].group == 0 && sets[1].nrcpts == 2 && strcmp(sets[1].rcpts[1], "d@sales.example.com") == 0,
           "second set: sales, b@ and d@ in order");
        ok(sets[2].group == -1 && sets[2].nrcpts == 1, "third set: the policy");
    }
    policy_sets_free(sets, n);

    /* decisions */
    struct policy_object objs[] = {
        { "(message)", "message/rfc822", "Eicar", POLICY_INFECTED, NULL },
        { "a.txt", "text/plain", "", POLICY_CLEAN, NULL },
        { "x.zip", "application/zip", "", POLICY_PROTECTED, NULL },
    };
    struct policy_verdict v;
    policy_decide(c, -1, true, objs, 3, &v);
    ok(v.block && v.status == POLICY_INFECTED, "policy: infected blocked");
    ok(v.notify[POLICY_NOTIFY_ADMIN] && v.notify[POLICY_NOTIFY_RECIPIENT] &&
       !v.notify[POLICY_NOTIFY_SENDER], "policy: admin and recipient notified, not the sender");
    ok(!v.rewrite && v.save == POLICY_SAVE_NONE, "blocked: no rewrite, no store copy");
    is_str(v.names.data, "Eicar", "names");
    policy_verdict_free(&v);
    policy_decide(c, 0, true, objs, 3, &v);
    ok(!v.block && v.rewrite && v.actions[0] == POLICY_PLACEHOLDER &&
       v.actions[1] == POLICY_PASS && v.actions[2] == POLICY_REMOVE,
       "sales: delivered, infected placeholder, protected removed");
    ok(v.notify[POLICY_NOTIFY_SENDER], "sales: sender notified");
    policy_verdict_free(&v);
    policy_decide(c, 1, true, objs, 3, &v);
    ok(!v.block && !v.checked && v.status == POLICY_CLEAN && !v.cut, "Check=no: not checked");
    struct buf h = BUF_INIT;
    struct policy_facts f = { .bases_time = 86400 * 365, .bases_records = 42, .now = 86400 * 366 };
    policy_xheader(&v, &f, &h);
    is_str(h.data, "X-Anti-Virus: mailgw " POLICY_VERSION ", bases: 19710101 #42, check: 19710102 "
                   "not_checked", "X-Anti-Virus header");
    buf_free(&h);
    policy_verdict_free(&v);
    conf_free(c);
    buf_free(&d);
}

static const char mixed[] =
    "From: a@example.com\r\nX-Anti-Virus: forged\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\npreamble\r\n"
    "--B\r\nContent-Type: text/plain\r\n\r\nbody text\r\n"
    "--B\r\nContent-Type: application/octet-stream; name=\"bad.exe\"\r\n\r\nVIRUSBYTES\r\n"
    "--B\r\nContent-Type: application/pdf; name=\"ok.pdf\"\r\n\r\nPDFBYTES\r\n"
    "--B--\r\nepilogue\r\n";

static int sink_buf(void *arg, const void *p, size_t n)
{
    buf_append(arg, p, n);
    return 0;
}

static struct mime_part *nth_part(struct mime_msg *m, int n)
{
    struct mime_part *p = m->root;
    for (int i = 0; p && i < n; i++)
        p = mime_part_next(p);
    return p;
}

/* Rewrite mixed with the object "bad.exe" infected under cfg; the result
 * parsed back. */
static struct mime_msg *rewrite_with(const char *cfg, struct buf *outb, bool block_expected)
{
    struct buf d = BUF_INIT;
    struct conf *c = load(cfg, &d);
    struct mime_msg *m = mime_msg_parse_mem(mixed, strlen(mixed), NULL);
    struct mime_msg *r = NULL;
    if (c == NULL || m == NULL) {
        tap_diag("%s", d.data ? d.data : "no conf");
        return NULL;
    }
    struct policy_object o[] = {
        { "(message)", "message/rfc822", "Test.Virus", POLICY_INFECTED, NULL },
        { "bad.exe", "application/octet-stream", "Test.Virus", POLICY_INFECTED, nth_part(m, 2) },
    };
    o[0].part = o[1].part;
    const char *rc[] = { "r@example.com" };
    struct policy_facts f = { .queue_id = "QID1", .sender = "s@example.org", .rcpts = rc,
                              .nrcpts = 1, .hostname = "gw.example.com",
                              .postmaster = "pm@example.com" };
    struct policy_verdict v;
    policy_decide(c, -1, true, o, 2, &v);
    ok(v.block == block_expected, "block as expected");
    if (policy_rewrite(c, &v, o, m, &f, sink_buf, outb) == 0)
        r = mime_msg_parse_mem(outb->data, outb->len, NULL);
    if (v.notify[POLICY_NOTIFY_ADMIN]) {
        struct buf n = BUF_INIT;
        policy_notification(c, &v, o, m, &f, POLICY_NOTIFY_ADMIN, "pm@example.com", mixed,
                            strlen(mixed), 1 << 20, &n);
        struct mime_msg *nm = mime_msg_parse_mem(n.data, n.len, NULL);
        ok(nm && policy_is_notification(nm), "our admin notice is recognised as ours");
        ok(strstr(n.data, "Test.Virus") && strstr(n.data, "QID1") &&
           strstr(n.data, "Auto-Submitted: auto-generated\r\n"), "admin notice text");
        ok(strstr(n.data, "Content-Type: message/rfc822") != NULL, "original attached");
        buf_reset(&n);
        policy_notification(c, &v, o, m, &f, POLICY_NOTIFY_ADMIN, "pm@example.com", mixed,
                            strlen(mixed), 100, &n);
        ok(strstr(n.data, "Content-Type: message/rfc822") == NULL && strstr(n.data, "too large"),
           "over the budget: no attachment, said so");
        if (nm)
            mime_msg_free(nm);
        buf_free(&n);
    }
    ok(!policy_is_notification(m), "an ordinary message is not ours");
    policy_verdict_free(&v);
    mime_msg_free(m);
    conf_free(c);
    buf_free(&d);
    return r;
}

static int count_parts(struct mime_msg *m, const char *type)
{
    int n = 0;
    for (struct mime_part *p = m->root; p; p = mime_part_next(p))
        n += strcmp(p->type, type) == 0;
    return n;
}

static void test_rewrite(void)
{
    struct buf o = BUF_INIT;
    struct mime_msg *r = rewrite_with(BASE "[mailgw.policy]\nBlockMessage = none\n"
                                      "AttachOriginalToAdmin = yes\n", &o, false);
    ok(r != NULL, "removed: parses");
    if (r) {
        ok(strstr(o.data, "VIRUSBYTES") == NULL && strstr(o.data, "bad.exe") == NULL,
           "the infected part is gone");
        ok(strstr(o.data, "body text") && strstr(o.data, "PDFBYTES") &&
           strstr(o.data, "preamble") && strstr(o.data, "epilogue"), "the rest is kept");
        is_int(count_parts(r, "application/pdf"), 1, "pdf part still a part");
        ok(strncmp(o.data, "X-Anti-Virus: mailgw ", 21) == 0 && strstr(o.data, "forged") == NULL,
           "our header on top, the forged one dropped");
        ok(strstr(o.data, "infected\r\n") != NULL, "header says infected");
        ok(strstr(o.data, "\n") == NULL || strstr(o.data, "\r\n") != NULL, "CRLF");
        mime_msg_free(r);
    }
    buf_reset(&o);
    r = rewrite_with(BASE "[mailgw.policy]\nBlockMessage = none\nActionInfected = placeholder\n"
                     "AddDisclaimer = yes\nAddXHeader = no\n", &o, false);
    ok(r != NULL, "placeholder: parses");
    if (r) {
        ok(strstr(o.data, "VIRUSBYTES") == NULL, "the infected bytes are gone");
        ok(strstr(o.data, "has been removed by the mail gateway") && strstr(o.data, "bad.exe"),
           "placeholder text names the object");
        ok(strstr(o.data, "checked for viruses by mailgw") != NULL, "disclaimer added");
        is_int(count_parts(r, "text/plain"), 3, "body + placeholder + disclaimer parts");
        ok(strstr(o.data, "X-Anti-Virus") == NULL, "AddXHeader=no: no header");
        mime_msg_free(r);
    }
    buf_free(&o);
}

static void test_templates(void)
{
    struct buf d = BUF_INIT;
    char text[4300];
    write_file("/tmp/policy.t.bad.tmpl", "Hello %NO_SUCH_MACRO%\n");
    snprintf(text, sizeof text, BASE "[mailgw.group:g]\nRecipients = *\n"
             "NotifyAdminTemplate = /tmp/policy.t.bad.tmpl\n");
    ok(load(text, &d) == NULL, "a broken template is a config error");
    if (!ok(d.data && strstr(d.data, "t.conf:9: NotifyAdminTemplate: /tmp/policy.t.bad.tmpl:1:"),
       "diagnostic names config line and template line"))
        tap_diag("%s", d.data);
    snprintf(text, sizeof text, BASE "[mailgw.policy]\nPlaceholderTemplate = nosuch\n");
    ok(load(text, &d) == NULL, "a set template that is missing is an error");
    unlink("/tmp/policy.t.bad.tmpl");
    static const char *const files[][2] = {
        { "NotifyAdminTemplate", "notify-admin" }, { "NotifySenderTemplate", "notify-sender" },
        { "NotifyRecipientTemplate", "notify-recipient" },
        { "PlaceholderTemplate", "placeholder" }, { "DisclaimerTemplate", "disclaimer" },
    };
    for (size_t i = 0; i < 5; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/conf/templates/%s", srcdir, files[i][1]);
        char *t = read_file(path);
        is_str(policy_builtin_text(files[i][0]), t ? t : "(unreadable)", files[i][1]);
        free(t);
    }
    struct conf *c = load(BASE, &d);
    ok(c && policy_template(c, -1, "NotifyAdminTemplate") != NULL,
       "default template file absent: the built-in one");
    conf_free(c);
    snprintf(text, sizeof text, "%s/conf/mailgw.conf", srcdir);
    c = conf_load(text, &d);
    if (!ok(c != NULL, "conf/mailgw.conf loads"))
        tap_diag("%s", d.data);
    ok(c && conf_group_template(c, -1, "NotifyAdminTemplate") != NULL,
       "shipped config: templates found next to it");
    conf_free(c);
    buf_free(&d);
}

int main(void)
{
    const char *s = getenv("MAILGW_SRCDIR");
    if (s)
        snprintf(srcdir, sizeof srcdir, "%s", s);
    else if (getcwd(srcdir, sizeof srcdir) == NULL)
        return 1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/policy.t.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    test_groups();
    test_rewrite();
    test_templates();
    char path[300];
    snprintf(path, sizeof path, "%s/t.conf", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return tap_done();
}
