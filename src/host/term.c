/*
 * term.c: stdin, raw mode, and the escape key.
 *
 * When stdin is a terminal the guest should see every key as typed, so we
 * switch it to raw mode, and promise (through the cleanup list) to switch
 * it back however we exit.  Ctrl-A is our escape: Ctrl-A x quits, Ctrl-A
 * Ctrl-A sends a Ctrl-A, as in QEMU.  When stdin is a pipe or /dev/null,
 * it is read as it is; end of input just means no more input.
 *
 * Bytes are read only when the guest's console has room for them: what
 * the user typed before the guest was listening waits in the console's
 * buffer, and beyond that in the kernel's tty buffer, never dropped.
 */
#include "host/term.h"
#include "host/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#define CTRL_A 0x01

static struct {
	term_sink sink;
	void *arg;
	void (*quit)(void);
	bool is_tty, pollable, escape, paused, eof;
	int wake_fd;
	struct termios saved;
	u8 pending[256];	/* read but not yet taken by the sink */
	size_t n_pending, off_pending;
} term;

static void term_restore(void *arg)
{
	tcsetattr(STDIN_FILENO, TCSANOW, &term.saved);
}

/* Hand over what we hold; true if the sink took all of it. */
static bool term_flush(void)
{
	while (term.off_pending < term.n_pending) {
		size_t n = term.sink(term.arg, term.pending + term.off_pending,
				     term.n_pending - term.off_pending);

		if (n == 0)
			return false;
		term.off_pending += n;
	}
	term.n_pending = term.off_pending = 0;
	return true;
}

/* Ctrl-A handling on raw terminal input; returns bytes kept in buf. */
static size_t term_escape(u8 *buf, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		u8 c = buf[i];

		if (term.escape) {
			term.escape = false;
			if (c == 'x' || c == 'X') {
				verbose("Ctrl-A x: quitting");
				term.quit();
				return out;
			}
			if (c == CTRL_A)
				buf[out++] = CTRL_A;
			continue;	/* unknown escapes are swallowed */
		}
		if (c == CTRL_A) {
			term.escape = true;
			continue;
		}
		buf[out++] = c;
	}
	return out;
}

static void term_pause(void)
{
	term.paused = true;
	if (term.pollable)
		loop_mod(STDIN_FILENO, 0);
}

static void term_wake(void)
{
	u64 one = 1;

	if (write(term.wake_fd, &one, sizeof(one)) < 0)
		abort();	/* an eventfd write cannot fail */
}

/*
 * Move input towards the guest: first what we already hold, then (when
 * the caller knows a read won't block) one more read.  Runs on the main
 * thread only, so the sink is never entered from two threads.
 */
static void term_pump(bool can_read)
{
	ssize_t n;

	if (!term_flush()) {
		term_pause();
		return;
	}
	if (!can_read || term.eof)
		return;
	n = read(STDIN_FILENO, term.pending, sizeof(term.pending));
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		/* End of input: the guest gets no more, and keeps running. */
		term.eof = true;
		if (term.pollable)
			loop_del(STDIN_FILENO);
		return;
	}
	term.n_pending = term.is_tty ? term_escape(term.pending, n) : (size_t)n;
	term.off_pending = 0;
	if (!term_flush()) {
		term_pause();
		return;
	}
	/* A file or /dev/null never becomes "readable" in epoll's sense:
	 * keep reading it on our own wake-ups until it ends. */
	if (!term.pollable)
		term_wake();
}

static void term_readable(void *arg, u32 events)
{
	term_pump(true);
}

static void term_woken(void *arg, u32 events)
{
	u64 v;

	if (read(term.wake_fd, &v, sizeof(v)) < 0)
		return;
	if (term.paused) {
		term.paused = false;
		if (term.pollable && !term.eof)
			loop_mod(STDIN_FILENO, EPOLLIN);
	}
	term_pump(!term.pollable);
}

/* Called from any thread when the sink has room again. */
void term_resume(void)
{
	term_wake();
}

int term_init(term_sink sink, void *arg, void (*quit)(void))
{
	term.sink = sink;
	term.arg = arg;
	term.quit = quit;
	term.is_tty = isatty(STDIN_FILENO);
	if (term.is_tty && tcgetattr(STDIN_FILENO, &term.saved) == 0) {
		struct termios raw = term.saved;

		cfmakeraw(&raw);
		/* Raw output too: the guest's own tty layer already turns
		 * "\n" into "\r\n". */
		at_cleanup(term_restore, NULL);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	term.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (term.wake_fd < 0 || loop_add(term.wake_fd, EPOLLIN, term_woken, NULL))
		return fail("cannot set up console input: %s", strerror(errno));
	/* epoll refuses regular files and /dev/null; those are read on our
	 * own wake-ups instead, starting now. */
	term.pollable = loop_add(STDIN_FILENO, EPOLLIN, term_readable, NULL) == 0;
	if (!term.pollable)
		term_wake();
	return 0;
}
