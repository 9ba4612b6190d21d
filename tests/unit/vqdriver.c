/*
 * vqdriver.c: the guest driver and transport in miniature (see vqdriver.h).
 *
 * The driver half follows virtio 1.2, 2.7.13: fill descriptors, put the
 * head in the avail ring, a write barrier, then bump avail->idx, then
 * (after a full barrier) decide whether to kick.  Reading used entries
 * mirrors it: acquire-load used->idx, then read the element.
 */
#include "vqdriver.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Where the rings start: gpa 0 stays unused, so 0 can mean "none". */
#define VQD_RING_BASE	0x10000ULL

/* The ring layouts (2.7), as the guest sees them (descriptors: vqdriver.h). */
struct vqd_avail {
	u16 flags;
	u16 idx;
	u16 ring[];
};

struct vqd_used_elem {
	u32 id;
	u32 len;
};

struct vqd_used {
	u16 flags;
	u16 idx;
	struct vqd_used_elem ring[];
};

/* Host views of a queue's rings; resolved when needed, they are small. */
static struct vqd_avail *avail_of(struct vqd_queue *q)
{
	return guest_ptr(&q->d->gm, q->avail_gpa, 6 + 2 * (u64)q->size);
}

static struct vqd_used *used_of(struct vqd_queue *q)
{
	return guest_ptr(&q->d->gm, q->used_gpa, 6 + 8 * (u64)q->size);
}

/* The fake transport's signal: count it and ring the queue's call fd. */
static void rec_signal(struct virtio_dev *dev, int qidx)
{
	struct vqd *d = dev->transport;
	u64 one = 1;

	if (qidx < 0) {
		__atomic_add_fetch(&d->n_config, 1, __ATOMIC_SEQ_CST);
		return;
	}
	__atomic_add_fetch(&d->n_signal[qidx], 1, __ATOMIC_SEQ_CST);
	if (write(d->q[qidx].call_fd, &one, sizeof(one)) < 0)
		abort();
}

/* The fake transport's needs_reset: what virtio-pci does, minus the IRQ. */
static void rec_needs_reset(struct virtio_dev *dev)
{
	struct vqd *d = dev->transport;

	__atomic_or_fetch(&dev->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&d->n_needs_reset, 1, __ATOMIC_SEQ_CST);
}

/* Every descriptor free, in index order; no chain outstanding. */
static void queue_clear(struct vqd_queue *q)
{
	unsigned i;

	for (i = 0; i < q->size; i++) {
		q->link[i] = i + 1;
		q->chain_len[i] = 0;
	}
	q->free_head = 0;
	q->num_free = q->size;
	q->avail_idx = q->kicked_idx = q->last_used = 0;
	q->c_n = 0;
}

/* Place one queue's rings at *gpa, page-aligned as legacy drivers did. */
static int queue_layout(struct vqd *d, int qidx, u16 size, u64 *gpa)
{
	struct vqd_queue *q = &d->q[qidx];

	memset(q, 0, sizeof(*q));
	q->d = d;
	q->qidx = qidx;
	q->vq = &d->dev->vqs[qidx];
	q->size = size;
	q->desc_gpa = *gpa;
	q->avail_gpa = q->desc_gpa + 16 * (u64)size;
	q->used_gpa = ALIGN_UP(q->avail_gpa + 6 + 2 * (u64)size, 4096);
	*gpa = ALIGN_UP(q->used_gpa + 6 + 8 * (u64)size, 4096);
	q->link = calloc(size, sizeof(*q->link));
	q->chain_len = calloc(size, sizeof(*q->chain_len));
	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!q->link || !q->chain_len || q->kick_fd < 0 || q->call_fd < 0)
		return fail("vqdriver: out of memory or eventfds");
	q->vq->kick_fd = q->kick_fd;
	q->vq->call_fd = q->call_fd;
	queue_clear(q);
	return 0;
}

