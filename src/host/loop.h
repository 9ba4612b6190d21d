/*
 * loop.h: the launcher's main event loop.
 *
 * The main thread waits here for host-side input: the terminal, signals,
 * and the stop request.  Devices that need a thread of their own (disks,
 * network) have one; small ones (the serial port) just register an fd.
 */
#ifndef HOST_LOOP_H
#define HOST_LOOP_H

#include "lguest.h"

#include <sys/epoll.h>

typedef void (*loop_fn)(void *arg, u32 events);

int loop_add(int fd, u32 events, loop_fn fn, void *arg);
int loop_mod(int fd, u32 events);
void loop_del(int fd);
/* Dispatch events until stop_fd is readable. */
void loop_run_until(int stop_fd);

#endif
