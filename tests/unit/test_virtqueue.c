/*
 * test_virtqueue.c: the split ring's device side, driven by vqdriver.
 *
 * A do-nothing device with one queue gives vqdriver something to set up;
 * the tests then pop, push and signal by hand and check what a hostile
 * guest can and cannot make vq_pop() do.  Each malformed ring must be
 * refused for the reason we expect (checked through last_error()), so a
 * test cannot pass because some other check happened to fire.
 */
#include "tap.h"
#include "vqdriver.h"

#include <stdio.h>
#include <string.h>

#define MEM	MiB(64)

/* The device under test is the queue itself: no features, no I/O. */
static u64 nop_features(struct virtio_dev *dev)
{
	return 0;
}

static int nop_activate(struct virtio_dev *dev)
{
	return 0;
}

static void nop_reset(struct virtio_dev *dev)
{
}

static const struct virtio_dev_ops nop_ops = {
	.name = "nop",
	.device_id = 99,
	.n_queues = 1,
	.queue_size = 2048,
	.features = nop_features,
	.activate = nop_activate,
	.reset = nop_reset,
};

static struct virtio_dev dev = { .ops = &nop_ops };
static struct vq_chain chain;

/* A fresh driver and ring of qsize entries with the given features. */
static struct vqd_queue *setup(struct vqd *d, u64 mem, u64 features, u16 qsize)
{
	if (vqd_init(d, &dev, mem, features, qsize) < 0 || vqd_setup_rings(d) < 0) {
		tap_diag("setup: %s", last_error());
		return NULL;
	}
	return &d->q[0];
}

/* Did vq_pop refuse the ring, for this reason, and stay refused? */
static void expect_corrupt(struct vqd_queue *q, const char *why, const char *name)
{
	int rc = vq_pop(q->vq, &chain);

	ok(rc == -1 && strstr(last_error(), why), "%s: refused (%s)", name,
	   rc == -1 ? last_error() : "accepted");
	ok(q->vq->broken && vq_pop(q->vq, &chain) == -1, "%s: ring stays broken", name);
}

/* A plain chain: one readable, two writable buffers. */
static void test_simple(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	u64 a = vqd_alloc(&d, 16, 16), b = vqd_alloc(&d, 512, 16), c = vqd_alloc(&d, 1, 1);
	int head, rc;

	if (!ok(q, "simple: setup"))
		return;
	/* is_int() evaluates its arguments twice: pop into a local. */
	rc = vq_pop(q->vq, &chain);
	is_int(rc, 0, "empty ring pops nothing");
	vqd_chain_begin(q);
	vqd_chain_add(q, a, 16, false);
	vqd_chain_add(q, b, 512, true);
	vqd_chain_add(q, c, 1, true);
	head = vqd_chain_end(q);
	vqd_publish(q, head);
	ok(vq_has_avail(q->vq), "published chain is available");
	rc = vq_pop(q->vq, &chain);
	is_int(rc, 1, "pop takes it");
	is_int(chain.head, head, "head");
	ok(chain.n_out == 1 && chain.n_in == 2, "1 out, 2 in");
	ok(chain.out_len == 16 && chain.in_len == 513, "byte totals");
	ok(chain.iov[0].iov_base == vqd_ptr(&d, a, 16) &&
	   chain.iov[2].iov_base == vqd_ptr(&d, c, 1), "iovecs point into guest RAM");
	ok(!vq_has_avail(q->vq), "nothing left");

	vq_push(q->vq, head, 513);
	is_int(vqd_used_pending(q), 1, "push makes one used entry");
	ok(vqd_expect_used(q, head, 513), "used entry carries head and length");
	vqd_destroy(&d);
}

/*
 * The device reads the driver's avail index once per batch, not per chain:
 * chains published before that read are served, and an index that jumps
 * past the queue size while they are is still caught at the next read.
 */
static void test_avail_batch(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	u64 buf = vqd_alloc(&d, 64, 16);
	int rc, i;

	if (!ok(q, "avail batch: setup"))
		return;
	for (i = 0; i < 3; i++) {
		vqd_desc_set(&d, q->desc_gpa, i, buf, 64, 0, 0);
		vqd_publish(q, i);
	}
	is_int(vq_avail_count(q->vq), 3, "avail batch: three available");
	rc = vq_pop(q->vq, &chain);
	ok(rc == 1 && chain.head == 0, "avail batch: first popped");
	is_int(vq_avail_count(q->vq), 2, "avail batch: two left");
	/* Garbage while two seen chains remain: they are still served. */
	vqd_avail_set_idx(q, q->avail_idx + 40);
	rc = vq_pop(q->vq, &chain);
	ok(rc == 1 && chain.head == 1, "avail batch: second popped from the batch seen");
	rc = vq_pop(q->vq, &chain);
	ok(rc == 1 && chain.head == 2, "avail batch: third popped from the batch seen");
	expect_corrupt(q, "avail index jumped", "avail batch: the jump, at the next read");
	vqd_destroy(&d);
}

