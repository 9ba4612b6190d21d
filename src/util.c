/*
 * util.c: tracing, error lines and the undo list.
 *
 * These are tiny, but they carry a promise made in the README: whatever
 * way lguest ends, the terminal is restored and no tap is left behind.
 * That promise lives in at_cleanup()/run_cleanups().
 */
#include "lguest.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

bool verbose_on;

u64 monotonic_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (u64)t.tv_sec * 1000000000 + t.tv_nsec;
}

void thread_name(pthread_t t, const char *name)
{
	char full[16];

	snprintf(full, sizeof(full), "lg-%s", name);
	pthread_setname_np(t, full);
}

/* Seconds since lguest started, for the trace: where the time goes. */
static double elapsed(void)
{
	static u64 t0;
	u64 t = monotonic_ns();

	if (!t0)
		t0 = t;
	return (t - t0) / 1e9;
}

void verbose(const char *fmt, ...)
{
	va_list ap;

	if (!verbose_on)
		return;
	va_start(ap, fmt);
	/* One line at a time: threads trace too. */
	flockfile(stderr);
	fprintf(stderr, "lguest: [%8.3f] ", elapsed());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

void warn_user(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	flockfile(stderr);
	fputs("lguest: warning: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

/* Per thread, so an I/O thread's failure never garbles a vCPU's message. */
static __thread char error_line[512];

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(error_line, sizeof(error_line), fmt, ap);
	va_end(ap);
	return -1;
}

const char *last_error(void)
{
	return error_line[0] ? error_line : "unknown error";
}

struct cleanup {
	void (*fn)(void *);
	void *arg;
};

static struct cleanup cleanups[32];
static int n_cleanups;
static pthread_mutex_t cleanup_lock = PTHREAD_MUTEX_INITIALIZER;

void at_cleanup(void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&cleanup_lock);
	if (n_cleanups == ARRAY_SIZE(cleanups)) {
		/* A fixed table is a host invariant: more undo steps than we
		 * can hold is a bug in lguest, not something to limp past. */
		fprintf(stderr, "lguest: too many cleanup handlers\n");
		abort();
	}
	cleanups[n_cleanups++] = (struct cleanup){ fn, arg };
	pthread_mutex_unlock(&cleanup_lock);
}

void run_cleanups(void)
{
	pthread_mutex_lock(&cleanup_lock);
	/* Newest first, and each only once even if we are called twice. */
	while (n_cleanups > 0) {
		struct cleanup c = cleanups[--n_cleanups];

		c.fn(c.arg);
	}
	pthread_mutex_unlock(&cleanup_lock);
}

_Noreturn void lguest_exit(int status)
{
	run_cleanups();
	fflush(stdout);
	fflush(stderr);
	_exit(status);
}

static _Noreturn void die_with(int status, const char *fmt, va_list ap)
{
	char line[600];

	vsnprintf(line, sizeof(line), fmt, ap);
	/* Undo first: a raw-mode terminal would mangle the message. */
	run_cleanups();
	fprintf(stderr, "lguest: %s\n", line);
	fflush(stdout);
	_exit(status);
}

_Noreturn void die_input(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	die_with(EXIT_USAGE, fmt, ap);
}

_Noreturn void die_host(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	die_with(EXIT_LAUNCHER, fmt, ap);
}
