/*
 * test_rng.c: virtio-rng driven through vqdriver as a guest would.
 *
 * Buffers must come back filled and with the right length (never more
 * than RNG_MAX_PER_REQUEST), read-only buffers untouched, and corrupt
 * rings must end in NEEDS_RESET with the device still serving after a
 * reset.  "Filled" is checked as "not all zero": 16 random bytes being
 * all zero has probability 2^-128.
 */
#include "tap.h"
#include "vqdriver.h"
#include "virtio/rng.h"

#include <string.h>
#include <unistd.h>

#define MEM	MiB(16)

/* Untouched (zeroed) memory. */
static bool all_zero(const u8 *p, u64 len)
{
	for (u64 i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Every 16-byte stretch of [p, p+len) has a non-zero byte. */
static bool filled(const u8 *p, u64 len)
{
	for (u64 off = 0; off < len; off += 16)
		if (all_zero(p + off, MIN(16, len - off)))
			return false;
	return true;
}

/* A zeroed guest buffer. */
static u64 zbuf(struct vqd *d, u64 len)
{
	u64 gpa = vqd_alloc(d, len, 16);

	memset(vqd_ptr(d, gpa, len), 0, len);
	return gpa;
}

/* A one-buffer chain, published; its head. */
static int post1(struct vqd_queue *q, u64 gpa, u32 len, bool writable)
{
	int head;

	vqd_chain_begin(q);
	vqd_chain_add(q, gpa, len, writable);
	head = vqd_chain_end(q);
	if (head >= 0)
		vqd_publish(q, head);
	return head;
}

/* Wait for NEEDS_RESET beyond `before`, up to 5 s. */
static bool reset_after(struct vqd *d, int before)
{
	for (int i = 0; i < 5000; i++) {
		if (vqd_needs_reset_count(d) > before)
			return true;
		usleep(1000);
	}
	return false;
}

/* Honest requests: filled, with the right lengths, bounded. */
static void test_fill(u64 features, const char *how)
{
	struct virtio_dev *dev = rng_create();
	struct vqd d;
	struct vqd_queue *q;
	u64 a, b1, b2, big;
	int h, n;

	if (!ok(dev && vqd_init(&d, dev, MEM, features, 0) == 0 && vqd_start(&d) == 0,
		"%s: rng up", how))
		return;
	q = &d.q[0];
	a = zbuf(&d, 64);
	h = post1(q, a, 64, true);
	vqd_notify(q);
	ok(vqd_expect_used(q, h, 64), "%s: 64-byte buffer back with length 64", how);
	ok(filled(vqd_ptr(&d, a, 64), 64), "%s: ... full of random bytes", how);

	/* Two writable buffers in one chain. */
	b1 = zbuf(&d, 16);
	b2 = zbuf(&d, 100);
	vqd_chain_begin(q);
	vqd_chain_add(q, b1, 16, true);
	vqd_chain_add(q, b2, 100, true);
	h = vqd_chain_end(q);
	vqd_publish(q, h);
	vqd_notify(q);
	ok(vqd_expect_used(q, h, 116), "%s: two buffers, length 116", how);
	ok(filled(vqd_ptr(&d, b1, 16), 16) && filled(vqd_ptr(&d, b2, 100), 100),
	   "%s: both filled", how);

	/* More than one request's worth: bounded. */
	big = zbuf(&d, 2 * RNG_MAX_PER_REQUEST);
	h = post1(q, big, 2 * RNG_MAX_PER_REQUEST, true);
	vqd_notify(q);
	ok(vqd_expect_used(q, h, RNG_MAX_PER_REQUEST), "%s: a %d-byte buffer gets %d bytes",
	   how, 2 * RNG_MAX_PER_REQUEST, RNG_MAX_PER_REQUEST);
	ok(filled(vqd_ptr(&d, big, RNG_MAX_PER_REQUEST), RNG_MAX_PER_REQUEST) &&
	   all_zero(vqd_ptr(&d, big + RNG_MAX_PER_REQUEST, RNG_MAX_PER_REQUEST),
		    RNG_MAX_PER_REQUEST),
	   "%s: the first %d bytes filled, the rest untouched", how, RNG_MAX_PER_REQUEST);

	/* A whole queue of requests at once. */
	vqd_heap_reset(&d);
	for (int i = 0; i < RNG_QUEUE_SIZE; i++)
		post1(q, zbuf(&d, 32), 32, true);
	vqd_notify(q);
	n = 0;
	for (int i = 0; i < RNG_QUEUE_SIZE; i++) {
		u16 head;
		u32 len;

		if (vqd_wait_used(q, VQD_TIMEOUT_MS, &head, &len) && len == 32)
			n++;
	}
	is_int(n, RNG_QUEUE_SIZE, "a full queue of 32-byte requests all answered");
	ok(vqd_signals(&d, 0) > 0, "%s: the driver was interrupted", how);
	vqd_destroy(&d);
	rng_free(dev);
}

/* Chains a driver should not send, but a hostile one may. */
static void test_malformed(void)
{
	struct virtio_dev *dev = rng_create();
	struct vqd d;
	struct vqd_queue *q;
	u64 ro, w;
	int h, hw, before;

	if (!ok(dev && vqd_init(&d, dev, MEM, VQD_ALL_FEATURES, 0) == 0 && vqd_start(&d) == 0,
		"malformed: rng up"))
		return;
	q = &d.q[0];

	/* Read-only buffers: nothing to fill, returned untouched. */
	ro = zbuf(&d, 32);
	h = post1(q, ro, 32, false);
	vqd_notify(q);
	ok(vqd_expect_used(q, h, 0) && all_zero(vqd_ptr(&d, ro, 32), 32),
	   "a read-only buffer comes back untouched, length 0");
	ro = zbuf(&d, 8);
	w = zbuf(&d, 24);
	vqd_chain_begin(q);
	vqd_chain_add(q, ro, 8, false);
	vqd_chain_add(q, w, 24, true);
	hw = vqd_chain_end(q);
	vqd_publish(q, hw);
	vqd_notify(q);
	ok(vqd_expect_used(q, hw, 24) && all_zero(vqd_ptr(&d, ro, 8), 8) &&
	   filled(vqd_ptr(&d, w, 24), 24), "readable + writable: only the writable part filled");

	/* Out-of-range head. */
	before = vqd_needs_reset_count(&d);
	vqd_avail_put(q, q->avail_idx, 999);
	vqd_avail_set_idx(q, q->avail_idx + 1);
	vqd_kick(q);
	ok(reset_after(&d, before), "head out of range: NEEDS_RESET");

	/* A buffer outside guest RAM. */
	ok(vqd_restart(&d) == 0, "restart");
	before = vqd_needs_reset_count(&d);
	post1(q, MEM - 8, 64, true);
	vqd_kick(q);
	ok(reset_after(&d, before), "buffer past the end of RAM: NEEDS_RESET");

	/* A chain that loops. */
	ok(vqd_restart(&d) == 0, "restart");
	before = vqd_needs_reset_count(&d);
	w = zbuf(&d, 16);
	vqd_desc_set(&d, q->desc_gpa, 0, w, 16, VQD_F_WRITE | VQD_F_NEXT, 1);
	vqd_desc_set(&d, q->desc_gpa, 1, w, 16, VQD_F_WRITE | VQD_F_NEXT, 0);
	vqd_avail_put(q, 0, 0);
	vqd_avail_set_idx(q, 1);
	vqd_kick(q);
	ok(reset_after(&d, before), "looping chain: NEEDS_RESET");

	/* Lengths summing past 4 GiB, through an indirect table. */
	ok(vqd_restart(&d) == 0, "restart");
	before = vqd_needs_reset_count(&d);
	vqd_chain_begin(q);
	/* 600 x 8 MiB of the same RAM: each buffer valid, the sum not. */
	vqd_chain_indirect(q, 600);
	for (int i = 0; i < 600; i++)
		vqd_chain_add(q, 0x100000, MiB(8), true);
	h = vqd_chain_end(q);
	vqd_publish(q, h);
	vqd_kick(q);
	ok(reset_after(&d, before), "chain longer than 4 GiB: NEEDS_RESET");

	/* After all that, a reset brings back a working device. */
	ok(vqd_restart(&d) == 0, "restart");
	w = zbuf(&d, 48);
	h = post1(q, w, 48, true);
	vqd_notify(q);
	ok(vqd_expect_used(q, h, 48) && filled(vqd_ptr(&d, w, 48), 48),
	   "the device serves again after reset");
	vqd_destroy(&d);
	rng_free(dev);
}

/* With and without EVENT_IDX, then the malformed rings. */
int main(void)
{
	test_fill(VQD_ALL_FEATURES, "event-idx");
	test_fill(~(1ULL << VIRTIO_F_EVENT_IDX), "no event-idx");
	test_malformed();
	return tap_done();
}
