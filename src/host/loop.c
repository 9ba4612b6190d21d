/*
 * loop.c: epoll, with one callback per fd.
 */
#include "host/loop.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

struct loop_entry {
	int fd;
	loop_fn fn;
	void *arg;
};

#define LOOP_MAX 64

static int epfd = -1;
static struct loop_entry entries[LOOP_MAX];

static int loop_init(void)
{
	if (epfd < 0)
		epfd = epoll_create1(EPOLL_CLOEXEC);
	return epfd < 0 ? fail("epoll_create1: %s", strerror(errno)) : 0;
}

static struct loop_entry *loop_find(int fd)
{
	for (int i = 0; i < LOOP_MAX; i++)
		if (entries[i].fn && entries[i].fd == fd)
			return &entries[i];
	return NULL;
}

int loop_add(int fd, u32 events, loop_fn fn, void *arg)
{
	struct epoll_event ev = { .events = events };
	struct loop_entry *e = NULL;

	if (loop_init())
		return -1;
	for (int i = 0; i < LOOP_MAX && !e; i++)
		if (!entries[i].fn)
			e = &entries[i];
	if (!e)
		return fail("event loop is full");
	*e = (struct loop_entry){ fd, fn, arg };
	ev.data.ptr = e;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		e->fn = NULL;
		return fail("epoll_ctl(%d): %s", fd, strerror(errno));
	}
	return 0;
}

int loop_mod(int fd, u32 events)
{
	struct loop_entry *e = loop_find(fd);
	struct epoll_event ev = { .events = events, .data.ptr = e };

	if (!e)
		return -1;
	return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

void loop_del(int fd)
{
	struct loop_entry *e = loop_find(fd);

	if (!e)
		return;
	epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	e->fn = NULL;
}

static void stop_seen(void *arg, u32 events)
{
	*(bool *)arg = true;
}

void loop_run_until(int stop_fd)
{
	bool stop = false;
	struct epoll_event evs[16];

	if (loop_add(stop_fd, EPOLLIN, stop_seen, &stop))
		return;
	while (!stop) {
		int n = epoll_wait(epfd, evs, ARRAY_SIZE(evs), -1);

		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			struct loop_entry *e = evs[i].data.ptr;

			/* An earlier callback in this batch may have removed
			 * this one; its slot then has no function. */
			if (e->fn)
				e->fn(e->arg, evs[i].events);
		}
	}
}
