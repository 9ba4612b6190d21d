/*
 * queue.h: the split virtqueue, seen from the device side.
 *
 * This is where hostile input arrives.  The ring lives in guest memory and
 * the guest may rewrite any of it at any moment, so every index read from
 * it is checked before use, every chain walk is bounded by the queue size,
 * and every buffer goes through guest_ptr().  A request that is merely bad
 * is the device's business (error status); a ring that is corrupt makes
 * vq_pop() return -1 and the device asks for NEEDS_RESET.
 *
 * Threads: the transport fills in the fields under "set by the transport"
 * and calls vq_start()/vq_reset() while the device is stopped.  Between
 * activate and reset, exactly one device thread pops, pushes and signals.
 */
#ifndef VIRTIO_QUEUE_H
#define VIRTIO_QUEUE_H

#include "guest_mem.h"

#include <sys/uio.h>

/* Longest chain we accept, direct or through one indirect table. */
#define VQ_MAX_SEGS	1024
/* Largest queue the split ring allows (virtio 1.2, 2.7: 2^15). */
#define VQ_MAX_SIZE	32768
/* msix_vector value meaning "no vector" (virtio 1.2, 4.1.5.1.2). */
#define VQ_NO_VECTOR	0xffff

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
	u16 seen_avail;			/* avail->idx when we last read it */
	u16 used_idx;			/* shadow of used->idx */
	u16 signalled_used;		/* used_idx at the last vq_need_signal() */
	bool signalled_valid;
	bool last_need;			/* what vq_need_signal() said then */
	bool broken;			/* saw a corrupt ring; stop touching it */

	int kick_fd;			/* eventfd the guest's notify write signals */
	int call_fd;			/* eventfd that interrupts the guest (may be -1) */

	/* Activity since the launcher started (kept across resets), for
	 * the --verbose report at exit.  One writer each: the device. */
	struct vq_stats {
		u64 kicks, chains, interrupts;
	} stats;
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
 * guest RAM with the alignment the spec requires.  -1 (with last_error()
 * set): the driver gave us a bad ring (the caller sets NEEDS_RESET).
 */
int vq_start(struct virtqueue *vq, const struct guest_mem *gm, bool event_idx, bool indirect);
/*
 * Back to the reset state: size 0, not ready, no vector, no ring.  Keeps
 * kick_fd/call_fd; the transport sets size back to the device's maximum.
 */
void vq_reset(struct virtqueue *vq);

/* 1: a chain was taken into *c; 0: nothing available; -1: ring corrupt. */
int vq_pop(struct virtqueue *vq, struct vq_chain *c);
/* Give a chain back with `len` bytes written into its in-buffers. */
void vq_push(struct virtqueue *vq, u16 head, u32 len);
/*
 * The same in two steps, for chains that must appear together: vq_fill()
 * writes a used entry the driver cannot see yet, vq_flush() publishes all
 * entries filled so far.  (A mergeable-rx frame spans several chains, and
 * a driver that saw the first before the rest would drop the frame.)
 */
void vq_fill(struct virtqueue *vq, u16 head, u32 len);
void vq_flush(struct virtqueue *vq);
/*
 * After pushes: does the driver want an interrupt now?  (EVENT_IDX's
 * used_event, else the avail ring's NO_INTERRUPT flag.)  virtio_signal()
 * asks this before calling the transport.  Asking again with no push in
 * between gives the same answer, so a transport that also asks loses
 * nothing.
 */
bool vq_need_signal(struct virtqueue *vq);
/* Ask for (or stop asking for) kicks; returns true if more arrived meanwhile. */
bool vq_enable_kicks(struct virtqueue *vq);
void vq_disable_kicks(struct virtqueue *vq);
/* Are there available buffers not yet popped? */
bool vq_has_avail(struct virtqueue *vq);
/* How many, as the driver's index says (a hint: vq_pop checks it). */
u16 vq_avail_count(struct virtqueue *vq);
/* Put the last n chains popped (none used) back on the avail side. */
void vq_unpop(struct virtqueue *vq, u16 n);
/* Bytes of used buffers since the used index *seen (advanced); see queue.c. */
u64 vq_used_bytes_since(const struct virtqueue *vq, u16 *seen);
/*
 * Both sides' ring indices and suppression state, as one line into buf
 * (for a stuck-guest dump: who is waiting for whom).  Racy by nature:
 * the device and the driver keep going while we read.
 */
void vq_describe(struct virtqueue *vq, char *buf, size_t len);

/* Bump a counter only its one writer updates; readers may be elsewhere. */
static inline void vq_count(u64 *counter, u64 n)
{
	__atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

/* Copy helpers across a chain's iovecs (bounded by the chain). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);

#endif
