/*
 * test_blk.c: virtio-blk and its disk files, driven through vqdriver.
 *
 * The same suite runs twice, once with io_uring and once with the
 * preadv/pwritev fallback (chosen the way a user would, with
 * LGUEST_NO_IO_URING=1), each time through the real I/O thread: requests
 * are published in guest memory, the kick eventfd is written, and we wait
 * for used entries.  Every request checks its status byte, its used length
 * and, where it wrote, the file itself.  Broken rings must end in
 * NEEDS_RESET without a used entry, and a restarted device must serve
 * again.
 */
#include "tap.h"
#include "vqdriver.h"
#include "host/disk.h"
#include "virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_IN		0
#define T_OUT		1
#define T_FLUSH		4
#define T_GET_ID	8
#define T_DISCARD	11
#define T_WZ		13

#define S_OK		0
#define S_IOERR		1
#define S_UNSUPP	2

#define F_RO		5
#define F_FLUSH		9
#define F_DISCARD	13
#define F_WZ		14

#define DISK_SIZE	MiB(1)
#define SECTORS		(DISK_SIZE / 512)

static char dir[64];

/* What every byte of a fresh disk holds: easy to check, hard to fake. */
static u8 pattern(u64 off)
{
	return (u8)(off * 7 + (off >> 9) * 13 + 1);
}

/* A disk image of size bytes filled with pattern(); its path in out. */
static void make_disk(const char *name, u64 size, char *out)
{
	u8 *buf = malloc(size);
	u64 i;
	int fd;

	snprintf(out, 256, "%s/%s", dir, name);
	for (i = 0; i < size; i++)
		buf[i] = pattern(i);
	fd = open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || write(fd, buf, size) != (ssize_t)size)
		abort();
	close(fd);
	free(buf);
}

/* Does the file hold fill (or the pattern, fill < 0) over [off, off+len)? */
static bool file_is(const char *path, u64 off, u64 len, int fill)
{
	u8 *buf = malloc(len);
	bool same = true;
	u64 i;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || pread(fd, buf, len, off) != (ssize_t)len)
		same = false;
	for (i = 0; same && i < len; i++)
		same = buf[i] == (fill < 0 ? pattern(off + i) : (u8)fill);
	if (fd >= 0)
		close(fd);
	free(buf);
	return same;
}

/* Does guest memory at p hold what the file holds at off? */
static bool same_as_file(const char *path, u64 off, const u8 *p, u64 len)
{
	u8 *buf = malloc(len);
	int fd = open(path, O_RDONLY);
	bool same = fd >= 0 && pread(fd, buf, len, off) == (ssize_t)len &&
		    !memcmp(buf, p, len);

	if (fd >= 0)
		close(fd);
	free(buf);
	return same;
}

static u64 file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (u64)st.st_size;
}

/* Build chains through an indirect table (one ring descriptor each). */
static bool indirect_chains;

/* One request as Linux lays it out: header, data (in nseg pieces), status. */
struct req {
	int head;
	u64 hdr, data, st;
	u32 len;
};

static struct req build(struct vqd_queue *q, u32 type, u64 sector, u32 len,
			bool data_in, int nseg)
{
	struct vqd *d = q->d;
	struct req r = { .len = len };
	struct { u32 type, ioprio; u64 sector; } h = { type, 0, sector };
	u32 piece = nseg ? len / nseg : 0, done = 0;
	int i;

	r.hdr = vqd_alloc(d, 16, 16);
	r.data = len ? vqd_alloc(d, len, 512) : 0;
	r.st = vqd_alloc(d, 1, 1);
	guest_write(&d->gm, r.hdr, &h, sizeof(h));
	*(u8 *)vqd_ptr(d, r.st, 1) = 0xee;
	vqd_chain_begin(q);
	if (indirect_chains)
		vqd_chain_indirect(q, nseg + 2);
	vqd_chain_add(q, r.hdr, 16, false);
	for (i = 0; i < nseg; i++) {
		u32 n = i == nseg - 1 ? len - done : piece;

		vqd_chain_add(q, r.data + done, n, data_in);
		done += n;
	}
	vqd_chain_add(q, r.st, 1, true);
	r.head = vqd_chain_end(q);
	return r;
}

/* Build, publish and kick. */
static struct req submit(struct vqd_queue *q, u32 type, u64 sector, u32 len,
			 bool data_in, int nseg)
{
	struct req r = build(q, type, sector, len, data_in, nseg);

	vqd_publish(q, r.head);
	vqd_kick(q);
	return r;
}

static u8 status_of(struct vqd_queue *q, const struct req *r)
{
	return *(u8 *)vqd_ptr(q->d, r->st, 1);
}

