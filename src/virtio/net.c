/*
 * net.c: a virtio network card whose wire is a tap.
 *
 * A frame the guest sends goes:
 *	guest kick -> tx thread wakes -> vq_pop -> copy out the header and
 *	check it (virtio_net_check_tx) -> writev(header copy + frame) to
 *	the tap -> used entries, published and signalled once per batch.
 * A frame for the guest goes:
 *	tap readable -> rx thread -> readv straight into the guest's posted
 *	buffer (overflow into a bounce buffer, spread over more buffers with
 *	MRG_RXBUF) -> fix up the header -> publish the frame's chains
 *	together, with the rest of the batch -> interrupt.
 *
 * The rx thread reads the tap only while the guest has buffers posted.
 * Without buffers it stops polling the tap and waits for the guest's rx
 * kick: frames wait in the tap's queue instead of being dropped here
 * (the kernel's queue, like a real NIC's ring, drops only when full).
 *
 * Where vhost-net can serve the queues (vhost_net.c) none of this runs:
 * the kernel moves the frames and we only set the card up.
 */
#include "virtio/net.h"
#include "host/tap.h"
#include "host/uring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The header's fields are little-endian (VERSION_1), as x86 is: we use
 * them as they are. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio_net_hdr is little-endian");
_Static_assert(sizeof(struct virtio_net_hdr_v1) == NET_HDR_LEN, "virtio_net_hdr_v1 is 12 bytes");

/* Room for the longest frame we accept, with its header. */
#define NET_BOUNCE	(NET_HDR_LEN + NET_MAX_FRAME)
/* Chains taken ahead for one frame (rx_take_ahead): 64 of Linux's
 * smallest mergeable buffers (1.5 KiB) hold the largest frame. */
#define NET_RX_AHEAD	64

/* Where a step of the rx path left off. */
enum rx_result {
	RX_DELIVERED,		/* a frame went to the guest */
	RX_DROPPED,		/* a frame was read and thrown away (counted) */
	RX_NO_FRAME,		/* the tap is empty: wait for it */
	RX_NO_BUFFERS,		/* the guest has no buffers posted: wait for a kick */
	RX_BROKEN,		/* the ring is corrupt: NEEDS_RESET was asked */
	RX_HOST_GONE,		/* the descriptor failed for good */
};

struct rx_used {
	u16 head;
	u32 len;
};

/*
 * Frames up to this size are copied whole behind our header (tx_layout);
 * bigger ones are written from where they lie, in up to NET_TX_SLOT_IOV
 * pieces: our header, the guest's linear part and Linux's 17 fragments
 * fit.  A chain in more pieces is gathered into the bounce buffer.
 */
#define NET_TX_COPY	2048

/* Coalescing (NET_HOLD_NS, NET_RX_BULK) is in net.h: vhost_net.c does it too. */
#define NET_TX_SLOT_IOV	20

/* One queued write: where its bytes are, until the write completes. */
struct tx_slot {
	struct virtio_net_hdr_v1 hdr;
	u64 frame_len;
	int niov;
	struct iovec iov[NET_TX_SLOT_IOV];
	u8 buf[NET_HDR_LEN + NET_TX_COPY];
};

struct net_dev {
	struct virtio_dev vdev;
	int fd;				/* the tap (or a test's socket) */
	struct net_opts opts;
	char ifname[IFNAMSIZ];
	struct virtio_net_config cfg;

	/* Serialises activate, reset and the exit-time cleanup. */
	pthread_mutex_t lock;
	bool dead;			/* cleaned up: never serve again */
	struct vhost_net *vhost;	/* NULL: userspace only */
	bool vhost_running;
	bool sync_mode;			/* tests drive the _sync calls */
	u64 tx_last_kick;		/* CLOCK_MONOTONIC ns of the last tx wakeup */
	u64 rx_last_wake;		/* the same for rx: the tap had frames */
	bool threads_running;
	pthread_t rx_tid, tx_tid;
	int stop_fd;			/* eventfd: readable asks threads to leave */
	u32 hdr_len;			/* 10 or 12, fixed at activation */

	/* rx, touched by the rx thread only. */
	struct vq_chain *rx_chain;	/* first chain of the next frame */
	bool rx_have_chain;
	struct vq_chain *rx_more;	/* scratch for the chains after it */
	struct iovec *rx_iov;
	u8 *rx_bounce;			/* what did not fit the first chain */
	bool rx_pending;		/* a frame is half delivered */
	u64 rx_got;			/* its bytes, header included */
	size_t rx_over, rx_over_off;	/* bounce bytes in all, and placed */
	struct rx_used *rx_used;	/* the chains it fills, first first */
	u32 rx_nused;
	struct rx_used *rx_ahead;	/* chains taken behind the first (rx_take_ahead) */
	u32 rx_nahead;
	u64 rx_want;			/* room the next frame likely needs */

	/* tx, touched by the tx thread only. */
	struct vq_chain *tx_chain;
	struct tx_slot *tx_slots;	/* one per frame of a batch */
	unsigned int tx_queued;		/* writes queued on the ring */
	struct io_uring ring;		/* a batch's writes in one system call */
	struct uring_file ring_tap;	/* the tap as the ring names it */
	bool uring_ok;
	bool uring_off;			/* its writes fail here: stop after this batch */
	u8 *tx_bounce;			/* header + frame of many pieces */

	struct net_stats st;		/* tx_* by the tx thread, rx_* by rx */
};

/* Each counter has one writer (its direction's thread), so a plain atomic
 * store does, with no locked add per frame; readers still see whole values. */
#define COUNT(n, field, v) vq_count(&(n)->st.field, (v))

/* The card behind the transport's handle. */
static struct net_dev *to_net(const struct virtio_dev *dev)
{
	return dev->priv;
}

/* ---------------------------------------------------------------------------
 * The header check, shared by the tx path, the tests and the fuzzer.
 */

/*
 * The tap re-checks all of this in the kernel, but a frame it refuses
 * is lost silently; here a bad frame is counted by reason, and the rules
 * are the spec's (5.1.6.2), not one kernel version's.
 */
