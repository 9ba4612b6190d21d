/*
 * queue.c: the split virtqueue (virtio 1.2, 2.7), device side.
 *
 * A guest request travels like this: the driver fills descriptors, writes
 * the head's index into the avail ring, bumps avail->idx and kicks.  We
 * read avail->idx (vq_has_avail/vq_pop), take the head from the ring, walk
 * the descriptor chain into a list of host iovecs, and hand that to the
 * device.  When the device is done it writes the head and a length into
 * the used ring and bumps used->idx (vq_push), then asks whether the
 * driver wants an interrupt (vq_need_signal).
 *
 * Everything in the ring is written by the guest, which may be hostile and
 * may change any of it while we look.  So each value is read from guest
 * memory exactly once into a local, checked, and only the local is used;
 * chain walks are bounded; and a ring that breaks the rules is marked
 * broken and never touched again (the device asks for NEEDS_RESET).
 */
#include "virtio/queue.h"

#include <stdio.h>
#include <string.h>

/* Descriptor flags (2.7.5). */
#define VIRTQ_DESC_F_NEXT	1
#define VIRTQ_DESC_F_WRITE	2
#define VIRTQ_DESC_F_INDIRECT	4

/* Suppression flags (2.7.7, 2.7.10). */
#define VIRTQ_AVAIL_F_NO_INTERRUPT	1
#define VIRTQ_USED_F_NO_NOTIFY		1

/* The ring layouts, as the driver lays them out in guest memory. */
struct virtq_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct virtq_avail {
	u16 flags;
	u16 idx;
	u16 ring[];		/* size entries, then used_event */
};

struct virtq_used_elem {
	u32 id;
	u32 len;
};

struct virtq_used {
	u16 flags;
	u16 idx;
	struct virtq_used_elem ring[];	/* size entries, then avail_event */
};

/* The driver asks for interrupts up to here (EVENT_IDX). */
static u16 *used_event(const struct virtqueue *vq)
{
	return &((struct virtq_avail *)vq->avail)->ring[vq->size];
}

/* We ask for kicks from here (EVENT_IDX). */
static u16 *avail_event(const struct virtqueue *vq)
{
	return (u16 *)&((struct virtq_used *)vq->used)->ring[vq->size];
}

/* DRIVER_OK: check and resolve the rings once, so no later access needs to. */
int vq_start(struct virtqueue *vq, const struct guest_mem *gm, bool event_idx, bool indirect)
{
	u64 n = vq->size;

	/*
	 * Every index below is reduced with "& (size - 1)": a size of 0 or
	 * one that is not a power of two would make that arithmetic lie.
	 */
	if (n == 0 || (n & (n - 1)) || n > VQ_MAX_SIZE)
		return fail("queue size %llu is not a power of 2 up to %u",
			    (unsigned long long)n, VQ_MAX_SIZE);
	/* The alignments of 2.7: also what keeps our 16- and 32-bit
	 * atomic accesses to the rings naturally aligned. */
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return fail("queue rings are misaligned (desc %#llx avail %#llx used %#llx)",
			    (unsigned long long)vq->desc_gpa,
			    (unsigned long long)vq->avail_gpa,
			    (unsigned long long)vq->used_gpa);
	/* Resolve each ring once, whole (event fields included), so no
	 * later access can stray outside RAM whatever index we compute. */
	vq->desc = guest_ptr(gm, vq->desc_gpa, 16 * n);
	vq->avail = guest_ptr(gm, vq->avail_gpa, 6 + 2 * n);
	vq->used = guest_ptr(gm, vq->used_gpa, 6 + 8 * n);
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = vq->avail = vq->used = NULL;
		return fail("queue rings are not in guest RAM");
	}
	vq->gm = gm;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->last_avail = vq->seen_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_valid = false;
	vq->last_need = false;
	vq->broken = false;
	return 0;
}

/* Device reset: nothing the driver told us survives into its next life. */
void vq_reset(struct virtqueue *vq)
{
	int kick_fd = vq->kick_fd, call_fd = vq->call_fd;
	struct vq_stats stats = vq->stats;

	/* Forget everything the driver told us, so a stale ring address can
	 * never be used after the guest reset the device. */
	memset(vq, 0, sizeof(*vq));
	vq->msix_vector = VQ_NO_VECTOR;
	vq->kick_fd = kick_fd;
	vq->call_fd = call_fd;
	vq->stats = stats;
}

/* The guest broke the ring's rules: say why, and never touch it again. */
static int vq_corrupt(struct virtqueue *vq, const char *why, u16 head)
{
	vq->broken = true;
	return fail("corrupt virtqueue: %s (chain head %u)", why, head);
}

/* Where one chain walk stands: shared by the direct and indirect parts. */
struct walk {
	struct virtqueue *vq;
	struct vq_chain *c;
	u64 total;		/* bytes in all buffers so far */
	const char *why;	/* what was wrong, when a step fails */
};

