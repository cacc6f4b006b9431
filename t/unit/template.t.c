/*
 * template.t - the template language (lib/template): every macro, repeat
 * blocks, literal insertion of values that look like template syntax,
 * errors with file and line, header-safe and message modes, CRLF output,
 * and the shipped templates in conf/templates/ compile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "template/template.h"
#include "util/buf.h"

static struct buf out, err;

/* Compile and expand text; returns the expansion ("" and the error in err
 * when it did not compile). */
static const char *run(const char *text, const struct template_vars *v, unsigned flags)
{
    struct template *t;

    buf_reset(&out);
    buf_reset(&err);
    t = template_compile("t.tmpl", text, strlen(text), &err);
    if (t == NULL)
        return "";
    template_expand(t, v, flags, &out);
    template_free(t);
    return out.data ? out.data : "";
}

static const char *errors(const char *text)
{
    run(text, NULL, 0);
    return err.data ? err.data : "";
}

static void test_every_macro(void)
{
    struct template_vars v;
    const char *const *names = template_macro_names();
    char text[64], want[64];
    int settable = 0;

    template_vars_init(&v);
    for (size_t i = 0; names[i]; i++) {
        if (template_vars_set(&v, names[i], names[i]) < 0)
            continue;
        settable++;
        snprintf(text, sizeof(text), "[%%%s%%]", names[i]);
        snprintf(want, sizeof(want), "[%s]", names[i]);
        if (strcmp(run(text, &v, 0), want) != 0)
            ok(0, "macro %s expands: got '%s'", names[i], out.data ? out.data : "");
    }
    is_int(settable, TEMPLATE_NMACROS, "every settable macro can be set by name and expands");
    ok(template_vars_set(&v, "OBJECT_NAME", "x") < 0, "list fields are not settable globally");
    ok(template_vars_set(&v, "NOPE", "x") < 0, "unknown names are refused");

    template_vars_init(&v);
    v.value[TEMPLATE_SENDER] = "a@example.org";
    v.value[TEMPLATE_RECIPIENTS] = "b@example.test, c@example.test";
    v.value[TEMPLATE_CLIENT_IP] = "192.0.2.1";
    v.value[TEMPLATE_SUBJECT] = "Hello";
    v.value[TEMPLATE_MESSAGE_ID] = "<m@x>";
    v.value[TEMPLATE_STATUS] = "infected";
    v.value[TEMPLATE_VIRUS_NAMES] = "EICAR";
    v.value[TEMPLATE_ACTIONS] = "blocked";
    v.value[TEMPLATE_GROUP] = "policy";
    v.value[TEMPLATE_QUEUE_ID] = "1xX3hl1RTQjzRw";
    v.value[TEMPLATE_DATE] = "Mon, 1 Jan 2024 00:00:00 +0000";
    v.value[TEMPLATE_HOSTNAME] = "gw.example.test";
    is_str(run("%SENDER%|%RECIPIENTS%|%CLIENT_IP%|%SUBJECT%|%MESSAGE_ID%|%STATUS%|"
               "%VIRUS_NAMES%|%ACTIONS%|%GROUP%|%QUEUE_ID%|%DATE%|%HOSTNAME%", &v, 0),
           "a@example.org|b@example.test, c@example.test|192.0.2.1|Hello|<m@x>|infected|"
           "EICAR|blocked|policy|1xX3hl1RTQjzRw|Mon, 1 Jan 2024 00:00:00 +0000|gw.example.test",
           "the issue's macros");
    is_str(run("a%%b %%%SENDER%%% 100%%", &v, 0), "a%b %a@example.org% 100%", "%% is a percent");
    is_str(run("[%CLIENT_NAME%]", &v, 0), "[]", "an unset macro expands to nothing");
    is_str(run("x%TAB%y%CRLF%z%HASH%", &v, 0), "x\ty\r\nz#", "fixed macros");
    v.value[TEMPLATE_DATE] = NULL;
    ok(strlen(run("%DATE%", &v, 0)) > 20 && strchr(out.data, ',') != NULL,
       "DATE defaults to now in RFC 5322 form: %s", out.data ? out.data : "");
    is_str(run("# a comment line\nkept # not a comment\n#another\n", &v, 0),
           "kept # not a comment\n", "lines starting with # are comments");
}