enum net_tx_verdict virtio_net_check_tx(const struct virtio_net_hdr_v1 *h, u64 frame_len,
					 u64 features)
{
	u8 gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;

	/* A frame must at least carry the Ethernet header the tap parses. */
	if (frame_len < NET_ETH_HLEN)
		return NET_TX_RUNT;
	/* Longer than any 64 KiB GSO packet: nobody downstream takes it. */
	if (frame_len > NET_MAX_FRAME)
		return NET_TX_OVERSIZE;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!(features & (1ULL << VIRTIO_NET_F_CSUM)))
			return NET_TX_BAD_CSUM;
		/* The checksum goes at csum_start + csum_offset, 2 bytes:
		 * past the frame, the host would write outside it.  (In
		 * u32, so the u16 sum cannot wrap.) */
		if ((u32)h->csum_start + h->csum_offset + 2 > frame_len)
			return NET_TX_BAD_CSUM;
	}
	/* The host copies hdr_len bytes of headers: they must exist. */
	if (h->hdr_len > frame_len)
		return NET_TX_BAD_HDR_LEN;
	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return NET_TX_OK;
	/* An ECN flag needs HOST_ECN, which we do not offer. */
	if (h->gso_type & VIRTIO_NET_HDR_GSO_ECN)
		return NET_TX_BAD_GSO;
	if (gso == VIRTIO_NET_HDR_GSO_TCPV4 && !(features & (1ULL << VIRTIO_NET_F_HOST_TSO4)))
		return NET_TX_BAD_GSO;
	if (gso == VIRTIO_NET_HDR_GSO_TCPV6 && !(features & (1ULL << VIRTIO_NET_F_HOST_TSO6)))
		return NET_TX_BAD_GSO;
	if (gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6)
		return NET_TX_BAD_GSO;
	/* 5.1.6.2.1: GSO needs a partial checksum and a segment size;
	 * gso_size 0 would make the segmenter divide by zero. */
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h->gso_size == 0)
		return NET_TX_BAD_GSO;
	return NET_TX_OK;
}

/* ---------------------------------------------------------------------------
 * Transmit: guest -> tap.
 */

/* Count a dropped frame under its reason. */
static void tx_drop(struct net_dev *n, enum net_tx_verdict v)
{
	COUNT(n, tx_malformed, 1);
	COUNT(n, tx_verdicts[v], 1);
}

/* Count what the tap made of one frame: res is write()'s result. */
static void tx_count(struct net_dev *n, s64 res, u64 frame_len)
{
	if (res < 0) {
		COUNT(n, tx_errors, 1);
		return;
	}
	COUNT(n, tx_frames, 1);
	COUNT(n, tx_bytes, frame_len);
}

/*
 * Lay a checked frame out for the one write the tap wants.
 *
 * When the guest's header is already the one we would send (as_is: no
 * flag to clear, num_buffers 0, which is what Linux sends), the frame
 * goes from where it lies, header and all: in one piece (Linux puts the
 * header right in front of the linear data) that is a plain write with
 * no copy of ours.  A guest that rewrites its header after we checked it
 * gets no further than it would by writing to a tap itself: the tap
 * takes its own copy of the header and checks it (as it does for every
 * frame under vhost-net, which no check of ours sees); the write then
 * fails and is counted as an error, or sends what the guest could have
 * sent anyway.  Measured natively (bench/native-net.sh, 1514-byte frames
 * in one buffer): 0.89-0.93x a raw tap write loop against 0.78-0.81x with
 * the copy.
 *
 * Otherwise the header is our checked copy.  A small frame is copied
 * whole behind it: one plain buffer is cheaper to hand the kernel than
 * an iovec list, and the copy is a few cache lines.  A bigger one goes
 * as our header plus the guest's own pieces.  false: more pieces than a
 * slot holds.
 */
static bool tx_layout(struct net_dev *n, const struct vq_chain *c,
		      const struct virtio_net_hdr_v1 *h, bool as_is, u64 frame_len,
		      struct tx_slot *s)
{
	size_t skip = n->hdr_len;

	if (as_is && (c->n_out == 1 || frame_len > NET_TX_COPY) &&
	    c->n_out <= NET_TX_SLOT_IOV) {
		/* A loop, not memcpy: one or two entries, where the
		 * string copy the compiler picks costs more than the rest. */
		for (u32 i = 0; i < c->n_out; i++)
			s->iov[i] = c->iov[i];
		s->niov = c->n_out;
		return true;
	}
	if (frame_len <= NET_TX_COPY) {
		memcpy(s->buf, h, n->hdr_len);
		iov_to_buf(c->iov, c->n_out, n->hdr_len, s->buf + n->hdr_len, frame_len);
		s->iov[0] = (struct iovec){ s->buf, n->hdr_len + frame_len };
		s->niov = 1;
		return true;
	}
	s->hdr = *h;
	s->iov[0] = (struct iovec){ &s->hdr, n->hdr_len };
	s->niov = 1;
	for (u32 i = 0; i < c->n_out; i++) {
		if (skip >= c->iov[i].iov_len) {
			skip -= c->iov[i].iov_len;
			continue;
		}
		if (s->niov == NET_TX_SLOT_IOV)
			return false;
		s->iov[s->niov++] = (struct iovec){ (u8 *)c->iov[i].iov_base + skip,
						    c->iov[i].iov_len - skip };
		skip = 0;
	}
	return true;
}

/* Wait until fd takes writes again (or we are asked to stop). */
static bool wait_writable(struct net_dev *n)
{
	struct pollfd p[2] = { { n->fd, POLLOUT, 0 }, { n->stop_fd, POLLIN, 0 } };

	return poll(p, 2, 1000) > 0 && !p[1].revents && (p[0].revents & POLLOUT);
}

/* Write one frame now (no io_uring, or a frame that needs the bounce). */
static void tx_write_now(struct net_dev *n, const struct iovec *iov, int k, u64 frame_len)
{
	ssize_t w;

	do {
		w = k == 1 ? write(n->fd, iov[0].iov_base, iov[0].iov_len) : writev(n->fd, iov, k);
	} while (w < 0 && (errno == EINTR ||
			   (errno == EAGAIN && !n->sync_mode && wait_writable(n))));
	tx_count(n, w < 0 ? -errno : w, frame_len);
}

/* No more io_uring for tx (its reference to the tap goes with it). */
static void tx_uring_exit(struct net_dev *n)
{
	if (!n->uring_ok)
		return;
	uring_file_exit(&n->ring, n->ring_tap);
	n->uring_ok = false;
}

/* io_uring itself failed (not a write): count the rest lost, go on without it. */
static void tx_uring_broken(struct net_dev *n, unsigned int lost, int err)
{
	warn_user("net %s: io_uring failed (%s): sending without it", n->ifname, strerror(-err));
	for (unsigned int i = 0; i < lost; i++)
		COUNT(n, tx_errors, 1);
	tx_uring_exit(n);
	n->tx_queued = 0;
}

/*
 * A queued write failed.  Some kernels' io_uring cannot do a non-blocking
 * write to a tap that write() does fine (Linux 6.1 refuses them), so try
 * write() before calling the frame lost; if that works, stop using
 * io_uring for this card.
 */