/*
 * A watcher's count of used bytes (net's transmit side watches its rx
 * ring): the lengths pushed since its last look, at most a ring's worth
 * however far the index ran.
 */
static void test_used_bytes(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES, 8);
	u64 buf = vqd_alloc(&d, 64, 16);
	u16 seen = 0;
	u64 bytes;
	int i;

	if (!ok(q, "used bytes: setup"))
		return;
	/* (is_int evaluates its arguments twice: the count goes in a variable.) */
	bytes = vq_used_bytes_since(q->vq, &seen);
	is_int(bytes, 0, "used bytes: none yet");
	for (i = 0; i < 3; i++) {
		vqd_desc_set(&d, q->desc_gpa, i, buf, 64, VQD_F_WRITE, 0);
		vqd_publish(q, i);
		vq_pop(q->vq, &chain);
		vq_push(q->vq, i, 100 * (i + 1));
	}
	bytes = vq_used_bytes_since(q->vq, &seen);
	is_int(bytes, 600, "used bytes: three pushed");
	is_int(seen, 3, "used bytes: the index moved on");
	bytes = vq_used_bytes_since(q->vq, &seen);
	is_int(bytes, 0, "used bytes: nothing new");
	seen = 3 - 1000;	/* a stale index: one ring's worth at most */
	bytes = vq_used_bytes_since(q->vq, &seen);
	ok(bytes <= 8ULL * 300, "used bytes: bounded by the ring");
	vqd_destroy(&d);
}

/* Indirect tables: alone, and after direct descriptors (2.7.5.3.2). */
static void test_indirect(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	u64 buf = vqd_alloc(&d, 4096, 16), table = vqd_alloc(&d, 16 * 3, 16);
	int head, first, rc;

	if (!ok(q, "indirect: setup"))
		return;
	vqd_chain_begin(q);
	vqd_chain_indirect(q, 8);
	vqd_chain_add(q, buf, 16, false);
	vqd_chain_add(q, buf + 16, 100, false);
	vqd_chain_add(q, buf + 512, 512, true);
	head = vqd_chain_end(q);
	vqd_publish(q, head);
	rc = vq_pop(q->vq, &chain);
	is_int(rc, 1, "indirect chain pops");
	ok(chain.n_out == 2 && chain.n_in == 1 && chain.in_len == 512, "indirect layout");

	/* Two direct descriptors, then one pointing at a 3-entry table. */
	vqd_desc_set(&d, table, 0, buf, 8, VQD_F_NEXT, 1);
	vqd_desc_set(&d, table, 1, buf + 8, 8, VQD_F_NEXT | VQD_F_WRITE, 2);
	vqd_desc_set(&d, table, 2, buf + 16, 8, VQD_F_WRITE, 0);
	first = vqd_desc_alloc(q);
	head = vqd_desc_alloc(q);
	vqd_desc_set(&d, q->desc_gpa, first, buf + 100, 4, VQD_F_NEXT, head);
	vqd_desc_set(&d, q->desc_gpa, head, table, 48, VQD_F_INDIRECT, 0);
	vqd_publish(q, first);
	rc = vq_pop(q->vq, &chain);
	is_int(rc, 1, "direct then indirect pops");
	ok(chain.n_out == 2 && chain.n_in == 2 && chain.out_len == 12, "mixed layout");
	vqd_destroy(&d);
}

/* Build a raw chain of n descriptors 0..n-1 with the given flags. */
static void raw_chain(struct vqd *d, struct vqd_queue *q, unsigned n, u64 buf, u32 len)
{
	unsigned i;

	for (i = 0; i < n; i++)
		vqd_desc_set(d, q->desc_gpa, i, buf, len, i + 1 < n ? VQD_F_NEXT : 0, i + 1);
}

