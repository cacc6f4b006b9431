/*
 * fuzz/template - libFuzzer target for the template language
 * (lib/template): the input is compiled with template_compile(); when it
 * compiles it is expanded in every mode with values and objects that are
 * themselves template syntax, control characters and CR/LF.  Any crash,
 * leak, hang or sanitizer report is a bug: a bad template must only give
 * diagnostics.  Checked invariants: a refused template always has a
 * diagnostic; header-safe expansion of CR/LF-laden values adds no CR or
 * LF beyond what the template text itself has.  Seeds: t/fuzz/template/
 * (the shipped conf/templates and some broken ones).
 */
#include "template/template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t count_nl(const char *p, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += p[i] == '\n' || p[i] == '\r';
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char evil[] = "%SENDER%\r\n%FOREACH OBJECT%%END%%%\x01\x7f";
    struct template_object objs[2] = { { evil, evil, evil, evil, evil },
                                       { "a", NULL, "b", NULL, "c" } };
    const char *rcpts[2] = { evil, "r@example.test" };
    struct template_vars v;
    struct buf err = BUF_INIT, out = BUF_INIT, plain = BUF_INIT;
    struct template *t = template_compile("fuzz", (const char *)data, size, &err);

    if (t == NULL) {
        if (err.len == 0)
            abort();
        buf_free(&err);
        return 0;
    }
    template_vars_init(&v);
    for (int i = 0; i < TEMPLATE_NMACROS; i++)
        v.value[i] = (i % 3 == 0) ? evil : (i % 3 == 1) ? NULL : "x";
    v.objects = objs;
    v.nobjects = 2;
    v.recipients = rcpts;
    v.nrecipients = 2;
    template_expand(t, &v, TEMPLATE_HEADER_SAFE, &out);
    /* the same template with every value empty: the newlines of the text */
    template_vars_init(&v);
    v.objects = (struct template_object[2]){ { "", "", "", "", "" }, { "", "", "", "", "" } };
    v.nobjects = 2;
    v.recipients = (const char *[2]){ "", "" };
    v.nrecipients = 2;
    template_expand(t, &v, TEMPLATE_HEADER_SAFE, &plain);
    if (count_nl(out.data ? out.data : "", out.len)
        != count_nl(plain.data ? plain.data : "", plain.len))
        abort();
    buf_reset(&out);
    template_expand(t, NULL, TEMPLATE_MESSAGE | TEMPLATE_CRLF, &out);
    template_free(t);
    buf_free(&err);
    buf_free(&out);
    buf_free(&plain);
    return 0;
}
