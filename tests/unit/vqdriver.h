/*
 * vqdriver.h: a virtio driver and transport in miniature, for tests,
 * benchmarks and fuzzers.
 *
 * It plays both parts a device normally meets.  As the transport it owns
 * guest RAM (a real guest_mem), negotiates features, sets up the queues
 * (vq_start), activates and resets the device, and records the device's
 * calls back (signal, needs_reset).  As the guest driver it lays out
 * desc/avail/used in that RAM exactly as Linux would, builds descriptor
 * chains (direct or through an indirect table), publishes them with the
 * same barriers, kicks the queue's eventfd and reads the used ring.
 *
 * For malformed-ring tests there are raw writers for descriptors and the
 * avail ring; nothing stops a test from writing nonsense, which is the
 * point.
 */
#ifndef VQDRIVER_H
#define VQDRIVER_H

#include "virtio/virtio.h"

/* Descriptor flags, for raw writes. */
#define VQD_F_NEXT	1
#define VQD_F_WRITE	2
#define VQD_F_INDIRECT	4

/* A descriptor as the guest lays it out (2.7.5), for raw reads. */
struct vqd_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

/* Accept every feature the device and transport offer. */
#define VQD_ALL_FEATURES	(~0ULL)

/* How long waits give up, by default. */
#define VQD_TIMEOUT_MS	5000

struct vqd;

struct vqd_queue {
	struct vqd *d;
	int qidx;
	struct virtqueue *vq;		/* the device's side */
	u16 size;
	u64 desc_gpa, avail_gpa, used_gpa;
	int kick_fd, call_fd;

	/* The driver's side of the ring. */
	u16 avail_idx;			/* next avail index we publish */
	u16 kicked_idx;			/* avail_idx at the last vqd_notify() */
	u16 last_used;			/* next used entry we read */
	bool manual_events;		/* tests drive used_event themselves */
	u16 free_head, num_free;
	u16 *link;			/* free list, and each chain's order */
	u16 *chain_len;			/* descriptors of an outstanding head */

	/* The chain being built. */
	int c_n;
	u16 c_head, c_prev;
	bool c_indirect, c_err;
	u64 c_table;
	unsigned c_table_max;

	/* The last used entry read, for diagnostics. */
	u16 got_head;
	u32 got_len;
};

struct vqd {
	struct guest_mem gm;
	struct virtio_dev *dev;
	unsigned n_queues;
	struct vqd_queue q[VIRTIO_MAX_QUEUES];
	u64 heap_base, heap_next, heap_end;

	/* What the device called back (updated from its threads). */
	int n_signal[VIRTIO_MAX_QUEUES];
	int n_config;
	int n_needs_reset;
};

/*
 * Map mem_size bytes of guest RAM, lay out every queue of dev (each
 * qsize entries, 0 for the device's maximum), create kick and call
 * eventfds, install the recording callbacks and negotiate: the device's
 * offer plus VERSION_1, INDIRECT_DESC and EVENT_IDX, masked by features.
 * -1 with last_error() set.
 */
int vqd_init(struct vqd *d, struct virtio_dev *dev, u64 mem_size, u64 features, u16 qsize);
/* Undo vqd_init (resets the device first; does not free it). */
void vqd_destroy(struct vqd *d);

/* Fresh, empty rings, and vq_start() on each queue: no activate. */
int vqd_setup_rings(struct vqd *d);
/* vqd_setup_rings() then activate and DRIVER_OK. */
int vqd_start(struct vqd *d);
/* Device reset, as a driver writing status 0 causes it. */
void vqd_stop(struct vqd *d);
/* Stop and start again: after NEEDS_RESET, or to recover descriptors. */
int vqd_restart(struct vqd *d);

/* Guest RAM for buffers: a bump allocator (0: exhausted), and reset. */
u64 vqd_alloc(struct vqd *d, u64 len, u64 align);
void vqd_heap_reset(struct vqd *d);
/* Host view of guest memory (NULL outside RAM). */
void *vqd_ptr(struct vqd *d, u64 gpa, u64 len);

/*
 * For fuzzers, which write the guest's side raw: a queue's descriptor
 * table then its avail ring (flags, idx, ring, used_event) take
 * vqd_ring_bytes(q) bytes of input; vqd_load_ring() copies them from
 * data and returns where the input goes on.  vqd_load_heap() fills the
 * buffer heap with up to len bytes of data and zeroes the rest.
 */
size_t vqd_ring_bytes(const struct vqd_queue *q);
const u8 *vqd_load_ring(struct vqd_queue *q, const u8 *data);
void vqd_load_heap(struct vqd *d, const u8 *data, size_t len);

/* Build a chain: begin, [indirect,] add buffers in order, end -> head. */
void vqd_chain_begin(struct vqd_queue *q);
void vqd_chain_indirect(struct vqd_queue *q, unsigned max);
void vqd_chain_add(struct vqd_queue *q, u64 gpa, u32 len, bool writable);
int vqd_chain_end(struct vqd_queue *q);

/* Make head available (ring entry, then idx with release), and kick. */
void vqd_publish(struct vqd_queue *q, u16 head);
void vqd_kick(struct vqd_queue *q);
/* Kick only if the device asked for kicks (avail_event / NO_NOTIFY). */
bool vqd_notify(struct vqd_queue *q);

/* Next used entry: 1 and its head/len, or 0 after timeout_ms. */
int vqd_wait_used(struct vqd_queue *q, int timeout_ms, u16 *head, u32 *len);
/* vqd_wait_used() after spinning up to VQD_HALT_POLL_NS, as KVM polls
 * a halted vCPU before it sleeps: for benchmarks. */
#define VQD_HALT_POLL_NS	200000
int vqd_poll_used(struct vqd_queue *q, int timeout_ms, u16 *head, u32 *len);
/* The next used entry is (head, len), within VQD_TIMEOUT_MS. */
bool vqd_expect_used(struct vqd_queue *q, u16 head, u32 len);
/* The next used entry if one is there, interrupts left as they are. */
bool vqd_take_used(struct vqd_queue *q, u16 *head, u32 *len);
/* Used entries the device pushed that we have not read. */
u16 vqd_used_pending(struct vqd_queue *q);
/* The device called needs_reset within timeout_ms. */
bool vqd_wait_needs_reset(struct vqd *d, int timeout_ms);

/* Raw writers, for rings no honest driver would build. */
int vqd_desc_alloc(struct vqd_queue *q);
void vqd_desc_set(struct vqd *d, u64 table_gpa, unsigned i, u64 addr, u32 len,
		  u16 flags, u16 next);
void vqd_avail_put(struct vqd_queue *q, u16 slot, u16 head);
void vqd_avail_set_idx(struct vqd_queue *q, u16 idx);
/* Driver-side suppression: NO_INTERRUPT flag, used_event. */
void vqd_set_no_interrupt(struct vqd_queue *q, bool on);
void vqd_set_used_event(struct vqd_queue *q, u16 event);

/* Atomic reads of the counters the callbacks keep. */
int vqd_signals(struct vqd *d, int qidx);
int vqd_needs_reset_count(struct vqd *d);

#endif