/* The catalogue of broken chains; each gets its own ring. */
static void test_malformed(void)
{
	struct vqd d;
	struct vqd_queue *q;
	u64 buf, table, inner;

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT, 1);
	vqd_desc_set(&d, q->desc_gpa, 1, buf, 16, VQD_F_NEXT, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "loops", "two-descriptor loop");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "loops", "self loop");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT, 16);
	vqd_publish(q, 0);
	expect_corrupt(q, "next index out of range", "next >= size");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	vqd_publish(q, 16);
	expect_corrupt(q, "head index out of range", "head >= size");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	vqd_avail_set_idx(q, 17);
	expect_corrupt(q, "avail index jumped", "avail idx jump > size");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, MEM - 8, 16, 0, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "outside guest RAM", "buffer straddles end of RAM");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, 0xfffffffffffff000ULL, 0x2000, 0, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "outside guest RAM", "address + length wraps");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT, 1);
	vqd_desc_set(&d, q->desc_gpa, 1, buf, 0, VQD_F_WRITE, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "zero-length", "zero-length buffer");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT | VQD_F_WRITE, 1);
	vqd_desc_set(&d, q->desc_gpa, 1, buf, 16, 0, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "readable buffer after a writable", "writable before readable");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	inner = vqd_alloc(&d, 16, 16);
	table = vqd_alloc(&d, 32, 16);
	vqd_desc_set(&d, inner, 0, buf, 16, 0, 0);
	vqd_desc_set(&d, table, 0, buf, 16, VQD_F_NEXT, 1);
	vqd_desc_set(&d, table, 1, inner, 16, VQD_F_INDIRECT, 0);
	vqd_desc_set(&d, q->desc_gpa, 0, table, 32, VQD_F_INDIRECT, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "nested indirect", "indirect inside indirect");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	table = vqd_alloc(&d, 16, 16);
	vqd_desc_set(&d, table, 0, buf, 16, 0, 0);
	vqd_desc_set(&d, q->desc_gpa, 0, table, 16, VQD_F_INDIRECT | VQD_F_NEXT, 1);
	vqd_desc_set(&d, q->desc_gpa, 1, buf, 16, 0, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "indirect descriptor with NEXT", "INDIRECT together with NEXT");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	table = vqd_alloc(&d, 64, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, table, 24, VQD_F_INDIRECT, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "bad indirect table length", "indirect length not a multiple of 16");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	table = vqd_alloc(&d, 16 * (VQ_MAX_SEGS + 1), 16);
	vqd_desc_set(&d, q->desc_gpa, 0, table, 16 * (VQ_MAX_SEGS + 1), VQD_F_INDIRECT, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "bad indirect table length", "indirect table longer than VQ_MAX_SEGS");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	buf = vqd_alloc(&d, 4096, 16);
	table = vqd_alloc(&d, 32, 16);
	vqd_desc_set(&d, table, 0, buf, 16, VQD_F_NEXT, 0);
	vqd_desc_set(&d, table, 1, buf, 16, VQD_F_NEXT, 0);
	vqd_desc_set(&d, q->desc_gpa, 0, table, 32, VQD_F_INDIRECT, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "indirect chain loops", "loop inside an indirect table");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES & ~(1ULL << VIRTIO_F_INDIRECT_DESC), 16);
	buf = vqd_alloc(&d, 4096, 16);
	table = vqd_alloc(&d, 16, 16);
	vqd_desc_set(&d, table, 0, buf, 16, 0, 0);
	vqd_desc_set(&d, q->desc_gpa, 0, table, 16, VQD_F_INDIRECT, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "without VIRTIO_F_INDIRECT_DESC", "indirect not negotiated");
	vqd_destroy(&d);

	/* 1000 direct + a 100-entry table: more than VQ_MAX_SEGS buffers. */
	q = setup(&d, MEM, VQD_ALL_FEATURES, 2048);
	buf = vqd_alloc(&d, 4096, 16);
	table = vqd_alloc(&d, 16 * 100, 16);
	raw_chain(&d, q, 1000, buf, 16);
	vqd_desc_set(&d, q->desc_gpa, 999, buf, 16, VQD_F_NEXT, 1000);
	vqd_desc_set(&d, q->desc_gpa, 1000, table, 16 * 100, VQD_F_INDIRECT, 0);
	for (unsigned i = 0; i < 100; i++)
		vqd_desc_set(&d, table, i, buf, 16, i < 99 ? VQD_F_NEXT : 0, i + 1);
	vqd_publish(q, 0);
	expect_corrupt(q, "too many buffers", "chain longer than VQ_MAX_SEGS");
	vqd_destroy(&d);
}

/* 2.7.5: at most 4 GiB in a chain.  Needs RAM past 4 GiB of address
 * space, which MAP_NORESERVE makes cheap. */
