/*
 * fuzz_blk.c: libFuzzer target for the virtqueue and virtio-blk.
 *
 * The input is what a hostile guest controls: the descriptor table, the
 * avail ring and the memory its buffers point at.  vqdriver lays out a
 * small guest (QSIZE-entry queue, a few pages of RAM) exactly as in the
 * unit tests; we pour the input over it and let the device serve whatever
 * it finds, synchronously, on this thread.  ASan and UBSan catch memory
 * errors; the checks below catch a device that answers with nonsense.
 *
 * Input layout:
 *   byte 0            bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 FLUSH
 *                     negotiated, bit 3 use the read-only disk
 *   next 16*QSIZE     descriptor table (at DESC_GPA)
 *   next 6+2*QSIZE    avail ring: flags, idx, ring[QSIZE], used_event
 *   the rest          guest RAM from HEAP_GPA on (buffers, indirect tables)
 */
#include "vqdriver.h"
#include "virtio/blk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define QSIZE		16
#define MEM		KiB(128)
#define DISK_SIZE	KiB(64)

#define F_FLUSH		9

struct target {
	struct virtio_dev *dev;
	struct vqd d;
	u64 offer;
};

static struct target rw, ro;

/* A 64 KiB disk in a memfd: fast, private, and on tmpfs, which also
 * exercises the write-zeroes fallback. */
static void target_init(struct target *t, bool read_only)
{
	int fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	u8 sector[512];
	int i;

	memset(sector, 0xa5, sizeof(sector));
	for (i = 0; i < (int)(DISK_SIZE / 512); i++)
		if (fd < 0 || write(fd, sector, sizeof(sector)) != sizeof(sector))
			abort();
	t->dev = virtio_blk_new(fd, DISK_SIZE, read_only, "fuzz", BLK_NO_IO_URING);
	if (!t->dev || vqd_init(&t->d, t->dev, MEM, VQD_ALL_FEATURES, QSIZE) < 0) {
		fprintf(stderr, "fuzz_blk: %s\n", last_error());
		abort();
	}
	t->offer = t->dev->features;
}

/* Does [addr, addr+len) meet [start, start+size)?  (No wrap: len <= 4 GiB.) */
static bool overlaps(u64 addr, u64 len, u64 start, u64 size)
{
	return addr < start + size && start < addr + len;
}

/*
 * Could the device's writes, as the guest directed them, land on the used
 * ring?  Every byte the device writes into guest memory goes through a
 * writable descriptor, direct or in an indirect table; a guest that aims
 * one at its own used ring may overwrite entries the device wrote there.
 */
static bool used_ring_targeted(struct target *t)
{
	struct vqd_queue *q = &t->d.q[0];
	u64 used = q->used_gpa, used_size = 6 + 8 * QSIZE;
	const struct vqd_desc *table = vqd_ptr(&t->d, q->desc_gpa, 16 * QSIZE);

	for (int i = 0; i < QSIZE; i++) {
		struct vqd_desc d = table[i];

		if ((d.flags & VQD_F_WRITE) && overlaps(d.addr, d.len, used, used_size))
			return true;
		if (!(d.flags & VQD_F_INDIRECT) || d.len % 16 || !d.len ||
		    !guest_ptr(&t->d.gm, d.addr, d.len))
			continue;
		for (u32 j = 0; j < d.len / 16; j++) {
			struct vqd_desc e;

			memcpy(&e, vqd_ptr(&t->d, d.addr + 16 * j, 16), sizeof(e));
			if ((e.flags & VQD_F_WRITE) && overlaps(e.addr, e.len, used, used_size))
				return true;
		}
	}
	return false;
}

/* The device answered: no more entries than the driver made available may
 * appear (the used index is the device's own count, published last), and
 * each must name a real head, unless the guest had the device write over
 * them. */
static void check_used(struct target *t, u16 avail, bool targeted)
{
	struct vqd_queue *q = &t->d.q[0];
	u16 n = vqd_used_pending(q), i, head;
	u32 len;

	if (n > avail)
		abort();
	for (i = 0; i < n; i++) {
		q->manual_events = true;
		if (!vqd_wait_used(q, 0, &head, &len) || (head >= QSIZE && !targeted))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static bool ready;
	struct target *t;
	struct vqd_queue *q;
	u16 avail;
	bool targeted;

	if (!ready) {
		target_init(&rw, false);
		target_init(&ro, true);
		ready = true;
	}
	/* Both disks' queues have QSIZE entries: the same ring bytes. */
	if (size < 1 + vqd_ring_bytes(&rw.d.q[0]))
		return 0;
	t = data[0] & 8 ? &ro : &rw;
	q = &t->d.q[0];
	t->dev->features = t->offer & ~((1ULL << VIRTIO_F_EVENT_IDX) |
					(1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << F_FLUSH));
	if (data[0] & 1)
		t->dev->features |= t->offer & (1ULL << VIRTIO_F_EVENT_IDX);
	if (data[0] & 2)
		t->dev->features |= t->offer & (1ULL << VIRTIO_F_INDIRECT_DESC);
	if (data[0] & 4)
		t->dev->features |= t->offer & (1ULL << F_FLUSH);
	if (vqd_setup_rings(&t->d) < 0)
		abort();
	data = vqd_load_ring(q, data + 1);
	vqd_load_heap(&t->d, data, size - 1 - vqd_ring_bytes(q));

	avail = *(u16 *)vqd_ptr(&t->d, q->avail_gpa + 2, 2);
	targeted = used_ring_targeted(t);
	virtio_blk_serve_sync(t->dev);
	check_used(t, avail, targeted);
	t->d.n_needs_reset = 0;
	return 0;
}
