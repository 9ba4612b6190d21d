/*
 * uring.h: one file registered with an io_uring, as the disk and the tap
 * each use theirs.
 *
 * Registered, the file is named by index 0 with IOSQE_FIXED_FILE, and the
 * kernel takes and drops no reference to it per operation (atomics, as
 * lguest is threaded).  The ring then holds a reference of its own, which
 * must go before the ring does: the kernel frees a ring when it gets round
 * to it, and until then the file would outlive our close() - a disk's lock
 * (disk.c) or a tap (which the kernel deletes at its last close).
 */
#ifndef HOST_URING_H
#define HOST_URING_H

#include "lguest.h"

#include <liburing.h>

struct uring_file {
	int fd;			/* what an SQE names: the index, or the descriptor */
	u8 sqe_flags;		/* IOSQE_FIXED_FILE if registered, else 0 */
};

/* Register fd with ring; if the kernel refuses, the plain descriptor serves. */
static inline struct uring_file uring_file_register(struct io_uring *ring, int fd)
{
	if (io_uring_register_files(ring, &fd, 1) == 0)
		return (struct uring_file){ 0, IOSQE_FIXED_FILE };
	return (struct uring_file){ fd, 0 };
}

/* The ring goes, its reference to the file first. */
static inline void uring_file_exit(struct io_uring *ring, struct uring_file f)
{
	if (f.sqe_flags)
		io_uring_unregister_files(ring);
	io_uring_queue_exit(ring);
}

#endif