static void tx_retry(struct net_dev *n, struct tx_slot *s, int err)
{
	u64 errors = __atomic_load_n(&n->st.tx_errors, __ATOMIC_RELAXED);

	tx_write_now(n, s->iov, s->niov, s->frame_len);
	if (n->uring_ok && __atomic_load_n(&n->st.tx_errors, __ATOMIC_RELAXED) == errors) {
		verbose("net %s: io_uring writes fail here (%s): one write per frame",
			n->ifname, strerror(-err));
		n->uring_off = true;
	}
}

/*
 * Hand the batch's queued writes to the kernel in one system call, and
 * wait until every one is done: the chains they read go back to the
 * guest right after.  (A tap write never sleeps, so the kernel does them
 * all during the call, in order.)
 */
static void tx_submit(struct net_dev *n)
{
	struct io_uring_cqe *cqe;
	unsigned int left = n->tx_queued;
	int r;

	while (left) {
		r = io_uring_submit_and_wait(&n->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			tx_uring_broken(n, left, r);
			return;
		}
		while (left && io_uring_peek_cqe(&n->ring, &cqe) == 0) {
			struct tx_slot *s = &n->tx_slots[io_uring_cqe_get_data64(cqe)];

			if (cqe->res < 0)
				tx_retry(n, s, cqe->res);
			else
				tx_count(n, cqe->res, s->frame_len);
			io_uring_cqe_seen(&n->ring, cqe);
			left--;
		}
	}
	n->tx_queued = 0;
}

/* Queue a laid-out frame as the batch's next write. */
static void tx_queue(struct net_dev *n, struct tx_slot *s, u64 frame_len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&n->ring);

	/* The ring has a slot per frame of a batch: never full here. */
	if (!sqe) {
		tx_write_now(n, s->iov, s->niov, frame_len);
		return;
	}
	if (s->niov == 1)
		io_uring_prep_write(sqe, n->ring_tap.fd, s->iov[0].iov_base, s->iov[0].iov_len, 0);
	else
		io_uring_prep_writev(sqe, n->ring_tap.fd, s->iov, s->niov, 0);
	sqe->flags |= n->ring_tap.sqe_flags;
	/* A full descriptor fails the write (-EAGAIN; tx_retry() then
	 * waits its turn) instead of parking it in the kernel, where
	 * tx_submit() would wait for it forever.  A tap never fills up; a
	 * test's socket can. */
	sqe->rw_flags = RWF_NOWAIT;
	s->frame_len = frame_len;
	io_uring_sqe_set_data64(sqe, n->tx_queued);
	n->tx_queued++;
}

/* One chain: check it, and send it (or queue it) unless it is malformed. */
static void tx_one(struct net_dev *n, const struct vq_chain *c)
{
	struct virtio_net_hdr_v1 h = { 0 };
	struct tx_slot *s = &n->tx_slots[n->tx_queued];
	struct iovec whole;
	enum net_tx_verdict v;
	u64 frame_len;
	bool as_is;

	/* Only the device-readable part is the frame; writable buffers
	 * on a tx chain mean nothing and are left alone. */
	if (c->out_len < n->hdr_len) {
		tx_drop(n, NET_TX_SHORT);
		return;
	}
	iov_to_buf(c->iov, c->n_out, 0, &h, n->hdr_len);
	frame_len = c->out_len - n->hdr_len;
	v = virtio_net_check_tx(&h, frame_len, n->vdev.features);
	if (v != NET_TX_OK) {
		tx_drop(n, v);
		return;
	}
	/* 5.1.6.2.2: ignore flags we do not know; num_buffers means
	 * nothing on tx. */
	as_is = !(h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) && !h.num_buffers;
	h.flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.num_buffers = 0;
	if (tx_layout(n, c, &h, as_is, frame_len, s)) {
		if (n->uring_ok)
			tx_queue(n, s, frame_len);
		else
			tx_write_now(n, s->iov, s->niov, frame_len);
		return;
	}
	/* Too many pieces for a slot: gather it into the bounce, and send
	 * it in its turn, after the frames already queued. */
	if (n->uring_ok)
		tx_submit(n);
	memcpy(n->tx_bounce, &h, n->hdr_len);
	iov_to_buf(c->iov, c->n_out, n->hdr_len, n->tx_bounce + n->hdr_len, frame_len);
	whole = (struct iovec){ n->tx_bounce, n->hdr_len + frame_len };
	tx_write_now(n, &whole, 1, frame_len);
}

/*
 * Up to a batch of chains, then one publication of the used entries and
 * one interrupt for all of them: the used index is a cache line the
 * driver reads, and moving it once per frame made both sides wait on it.
 * Returns how many, or -1 if the ring is corrupt.
 */
static int tx_batch(struct net_dev *n)
{
	struct virtqueue *vq = &n->vdev.vqs[NET_TXQ];
	int done = 0, r = 0;

	while (done < NET_BATCH && (r = vq_pop(vq, n->tx_chain)) > 0) {
		tx_one(n, n->tx_chain);
		/* Not visible to the driver before vq_flush(), and that
		 * comes after the writes are done. */
		vq_fill(vq, n->tx_chain->head, 0);
		done++;
	}
	if (n->tx_queued)
		tx_submit(n);
	if (n->uring_off)
		tx_uring_exit(n);
	if (done) {
		vq_flush(vq);
		virtio_signal(&n->vdev, NET_TXQ);
	}
	if (r < 0) {
		verbose("net: tx: %s", last_error());
		virtio_needs_reset(&n->vdev);
		return -1;
	}
	return done;
}

/* Send until the ring is empty.  Returns chains taken, or -1. */
static int tx_drain(struct net_dev *n)
{
	int total = 0, r;

	while ((r = tx_batch(n)) > 0)
		total += r;
	return r < 0 ? -1 : total;
}

/* ---------------------------------------------------------------------------
 * Receive: tap -> guest.
 */

/* MRG_RXBUF: may a frame span several chains? */
static bool mergeable(const struct net_dev *n)
{
	return virtio_has(&n->vdev, VIRTIO_NET_F_MRG_RXBUF);
}

/* The in-buffers of a chain (rx chains have no business with out ones). */
static const struct iovec *in_iov(const struct vq_chain *c)
{
	return c->iov + c->n_out;
}

/*
 * Take the chain the next frame starts in.  A chain without room for a
 * header can never hold a frame: it goes straight back, empty, rather
 * than stall the queue.  1: got one; 0: none posted; -1: ring corrupt.
 */
static int rx_take_first(struct net_dev *n)
{
	struct virtqueue *vq = &n->vdev.vqs[NET_RXQ];
	struct vq_chain *c = n->rx_chain;
	int r;

	/* Bounded by the queue size, so a guest posting nothing but
	 * useless chains cannot keep us here. */
	for (u32 i = 0; i < vq->size; i++) {
		r = vq_pop(vq, c);
		if (r <= 0)
			return r;
		if (c->in_len >= n->hdr_len) {
			n->rx_have_chain = true;
			return 1;
		}
		COUNT(n, rx_bad_chain, 1);
		vq_fill(vq, c->head, 0);
	}
	return 0;
}