/* Record why the walk stopped; reads as "return bad(w, why)". */
static bool bad(struct walk *w, const char *why)
{
	w->why = why;
	return false;
}

/*
 * One buffer into the chain.  Each check here stands between a guest
 * descriptor and a host pointer we will later read or write through.
 */
static bool walk_add(struct walk *w, const struct virtq_desc *d)
{
	struct vq_chain *c = w->c;
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	void *p;

	/* An empty buffer is meaningless and makes "last byte of the
	 * buffer" (where devices put status) underflow. */
	if (d->len == 0)
		return bad(w, "zero-length buffer");
	/* Our iovec array is finite: a longer chain would overrun it. */
	if (c->n_out + c->n_in >= VQ_MAX_SEGS)
		return bad(w, "chain has too many buffers");
	/* 2.7.5: a chain is at most 2^32 bytes; used.len is 32 bits, so
	 * a longer one could not even be reported. */
	if (__builtin_add_overflow(w->total, (u64)d->len, &w->total) ||
	    w->total > UINT32_MAX)
		return bad(w, "chain longer than 4 GiB");
	/* The whole buffer must be RAM; guest_ptr() also catches an
	 * address + length that wraps past 2^64. */
	p = guest_ptr(w->vq->gm, d->addr, d->len);
	if (!p)
		return bad(w, "buffer outside guest RAM");
	/* 2.7.4.2: readable buffers come first.  A device that trusted
	 * n_out to split the list would otherwise write into data the
	 * driver meant as input, or read its own output back. */
	if (!writable && c->n_in)
		return bad(w, "readable buffer after a writable one");
	c->iov[c->n_out + c->n_in] = (struct iovec){ p, d->len };
	if (writable) {
		c->n_in++;
		c->in_len += d->len;
	} else {
		c->n_out++;
		c->out_len += d->len;
	}
	return true;
}

/* Copy a descriptor out of guest memory once; from here on we only look
 * at our copy, so the guest cannot change it between check and use. */
static void read_desc(struct virtq_desc *d, const void *table, u32 i)
{
	memcpy(d, (const u8 *)table + 16 * (u64)i, sizeof(*d));
}

/*
 * Follow an indirect table (2.7.5.3): a second, private descriptor table
 * whose length the driver chose.  It gets the same checks as the main
 * table, with its own length as the hop budget.
 */
