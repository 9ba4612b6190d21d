/*
 * tap.h: a few lines of TAP (Test Anything Protocol), so that every test
 * binary speaks the same language as prove, the runner `make check` uses.
 */
#ifndef TAP_H
#define TAP_H

#include <stdbool.h>

void tap_plan(int n);
/* Report one check; returns cond so tests can stop early on failure. */
bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the plan if none was given and return the exit status. */
int tap_done(void);

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)
/* got == want, both shown when not; each argument is evaluated once. */
bool tap_is_int(long long got, long long want, const char *name);
#define is_int(got, want, name) tap_is_int((long long)(got), (long long)(want), name)

#endif
