/*
 * disk.h: the files behind --block.
 *
 *   --block=FILE       read-write
 *   --block=FILE,rw    the same, said explicitly
 *   --block=FILE,ro    read-only: the guest sees a read-only disk
 *
 * FILE is a regular file or a block device whose size is a non-zero
 * multiple of 512.  lguest takes an advisory lock on it (exclusive for
 * read-write, shared for read-only), so two lguests cannot scribble on
 * one disk image; the lock goes away with the process.
 */
#ifndef HOST_DISK_H
#define HOST_DISK_H

#include "lguest.h"

#include <limits.h>

struct virtio_dev;

struct disk_spec {
	char path[PATH_MAX];
	bool ro;
};

/* Split "FILE[,ro|,rw]".  -1 with last_error() set. */
int disk_parse_spec(const char *spec, struct disk_spec *out);

/*
 * Open, check and lock the disk image.  On success *fd (O_CLOEXEC) and
 * *size (bytes) are set and, if id is not NULL, *id is a
 * stable number derived from the file's device and inode.  -1 with
 * last_error() set: a one-line message naming the file and what to do.
 */
int disk_open(const struct disk_spec *d, int *fd, u64 *size, u64 *id);

/*
 * Everything main() needs for one --block option: parse, open, lock, and
 * build the virtio-blk device.  index 0 is the guest's vda, 1 vdb, ...
 * The caller sets (*out)->gm and hands the device to the transport.
 */
int blk_device_create(const char *spec, int index, struct virtio_dev **out);

#endif