/*
 * The frame is all in place: finish the first chain's header, then
 * publish every chain of the frame at once.
 */
static enum rx_result rx_complete(struct net_dev *n)
{
	struct virtqueue *vq = &n->vdev.vqs[NET_RXQ];
	const struct vq_chain *c = n->rx_chain;
	u16 nbufs = n->rx_nused;
	u8 zero = 0;

	/* The tap skips num_buffers (it knows nothing of our chains). */
	if (n->hdr_len == NET_HDR_LEN)
		iov_from_buf(in_iov(c), c->n_in, offsetof(struct virtio_net_hdr_v1, num_buffers),
			     &nbufs, sizeof(nbufs));
	/* 5.1.6.4.1: without GUEST_CSUM, flags must be 0 (the tap may
	 * still say DATA_VALID). */
	if (!virtio_has(&n->vdev, VIRTIO_NET_F_GUEST_CSUM))
		iov_from_buf(in_iov(c), c->n_in, 0, &zero, 1);
	/* Published with the rest of the batch (rx_drain): never half a
	 * frame, since a pending frame's chains are filled only here. */
	for (u32 i = 0; i < n->rx_nused; i++)
		vq_fill(vq, n->rx_used[i].head, n->rx_used[i].len);
	COUNT(n, rx_frames, 1);
	COUNT(n, rx_bytes, n->rx_got - n->hdr_len);
	n->rx_have_chain = false;
	n->rx_pending = false;
	n->rx_nused = 0;
	return RX_DELIVERED;
}

/*
 * A frame that cannot be placed after we took chains for it: give every
 * chain back empty (a driver drops a zero-length buffer as too short).
 */
static enum rx_result rx_abandon(struct net_dev *n)
{
	struct virtqueue *vq = &n->vdev.vqs[NET_RXQ];

	for (u32 i = 0; i < n->rx_nused; i++)
		vq_fill(vq, n->rx_used[i].head, 0);
	COUNT(n, rx_dropped, 1);
	n->rx_have_chain = false;
	n->rx_pending = false;
	n->rx_nused = 0;
	return RX_DROPPED;
}

/*
 * Spread the rest of a frame (in the bounce buffer) over more chains.
 * Without buffers we leave it pending and come back on the guest's
 * kick: the frame waits, it is not lost.
 */
static enum rx_result rx_continue(struct net_dev *n)
{
	struct virtqueue *vq = &n->vdev.vqs[NET_RXQ];
	struct vq_chain *c = n->rx_more;
	size_t t;
	int r;

	while (n->rx_over_off < n->rx_over) {
		/* Our list of chains holds a queue's worth; a guest that
		 * re-posts chains we hold could otherwise run past it. */
		if (n->rx_nused >= vq->size)
			return rx_abandon(n);
		r = vq_pop(vq, c);
		if (r < 0)
			return RX_BROKEN;
		if (r == 0)
			return RX_NO_BUFFERS;
		if (c->in_len == 0)
			COUNT(n, rx_bad_chain, 1);
		t = iov_from_buf(in_iov(c), c->n_in, 0, n->rx_bounce + n->rx_over_off,
				 n->rx_over - n->rx_over_off);
		n->rx_used[n->rx_nused++] = (struct rx_used){ c->head, t };
		n->rx_over_off += t;
	}
	return rx_complete(n);
}

/*
 * Mergeable buffers are small (Linux posts 1.5-4 KiB each) and a frame
 * from the tap up to 64 KiB: take chains behind the first, as many as
 * recent frames needed (rx_want), so one readv puts the whole frame in
 * place.  Their buffers go into the read's iovecs from iov[*k]; chains
 * the frame does not reach go back (vq_unpop).  A frame bigger than
 * guessed overflows into the bounce buffer and is placed from there.
 * Returns the room added, -1: ring corrupt.
 */
static s64 rx_take_ahead(struct net_dev *n, u32 *k, u64 room)
{
	struct virtqueue *vq = &n->vdev.vqs[NET_RXQ];
	struct vq_chain *c = n->rx_more;
	u64 added = 0;
	int r;

	while (room + added < MIN(n->rx_want, NET_BOUNCE) && n->rx_nahead < NET_RX_AHEAD) {
		r = vq_pop(vq, c);
		if (r <= 0)
			return r < 0 ? -1 : (s64)added;
		/* readv takes IOV_MAX pieces, the bounce buffer included. */
		if (*k + c->n_in >= IOV_MAX) {
			vq_unpop(vq, 1);
			break;
		}
		memcpy(n->rx_iov + *k, in_iov(c), c->n_in * sizeof(struct iovec));
		*k += c->n_in;
		n->rx_ahead[n->rx_nahead++] = (struct rx_used){ c->head, (u32)c->in_len };
		added += c->in_len;
	}
	return added;
}

/* The frame's bytes after the first chain's: the chains taken ahead, in
 * order, as far as they reach; the rest go back.  Returns bytes placed. */
static u64 rx_place_ahead(struct net_dev *n, u64 left)
{
	u64 placed = 0;
	u32 i;

	for (i = 0; i < n->rx_nahead && placed < left; i++) {
		u32 t = MIN(left - placed, (u64)n->rx_ahead[i].len);

		if (!n->rx_ahead[i].len)
			COUNT(n, rx_bad_chain, 1);
		n->rx_used[n->rx_nused++] = (struct rx_used){ n->rx_ahead[i].head, t };
		placed += t;
	}
	vq_unpop(&n->vdev.vqs[NET_RXQ], n->rx_nahead - i);
	n->rx_nahead = 0;
	return placed;
}

/* No frame after all: the chains taken ahead go back. */
static enum rx_result rx_none(struct net_dev *n, enum rx_result r)
{
	vq_unpop(&n->vdev.vqs[NET_RXQ], n->rx_nahead);
	n->rx_nahead = 0;
	if (r == RX_DROPPED)
		COUNT(n, rx_dropped, 1);
	return r;
}

/*
 * Read one frame: straight into the first chain's buffers and those taken
 * ahead of it, with the bounce buffer after them for whatever does not
 * fit.  Most frames fit, and then no byte is copied by us at all.
 */
static enum rx_result rx_read(struct net_dev *n)
{
	const struct vq_chain *c = n->rx_chain;
	struct iovec *iov = n->rx_iov;
	u64 direct = 0, first;
	ssize_t got;
	s64 ahead;
	u32 k = 0;