/* Set up the fake machine: RAM, queue layout, eventfds, callbacks, features. */
int vqd_init(struct vqd *d, struct virtio_dev *dev, u64 mem_size, u64 features, u16 qsize)
{
	u64 offer, gpa = VQD_RING_BASE;
	unsigned i;

	memset(d, 0, sizeof(*d));
	if (guest_mem_init(&d->gm, mem_size) < 0)
		return -1;
	d->dev = dev;
	d->n_queues = dev->ops->n_queues;
	dev->gm = &d->gm;
	dev->transport = d;
	dev->signal = rec_signal;
	dev->needs_reset = rec_needs_reset;
	offer = dev->ops->features(dev) | (1ULL << VIRTIO_F_VERSION_1) |
		(1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << VIRTIO_F_EVENT_IDX);
	dev->features = offer & features;
	for (i = 0; i < d->n_queues; i++) {
		u16 size = qsize && qsize < dev->ops->queue_size ? qsize : dev->ops->queue_size;

		if (queue_layout(d, i, size, &gpa) < 0)
			return -1;
	}
	if (gpa >= d->gm.low_size)
		return fail("vqdriver: %llu bytes of guest RAM hold no rings",
			    (unsigned long long)mem_size);
	d->heap_base = d->heap_next = gpa;
	d->heap_end = d->gm.low_size;
	dev->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		      VIRTIO_STATUS_FEATURES_OK;
	return 0;
}

/* Tear down in reverse; the device itself belongs to the test. */
void vqd_destroy(struct vqd *d)
{
	unsigned i;

	if (d->dev)
		vqd_stop(d);
	for (i = 0; i < d->n_queues; i++) {
		struct vqd_queue *q = &d->q[i];

		/* vqd_init may have failed before laying this queue out. */
		if (!q->d)
			continue;
		free(q->link);
		free(q->chain_len);
		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->call_fd >= 0)
			close(q->call_fd);
		d->dev->vqs[i].kick_fd = d->dev->vqs[i].call_fd = -1;
	}
	guest_mem_free(&d->gm);
	d->dev = NULL;
}

/* What a driver does before DRIVER_OK: clean rings, addresses to the device. */
int vqd_setup_rings(struct vqd *d)
{
	struct virtio_dev *dev = d->dev;
	unsigned i;

	for (i = 0; i < d->n_queues; i++) {
		struct vqd_queue *q = &d->q[i];
		struct virtqueue *vq = q->vq;

		/* A driver zeroes its rings before handing them over. */
		memset(vqd_ptr(d, q->desc_gpa, q->used_gpa + 6 + 8 * (u64)q->size - q->desc_gpa),
		       0, q->used_gpa + 6 + 8 * (u64)q->size - q->desc_gpa);
		queue_clear(q);
		vq->size = q->size;
		vq->desc_gpa = q->desc_gpa;
		vq->avail_gpa = q->avail_gpa;
		vq->used_gpa = q->used_gpa;
		vq->msix_vector = 0;
		vq->ready = true;
		if (vq_start(vq, &d->gm, virtio_has(dev, VIRTIO_F_EVENT_IDX),
			     virtio_has(dev, VIRTIO_F_INDIRECT_DESC)) < 0)
			return -1;
	}
	return 0;
}

/* DRIVER_OK: the device starts serving. */
int vqd_start(struct vqd *d)
{
	if (vqd_setup_rings(d) < 0 || d->dev->ops->activate(d->dev) < 0)
		return -1;
	d->dev->status |= VIRTIO_STATUS_DRIVER_OK;
	return 0;
}

/* Status 0: the device stops; the queues forget their rings. */
void vqd_stop(struct vqd *d)
{
	unsigned i;

	d->dev->ops->reset(d->dev);
	for (i = 0; i < d->n_queues; i++)
		vq_reset(d->q[i].vq);
	d->dev->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			 VIRTIO_STATUS_FEATURES_OK;
}