static bool walk_indirect(struct walk *w, const struct virtq_desc *ind)
{
	const void *table;
	struct virtq_desc d;
	u32 n, i = 0, budget;

	if (!w->vq->indirect)
		return bad(w, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
	/* 2.7.5.3.1: an indirect descriptor ends its chain. */
	if (ind->flags & VIRTQ_DESC_F_NEXT)
		return bad(w, "indirect descriptor with NEXT");
	/* A table is whole descriptors, at least one, and no longer than
	 * the chain we accept (bounds the walk before we start it). */
	if (ind->len == 0 || ind->len % 16 || ind->len / 16 > VQ_MAX_SEGS)
		return bad(w, "bad indirect table length");
	n = ind->len / 16;
	table = guest_ptr(w->vq->gm, ind->addr, ind->len);
	if (!table)
		return bad(w, "indirect table outside guest RAM");
	for (budget = n; budget; budget--) {
		read_desc(&d, table, i);
		/* 2.7.5.3.1: only one table per chain; nesting would let a
		 * guest multiply our work without bound. */
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return bad(w, "nested indirect table");
		if (!walk_add(w, &d))
			return false;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return true;
		/* An index past the table would read beyond what we
		 * resolved through guest_ptr(). */
		if (d.next >= n)
			return bad(w, "indirect next index out of range");
		i = d.next;
	}
	/* More hops than entries: the chain loops. */
	return bad(w, "indirect chain loops");
}

/*
 * Walk the chain starting at head.  The hop budget is the queue size: a
 * chain that has not ended by then revisits a descriptor, i.e. loops, and
 * without the budget a guest could park us here forever.
 */
static bool walk_chain(struct walk *w, u16 head)
{
	struct virtqueue *vq = w->vq;
	struct virtq_desc d;
	u32 budget;
	u16 i = head;

	for (budget = vq->size; budget; budget--) {
		read_desc(&d, vq->desc, i);
		/* 2.7.5.3.2: zero or more direct descriptors may precede
		 * one indirect descriptor, which ends the chain. */
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return walk_indirect(w, &d);
		if (!walk_add(w, &d))
			return false;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return true;
		/* An index past the table would read beyond what vq_start
		 * resolved. */
		if (d.next >= vq->size)
			return bad(w, "next index out of range");
		i = d.next;
	}
	return bad(w, "descriptor chain loops");
}

/*
 * Load avail->idx.  Acquire: the driver wrote the ring entries and the
 * descriptors before it published this index (with a write barrier);
 * acquire keeps our reads of those entries from happening before it.
 */
static u16 avail_idx(const struct virtqueue *vq)
{
	return __atomic_load_n(&((struct virtq_avail *)vq->avail)->idx, __ATOMIC_ACQUIRE);
}

/* Take the next available chain, refusing any ring that breaks the rules. */
int vq_pop(struct virtqueue *vq, struct vq_chain *c)
{
	struct virtq_avail *avail = vq->avail;
	struct walk w = { .vq = vq, .c = c };
	u16 idx, head;

	if (vq->broken || !avail)
		return -1;
	/*
	 * The driver's index is read again only when we have served up to
	 * where it last stood: it sits in a cache line the driver writes as
	 * it publishes, and a read per chain would pull that line across
	 * CPUs once per chain instead of once per batch.
	 */
	if (vq->seen_avail == vq->last_avail) {
		idx = avail_idx(vq);
		/*
		 * The driver can have at most `size` entries outstanding.  A
		 * bigger jump means the index is garbage, and trusting it
		 * would make us re-serve stale ring entries (2.7.13.3).
		 */
		if ((u16)(idx - vq->last_avail) > vq->size)
			return vq_corrupt(vq, "avail index jumped past the queue size", 0);
		if (idx == vq->last_avail)
			return 0;
		vq->seen_avail = idx;
	}
	/* Read the ring entry once: the guest may rewrite it after our
	 * check. */
	head = __atomic_load_n(&avail->ring[vq->last_avail & (vq->size - 1)],
			       __ATOMIC_RELAXED);
	/* A head past the table would index outside what we resolved. */
	if (head >= vq->size)
		return vq_corrupt(vq, "head index out of range", head);
	c->head = head;
	c->n_out = c->n_in = 0;
	c->out_len = c->in_len = 0;
	if (!walk_chain(&w, head))
		return vq_corrupt(vq, w.why, head);
	vq->last_avail++;
	vq_count(&vq->stats.chains, 1);
	return 1;
}

/*
 * Give back the last n chains popped and not used: the next vq_pop reads
 * their ring entries again, and checks them again.  For a device that
 * takes chains before it knows how many it needs (net's receive).
 */
void vq_unpop(struct virtqueue *vq, u16 n)
{
	vq->last_avail -= n;
	vq_count(&vq->stats.chains, -(u64)n);
}

/*
 * Write a used entry without publishing it: see vq_flush().  vq_push() is
 * the two together, for the usual one-chain-at-a-time case.
 */
void vq_fill(struct virtqueue *vq, u16 head, u32 len)
{
	struct virtq_used *used = vq->used;
	struct virtq_used_elem *e;

	if (vq->broken || !used)
		return;
	e = &used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&e->id, (u32)head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	vq->used_idx++;
}

/* Publish every entry vq_fill() wrote, all at once. */
void vq_flush(struct virtqueue *vq)
{
	struct virtq_used *used = vq->used;

	if (vq->broken || !used)
		return;
	/*
	 * Release: the filled entries, and every byte the device wrote into
	 * their buffers, become visible to the driver before the index that
	 * tells it to look (2.7.8.2).
	 */
	__atomic_store_n(&used->idx, vq->used_idx, __ATOMIC_RELEASE);
}

/* Hand a chain back: the element, then (ordered after it) the index. */
void vq_push(struct virtqueue *vq, u16 head, u32 len)
{
	vq_fill(vq, head, len);
	vq_flush(vq);
}

/*
 * 2.7.10: the driver wants an interrupt when used->idx moves past
 * used_event, i.e. when used_event lies in [old, new).  All in u16
 * arithmetic, which wraps as the ring indices do.
 */
static bool vring_need_event(u16 event, u16 new_idx, u16 old)
{
	return (u16)(new_idx - event - 1) < (u16)(new_idx - old);
}

/* Does the driver want this interrupt?  Unwanted ones cost it a VM exit. */
bool vq_need_signal(struct virtqueue *vq)
{
	struct virtq_avail *avail = vq->avail;
	u16 old = vq->signalled_used, now = vq->used_idx;
	bool need;

	if (vq->broken || !avail)
		return false;
	/* Nothing pushed since we last decided: same answer.  This keeps
	 * a second asker (the transport) from finding "no news". */
	if (vq->signalled_valid && now == old)
		return vq->last_need;
	/*
	 * Full barrier: our used->idx store must be visible before we read
	 * the driver's suppression state.  Otherwise the driver can
	 * re-enable interrupts and re-check used->idx (seeing the old value)
	 * while we read the old suppression state: neither side acts and
	 * the request is never noticed.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->event_idx) {
		u16 event = __atomic_load_n(used_event(vq), __ATOMIC_RELAXED);

		need = !vq->signalled_valid || vring_need_event(event, now, old);
	} else {
		need = !(__atomic_load_n(&avail->flags, __ATOMIC_RELAXED) &
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	vq->signalled_used = now;
	vq->signalled_valid = true;
	vq->last_need = need;
	return need;
}

/* About to sleep: ask for kicks again, and catch what raced past. */
bool vq_enable_kicks(struct virtqueue *vq)
{
	struct virtq_used *used = vq->used;

	if (vq->broken || !used)
		return false;
	/* With EVENT_IDX: kick us when you publish entry last_avail, the
	 * next one we would pop.  Without: clear NO_NOTIFY. */
	if (vq->event_idx)
		__atomic_store_n(avail_event(vq), vq->last_avail, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&used->flags, 0, __ATOMIC_RELAXED);
	/*
	 * Full barrier: the store above must be visible before we re-read
	 * avail->idx.  Otherwise the driver can publish, read our old
	 * suppression state and skip the kick, while we read the old index
	 * and go to sleep: a request nobody serves.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_idx(vq) != vq->last_avail;
}

/* Draining anyway: spare the driver its notify exits meanwhile. */
void vq_disable_kicks(struct virtqueue *vq)
{
	if (vq->broken || !vq->used)
		return;
	/* With EVENT_IDX the driver kicks when its index passes avail_event:
	 * one behind what we pop next is a point it has already passed. */
	if (vq->event_idx)
		__atomic_store_n(avail_event(vq), (u16)(vq->last_avail - 1), __ATOMIC_RELAXED);
	else
		__atomic_store_n(&((struct virtq_used *)vq->used)->flags,
				 VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

/* Cheap peek for callers deciding whether to pop at all. */
u16 vq_avail_count(struct virtqueue *vq)
{
	if (vq->broken || !vq->avail)
		return 0;
	return avail_idx(vq) - vq->last_avail;
}

/*
 * For a watcher beside the device (another thread, or ours beside
 * vhost's worker): the bytes the device wrote into buffers it gave back
 * since the used index *seen, which moves to the index now.  The entries
 * live in guest memory: a garbage length only skews the caller's guess.
 */
u64 vq_used_bytes_since(const struct virtqueue *vq, u16 *seen)
{
	const struct virtq_used *used = vq->used;
	u64 bytes = 0;
	u16 idx, n;

	if (vq->broken || !used)
		return 0;
	idx = __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE);
	n = MIN((u16)(idx - *seen), vq->size);
	for (u16 i = idx - n; i != idx; i++)
		bytes += __atomic_load_n(&used->ring[i & (vq->size - 1)].len, __ATOMIC_RELAXED);
	*seen = idx;
	return bytes;
}

bool vq_has_avail(struct virtqueue *vq)
{
	return vq_avail_count(vq) != 0;
}

void vq_describe(struct virtqueue *vq, char *buf, size_t len)
{
	const struct virtq_avail *avail = vq->avail;
	const struct virtq_used *used = vq->used;

	if (!avail || !used) {
		snprintf(buf, len, "not started");
		return;
	}
	snprintf(buf, len, "avail %u popped %u, used %u (ours %u, signalled %u), "
		 "driver %s %u, device %s %u%s",
		 __atomic_load_n(&avail->idx, __ATOMIC_RELAXED), vq->last_avail,
		 __atomic_load_n(&used->idx, __ATOMIC_RELAXED), vq->used_idx,
		 vq->signalled_used,
		 vq->event_idx ? "used_event" : "avail flags",
		 vq->event_idx ? __atomic_load_n(used_event(vq), __ATOMIC_RELAXED) :
				 __atomic_load_n(&avail->flags, __ATOMIC_RELAXED),
		 vq->event_idx ? "avail_event" : "used flags",
		 vq->event_idx ? __atomic_load_n(avail_event(vq), __ATOMIC_RELAXED) :
				 __atomic_load_n(&used->flags, __ATOMIC_RELAXED),
		 vq->broken ? ", BROKEN" : "");
}

/* Copy between a chain's buffers and a flat one, never past either's end. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, u8 *buf, size_t len,
		       bool to_iov)
{
	size_t done = 0;
	unsigned i;

	for (i = 0; i < n && done < len; i++) {
		u8 *part;
		size_t take;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		part = (u8 *)iov[i].iov_base + skip;
		take = MIN(iov[i].iov_len - skip, len - done);
		if (to_iov)
			memcpy(part, buf + done, take);
		else
			memcpy(buf + done, part, take);
		done += take;
		skip = 0;
	}
	return done;
}

/* Gather from a chain (a request header, say) into a private copy, which
 * the guest can no longer change under us. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	return iov_copy(iov, n, skip, buf, len, false);
}

/* Scatter a reply into a chain's buffers. */
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	return iov_copy(iov, n, skip, (u8 *)buf, len, true);
}