/* The next used entry is r with this length and status. */
static bool done_with(struct vqd_queue *q, const struct req *r, u32 len, u8 st)
{
	bool got = vqd_expect_used(q, r->head, len);

	if (!got)
		tap_diag("used: head %u len %u, wanted %d len %u", q->got_head,
			 q->got_len, r->head, len);
	return got && status_of(q, r) == st;
}

/* Fill a DISCARD / WRITE_ZEROES segment into r's data buffer. */
static struct req submit_dwz(struct vqd_queue *q, u32 type, u64 sector, u32 n, u32 flags)
{
	struct req r = build(q, type, 0, 16, false, 1);
	struct { u64 sector; u32 num, flags; } seg = { sector, n, flags };

	guest_write(&q->d->gm, r.data, &seg, sizeof(seg));
	vqd_publish(q, r.head);
	vqd_kick(q);
	return r;
}

/* Config space and features, as the guest's driver will read them. */
static void t_config(struct virtio_dev *dev, bool ro)
{
	u64 f = dev->ops->features(dev), cap = 0;
	u32 seg_max = 0, blk_size = 0, dseg = 0;

	dev->ops->config_read(dev, 0, &cap, 8);
	dev->ops->config_read(dev, 12, &seg_max, 4);
	dev->ops->config_read(dev, 20, &blk_size, 4);
	dev->ops->config_read(dev, 40, &dseg, 4);
	ok(cap == SECTORS && seg_max == BLK_QUEUE_SIZE - 2 && blk_size == 512 && dseg == 1,
	   "config: capacity %llu, seg_max %u, blk_size %u, max_discard_seg %u",
	   (unsigned long long)cap, seg_max, blk_size, dseg);
	ok(dev->ops->device_id == VIRTIO_ID_BLOCK && dev->ops->config_size == 60,
	   "device id 2, 60 bytes of config");
	if (ro)
		ok((f & (1ULL << F_RO)) && !(f & (1ULL << F_DISCARD)) && !(f & (1ULL << F_WZ)),
		   "read-only disk offers RO, not DISCARD/WRITE_ZEROES");
	else
		ok(!(f & (1ULL << F_RO)) && (f & (1ULL << F_FLUSH)) &&
		   (f & (1ULL << F_DISCARD)) && (f & (1ULL << F_WZ)),
		   "writable disk offers FLUSH, DISCARD, WRITE_ZEROES");
}

/* Reads land the file's bytes in guest memory. */
static void t_read(struct vqd_queue *q, const char *tag)
{
	struct req r = submit(q, T_IN, 3, 4096, true, 1);
	u8 *p;
	bool same = true;
	int i;

	ok(done_with(q, &r, 4097, S_OK), "%s: read 4 KiB: OK, len 4097", tag);
	p = vqd_ptr(q->d, r.data, 4096);
	for (i = 0; i < 4096; i++)
		same &= p[i] == pattern(3 * 512 + i);
	ok(same, "%s: read data matches the file", tag);
}

/* Writes, split over several descriptors and through an indirect table. */
static void t_write(struct vqd_queue *q, const char *path, const char *tag)
{
	struct vqd *d = q->d;
	struct req r = build(q, T_OUT, 20, 8192, false, 3);
	struct { u32 type, ioprio; u64 sector; } h = { T_IN, 0, 0 };
	u64 hdr, data;
	int head;

	memset(vqd_ptr(d, r.data, 8192), 0x5a, 8192);
	vqd_publish(q, r.head);
	vqd_kick(q);
	ok(done_with(q, &r, 1, S_OK), "%s: write 8 KiB in 3 segments: OK, len 1", tag);
	ok(file_is(path, 20 * 512, 8192, 0x5a), "%s: the file holds the write", tag);
	ok(file_is(path, 19 * 512, 512, -1) && file_is(path, 36 * 512, 512, -1),
	   "%s: neighbours untouched", tag);

	/* Header, data and status in one indirect table, data and status
	 * sharing a descriptor: the device must cut by bytes. */
	hdr = vqd_alloc(d, 16, 16);
	guest_write(&d->gm, hdr, &h, sizeof(h));
	data = vqd_alloc(d, 513, 512);
	vqd_chain_begin(q);
	vqd_chain_indirect(q, 4);
	vqd_chain_add(q, hdr, 16, false);
	vqd_chain_add(q, data, 513, true);
	head = vqd_chain_end(q);
	vqd_publish(q, head);
	vqd_kick(q);
	ok(vqd_expect_used(q, head, 513) && *(u8 *)vqd_ptr(d, data + 512, 1) == S_OK &&
	   *(u8 *)vqd_ptr(d, data, 1) == pattern(0),
	   "%s: indirect read with data and status in one buffer", tag);
}

/* Wait for n used entries; returns the heads in completion order. */
static int collect(struct vqd_queue *q, int n, int *heads)
{
	int got;

	for (got = 0; got < n; got++) {
		u16 h;
		u32 l;

		if (!vqd_wait_used(q, VQD_TIMEOUT_MS, &h, &l))
			break;
		heads[got] = h;
	}
	return got;
}

