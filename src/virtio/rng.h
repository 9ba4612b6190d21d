/*
 * rng.h: the virtio entropy device (virtio 1.2, 5.4), hwrng in the guest.
 */
#ifndef VIRTIO_RNG_H
#define VIRTIO_RNG_H

#include "virtio/virtio.h"

#define RNG_QUEUE_SIZE		64
/* Most bytes we put into one request: a guest asking for a gigabyte gets
 * this much and asks again, so no request monopolises the thread. */
#define RNG_MAX_PER_REQUEST	(64 * 1024)

/*
 * An entropy device filling the guest's buffers from getrandom(), on a
 * thread of its own.  NULL with last_error() set.  The caller sets dev->gm
 * and hands the device to a transport.
 */
struct virtio_dev *rng_create(void);
/* Stop the device (as reset does) and free it. */
void rng_free(struct virtio_dev *dev);

#endif