static void test_length_overflow(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, GiB(5), VQD_ALL_FEATURES, 16);

	if (!ok(q, "length overflow: setup"))
		return;
	vqd_desc_set(&d, q->desc_gpa, 0, GiB(1), 0x80000000u, VQD_F_NEXT, 1);
	vqd_desc_set(&d, q->desc_gpa, 1, GiB(1), 0x80000000u, VQD_F_NEXT, 2);
	vqd_desc_set(&d, q->desc_gpa, 2, GiB(1), 0x80000000u, VQD_F_WRITE, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "longer than 4 GiB", "chain total over 4 GiB");

	/* A buffer running from low RAM into the PCI hole. */
	vqd_destroy(&d);
	q = setup(&d, GiB(5), VQD_ALL_FEATURES, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, PCI_HOLE_START - 4096, 8192, 0, 0);
	vqd_publish(q, 0);
	expect_corrupt(q, "outside guest RAM", "buffer crossing into the PCI hole");
	vqd_destroy(&d);
}

/* A full ring (avail idx exactly size ahead) is legal. */
static void test_full_ring(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	u64 buf = vqd_alloc(&d, 16, 16);
	int i, popped = 0;

	if (!ok(q, "full ring: setup"))
		return;
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, 0, 0);
	for (i = 0; i < 16; i++)
		vqd_publish(q, 0);
	while (vq_pop(q->vq, &chain) == 1)
		popped++;
	is_int(popped, 16, "size entries outstanding all pop");
	ok(!q->vq->broken, "full ring is not corrupt");
	vqd_destroy(&d);
}

/* vq_start refuses rings a driver may not give. */
static void test_start_checks(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	struct virtqueue *vq = q->vq;

	vq->size = 12;
	ok(vq_start(vq, &d.gm, false, false) < 0, "size not a power of 2 refused");
	vq->size = 16;
	vq->desc_gpa = q->desc_gpa + 8;
	ok(vq_start(vq, &d.gm, false, false) < 0, "misaligned descriptor table refused");
	vq->desc_gpa = q->desc_gpa;
	vq->used_gpa = q->used_gpa + 2;
	ok(vq_start(vq, &d.gm, false, false) < 0, "misaligned used ring refused");
	vq->used_gpa = MEM - 64;
	ok(vq_start(vq, &d.gm, false, false) < 0 && !vq->used,
	   "used ring past the end of RAM refused");
	vq->used_gpa = q->used_gpa;
	ok(vq_start(vq, &d.gm, false, false) == 0, "good ring accepted");
	vq_reset(vq);
	ok(vq->size == 0 && !vq->desc && vq->kick_fd == q->kick_fd &&
	   vq->msix_vector == VQ_NO_VECTOR, "reset forgets the ring, keeps the eventfds");
	ok(vq_pop(vq, &chain) == -1 && !vq_has_avail(vq), "a reset queue pops nothing");
	vqd_destroy(&d);
}

/* Interrupt suppression: NO_INTERRUPT flag and EVENT_IDX used_event. */
static void test_need_signal(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES & ~(1ULL << VIRTIO_F_EVENT_IDX), 16);
	struct virtqueue *vq = q->vq;

	if (!ok(q, "need_signal: setup"))
		return;
	vq_push(vq, 0, 0);
	ok(vq_need_signal(vq), "flags: interrupt by default");
	ok(vq_need_signal(vq), "asking twice gives the same answer");
	vqd_set_no_interrupt(q, true);
	vq_push(vq, 0, 0);
	ok(!vq_need_signal(vq), "flags: NO_INTERRUPT suppresses");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	vq = q->vq;
	q->manual_events = true;
	vq_push(vq, 0, 0);
	ok(vq_need_signal(vq), "event idx: the first push signals");
	vqd_set_used_event(q, 3);
	vq_push(vq, 0, 0);		/* used idx 1 -> 2 */
	ok(!vq_need_signal(vq), "event idx: used_event 3 not reached at 2");
	ok(!vq_need_signal(vq), "asking twice gives the same answer");
	vq_push(vq, 0, 0);		/* 2 -> 3 */
	vq_push(vq, 0, 0);		/* 3 -> 4: entry 3 is new */
	ok(vq_need_signal(vq), "event idx: passing used_event signals");
	vq_push(vq, 0, 0);
	ok(!vq_need_signal(vq), "event idx: not again until used_event moves");
	vqd_set_used_event(q, 4);
	vq_push(vq, 0, 0);
	ok(!vq_need_signal(vq), "event idx: an event behind us stays quiet");
	vqd_destroy(&d);
}