	n->rx_nahead = 0;
	/* More pieces than readv takes: read it all into the bounce. */
	if (c->n_in < IOV_MAX) {
		memcpy(iov, in_iov(c), c->n_in * sizeof(*iov));
		k = c->n_in;
		direct = c->in_len;
		if (mergeable(n) && direct < n->rx_want) {
			ahead = rx_take_ahead(n, &k, direct);
			if (ahead < 0)
				return RX_BROKEN;
			direct += ahead;
		}
	}
	iov[k++] = (struct iovec){ n->rx_bounce, NET_BOUNCE };
	do {
		got = readv(n->fd, iov, k);
	} while (got < 0 && errno == EINTR);
	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return rx_none(n, RX_NO_FRAME);
	if (got <= 0) {
		verbose("net: rx: %s", got ? strerror(errno) : "end of file");
		return rx_none(n, RX_HOST_GONE);
	}
	/* Runts carry no frame; the tap reports a frame it had to cut
	 * short at its full length, which is more than we hold. */
	if ((u64)got < n->hdr_len + NET_ETH_HLEN || (u64)got > direct + NET_BOUNCE)
		return rx_none(n, RX_DROPPED);
	n->rx_got = got;
	/* Taking chains ahead costs a look at each: after a run of small
	 * frames (ACKs, pings), take few; after a big one, enough for it. */
	n->rx_want = MAX((u64)got, n->rx_want - n->rx_want / 8);
	first = c->n_in < IOV_MAX ? MIN((u64)got, c->in_len) : 0;
	n->rx_used[0] = (struct rx_used){ c->head, first };
	n->rx_nused = 1;
	first += rx_place_ahead(n, got - first);
	n->rx_over = got - first;
	n->rx_over_off = 0;
	/* Read via the bounce (too many pieces): copy the start over. */
	if (!direct) {
		first = n->rx_over_off = iov_from_buf(in_iov(c), c->n_in, 0, n->rx_bounce,
						      n->rx_over);
		n->rx_used[0].len = first;
	}
	if (n->rx_over_off == n->rx_over)
		return rx_complete(n);
	/* Bigger than the guest's buffer and no merging allowed: drop it,
	 * and keep the chain for the next frame. */
	if (!mergeable(n)) {
		n->rx_nused = 0;
		COUNT(n, rx_dropped, 1);
		return RX_DROPPED;
	}
	n->rx_pending = true;
	return rx_continue(n);
}

/* One step: finish a pending frame, or read a new one. */
static enum rx_result rx_step(struct net_dev *n)
{
	int r;

	if (n->rx_pending)
		return rx_continue(n);
	if (!n->rx_have_chain) {
		r = rx_take_first(n);
		if (r < 0)
			return RX_BROKEN;
		if (r == 0)
			return RX_NO_BUFFERS;
	}
	return rx_read(n);
}

/*
 * Deliver frames while there are frames and buffers: one publication of
 * the used entries and one interrupt per batch.  Returns why it stopped;
 * *delivered counts frames.
 */
static enum rx_result rx_drain(struct net_dev *n, int *delivered)
{
	struct virtqueue *vq = &n->vdev.vqs[NET_RXQ];
	enum rx_result r;
	int batch;
	u16 used;

	for (;;) {
		batch = 0;
		used = vq->used_idx;
		do {
			r = rx_step(n);
			if (r == RX_DELIVERED)
				batch++;
		} while ((r == RX_DELIVERED || r == RX_DROPPED) && batch < NET_BATCH);
		*delivered += batch;
		/* Empty buffers given back count too: publish whatever we
		 * filled, and interrupt. */
		if (vq->used_idx != used) {
			vq_flush(vq);
			virtio_signal(&n->vdev, NET_RXQ);
		}
		if (r == RX_BROKEN) {
			verbose("net: rx: %s", last_error());
			virtio_needs_reset(&n->vdev);
		}
		if (r != RX_DELIVERED && r != RX_DROPPED)
			return r;
	}
}

/* ---------------------------------------------------------------------------
 * The two threads.
 */

/*
 * Sleep until fd is readable (1) or we are asked to stop (0).  fd -1:
 * only the stop request (a queue that broke waits here for the reset).
 */
static int wait_for(struct net_dev *n, int fd)
{
	struct pollfd p[2] = { { n->stop_fd, POLLIN, 0 }, { fd, POLLIN, 0 } };

	return worker_wait(p, fd >= 0 ? 2 : 1, "network device thread");
}

/*
 * Frames are there to move at this moment (a transmit kick, or the tap
 * readable): if a stream flows (the last wakeup, *last_wake, came less
 * than NET_STREAM_NS ago), let the sender queue more before they go
 * (NET_HOLD_NS); but one that queued a batch already (a guest that
 * refilled a ring we had emptied) gains nothing from the wait, and we
 * would sit idle with work in hand.  Our tx and rx threads and
 * vhost_net.c's kick thread wait here.
 */
bool net_should_hold(u64 now, u64 last_wake, unsigned int waiting)
{
	return now - last_wake < NET_STREAM_NS && waiting < NET_BATCH;
}

void net_hold(u64 *last_wake, unsigned int waiting)
{
	u64 now = monotonic_ns();
	bool hold = net_should_hold(now, *last_wake, waiting);

	*last_wake = now;
	if (hold) {
		struct timespec wait = { 0, NET_HOLD_NS };

		nanosleep(&wait, NULL);
	}
}

void net_tx_hold(const struct virtio_dev *vdev, u64 *last_kick, u16 *rx_seen,
		 unsigned int waiting)
{
	if (vq_used_bytes_since(&vdev->vqs[NET_RXQ], rx_seen) >= NET_RX_BULK)
		*last_kick = monotonic_ns();
	else
		net_hold(last_kick, waiting);
}

/*
 * tx: kicks off while we work (the guest need not exit to tell us what
 * we will find anyway), on again before we sleep, and a last look for
 * whatever arrived in between.
 */
static void *tx_thread(void *arg)
{
	struct net_dev *n = arg;
	struct virtqueue *vq = &n->vdev.vqs[NET_TXQ];
	u16 rx_seen = 0;

	/* A queue the driver never enabled has nothing to serve (vq_pop
	 * would call it corrupt). */
	while (vq->avail) {
		vq_disable_kicks(vq);
		if (tx_drain(n) < 0)
			break;
		if (vq_enable_kicks(vq))
			continue;
		if (!wait_for(n, vq->kick_fd))
			return NULL;
		vq_kicked(vq);
		net_tx_hold(&n->vdev, &n->tx_last_kick, &rx_seen, vq_avail_count(vq));
	}
	wait_for(n, -1);
	return NULL;
}

/*
 * rx: poll the tap only while buffers are posted; without them, wait for
 * the guest's kick that says it posted more.
 */