/* A flush completes after every write submitted before it. */
static void t_flush(struct vqd_queue *q, const char *path, const char *tag)
{
	struct req w[8], f;
	int heads[9], i, n;

	for (i = 0; i < 8; i++) {
		w[i] = build(q, T_OUT, 100 + 16 * i, 8192, false, 2);
		memset(vqd_ptr(q->d, w[i].data, 8192), 0x30 + i, 8192);
		vqd_publish(q, w[i].head);
	}
	f = build(q, T_FLUSH, 0, 0, false, 0);
	vqd_publish(q, f.head);
	vqd_kick(q);
	n = collect(q, 9, heads);
	is_int(n, 9, "flush: 8 writes and a flush complete");
	ok(n == 9 && heads[8] == f.head && status_of(q, &f) == S_OK,
	   "%s: the flush completes last, OK", tag);
	for (i = 0; i < 8 && file_is(path, (100 + 16 * i) * 512, 8192, 0x30 + i); i++)
		;
	ok(i == 8, "%s: every write before the flush is in the file", tag);
}

/* GET_ID: 20 bytes, the same for the same file. */
static void t_get_id(struct vqd_queue *q, const char *tag, char *id_out)
{
	struct req r = submit(q, T_GET_ID, 0, 20, true, 1);
	char *id = vqd_ptr(q->d, r.data, 20);

	ok(done_with(q, &r, 21, S_OK) && !strncmp(id, "lg-", 3) && strnlen(id, 20) == 19,
	   "%s: GET_ID gives a 19-character serial (%.20s)", tag, id);
	memcpy(id_out, id, 20);
}

/* DISCARD and WRITE_ZEROES: zeroes where asked, the size unchanged. */
static void t_discard(struct vqd_queue *q, const char *path, const char *tag)
{
	struct req r;

	r = submit_dwz(q, T_DISCARD, 1000, 16, 0);
	ok(done_with(q, &r, 1, S_OK), "%s: discard 16 sectors: OK", tag);
	ok(file_is(path, 1000 * 512, 8192, 0) && file_is(path, 1016 * 512, 512, -1) &&
	   file_size(path) == DISK_SIZE, "%s: discarded range reads zeroes, size kept", tag);
	r = submit_dwz(q, T_WZ, 1100, 8, 0);
	ok(done_with(q, &r, 1, S_OK) && file_is(path, 1100 * 512, 4096, 0) &&
	   file_is(path, 1108 * 512, 512, -1), "%s: write-zeroes in place", tag);
	r = submit_dwz(q, T_WZ, 1200, 8, 1);
	ok(done_with(q, &r, 1, S_OK) && file_is(path, 1200 * 512, 4096, 0) &&
	   file_size(path) == DISK_SIZE, "%s: write-zeroes with UNMAP", tag);
	r = submit_dwz(q, T_DISCARD, 1300, 8, 1);
	ok(done_with(q, &r, 1, S_UNSUPP) && file_is(path, 1300 * 512, 4096, -1),
	   "%s: discard with UNMAP is UNSUPP, data kept", tag);
	r = submit_dwz(q, T_WZ, 500, 8, 6);
	ok(done_with(q, &r, 1, S_UNSUPP), "%s: unknown write-zeroes flags: UNSUPP", tag);
	r = submit_dwz(q, T_WZ, SECTORS - 4, 8, 0);
	ok(done_with(q, &r, 1, S_IOERR) && file_size(path) == DISK_SIZE,
	   "%s: write-zeroes past the end: IOERR, size kept", tag);
}

