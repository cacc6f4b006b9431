/* tap - see tap.h. */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count, tap_failed, tap_planned;

void tap_plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

void tap_plan_skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    exit(0);
}

int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond)
        tap_failed++;
    return cond;
}

void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

int tap_is_str(const char *got, const char *want, const char *name)
{
    int same = (got == NULL && want == NULL) ||
               (got != NULL && want != NULL && strcmp(got, want) == 0);
    if (!tap_ok(same, "%s", name))
        tap_diag("got '%s', want '%s'", got ? got : "(null)", want ? want : "(null)");
    return same;
}

int tap_is_int(long long got, long long want, const char *name)
{
    if (!tap_ok(got == want, "%s", name))
        tap_diag("got %lld, want %lld", got, want);
    return got == want;
}

int tap_done(void)
{
    if (!tap_planned)
        printf("1..%d\n", tap_count);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}