static void *rx_thread(void *arg)
{
	struct net_dev *n = arg;
	struct virtqueue *vq = &n->vdev.vqs[NET_RXQ];
	int delivered = 0, fd;
	u64 bytes = 0;
	bool bulk = false;

	vq_disable_kicks(vq);
	while (vq->avail) {
		switch (rx_drain(n, &delivered)) {
		case RX_NO_FRAME:
			/* Data since we last slept, or only a trickle (the
			 * ACKs of a stream the guest sends)? */
			bulk = n->st.rx_bytes - bytes >= NET_RX_BULK;
			bytes = n->st.rx_bytes;
			fd = n->fd;
			break;
		case RX_NO_BUFFERS:
			if (vq_enable_kicks(vq)) {
				vq_disable_kicks(vq);
				continue;
			}
			fd = vq->kick_fd;
			break;
		default:
			wait_for(n, -1);
			return NULL;
		}
		if (!wait_for(n, fd))
			return NULL;
		if (fd == vq->kick_fd) {
			vq_kicked(vq);
			vq_disable_kicks(vq);
		} else if (bulk) {
			/* The host's TCP, finding its last frames still in
			 * the tap, merges what it sends next (net.h).  Not
			 * for a trickle: holding a sending guest's ACKs would
			 * only slow its stream. */
			net_hold(&n->rx_last_wake, 0);
		}
	}
	wait_for(n, -1);
	return NULL;
}

/* One thread per direction: a full rx ring never holds up transmits. */
static int start_threads(struct net_dev *n)
{
	int err;

	/*
	 * Plain pthread_create(), not virtio_thread_start(): with every
	 * signal blocked in these two threads the guest triple-faulted
	 * during TCP transfers in the nested machine (3 of 5 runs of three
	 * 16 MiB rounds each way; 0 of 4 with this).  Why is not understood
	 * yet; see the note in issue 4.
	 */
	err = pthread_create(&n->tx_tid, NULL, tx_thread, n);
	if (err)
		return fail("net: cannot start the tx thread: %s", strerror(err));
	thread_name(n->tx_tid, "net-tx");
	err = pthread_create(&n->rx_tid, NULL, rx_thread, n);
	if (err) {
		eventfd_write(n->stop_fd, 1);
		pthread_join(n->tx_tid, NULL);
		eventfd_drain(n->stop_fd);
		return fail("net: cannot start the rx thread: %s", strerror(err));
	}
	thread_name(n->rx_tid, "net-rx");
	n->threads_running = true;
	return 0;
}

/* After this no thread of ours touches guest memory or the rings. */
static void stop_threads(struct net_dev *n)
{
	if (!n->threads_running)
		return;
	eventfd_write(n->stop_fd, 1);
	pthread_join(n->tx_tid, NULL);
	pthread_join(n->rx_tid, NULL);
	eventfd_drain(n->stop_fd);
	n->threads_running = false;
}

/* ---------------------------------------------------------------------------
 * The ops the transport calls.
 */

/* What we offer: the tap does checksums and segmentation both ways. */
static u64 net_features(struct virtio_dev *dev)
{
	return 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS |
	       1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |
	       1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |
	       1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6 |
	       1ULL << VIRTIO_NET_F_MRG_RXBUF;
}

/* The transport checked offset + len against config_size. */
static void net_config_read(struct virtio_dev *dev, u32 offset, void *data, u32 len)
{
	memcpy(data, (const u8 *)&to_net(dev)->cfg + offset, len);
}

/* The MAC is read-only for a VERSION_1 driver (5.1.4.2); status too. */
static void net_config_write(struct virtio_dev *dev, u32 offset, const void *data, u32 len)
{
}

/*
 * What the tap may hand us, from what the guest said it can take: with
 * TUN_F_CSUM off, the host fills in checksums before we see a frame; with
 * TSO off, it segments.
 */
static unsigned int tun_offloads(const struct virtio_dev *dev)
{
	unsigned int f = 0;

	if (virtio_has(dev, VIRTIO_NET_F_GUEST_CSUM)) {
		f |= TUN_F_CSUM;
		if (virtio_has(dev, VIRTIO_NET_F_GUEST_TSO4))
			f |= TUN_F_TSO4;
		if (virtio_has(dev, VIRTIO_NET_F_GUEST_TSO6))
			f |= TUN_F_TSO6;
		if (virtio_has(dev, VIRTIO_NET_F_GUEST_ECN))
			f |= TUN_F_TSO_ECN;
	}
	return f;
}

/* vhost-net signals call_fd directly: only usable if both queues are
 * enabled and each has one (MSI-X; INTx needs our ISR bookkeeping). */
static bool vhost_fits(const struct virtio_dev *dev)
{
	for (int i = 0; i < 2; i++)
		if (!dev->vqs[i].desc || dev->vqs[i].kick_fd < 0 || dev->vqs[i].call_fd < 0)
			return false;
	return true;
}

/*
 * DRIVER_OK: fix the header size, tell the tap which offloads the guest
 * took, and start serving: vhost-net if it can, else our threads.
 */
static int net_activate_locked(struct net_dev *n)
{
	struct virtio_dev *dev = &n->vdev;

	if (n->dead)
		return fail("net: the card was shut down");
	n->hdr_len = virtio_has(dev, VIRTIO_F_VERSION_1) ||
		     virtio_has(dev, VIRTIO_NET_F_MRG_RXBUF) ? NET_HDR_LEN : NET_HDR_LEN_LEGACY;
	if (n->opts.is_tap && (tap_set_vnet_hdr_size(n->fd, n->hdr_len) ||
			       tap_set_offload(n->fd, tun_offloads(dev))))
		return -1;
	n->rx_have_chain = n->rx_pending = false;
	n->rx_nused = 0;
	if (n->vhost && vhost_fits(dev)) {
		if (!vhost_net_start(n->vhost, dev, n->fd)) {
			n->vhost_running = true;
			verbose("net %s: served by vhost-net", n->ifname);
			return 0;
		}
		warn_user("%s; serving %s in userspace", last_error(), n->ifname);
	} else if (n->vhost) {
		verbose("net %s: no interrupt eventfds (INTx?): serving in userspace", n->ifname);
	}
	if (n->sync_mode)
		return 0;
	verbose("net %s: served by userspace (rx and tx threads, tx %s)", n->ifname,
		n->uring_ok ? "through io_uring" : "one write per frame");
	return start_threads(n);
}

/* ops->activate, on a vCPU thread: serialised with reset and cleanup. */
static int net_activate(struct virtio_dev *dev)
{
	struct net_dev *n = to_net(dev);
	int r;

	pthread_mutex_lock(&n->lock);
	r = net_activate_locked(n);
	pthread_mutex_unlock(&n->lock);
	return r;
}