/* Requests the device must refuse, after which it goes on serving. */
static void t_bad_requests(struct vqd_queue *q, const char *path, const char *tag)
{
	struct vqd *d = q->d;
	struct req r;
	u64 hdr, st;
	int head;

	r = submit(q, 99, 0, 512, true, 1);
	ok(done_with(q, &r, 1, S_UNSUPP), "%s: unknown type: UNSUPP", tag);
	r = submit(q, T_IN, SECTORS - 1, 1024, true, 1);
	ok(done_with(q, &r, 1, S_IOERR), "%s: read past the end: IOERR", tag);
	r = build(q, T_OUT, SECTORS - 1, 1024, false, 1);
	memset(vqd_ptr(d, r.data, 1024), 0x77, 1024);
	vqd_publish(q, r.head);
	vqd_kick(q);
	ok(done_with(q, &r, 1, S_IOERR) && file_size(path) == DISK_SIZE &&
	   file_is(path, DISK_SIZE - 512, 512, -1),
	   "%s: write past the end: IOERR, file unchanged", tag);
	r = submit(q, T_OUT, 1ULL << 55, 512, false, 1);
	ok(done_with(q, &r, 1, S_IOERR), "%s: sector * 512 overflows: IOERR", tag);
	r = submit(q, T_IN, ~0ULL / 512, 512, true, 1);
	ok(done_with(q, &r, 1, S_IOERR), "%s: offset + length overflows: IOERR", tag);
	r = submit(q, T_IN, 0, 500, true, 1);
	ok(done_with(q, &r, 1, S_IOERR), "%s: length not whole sectors: IOERR", tag);

	/* Header too short: 8 bytes, then a status byte. */
	hdr = vqd_alloc(d, 8, 8);
	st = vqd_alloc(d, 1, 1);
	vqd_chain_begin(q);
	vqd_chain_add(q, hdr, 8, false);
	vqd_chain_add(q, st, 1, true);
	head = vqd_chain_end(q);
	vqd_publish(q, head);
	vqd_kick(q);
	ok(vqd_expect_used(q, head, 1) && *(u8 *)vqd_ptr(d, st, 1) == S_IOERR,
	   "%s: header too short: IOERR", tag);

	/* No writable byte at all: nowhere for a status; length 0. */
	vqd_chain_begin(q);
	vqd_chain_add(q, hdr, 8, false);
	head = vqd_chain_end(q);
	vqd_publish(q, head);
	vqd_kick(q);
	ok(vqd_expect_used(q, head, 0), "%s: no status byte: chain back with length 0", tag);
	t_read(q, tag);
}

/* Many requests in flight at once, all answered correctly. */
static void t_depth(struct vqd_queue *q, const char *path, const char *tag)
{
	struct req r[128];
	int heads[128], i, n;
	bool good = true;

	/* 128 chains of 3 buffers need more than 256 ring descriptors:
	 * one descriptor each, through indirect tables. */
	indirect_chains = true;
	for (i = 0; i < 128; i++) {
		r[i] = build(q, T_IN, (i * 37) % (SECTORS - 8), 4096, true, 1);
		vqd_publish(q, r[i].head);
	}
	indirect_chains = false;
	vqd_kick(q);
	n = collect(q, 128, heads);
	is_int(n, 128, "depth: 128 reads complete");
	for (i = 0; i < 128; i++) {
		u8 *p = vqd_ptr(q->d, r[i].data, 4096);
		u64 off = (u64)((i * 37) % (SECTORS - 8)) * 512;

		good &= status_of(q, &r[i]) == S_OK && same_as_file(path, off, p, 4096);
	}
	ok(good, "%s: 128 concurrent reads all OK with the right data", tag);
	ok(vqd_signals(q->d, 0) > 0, "%s: the device interrupted the driver", tag);
}

/* Wait until the device has interrupted the driver more than `than` times. */
static bool signalled_past(struct vqd_queue *q, int than)
{
	for (int ms = 0; ms < VQD_TIMEOUT_MS; ms++) {
		if (vqd_signals(q->d, 0) > than)
			return true;
		usleep(1000);
	}
	return false;
}

/* Spin until the device pushes an answer: a busy guest, not asleep. */
static bool spin_for_used(struct vqd_queue *q)
{
	u64 deadline = monotonic_ns() + (u64)VQD_TIMEOUT_MS * 1000000;

	while (!vqd_used_pending(q))
		if (monotonic_ns() > deadline)
			return false;
	return true;
}

/*
 * Interrupt coalescing (BLK_HOLD_*): a driver that submits its next
 * request as soon as it sees an answer, without sleeping for interrupts,
 * gets few of them; yet the last answer is always signalled, and a driver
 * that waits for each interrupt before it submits again gets every one.
 */
static void t_interrupts(struct vqd_queue *q, const char *tag)
{
	struct virtqueue *vq = &q->d->dev->vqs[0];
	int before, during, i, n = 200;
	bool all = true;

	before = vqd_signals(q->d, 0);
	for (i = 0; i < n && all; i++) {
		struct req r = submit(q, T_IN, (i * 7) % (SECTORS - 8), 4096, true, 1);

		all = spin_for_used(q) && done_with(q, &r, 4097, S_OK);
	}
	during = vqd_signals(q->d, 0) - before;
	ok(all, "%s: %d back-to-back reads answered", tag, n);
	ok(during < n / 4, "%s: a driver that keeps submitting: %d interrupts for %d requests",
	   tag, during, n);
	/* Past any hold, no answer is held back: the device has decided
	 * on its last push (signalling if the driver's used_event asked). */
	usleep(50000);
	ok(vq->signalled_used == vq->used_idx,
	   "%s: nothing held back once no request follows", tag);

	for (i = 0; i < 20 && all; i++) {
		int seen = vqd_signals(q->d, 0);
		struct req r;

		/* As a driver re-enables interrupts before it sleeps. */
		vqd_set_used_event(q, q->last_used);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		r = submit(q, T_IN, (i * 11) % (SECTORS - 8), 4096, true, 1);
		all = signalled_past(q, seen) && done_with(q, &r, 4097, S_OK);
	}
	ok(all, "%s: a driver that waits for each interrupt gets all 20", tag);
}