static void test_blocks(void)
{
    struct template_vars v;
    struct template_object objs[] = {
        { "a.exe", "application/x-msdownload", "infected", "EICAR", "remove" },
        { "b.zip", "application/zip", "protected", "", "pass" },
    };
    const char *rcpts[] = { "x@example.test", "y@example.test", "z@example.test" };

    template_vars_init(&v);
    v.objects = objs;
    v.nobjects = 2;
    v.recipients = rcpts;
    v.nrecipients = 3;
    is_str(run("%FOREACH OBJECT%- %OBJECT_NAME% (%OBJECT_TYPE%): %OBJECT_STATUS% "
               "%OBJECT_VIRUS% -> %OBJECT_ACTION%\n%END%done", &v, 0),
           "- a.exe (application/x-msdownload): infected EICAR -> remove\n"
           "- b.zip (application/zip): protected  -> pass\ndone",
           "FOREACH OBJECT repeats once per object");
    is_str(run("to:%FOREACH RECIPIENT% <%RECIPIENT_ADDR%>%END%.", &v, 0),
           "to: <x@example.test> <y@example.test> <z@example.test>.", "FOREACH RECIPIENT");
    v.nobjects = 0;
    is_str(run("[%FOREACH OBJECT%x%END%]", &v, 0), "[]", "an empty list repeats nothing");
    is_str(run("%FOREACH OBJECT%a%END%%FOREACH OBJECT%b%END%", &v, 0), "",
           "two blocks in a row");
}

static void test_literal_values(void)
{
    struct template_vars v;
    struct template_object obj = { "%SENDER%.exe", "%END%", "%FOREACH OBJECT%", "%%", "%" };

    template_vars_init(&v);
    v.value[TEMPLATE_SENDER] = "evil@example.org";
    v.value[TEMPLATE_SUBJECT] = "%SENDER% %FOREACH OBJECT% %END% %% $(rm -rf /) `id`";
    v.objects = &obj;
    v.nobjects = 1;
    is_str(run("Subject: %SUBJECT%", &v, 0),
           "Subject: %SENDER% %FOREACH OBJECT% %END% %% $(rm -rf /) `id`",
           "a value with template syntax is inserted literally, never re-scanned");
    is_str(run("%FOREACH OBJECT%%OBJECT_NAME%|%OBJECT_TYPE%|%OBJECT_STATUS%|%OBJECT_VIRUS%|"
               "%OBJECT_ACTION%%END%", &v, 0),
           "%SENDER%.exe|%END%|%FOREACH OBJECT%|%%|%", "object values are literal too");
}

static void test_errors(void)
{
    is_str(errors("line one\nHello %FOO%\n"), "t.tmpl:2: unknown macro %FOO%\n",
           "unknown macro, with file and line");
    is_str(errors("a\nb\n%FOREACH OBJECT%\nx\n"), "t.tmpl:3: unterminated block %FOREACH OBJECT%\n",
           "unterminated block, at the line that opened it");
    is_str(errors("x\n%END%\n"), "t.tmpl:2: %END% without a %FOREACH% block\n",
           "END without a block");
    is_str(errors("100% sure\n"), "t.tmpl:1: unterminated macro (write %% for a percent sign)\n",
           "a lone percent sign");
    is_str(errors("%SENDER\n%"), "t.tmpl:1: unterminated macro (write %% for a percent sign)\n",
           "a macro does not span lines");
    is_str(errors("%OBJECT_NAME%"), "t.tmpl:1: macro outside its block %OBJECT_NAME%\n",
           "object macros only inside FOREACH OBJECT");
    is_str(errors("%FOREACH RECIPIENT%%OBJECT_NAME%%END%"),
           "t.tmpl:1: macro outside its block %OBJECT_NAME%\n", "object macro in a recipient block");
    is_str(errors("%FOREACH OBJECT%%FOREACH OBJECT%%END%%END%"),
           "t.tmpl:1: nested block %FOREACH OBJECT%\n", "blocks do not nest");
    is_str(errors("%FOREACH THING%%END%"), "t.tmpl:1: unknown block %FOREACH THING%\n",
           "unknown list");
    is_str(errors("a\n\n\n%foo bar\x01%"), "t.tmpl:4: unknown macro %foo bar?%\n",
           "control characters in the diagnostic are replaced");
    ok(strlen(errors("ok %SENDER%\n")) == 0, "a good template has no diagnostics");
    {
        char *big = malloc(TEMPLATE_MAX_SIZE + 2);
        memset(big, 'a', TEMPLATE_MAX_SIZE + 1);
        big[TEMPLATE_MAX_SIZE + 1] = 0;
        ok(strstr(errors(big), "larger than") != NULL, "oversized template refused");
        free(big);
    }
    buf_reset(&err);
    ok(template_load("/nonexistent/notify-admin", &err) == NULL
           && strstr(err.data, "/nonexistent/notify-admin: cannot open") != NULL,
       "a missing file is reported with its path");
}

