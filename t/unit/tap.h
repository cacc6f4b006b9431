/* tap - minimal TAP producer for the C unit tests (run under prove). */
#ifndef MAILGW_TAP_H
#define MAILGW_TAP_H

#include <stddef.h>

void tap_plan(int n);
void tap_plan_skip_all(const char *why);
int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tap_is_str(const char *got, const char *want, const char *name);
int tap_is_int(long long got, long long want, const char *name);
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tap_done(void);           /* prints the plan if none was given; exit code */

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)
#define is_str(g, w, n) tap_is_str((g), (w), (n))
#define is_int(g, w, n) tap_is_int((long long)(g), (long long)(w), (n))

#endif