/* After NEEDS_RESET: no used entry; restart; the device serves again. */
static void after_break(struct vqd *d, const char *what, const char *tag)
{
	struct vqd_queue *q = &d->q[0];

	ok(vqd_wait_needs_reset(d, VQD_TIMEOUT_MS) &&
	   (d->dev->status & VIRTIO_STATUS_NEEDS_RESET) && vqd_used_pending(q) == 0,
	   "%s: %s: NEEDS_RESET, nothing used", tag, what);
	d->n_needs_reset = 0;
	vqd_heap_reset(d);
	if (!ok(vqd_restart(d) == 0, "%s: %s: device restarts", tag, what))
		return;
	t_read(q, tag);
}

/* The malformed-chain catalogue, against the running device. */
static void t_malformed(struct vqd *d, const char *tag)
{
	struct vqd_queue *q = &d->q[0];
	u64 buf, table, inner;
	unsigned i;

	buf = vqd_alloc(d, 4096, 16);
	vqd_desc_set(d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT, 1);
	vqd_desc_set(d, q->desc_gpa, 1, buf + 16, 1, VQD_F_NEXT | VQD_F_WRITE, 0);
	vqd_publish(q, 0);
	vqd_kick(q);
	after_break(d, "descriptor loop", tag);

	vqd_desc_set(d, q->desc_gpa, 0, d->gm.size + 4096, 16, VQD_F_NEXT, 1);
	vqd_desc_set(d, q->desc_gpa, 1, buf, 1, VQD_F_WRITE, 0);
	vqd_publish(q, 0);
	vqd_kick(q);
	after_break(d, "header outside RAM", tag);

	buf = vqd_alloc(d, 4096, 16);
	vqd_desc_set(d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT, 1);
	vqd_desc_set(d, q->desc_gpa, 1, ~0ULL - 100, 512, VQD_F_NEXT | VQD_F_WRITE, 2);
	vqd_desc_set(d, q->desc_gpa, 2, buf + 16, 1, VQD_F_WRITE, 0);
	vqd_publish(q, 0);
	vqd_kick(q);
	after_break(d, "address + length wraps", tag);

	buf = vqd_alloc(d, 4096, 16);
	inner = vqd_alloc(d, 16, 16);
	table = vqd_alloc(d, 32, 16);
	vqd_desc_set(d, inner, 0, buf + 16, 1, VQD_F_WRITE, 0);
	vqd_desc_set(d, table, 0, buf, 16, VQD_F_NEXT, 1);
	vqd_desc_set(d, table, 1, inner, 16, VQD_F_INDIRECT, 0);
	vqd_desc_set(d, q->desc_gpa, 0, table, 32, VQD_F_INDIRECT, 0);
	vqd_publish(q, 0);
	vqd_kick(q);
	after_break(d, "indirect inside indirect", tag);

	/* 200 direct descriptors and a 900-entry table: 1100 buffers. */
	buf = vqd_alloc(d, 4096, 16);
	table = vqd_alloc(d, 16 * 900, 16);
	for (i = 0; i < 200; i++)
		vqd_desc_set(d, q->desc_gpa, i, buf, 16, VQD_F_NEXT, i + 1);
	vqd_desc_set(d, q->desc_gpa, 200, table, 16 * 900, VQD_F_INDIRECT, 0);
	for (i = 0; i < 900; i++)
		vqd_desc_set(d, table, i, buf + 16, 1, VQD_F_WRITE | (i < 899 ? VQD_F_NEXT : 0), i + 1);
	vqd_publish(q, 0);
	vqd_kick(q);
	after_break(d, "chain longer than VQ_MAX_SEGS", tag);

	vqd_publish(q, BLK_QUEUE_SIZE);
	vqd_kick(q);
	after_break(d, "head >= size", tag);

	vqd_avail_set_idx(q, q->avail_idx + BLK_QUEUE_SIZE + 1);
	vqd_kick(q);
	after_break(d, "avail idx jumps past size", tag);

	buf = vqd_alloc(d, 4096, 16);
	vqd_desc_set(d, q->desc_gpa, 0, buf, 16, VQD_F_NEXT, 1);
	vqd_desc_set(d, q->desc_gpa, 1, buf + 16, 0, VQD_F_WRITE, 0);
	vqd_publish(q, 0);
	vqd_kick(q);
	after_break(d, "zero-length status buffer", tag);

	buf = vqd_alloc(d, 4096, 16);
	vqd_desc_set(d, q->desc_gpa, 0, buf + 16, 1, VQD_F_NEXT | VQD_F_WRITE, 1);
	vqd_desc_set(d, q->desc_gpa, 1, buf, 16, 0, 0);
	vqd_publish(q, 0);
	vqd_kick(q);
	after_break(d, "writable before readable", tag);
}

