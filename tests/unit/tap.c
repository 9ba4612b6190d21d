/* tap.c: the TAP writer behind tap.h. */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>

static int planned = -1, run, failed;

void tap_plan(int n)
{
	planned = n;
	printf("1..%d\n", n);
}

bool tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	run++;
	if (!cond)
		failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

bool tap_is_int(long long got, long long want, const char *name)
{
	return tap_ok(got == want, "%s (got %lld, want %lld)", name, got, want);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

int tap_done(void)
{
	if (planned < 0)
		printf("1..%d\n", run);
	fflush(stdout);
	return failed || (planned >= 0 && planned != run) ? 1 : 0;
}
