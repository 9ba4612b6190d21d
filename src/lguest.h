/*
 * lguest.h: the few things every part of the launcher shares.
 *
 * Fixed-width types with short names (the kernel's), the --verbose trace,
 * and the two ways a launcher can fail: the user gave us something we
 * cannot use (exit 2), or the host let us down (exit 1).  Guest input is
 * never a reason to exit: code that parses what a guest wrote returns an
 * error to its caller instead.
 */
#ifndef LGUEST_H
#define LGUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KiB(x) ((u64)(x) << 10)
#define MiB(x) ((u64)(x) << 20)
#define GiB(x) ((u64)(x) << 30)
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((u64)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((u64)(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define CLAMP(x, lo, hi) MIN(MAX((x), (lo)), (hi))

#define LGUEST_VERSION "0.1.0"

/* Exit statuses, documented in README and lguest.1. */
enum {
	EXIT_GUEST_DONE = 0,	/* guest powered off or rebooted */
	EXIT_LAUNCHER = 1,	/* the launcher (or the host) failed */
	EXIT_USAGE = 2,		/* bad command line or bad input file */
	EXIT_GUEST_PANIC = 3,	/* the guest reported a panic */
};

extern bool verbose_on;

/* A line of trace on stderr, only under --verbose. */
void verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Nanoseconds on a clock that never jumps (CLOCK_MONOTONIC). */
u64 monotonic_ns(void);
/* Name a thread "lg-<name>" (cut to the kernel's 15 characters), for
 * top -H, ps -L and a hung launcher's stack dump. */
void thread_name(pthread_t t, const char *name);
/* A warning the user should always see. */
void warn_user(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Library-style error reporting: a function that fails records one line
 * saying what went wrong and returns -1 (or NULL).  The caller decides
 * whether that is the user's fault (die_input) or ours (die_host).  Unit
 * tests read the line back with last_error().
 */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *last_error(void);

/* Print "lguest: <msg>", undo what we set up, and exit 2 / exit 1. */
_Noreturn void die_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void die_host(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Whatever the launcher changes outside itself (a tap device, terminal
 * modes) registers an undo step here; every exit path runs them, newest
 * first.
 */
void at_cleanup(void (*fn)(void *), void *arg);
void run_cleanups(void);
/* Leave with this status after running the undo steps. */
_Noreturn void lguest_exit(int status);

#endif