/* Reset with I/O in flight: when reset returns, the device is silent. */
static void t_reset_inflight(struct vqd *d, const char *tag)
{
	struct vqd_queue *q = &d->q[0];
	u16 used_after;
	int i;

	vqd_heap_reset(d);
	for (i = 0; i < 80; i++)
		vqd_publish(q, build(q, T_IN, (i * 64) % (SECTORS - 128), 65536, true, 1).head);
	vqd_kick(q);
	usleep(200);
	vqd_stop(d);
	used_after = vqd_used_pending(q);
	usleep(50 * 1000);
	ok(vqd_used_pending(q) == used_after, "%s: reset mid-I/O: no used entry after reset (%u before)",
	   tag, used_after);
	vqd_heap_reset(d);
	if (ok(vqd_start(d) == 0, "%s: starts again after reset", tag))
		t_read(q, tag);
}

/* Put the fresh-disk pattern back over [off, off+len). */
static void restore_pattern(const char *path, u64 off, u64 len)
{
	u8 *buf = malloc(len);
	int fd = open(path, O_WRONLY);
	u64 i;

	for (i = 0; i < len; i++)
		buf[i] = pattern(off + i);
	if (fd < 0 || pwrite(fd, buf, len, off) != (ssize_t)len)
		abort();
	close(fd);
	free(buf);
}

/* The file shrinks under the device (another program truncates it): the
 * read that finds end-of-file is an IOERR, not a hang or a short answer. */
static void t_shrunk(struct vqd_queue *q, const char *path, const char *tag)
{
	struct req r;

	if (truncate(path, DISK_SIZE - 8192) < 0)
		abort();
	r = submit(q, T_IN, SECTORS - 8, 4096, true, 1);
	ok(done_with(q, &r, 1, S_IOERR), "%s: read beyond a file that shrank: IOERR", tag);
	restore_pattern(path, DISK_SIZE - 8192, 8192);
	t_read(q, tag);
}

/*
 * Large requests queued together are answered in pairs (BLK_BATCH_BYTES):
 * eight 128 KiB reads in the ring at once give four interrupts, not
 * eight, and the last pair is signalled.  Without EVENT_IDX every signal
 * the device sends is counted, so this sees the device's decisions.
 */
static void t_large_pairs(const char *path)
{
	struct virtio_dev *dev;
	struct vqd d;
	struct vqd_queue *q = &d.q[0];
	struct req r[8];
	bool all = true;
	int before, n, i;

	if (blk_device_create(path, 0, &dev) < 0 ||
	    vqd_init(&d, dev, MiB(16), VQD_ALL_FEATURES & ~(1ULL << VIRTIO_F_EVENT_IDX), 0) < 0 || vqd_start(&d) < 0) {
		ok(false, "pairs: device starts without EVENT_IDX: %s", last_error());
		return;
	}
	before = vqd_signals(&d, 0);
	for (i = 0; i < 8; i++)
		r[i] = build(q, T_IN, i * 256, 128 << 10, true, 1);
	for (i = 0; i < 8; i++)
		vqd_publish(q, r[i].head);
	vqd_kick(q);
	for (i = 0; i < 8 && all; i++)
		all = spin_for_used(q) && done_with(q, &r[i], (128 << 10) + 1, S_OK);
	usleep(20000);
	n = vqd_signals(&d, 0) - before;
	ok(all, "pairs: eight 128 KiB reads answered in order");
	ok(n >= 1 && n <= 5, "pairs: %d interrupts for eight large requests queued together", n);
	ok(dev->vqs[0].signalled_used == dev->vqs[0].used_idx,
	   "pairs: the last answer is signalled");
	vqd_destroy(&d);
	virtio_blk_free(dev);
}