/* Kick suppression: NO_NOTIFY and avail_event, and the re-check. */
static void test_kicks(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES & ~(1ULL << VIRTIO_F_EVENT_IDX), 16);
	struct virtqueue *vq = q->vq;
	u64 buf = vqd_alloc(&d, 16, 16);

	if (!ok(q, "kicks: setup"))
		return;
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, 0, 0);
	vq_disable_kicks(vq);
	vqd_publish(q, 0);
	ok(!vqd_notify(q), "flags: NO_NOTIFY stops the driver's kick");
	ok(vq_enable_kicks(vq), "enable sees what arrived meanwhile");
	vq_pop(vq, &chain);
	ok(!vq_enable_kicks(vq), "enable on an empty ring: nothing new");
	vqd_publish(q, 0);
	ok(vqd_notify(q), "flags: kicks wanted again");
	vqd_destroy(&d);

	q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	vq = q->vq;
	buf = vqd_alloc(&d, 16, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, 0, 0);
	ok(!vq_enable_kicks(vq), "event idx: empty ring");
	vqd_publish(q, 0);
	ok(vqd_notify(q), "event idx: first entry kicks");
	vq_disable_kicks(vq);
	vqd_publish(q, 0);
	ok(!vqd_notify(q), "event idx: avail_event left behind, no kick");
	vq_pop(vq, &chain);
	vq_pop(vq, &chain);
	ok(!vq_enable_kicks(vq), "event idx: drained");
	vqd_publish(q, 0);
	ok(vqd_notify(q), "event idx: kick wanted for the next entry");
	vqd_destroy(&d);
}

/*
 * The counters --verbose reports: kicks, chains, interrupts.  They live as
 * long as the launcher (earlier tests' queues counted too), so compare
 * against where they stood.
 */
static void test_stats(void)
{
	struct vqd d;
	struct vqd_queue *q = setup(&d, MEM, VQD_ALL_FEATURES, 16);
	struct virtqueue *vq = q->vq;
	u64 buf = vqd_alloc(&d, 16, 16);
	struct vq_stats was = vq->stats;
	int rc;

	vqd_desc_set(&d, q->desc_gpa, 0, buf, 16, 0, 0);
	vqd_publish(q, 0);
	vqd_kick(q);
	vqd_kick(q);
	vq_kicked(vq);
	is_int(vq->stats.kicks - was.kicks, 2, "stats: two kicks, one drain");
	rc = vq_pop(vq, &chain);
	is_int(rc, 1, "stats: pop");
	is_int(vq->stats.chains - was.chains, 1, "stats: a chain counted");
	vq_push(vq, 0, 0);
	virtio_signal(&dev, 0);
	is_int(vq->stats.interrupts - was.interrupts, 1, "stats: an interrupt sent");
	vq_push(vq, 0, 0);
	vqd_set_used_event(q, 100);
	virtio_signal(&dev, 0);
	is_int(vq->stats.interrupts - was.interrupts, 1, "stats: a suppressed one is not counted");
	vq_reset(vq);
	is_int(vq->stats.kicks - was.kicks, 2, "stats: kept across a reset");
	vqd_destroy(&d);
}

/* The copy helpers cross iovec boundaries and stop at the chain's end. */
static void test_iov_helpers(void)
{
	char a[4] = "abcd", b[3] = "efg", out[8] = { 0 };
	struct iovec iov[2] = { { a, 4 }, { b, 3 } };

	size_t n = iov_to_buf(iov, 2, 2, out, 8);

	is_int(n, 5, "iov_to_buf: skip 2, copy the rest");
	ok(!memcmp(out, "cdefg", 5), "iov_to_buf: bytes in order");
	n = iov_from_buf(iov, 2, 3, "XYZW", 4);
	is_int(n, 4, "iov_from_buf across the boundary");
	ok(!memcmp(a, "abcX", 4) && !memcmp(b, "YZW", 3), "iov_from_buf: bytes in place");
	n = iov_from_buf(iov, 2, 6, "12345", 5);
	is_int(n, 1, "iov_from_buf stops at the end");
}

int main(void)
{
	test_simple();
	test_avail_batch();
	test_used_bytes();
	test_indirect();
	test_malformed();
	test_length_overflow();
	test_full_ring();
	test_start_checks();
	test_need_signal();
	test_kicks();
	test_stats();
	test_iov_helpers();
	return tap_done();
}