/* The only way out of NEEDS_RESET. */
int vqd_restart(struct vqd *d)
{
	vqd_stop(d);
	return vqd_start(d);
}

/* Buffers for requests: never freed one by one, reset wholesale. */
u64 vqd_alloc(struct vqd *d, u64 len, u64 align)
{
	u64 gpa = ALIGN_UP(d->heap_next, align ? align : 16);

	if (gpa > d->heap_end || len > d->heap_end - gpa)
		return 0;
	d->heap_next = gpa + len;
	return gpa;
}

/* Every buffer handed out is free again (nothing may be in flight). */
void vqd_heap_reset(struct vqd *d)
{
	d->heap_next = d->heap_base;
}

/* Tests look at guest memory through the same checked accessor. */
void *vqd_ptr(struct vqd *d, u64 gpa, u64 len)
{
	return guest_ptr(&d->gm, gpa, len);
}

size_t vqd_ring_bytes(const struct vqd_queue *q)
{
	return 16 * (size_t)q->size + 6 + 2 * (size_t)q->size;
}

const u8 *vqd_load_ring(struct vqd_queue *q, const u8 *data)
{
	size_t desc_len = 16 * (size_t)q->size, avail_len = 6 + 2 * (size_t)q->size;

	memcpy(vqd_ptr(q->d, q->desc_gpa, desc_len), data, desc_len);
	memcpy(vqd_ptr(q->d, q->avail_gpa, avail_len), data + desc_len, avail_len);
	return data + desc_len + avail_len;
}

void vqd_load_heap(struct vqd *d, const u8 *data, size_t len)
{
	u64 heap_len = d->heap_end - d->heap_base, n = MIN((u64)len, heap_len);

	memcpy(vqd_ptr(d, d->heap_base, heap_len), data, n);
	memset(vqd_ptr(d, d->heap_base + n, heap_len - n), 0, heap_len - n);
}

/* Write one descriptor anywhere: the ring's table or an indirect one. */
void vqd_desc_set(struct vqd *d, u64 table_gpa, unsigned i, u64 addr, u32 len,
		  u16 flags, u16 next)
{
	struct vqd_desc desc = { addr, len, flags, next };

	if (guest_write(&d->gm, table_gpa + 16 * (u64)i, &desc, sizeof(desc)) < 0)
		abort();
}

/* A ring descriptor off the free list, for hand-built chains. */
int vqd_desc_alloc(struct vqd_queue *q)
{
	u16 i;

	if (q->num_free == 0)
		return -1;
	i = q->free_head;
	q->free_head = q->link[i];
	q->num_free--;
	return i;
}

/* Give a finished chain's descriptors back to the free list. */
static void chain_free(struct vqd_queue *q, u16 head)
{
	u16 n, i = head;

	if (head >= q->size)
		return;
	for (n = q->chain_len[head]; n; n--) {
		u16 next = q->link[i];

		q->link[i] = q->free_head;
		q->free_head = i;
		q->num_free++;
		i = next;
	}
	q->chain_len[head] = 0;
}

/* Start a chain; buffers follow in order, readable ones first. */
void vqd_chain_begin(struct vqd_queue *q)
{
	q->c_n = 0;
	q->c_indirect = false;
	q->c_err = false;
}

/* This chain goes through an indirect table of up to max entries. */
void vqd_chain_indirect(struct vqd_queue *q, unsigned max)
{
	q->c_indirect = true;
	q->c_table_max = max;
	q->c_table = vqd_alloc(q->d, 16 * (u64)max, 16);
	if (!q->c_table)
		q->c_err = true;
}