/* The whole suite against one backend. */
static void suite(const char *backend)
{
	char path[256], id[20], id2[20];
	struct virtio_dev *dev;
	struct vqd d;
	struct vqd_queue *q = &d.q[0];

	make_disk("rw.img", DISK_SIZE, path);
	if (!strcmp(backend, "sync"))
		setenv("LGUEST_NO_IO_URING", "1", 1);
	if (!ok(blk_device_create(path, 0, &dev) == 0, "%s: device for %s", backend, path)) {
		tap_diag("%s", last_error());
		return;
	}
	unsetenv("LGUEST_NO_IO_URING");
	if (!ok(vqd_init(&d, dev, MiB(64), VQD_ALL_FEATURES, 0) == 0 && vqd_start(&d) == 0,
		"%s: device starts", backend))
		return;
	ok(!strcmp(virtio_blk_backend(dev), backend), "%s: serving with %s", backend,
	   virtio_blk_backend(dev));
	t_config(dev, false);
	t_read(q, backend);
	t_write(q, path, backend);
	t_flush(q, path, backend);
	t_get_id(q, backend, id);
	t_discard(q, path, backend);
	t_shrunk(q, path, backend);
	vqd_heap_reset(&d);
	t_bad_requests(q, path, backend);
	vqd_heap_reset(&d);
	t_depth(q, path, backend);
	vqd_heap_reset(&d);
	if (!strcmp(backend, "io_uring"))
		t_interrupts(q, backend);
	vqd_heap_reset(&d);
	t_malformed(&d, backend);
	t_reset_inflight(&d, backend);
	vqd_destroy(&d);
	virtio_blk_free(dev);

	/* The serial is stable: the same file, the same serial. */
	if (blk_device_create(path, 0, &dev) == 0 && vqd_init(&d, dev, MiB(16), VQD_ALL_FEATURES, 0) == 0 &&
	    vqd_start(&d) == 0) {
		t_get_id(q, backend, id2);
		ok(!memcmp(id, id2, 20), "%s: GET_ID is stable across opens", backend);
		vqd_destroy(&d);
		virtio_blk_free(dev);
	}
	if (!strcmp(backend, "io_uring"))
		t_large_pairs(path);
	unlink(path);
}

/* A read-only disk: reads work, anything that writes is IOERR. */
static void t_read_only(void)
{
	char path[256];
	struct virtio_dev *dev;
	struct vqd d;
	struct vqd_queue *q = &d.q[0];
	struct req r;

	make_disk("ro.img", DISK_SIZE, path);
	chmod(path, 0444);
	snprintf(path + strlen(path), 8, ",ro");
	if (!ok(blk_device_create(path, 1, &dev) == 0, "ro: device for %s", path))
		return;
	path[strlen(path) - 3] = '\0';
	vqd_init(&d, dev, MiB(16), VQD_ALL_FEATURES, 0);
	if (!ok(vqd_start(&d) == 0, "ro: device starts"))
		return;
	t_config(dev, true);
	t_read(q, "ro");
	r = build(q, T_OUT, 0, 512, false, 1);
	memset(vqd_ptr(&d, r.data, 512), 0, 512);
	vqd_publish(q, r.head);
	vqd_kick(q);
	ok(done_with(q, &r, 1, S_IOERR) && file_is(path, 0, 512, -1), "ro: write: IOERR, file unchanged");
	r = submit_dwz(q, T_DISCARD, 0, 8, 0);
	ok(done_with(q, &r, 1, S_IOERR) && file_is(path, 0, 4096, -1), "ro: discard: IOERR");
	r = submit_dwz(q, T_WZ, 0, 8, 0);
	ok(done_with(q, &r, 1, S_IOERR) && file_is(path, 0, 4096, -1), "ro: write-zeroes: IOERR");
	r = submit(q, T_FLUSH, 0, 0, false, 0);
	ok(done_with(q, &r, 1, S_OK), "ro: flush: OK");
	vqd_destroy(&d);
	virtio_blk_free(dev);
	unlink(path);
}

/*
 * Without the I/O thread: serve_sync on a memfd (tmpfs has no ZERO_RANGE,
 * so write-zeroes takes its fallback), and a driver that did not
 * negotiate FLUSH (every write must be durable on its own).
 */
static void t_sync_entry(void)
{
	int fd = memfd_create("lguest-test", MFD_CLOEXEC);
	u8 *buf = malloc(DISK_SIZE);
	struct virtio_dev *dev;
	struct vqd d;
	struct vqd_queue *q = &d.q[0];
	struct req r;
	u64 i;
	int n;

	for (i = 0; i < DISK_SIZE; i++)
		buf[i] = pattern(i);
	if (write(fd, buf, DISK_SIZE) != (ssize_t)DISK_SIZE)
		abort();
	dev = virtio_blk_new(fd, DISK_SIZE, false, "memfd", BLK_NO_IO_URING);
	vqd_init(&d, dev, MiB(16), VQD_ALL_FEATURES & ~(1ULL << F_FLUSH), 0);
	vqd_setup_rings(&d);
	r = submit_dwz(q, T_WZ, 8, 8, 0);
	n = virtio_blk_serve_sync(dev);
	is_int(n, 1, "serve_sync: one request served");
	ok(pread(fd, buf, 4096, 4096) == 4096 && buf[0] == 0 && !memcmp(buf, buf + 1, 4095) &&
	   pread(fd, buf, 1, 8192) == 1 && buf[0] == pattern(8192),
	   "memfd: write-zeroes falls back and zeroes just its range");
	ok(vqd_expect_used(q, r.head, 1) && status_of(q, &r) == S_OK, "memfd: write-zeroes OK");
	r = build(q, T_OUT, 100, 1024, false, 1);
	memset(vqd_ptr(&d, r.data, 1024), 0x42, 1024);
	vqd_publish(q, r.head);
	n = virtio_blk_serve_sync(dev);
	ok(n == 1 && vqd_expect_used(q, r.head, 1) && status_of(q, &r) == S_OK &&
	   pread(fd, buf, 1024, 100 * 512) == 1024 && buf[0] == 0x42 && buf[1023] == 0x42,
	   "write without FLUSH negotiated (write-through)");
	/* A good read, then a head past the table: the read was done and
	 * its answer filled before the ring broke, so it still goes out
	 * (answers are published in batches; the break must not strand it). */
	r = build(q, T_IN, 200, 512, true, 1);
	vqd_publish(q, r.head);
	vqd_publish(q, BLK_QUEUE_SIZE + 3);
	n = virtio_blk_serve_sync(dev);
	ok(n == -1 && vqd_needs_reset_count(&d) == 1, "serve_sync: corrupt ring reported once");
	ok(vqd_used_pending(q) == 1 && vqd_expect_used(q, r.head, 513) && status_of(q, &r) == S_OK,
	   "serve_sync: the read served before the break is still answered");
	n = virtio_blk_serve_sync(dev);
	ok(n == -1 && vqd_needs_reset_count(&d) == 1, "serve_sync: broken ring stays untouched");
	vqd_destroy(&d);
	virtio_blk_free(dev);
	free(buf);
}