/* Stop whoever serves the queues, and forget the chains we held. */
static void net_stop_locked(struct net_dev *n)
{
	stop_threads(n);
	if (n->vhost_running) {
		vhost_net_stop(n->vhost, &n->vdev);
		n->vhost_running = false;
	}
	/* Whatever chains we held belong to a ring the guest is resetting. */
	n->rx_have_chain = n->rx_pending = false;
	n->rx_nused = 0;
}

/* ops->reset: the driver wrote status 0 (or the transport gave up). */
static void net_reset(struct virtio_dev *dev)
{
	struct net_dev *n = to_net(dev);

	pthread_mutex_lock(&n->lock);
	net_stop_locked(n);
	/* A new driver may take fewer offloads: take back what the last
	 * one allowed until it says. */
	if (n->opts.is_tap && !n->dead)
		tap_set_offload(n->fd, 0);
	pthread_mutex_unlock(&n->lock);
}

/* The exit report's line for this card (vhost-net moves frames uncounted). */
static void net_report(struct virtio_dev *dev)
{
	struct net_dev *n = to_net(dev);
	struct net_stats s;

	virtio_net_stats(dev, &s);
	verbose("net %s (%s): tx %llu frames %llu bytes, %llu malformed, %llu refused; "
		"rx %llu frames %llu bytes, %llu dropped",
		n->ifname, n->vhost ? "vhost-net, frames not counted" : "userspace",
		(unsigned long long)s.tx_frames, (unsigned long long)s.tx_bytes,
		(unsigned long long)s.tx_malformed, (unsigned long long)s.tx_errors,
		(unsigned long long)s.rx_frames, (unsigned long long)s.rx_bytes,
		(unsigned long long)s.rx_dropped);
}

static const struct virtio_dev_ops net_ops = {
	.name = "net",
	.device_id = VIRTIO_ID_NET,
	.n_queues = 2,
	.queue_size = NET_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_net_config),
	.features = net_features,
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.reset = net_reset,
	.report = net_report,
};

/* ---------------------------------------------------------------------------
 * Making and unmaking a card.
 */

static void net_free_bufs(struct net_dev *n)
{
	free(n->rx_chain);
	free(n->rx_more);
	free(n->rx_iov);
	free(n->rx_bounce);
	free(n->rx_used);
	free(n->rx_ahead);
	free(n->tx_chain);
	free(n->tx_slots);
	free(n->tx_bounce);
}

/* Everything a card needs while it serves, allocated up front. */
static int net_alloc_bufs(struct net_dev *n)
{
	n->rx_chain = malloc(sizeof(*n->rx_chain));
	n->rx_more = malloc(sizeof(*n->rx_more));
	n->rx_iov = calloc(VQ_MAX_SEGS + 1, sizeof(struct iovec));
	n->rx_bounce = malloc(NET_BOUNCE);
	n->rx_used = calloc(VQ_MAX_SIZE, sizeof(struct rx_used));
	n->rx_ahead = calloc(NET_RX_AHEAD, sizeof(struct rx_used));
	n->tx_chain = malloc(sizeof(*n->tx_chain));
	n->tx_slots = calloc(NET_BATCH, sizeof(struct tx_slot));
	n->tx_bounce = malloc(NET_BOUNCE);
	if (!n->rx_chain || !n->rx_more || !n->rx_iov || !n->rx_bounce || !n->rx_used || !n->rx_ahead ||
	    !n->tx_chain || !n->tx_slots || !n->tx_bounce)
		return fail("net: out of memory");
	return 0;
}

/*
 * io_uring for tx batches, unless LGUEST_NO_IO_URING=1 (as for disks) or
 * the kernel says no (seccomp, old kernels): then one write per frame.
 */
static void tx_uring_init(struct net_dev *n)
{
	const char *env = getenv("LGUEST_NO_IO_URING");
	int r;

	if (env && *env && strcmp(env, "0"))
		return;
	r = io_uring_queue_init(NET_BATCH, &n->ring, 0);
	if (r < 0) {
		verbose("net: no io_uring (%s): one write per frame", strerror(-r));
		return;
	}
	n->uring_ok = true;
	n->ring_tap = uring_file_register(&n->ring, n->fd);
}

/* Everything but the tap: the card itself, ready for a transport. */
struct virtio_dev *virtio_net_new(int fd, const struct net_opts *o)
{
	struct net_dev *n = calloc(1, sizeof(*n));

	if (!n || net_alloc_bufs(n)) {
		if (n)
			net_free_bufs(n);
		free(n);
		close(fd);
		fail("net: out of memory");
		return NULL;
	}
	n->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->stop_fd < 0) {
		fail("net: eventfd: %s", strerror(errno));
		net_free_bufs(n);
		free(n);
		close(fd);
		return NULL;
	}
	pthread_mutex_init(&n->lock, NULL);
	n->fd = fd;
	n->opts = *o;
	n->hdr_len = NET_HDR_LEN;
	memcpy(n->cfg.mac, o->mac, 6);
	n->cfg.status = VIRTIO_NET_S_LINK_UP;
	n->cfg.max_virtqueue_pairs = 1;
	tx_uring_init(n);
	if (o->vhost) {
		n->vhost = vhost_net_open();
		if (!n->vhost)
			verbose("net: %s; serving in userspace", last_error());
	}
	virtio_dev_init(&n->vdev, &net_ops, n);
	return &n->vdev;
}

/* Stop for good and let go of the tap (its last descriptor: the kernel
 * deletes it).  vhost holds the tap too, so it goes first. */
static void net_shutdown(struct net_dev *n)
{
	pthread_mutex_lock(&n->lock);
	net_stop_locked(n);
	if (!n->dead) {
		if (n->vhost)
			vhost_net_close(n->vhost);
		n->vhost = NULL;
		tx_uring_exit(n);
		close(n->fd);
		n->fd = -1;
		n->dead = true;
	}
	pthread_mutex_unlock(&n->lock);
}

/* Tests and benchmarks: the card is gone after this; main() never frees. */
void virtio_net_free(struct virtio_dev *dev)
{
	struct net_dev *n;

	if (!dev)
		return;
	n = to_net(dev);
	net_shutdown(n);
	close(n->stop_fd);
	tx_uring_exit(n);
	pthread_mutex_destroy(&n->lock);
	net_free_bufs(n);
	free(n);
}

/* For messages and tests: which tap is ours. */
const char *virtio_net_ifname(const struct virtio_dev *dev)
{
	return to_net(dev)->ifname;
}

/* For --verbose and tests: who moves the frames right now. */
const char *virtio_net_backend(const struct virtio_dev *dev)
{
	return to_net(dev)->vhost_running ? "vhost-net" : "userspace";
}

