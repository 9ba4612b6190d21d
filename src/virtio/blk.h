/*
 * blk.h: the virtio block device (virtio 1.2, 5.2).
 *
 * One disk image, one request queue, one I/O thread.  The thread waits on
 * the queue's kick eventfd and on io_uring completions, so the vCPUs never
 * wait for the disk and many requests are in flight at once.  Where
 * io_uring is not available (seccomp, old kernels, or LGUEST_NO_IO_URING=1
 * in the environment) the same thread serves requests one at a time with
 * preadv/pwritev.
 */
#ifndef VIRTIO_BLK_H
#define VIRTIO_BLK_H

#include "virtio/virtio.h"

/* Size of the request queue the device offers. */
#define BLK_QUEUE_SIZE	256

/* virtio_blk_new() flags. */
#define BLK_NO_IO_URING	1	/* always serve with preadv/pwritev */

/*
 * A block device backed by fd (which it now owns, and closes when freed).
 * size: bytes, a multiple of 512, captured once: the guest can never grow
 * or shrink the file.  serial: the GET_ID string, at most 20 bytes used.
 * Returns NULL with last_error() set.  The caller sets dev->gm and hands
 * the device to a transport.
 */
struct virtio_dev *virtio_blk_new(int fd, u64 size, bool ro, const char *serial,
				  unsigned flags);
/* Stop the device (as reset does), close the file, free everything. */
void virtio_blk_free(struct virtio_dev *dev);

/* "io_uring" or "sync": how the running (or next) activation serves. */
const char *virtio_blk_backend(const struct virtio_dev *dev);

/*
 * Serve every available request on the calling thread, synchronously,
 * then push and signal: for unit tests and the fuzzer, which drive the
 * queue without the I/O thread.  Only while the device is not activated.
 * Returns the number of requests served, or -1 if the ring is corrupt
 * (virtio_needs_reset() has then been called).
 */
int virtio_blk_serve_sync(struct virtio_dev *dev);

#endif