/* --block=FILE[,ro|,rw] parsing, and every way opening can fail. */
static void t_disk_files(void)
{
	struct disk_spec s;
	struct virtio_dev *a, *b;
	char path[256], spec[300];
	int fd;
	u64 size;

	ok(disk_parse_spec("x.img", &s) == 0 && !s.ro && !strcmp(s.path, "x.img"), "spec: FILE is rw");
	ok(disk_parse_spec("x.img,ro", &s) == 0 && s.ro && !strcmp(s.path, "x.img"), "spec: FILE,ro");
	ok(disk_parse_spec("x.img,rw", &s) == 0 && !s.ro, "spec: FILE,rw");
	ok(disk_parse_spec("x.img,r0", &s) < 0 && strstr(last_error(), "unknown option 'r0'"),
	   "spec: a typo is refused: %s", last_error());
	ok(disk_parse_spec(",ro", &s) < 0, "spec: no file name refused");
	make_disk("a,b.img", 4096, path);
	ok(disk_parse_spec(path, &s) == 0 && !strcmp(s.path, path), "spec: an existing file with a comma");
	unlink(path);

	snprintf(path, sizeof(path), "%s/missing.img", dir);
	ok(blk_device_create(path, 0, &a) < 0 && strstr(last_error(), "does not exist") &&
	   strstr(last_error(), path), "missing file: %s", last_error());
	ok(blk_device_create(dir, 0, &a) < 0 && strstr(last_error(), "is a directory"),
	   "directory: %s", last_error());
	make_disk("odd.img", 1000, path);
	ok(blk_device_create(path, 0, &a) < 0 && strstr(last_error(), "not a multiple of 512"),
	   "odd size: %s", last_error());
	unlink(path);
	make_disk("empty.img", 0, path);
	ok(blk_device_create(path, 0, &a) < 0 && strstr(last_error(), "is empty"),
	   "empty file: %s", last_error());
	unlink(path);

	make_disk("lock.img", 4096, path);
	snprintf(spec, sizeof(spec), "%s,ro", path);
	ok(blk_device_create(path, 0, &a) == 0, "lock: first read-write open");
	ok(blk_device_create(path, 1, &b) < 0 && strstr(last_error(), "in use by another lguest"),
	   "lock: second read-write open: %s", last_error());
	ok(blk_device_create(spec, 1, &b) < 0, "lock: read-only next to read-write refused");
	virtio_blk_free(a);
	ok(blk_device_create(spec, 0, &a) == 0 && blk_device_create(spec, 1, &b) == 0,
	   "lock: two read-only opens share");
	virtio_blk_free(a);
	virtio_blk_free(b);
	s.ro = false;
	snprintf(s.path, sizeof(s.path), "%s", path);
	ok(disk_open(&s, &fd, &size, NULL) == 0 && size == 4096, "disk_open: size");
	close(fd);
	unlink(path);
}

/* Is io_uring usable here?  If not, its suite is skipped, not failed. */
static bool have_io_uring(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(4, &ring, 0) < 0)
		return false;
	io_uring_queue_exit(&ring);
	return true;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/lguest-blk-XXXXXX", tmp ? tmp : "/var/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	t_disk_files();
	if (have_io_uring())
		suite("io_uring");
	else
		ok(1, "# SKIP io_uring is not available on this kernel");
	suite("sync");
	t_read_only();
	t_sync_entry();
	rmdir(dir);
	return tap_done();
}