/* Each counter read atomically (the threads add to them as we read). */
void virtio_net_stats(const struct virtio_dev *dev, struct net_stats *st)
{
	const u64 *src = (const u64 *)&to_net(dev)->st;
	u64 *dst = (u64 *)st;

	for (size_t i = 0; i < sizeof(*st) / sizeof(u64); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* Tests and the fuzzer serve the queues themselves: no threads. */
void virtio_net_sync_mode(struct virtio_dev *dev, bool on)
{
	to_net(dev)->sync_mode = on;
}

/* The tx thread's work, once, on the caller's thread. */
int virtio_net_tx_sync(struct virtio_dev *dev)
{
	return tx_drain(to_net(dev));
}

/* The rx thread's work, once, on the caller's thread. */
int virtio_net_rx_sync(struct virtio_dev *dev)
{
	int delivered = 0;

	if (rx_drain(to_net(dev), &delivered) == RX_BROKEN)
		return -1;
	return delivered;
}

/* ---------------------------------------------------------------------------
 * --tunnet: the command line's card.
 */

/* "aa:bb:cc:dd:ee:ff", a unicast address (a multicast source is invalid). */
static int parse_mac(const char *s, u8 mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5], &tail) != 6 || strlen(s) != 17)
		return fail("--tunnet: mac=%s is not a MAC address (like 02:00:00:00:00:01)", s);
	for (int i = 0; i < 6; i++)
		mac[i] = b[i];
	if (mac[0] & 1)
		return fail("--tunnet: mac=%s is a multicast address: the first byte must be even", s);
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return fail("--tunnet: mac=%s: the all-zero address is not usable", s);
	return 0;
}

/* "169.254.1.1" or "169.254.1.1/16". */
static int parse_addr(const char *s, struct net_spec *ns)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	char *end;
	long p;

	if (len >= sizeof(buf))
		return fail("--tunnet=%s: not an IPv4 address or bridge:<name>", s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &ns->addr) != 1)
		return fail("--tunnet=%s: not an IPv4 address (like 169.254.1.1) or bridge:<name>", s);
	ns->prefix = 24;
	if (slash) {
		p = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || p < 1 || p > 32)
			return fail("--tunnet=%s: the prefix after '/' must be 1..32", s);
		ns->prefix = p;
	}
	return 0;
}

/* One ",key=value" after the address or bridge. */
static int parse_option(const char *opt, struct net_spec *ns)
{
	if (!strncmp(opt, "mac=", 4)) {
		ns->have_mac = true;
		return parse_mac(opt + 4, ns->mac);
	}
	if (!strcmp(opt, "vhost=on") || !strcmp(opt, "vhost=off")) {
		ns->vhost = !strcmp(opt, "vhost=on");
		return 0;
	}
	return fail("--tunnet: unknown option '%s' (known: mac=xx:xx:xx:xx:xx:xx, vhost=on|off)",
		    opt);
}

/* The address (or bridge) first, then options, all before any tap exists. */
int net_spec_parse(const char *spec, struct net_spec *ns)
{
	char buf[256], *save = NULL, *first, *opt;
	const char *env = getenv("LGUEST_NO_VHOST");

	memset(ns, 0, sizeof(*ns));
	ns->vhost = !(env && *env && strcmp(env, "0"));
	if (strlen(spec) >= sizeof(buf))
		return fail("--tunnet: argument too long");
	snprintf(buf, sizeof(buf), "%s", spec);
	first = strtok_r(buf, ",", &save);
	if (!first || buf[0] == ',')
		return fail("--tunnet needs <ipaddr> or bridge:<name>");
	if (!strncmp(first, "bridge:", 7)) {
		ns->bridge = true;
		if (!tap_name_ok(first + 7))
			return fail("--tunnet=%s: '%s' is not an interface name", spec, first + 7);
		snprintf(ns->bridge_name, IFNAMSIZ, "%s", first + 7);
	} else if (parse_addr(first, ns)) {
		return -1;
	}
	while ((opt = strtok_r(NULL, ",", &save)))
		if (parse_option(opt, ns))
			return -1;
	return 0;
}

/* FNV-1a: small, and good enough to spread names over 40 bits. */
static u64 fnv1a(u64 h, const void *p, size_t len)
{
	const u8 *b = p;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* Stable across runs, unique on the host: see net.h. */
void net_default_mac(const char *ifname, int index, u8 mac[6])
{
	char host[256] = "";
	u64 h = 0xcbf29ce484222325ULL;

	gethostname(host, sizeof(host) - 1);
	h = fnv1a(h, host, strlen(host) + 1);
	h = fnv1a(h, ifname, strlen(ifname) + 1);
	h = fnv1a(h, &index, sizeof(index));
	/* 0x02: locally administered, unicast: never a vendor's address. */
	mac[0] = 0x02;
	for (int i = 1; i < 6; i++)
		mac[i] = h >> (8 * i);
}

/* The at_cleanup() step: whatever way lguest ends, the tap goes. */
static void net_cleanup(void *arg)
{
	net_shutdown(to_net(arg));
}

/* The host side of the link: an address, or a seat on a bridge. */
static int configure_host_side(const struct net_spec *ns, const char *ifname)
{
	if (!ns->bridge)
		return tap_set_ipv4(ifname, ns->addr, ns->prefix);
	if (tap_join_bridge(ifname, ns->bridge_name))
		return -1;
	return tap_set_up(ifname);
}

/*
 * --tunnet, start to finish: everything that can be refused is checked
 * before the tap exists, and a failure after that closes the tap (which
 * deletes it).
 */
int net_device_create(const char *spec, int index, struct virtio_dev **out)
{
	struct net_spec ns;
	struct net_opts o = { 0 };
	struct virtio_dev *dev;
	char ifname[IFNAMSIZ];
	int fd;

	if (net_spec_parse(spec, &ns))
		return -1;
	/* Check the bridge before making anything we would have to undo. */
	if (ns.bridge && tap_check_bridge(ns.bridge_name))
		return -1;
	fd = tap_create(ifname);
	if (fd < 0)
		return -1;
	if (tap_set_vnet_hdr_size(fd, NET_HDR_LEN) || configure_host_side(&ns, ifname)) {
		close(fd);
		return -1;
	}
	if (ns.have_mac)
		memcpy(o.mac, ns.mac, 6);
	else
		net_default_mac(ifname, index, o.mac);
	o.is_tap = true;
	o.vhost = ns.vhost;
	dev = virtio_net_new(fd, &o);
	if (!dev)
		return -1;
	snprintf(to_net(dev)->ifname, IFNAMSIZ, "%s", ifname);
	at_cleanup(net_cleanup, dev);
	verbose("net%d: tap %s (%s), guest MAC %02x:%02x:%02x:%02x:%02x:%02x, vhost-net %s",
		index, ifname, spec, o.mac[0], o.mac[1], o.mac[2], o.mac[3], o.mac[4], o.mac[5],
		to_net(dev)->vhost ? "available" : "off");
	*out = dev;
	return 0;
}