/* One buffer: into the indirect table, or a descriptor of the ring. */
void vqd_chain_add(struct vqd_queue *q, u64 gpa, u32 len, bool writable)
{
	u16 flags = writable ? VQD_F_WRITE : 0;
	int i;

	if (q->c_err)
		return;
	if (q->c_indirect) {
		if ((unsigned)q->c_n == q->c_table_max) {
			q->c_err = true;
			return;
		}
		i = q->c_n;
		vqd_desc_set(q->d, q->c_table, i, gpa, len, flags, 0);
	} else {
		i = vqd_desc_alloc(q);
		if (i < 0) {
			q->c_err = true;
			return;
		}
		vqd_desc_set(q->d, q->desc_gpa, i, gpa, len, flags, 0);
	}
	if (q->c_n == 0) {
		q->c_head = i;
	} else {
		u64 table = q->c_indirect ? q->c_table : q->desc_gpa;
		struct vqd_desc *prev = vqd_ptr(q->d, table + 16 * (u64)q->c_prev, 16);

		prev->flags |= VQD_F_NEXT;
		prev->next = i;
		if (!q->c_indirect)
			q->link[q->c_prev] = i;
	}
	q->c_prev = i;
	q->c_n++;
}

/* Close the chain and remember its descriptors for chain_free(). */
int vqd_chain_end(struct vqd_queue *q)
{
	int head;

	if (q->c_err || q->c_n == 0)
		return -1;
	if (!q->c_indirect) {
		q->chain_len[q->c_head] = q->c_n;
		return q->c_head;
	}
	head = vqd_desc_alloc(q);
	if (head < 0)
		return -1;
	vqd_desc_set(q->d, q->desc_gpa, head, q->c_table, 16 * q->c_n, VQD_F_INDIRECT, 0);
	q->chain_len[head] = 1;
	return head;
}

/* Raw: one avail ring slot. */
void vqd_avail_put(struct vqd_queue *q, u16 slot, u16 head)
{
	__atomic_store_n(&avail_of(q)->ring[slot & (q->size - 1)], head, __ATOMIC_RELAXED);
}

/* Raw: publish up to idx, however far that is. */
void vqd_avail_set_idx(struct vqd_queue *q, u16 idx)
{
	/* Release: descriptors and ring entries before the index. */
	__atomic_store_n(&avail_of(q)->idx, idx, __ATOMIC_RELEASE);
	q->avail_idx = idx;
}

/* Make a chain available, as a driver does. */
void vqd_publish(struct vqd_queue *q, u16 head)
{
	vqd_avail_put(q, q->avail_idx, head);
	vqd_avail_set_idx(q, q->avail_idx + 1);
}

/* The notify write; ioeventfd turns it into this eventfd write. */
void vqd_kick(struct vqd_queue *q)
{
	u64 one = 1;

	if (write(q->kick_fd, &one, sizeof(one)) < 0)
		abort();
}

