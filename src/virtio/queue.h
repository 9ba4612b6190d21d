/*
 * queue.h: the split virtqueue, seen from the device side.
 *
 * This is where hostile input arrives.  The ring lives in guest memory and
 * the guest may rewrite any of it at any moment, so every index read from
 * it is checked before use, every chain walk is bounded by the queue size,
 * and every buffer goes through guest_ptr().  A request that is merely bad
 * is the device's business (error status); a ring that is corrupt makes
 * vq_pop() return -1 and the device asks for NEEDS_RESET.
 */
#ifndef VIRTIO_QUEUE_H
#define VIRTIO_QUEUE_H

#include "guest_mem.h"

#include <sys/uio.h>

/* Longest chain we accept, direct or through one indirect table. */
#define VQ_MAX_SEGS	1024

struct virtqueue {
	/* Set by the transport from the driver's writes. */
	u16 size;			/* entries, power of 2, <= max */
	bool ready;
	u64 desc_gpa, avail_gpa, used_gpa;
	u16 msix_vector;

	/* Set at vq_start() from the negotiated features. */
	const struct guest_mem *gm;
	bool event_idx;
	bool indirect;
	void *desc, *avail, *used;	/* host views, ranges checked at start */

	/* Device-side state. */
	u16 last_avail;			/* next avail entry to pop */
	u16 used_idx;			/* shadow of used->idx */
	u16 signalled_used;		/* used_idx at the last interrupt */
	bool signalled_valid;
	bool broken;			/* saw a corrupt ring; stop touching it */

	int kick_fd;			/* eventfd the guest's notify write signals */
	int call_fd;			/* eventfd that interrupts the guest (may be -1) */
};

/* One request: the chain's buffers, device-readable (out) first. */
struct vq_chain {
	u16 head;
	u32 n_out, n_in;		/* iov[0..n_out) readable, then n_in writable */
	u64 out_len, in_len;		/* byte totals */
	struct iovec iov[VQ_MAX_SEGS];
};

/*
 * Resolve the ring addresses once, checking that desc/avail/used lie in
 * guest RAM with the alignment the spec requires.  -1: the driver gave us
 * a bad ring (the caller sets NEEDS_RESET).
 */
int vq_start(struct virtqueue *vq, const struct guest_mem *gm, bool event_idx, bool indirect);
/* Back to the reset state (keeps kick_fd/call_fd). */
void vq_reset(struct virtqueue *vq);

/* 1: a chain was taken into *c; 0: nothing available; -1: ring corrupt. */
int vq_pop(struct virtqueue *vq, struct vq_chain *c);
/* Give a chain back with `len` bytes written into its in-buffers. */
void vq_push(struct virtqueue *vq, u16 head, u32 len);
/* After pushes: does the driver want an interrupt now? (EVENT_IDX/flags) */
bool vq_need_signal(struct virtqueue *vq);
/* Ask for (or stop asking for) kicks; returns true if more arrived meanwhile. */
bool vq_enable_kicks(struct virtqueue *vq);
void vq_disable_kicks(struct virtqueue *vq);
/* Are there available buffers not yet popped? */
bool vq_has_avail(struct virtqueue *vq);

/* Copy helpers across a chain's iovecs (bounded by the chain). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);

#endif