static void test_header_modes(void)
{
    struct template_vars v;

    template_vars_init(&v);
    v.value[TEMPLATE_SUBJECT] = "hi\r\nBcc: victim@example.org\r\n\r\nbody\x01\x7f" "end";
    is_str(run("Subject: %SUBJECT%", &v, TEMPLATE_HEADER_SAFE),
           "Subject: hi Bcc: victim@example.org body end",
           "header-safe: CR/LF/controls become one space, no header injection");
    is_str(run("Subject: [virus] %SUBJECT%\n\nSubject was: %SUBJECT%\n", &v, TEMPLATE_MESSAGE),
           "Subject: [virus] hi Bcc: victim@example.org body end\n\n"
           "Subject was: hi\r\nBcc: victim@example.org\r\n\r\nbody\x01\x7f" "end\n",
           "message mode: header-safe before the first empty line, literal after");
    v.value[TEMPLATE_SUBJECT] = "a\nb\rc";
    is_str(run("S: %SUBJECT%\n\nbody %SUBJECT%\nend\n", &v, TEMPLATE_MESSAGE | TEMPLATE_CRLF),
           "S: a b c\r\n\r\nbody a\r\nb\r\nc\r\nend\r\n",
           "CRLF output: template and body values get CRLF line ends");
    buf_reset(&out);
    template_header_safe(&out, "x\r\n\ty");
    is_str(out.data, "x y", "template_header_safe collapses a run of controls");
}

static void test_shipped_templates(void)
{
    static const char *const names[] = { "notify-admin", "notify-sender", "notify-recipient",
                                         "placeholder", "disclaimer" };
    struct template_vars v;
    struct template_object obj = { "eicar.com", "application/octet-stream", "infected",
                                   "EICAR-Test-File", "remove" };

    template_vars_init(&v);
    v.value[TEMPLATE_SENDER] = "s@example.org";
    v.value[TEMPLATE_VIRUS_NAMES] = "EICAR-Test-File";
    v.objects = &obj;
    v.nobjects = 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        struct template *t;
        snprintf(path, sizeof(path), "conf/templates/%s", names[i]);
        buf_reset(&err);
        buf_reset(&out);
        t = template_load(path, &err);
        ok(t != NULL, "%s compiles%s%s", path, err.len ? ": " : "", err.len ? err.data : "");
        if (t == NULL)
            continue;
        template_expand(t, &v, TEMPLATE_MESSAGE | TEMPLATE_CRLF, &out);
        ok(out.len > 0 && strstr(out.data, "%") == NULL, "%s expands without stray macros",
           path);
        if (strncmp(names[i], "notify", 6) == 0)
            ok(strstr(out.data, "Subject: ") == out.data || strstr(out.data, "\r\nSubject: "),
               "%s starts with headers including Subject", path);
        template_free(t);
    }
}

int main(void)
{
    test_every_macro();
    test_blocks();
    test_literal_values();
    test_errors();
    test_header_modes();
    test_shipped_templates();
    buf_free(&out);
    buf_free(&err);
    return tap_done();
}