/* Kick like Linux does: only when the device asked to be kicked. */
bool vqd_notify(struct vqd_queue *q)
{
	struct vqd_used *used = used_of(q);
	u16 old = q->kicked_idx, now = q->avail_idx;
	bool need;

	/* Full barrier: our avail->idx store before reading the device's
	 * suppression state (the mirror of vq_enable_kicks). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (virtio_has(q->d->dev, VIRTIO_F_EVENT_IDX)) {
		u16 event = __atomic_load_n((u16 *)&used->ring[q->size], __ATOMIC_RELAXED);

		need = (u16)(now - event - 1) < (u16)(now - old);
	} else {
		need = !(__atomic_load_n(&used->flags, __ATOMIC_RELAXED) & 1);
	}
	q->kicked_idx = now;
	if (need)
		vqd_kick(q);
	return need;
}

/* Driver-side suppression without EVENT_IDX. */
void vqd_set_no_interrupt(struct vqd_queue *q, bool on)
{
	__atomic_store_n(&avail_of(q)->flags, on ? 1 : 0, __ATOMIC_RELAXED);
}

/* Driver-side suppression with EVENT_IDX. */
void vqd_set_used_event(struct vqd_queue *q, u16 event)
{
	__atomic_store_n(&avail_of(q)->ring[q->size], event, __ATOMIC_RELAXED);
}

/* Acquire: the used element is read only after the index that covers it. */
u16 vqd_used_pending(struct vqd_queue *q)
{
	return __atomic_load_n(&used_of(q)->idx, __ATOMIC_ACQUIRE) - q->last_used;
}

/* Milliseconds on a clock that never jumps. */
static s64 now_ms(void)
{
	return monotonic_ns() / 1000000;
}

/* Take the next used entry, which vqd_used_pending() said is there. */
static void take_used(struct vqd_queue *q, u16 *head, u32 *len)
{
	struct vqd_used_elem *e = &used_of(q)->ring[q->last_used & (q->size - 1)];

	*head = q->got_head = __atomic_load_n(&e->id, __ATOMIC_RELAXED);
	*len = q->got_len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
	q->last_used++;
	chain_free(q, *head);
}

/*
 * Take the next used entry if there is one, without asking for an
 * interrupt: what Linux does inside its completion handler, callbacks
 * off, re-arming once when the batch is done (vqd_wait_used).
 */
bool vqd_take_used(struct vqd_queue *q, u16 *head, u32 *len)
{
	if (!vqd_used_pending(q))
		return false;
	take_used(q, head, len);
	return true;
}

/* Wait as a driver does: re-arm interrupts, check, sleep on the call fd. */
int vqd_wait_used(struct vqd_queue *q, int timeout_ms, u16 *head, u32 *len)
{
	s64 deadline = now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = q->call_fd, .events = POLLIN };
	u64 v;

	for (;;) {
		/* Ask for an interrupt at the entry we wait for, then look
		 * (full barrier between: the mirror of vq_need_signal). */
		if (!q->manual_events)
			vqd_set_used_event(q, q->last_used);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (vqd_used_pending(q)) {
			take_used(q, head, len);
			return 1;
		}
		if (now_ms() >= deadline)
			return 0;
		/* Wake on the device's interrupt, or recheck now and then
		 * for tests that switched interrupts off. */
		if (poll(&pfd, 1, (int)MIN(deadline - now_ms(), 100)) > 0 &&
		    read(q->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			abort();
	}
}

/*
 * Wait as a halted vCPU does under KVM, which polls for up to 200 us
 * (halt_poll_ns) before the vCPU thread really sleeps: spin that long
 * (reading the clock only now and then), then sleep on the interrupt.
 */
int vqd_poll_used(struct vqd_queue *q, int timeout_ms, u16 *head, u32 *len)
{
	u64 until = monotonic_ns() + VQD_HALT_POLL_NS;

	while (!vqd_used_pending(q) && monotonic_ns() < until)
		for (int i = 0; i < 64 && !vqd_used_pending(q); i++)
			__builtin_ia32_pause();
	return vqd_wait_used(q, timeout_ms, head, len);
}

/* The check most tests make: this head came back with this length. */
bool vqd_expect_used(struct vqd_queue *q, u16 head, u32 len)
{
	u16 h;
	u32 l;

	q->got_head = 0xffff;
	q->got_len = 0xffffffff;
	if (!vqd_wait_used(q, VQD_TIMEOUT_MS, &h, &l))
		return false;
	return h == head && l == len;
}

/* Corrupt-ring tests wait for the device to give up on the ring. */
bool vqd_wait_needs_reset(struct vqd *d, int timeout_ms)
{
	s64 deadline = now_ms() + timeout_ms;

	while (!vqd_needs_reset_count(d)) {
		if (now_ms() >= deadline)
			return false;
		usleep(1000);
	}
	return true;
}

/* The counters change on device threads: read them atomically. */
int vqd_signals(struct vqd *d, int qidx)
{
	return __atomic_load_n(&d->n_signal[qidx], __ATOMIC_SEQ_CST);
}

/* Likewise for needs_reset. */
int vqd_needs_reset_count(struct vqd *d)
{
	return __atomic_load_n(&d->n_needs_reset, __ATOMIC_SEQ_CST);
}
