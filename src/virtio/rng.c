/*
 * rng.c: the virtio entropy device (virtio 1.2, 5.4).
 *
 * A guest kernel starts with little entropy of its own; this gives it the
 * host's.  The driver posts device-writable buffers on the one request
 * queue; we fill them from getrandom() and give them back with the number
 * of bytes written.  That is the whole protocol: no configuration, no
 * features.
 *
 * The filling happens on the device's own thread, woken by the queue's
 * kick eventfd, so a vCPU never waits for it.  Each request gets at most
 * RNG_MAX_PER_REQUEST bytes (the used length says how many), so a guest
 * posting huge buffers only gets a partial fill, never our whole time.
 */
#include "virtio/rng.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct rng {
	struct virtio_dev vdev;
	struct worker worker;
	struct vq_chain chain;		/* vq_pop's scratch */
};

/* The transport hands us the generic device; our state is behind it. */
static struct rng *to_rng(const struct virtio_dev *dev)
{
	return dev->priv;
}

/*
 * Random bytes straight into guest memory (the iovecs were checked by
 * vq_pop).  getrandom() returns short only when interrupted, and for
 * large requests; we just go on.  Returns bytes written.
 */
static u32 rng_fill(const struct iovec *iov, unsigned n, u32 max)
{
	u32 done = 0;

	for (unsigned i = 0; i < n && done < max; i++) {
		u8 *p = iov[i].iov_base;
		size_t want = MIN(iov[i].iov_len, (size_t)(max - done));

		while (want) {
			ssize_t got = getrandom(p, want, 0);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				/* The host's generator failed: give what we
				 * have rather than bytes that are not random. */
				verbose("virtio-rng: getrandom: %s", strerror(errno));
				return done;
			}
			p += got;
			want -= got;
			done += got;
		}
	}
	return done;
}

/*
 * Serve every available request, then signal once.  A chain with no
 * writable buffer gets length 0: there is nothing to fill, and nothing
 * wrong with the ring.  Kicks are off while we drain.
 */
static void rng_serve(struct rng *r)
{
	struct virtqueue *vq = &r->vdev.vqs[0];
	bool pushed = false;
	int rc;

	/* Already reported; a broken ring is not touched again. */
	if (vq->broken)
		return;
	do {
		vq_disable_kicks(vq);
		while ((rc = vq_pop(vq, &r->chain)) > 0) {
			u32 n = rng_fill(r->chain.iov + r->chain.n_out, r->chain.n_in,
					 RNG_MAX_PER_REQUEST);

			vq_push(vq, r->chain.head, n);
			pushed = true;
		}
	} while (rc == 0 && vq_enable_kicks(vq));
	if (pushed)
		virtio_signal(&r->vdev, 0);
	if (rc < 0) {
		verbose("virtio-rng: %s; device needs reset", last_error());
		virtio_needs_reset(&r->vdev);
	}
}

/* The device thread: wakes on a kick, or on reset's stop. */
static void *rng_thread(void *arg)
{
	struct rng *r = arg;
	struct pollfd pfd[2] = {
		{ .fd = r->worker.stop_fd, .events = POLLIN },
		{ .fd = r->vdev.vqs[0].kick_fd, .events = POLLIN },
	};

	/* The driver may have kicked before we listened. */
	rng_serve(r);
	while (worker_wait(pfd, 2, "entropy device")) {
		if (pfd[1].revents) {
			vq_kicked(&r->vdev.vqs[0]);
			rng_serve(r);
		}
	}
	return NULL;
}

/* DRIVER_OK: the queue is set up; start the thread. */
static int rng_activate(struct virtio_dev *dev)
{
	struct rng *r = to_rng(dev);
	int err;

	if (r->worker.running)
		return 0;
	if (!dev->vqs[0].desc || dev->vqs[0].kick_fd < 0)
		return fail("virtio-rng: activated before its queue was set up");
	err = worker_start(&r->worker, "rng", rng_thread, r);
	if (err)
		return fail("virtio-rng: cannot start its thread: %s", strerror(err));
	return 0;
}

/* Driver reset: stop the thread; then nothing of ours touches the guest. */
static void rng_reset(struct virtio_dev *dev)
{
	worker_stop(&to_rng(dev)->worker);
}

/* No device-specific features (5.4.3): the ring is the whole interface. */
static u64 rng_features(struct virtio_dev *dev)
{
	return 0;
}

static const struct virtio_dev_ops rng_ops = {
	.name = "rng",
	.device_id = VIRTIO_ID_RNG,
	.n_queues = 1,
	.queue_size = RNG_QUEUE_SIZE,
	.config_size = 0,
	.features = rng_features,
	.activate = rng_activate,
	.reset = rng_reset,
};

/* A reset device with no queue set up yet. */
struct virtio_dev *rng_create(void)
{
	struct rng *r = calloc(1, sizeof(*r));

	if (!r) {
		fail("virtio-rng: out of memory");
		return NULL;
	}
	virtio_dev_init(&r->vdev, &rng_ops, r);
	r->worker.stop_fd = -1;
	return &r->vdev;
}

/* Only after the transport let go of the device. */
void rng_free(struct virtio_dev *dev)
{
	if (!dev)
		return;
	rng_reset(dev);
	free(to_rng(dev));
}
