/*
 * blkbench.c: how close does virtio-blk come to the host's own I/O?
 *
 * Both sides do the same work on the same file in the same run: the same
 * block size, the same queue depth, the same offsets (one seeded
 * generator), buffered I/O.  "raw" is io_uring straight from this
 * process; "lguest" is the whole device path: a driver (tests/unit/
 * vqdriver.c) publishes chains in guest memory and kicks, the device's
 * I/O thread pops them, submits to its own io_uring, and pushes used
 * entries back.  The ratio is what the virtqueue and the thread hop cost.
 *
 *   blkbench [FILE_MB [SECONDS [JOB]]]  (defaults 512 MiB, 2 s per run, all jobs)
 *
 * Each job runs raw then lguest, three times; the best of each is reported.
 */
#include "vqdriver.h"
#include "host/disk.h"
#include "virtio/blk.h"

#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TARGET	0.95

struct job {
	const char *name;
	bool write, seq;
	u32 bs;
	int qd;
};

static const struct job jobs[] = {
	{ "randread-4k-qd32", false, false, 4096, 32 },
	{ "randwrite-4k-qd32", true, false, 4096, 32 },
	{ "seqread-1m-qd8", false, true, 1 << 20, 8 },
	{ "seqwrite-1m-qd8", true, true, 1 << 20, 8 },
};

static u64 file_size;

/* Seconds on a clock that never jumps. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The offsets both sides visit: a seeded xorshift, or a wrapping cursor. */
struct offsets {
	const struct job *j;
	u64 state, cursor;
};

static u64 next_off(struct offsets *o)
{
	u64 blocks = file_size / o->j->bs;

	if (o->j->seq) {
		u64 off = o->cursor;

		o->cursor = (o->cursor + o->j->bs) % (blocks * o->j->bs);
		return off;
	}
	o->state ^= o->state << 13;
	o->state ^= o->state >> 7;
	o->state ^= o->state << 17;
	return (o->state % blocks) * o->j->bs;
}

/* The host alone: io_uring at the same depth, one buffer per slot. */
static double run_raw(int fd, const struct job *j, double secs)
{
	struct offsets o = { j, 0x9e3779b97f4a7c15ULL, 0 };
	struct iovec iov[64];
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	u64 bytes = 0;
	double t0, end;
	int i, inflight = 0;

	if (io_uring_queue_init(j->qd, &ring, 0) < 0)
		return 0;
	for (i = 0; i < j->qd; i++) {
		iov[i].iov_base = aligned_alloc(4096, j->bs);
		iov[i].iov_len = j->bs;
		memset(iov[i].iov_base, 0x5a, j->bs);
	}
	t0 = now();
	end = t0 + secs;
	for (i = 0; i < j->qd; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		if (j->write)
			io_uring_prep_writev(sqe, fd, &iov[i], 1, next_off(&o));
		else
			io_uring_prep_readv(sqe, fd, &iov[i], 1, next_off(&o));
		io_uring_sqe_set_data64(sqe, i);
		inflight++;
	}
	io_uring_submit(&ring);
	while (inflight) {
		if (io_uring_wait_cqe(&ring, &cqe) < 0)
			continue;
		do {
			u64 s = io_uring_cqe_get_data64(cqe);

			if (cqe->res != (int)j->bs)
				abort();
			bytes += j->bs;
			io_uring_cqe_seen(&ring, cqe);
			inflight--;
			if (now() < end) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

				if (j->write)
					io_uring_prep_writev(sqe, fd, &iov[s], 1, next_off(&o));
				else
					io_uring_prep_readv(sqe, fd, &iov[s], 1, next_off(&o));
				io_uring_sqe_set_data64(sqe, s);
				inflight++;
			}
		} while (io_uring_peek_cqe(&ring, &cqe) == 0);
		io_uring_submit(&ring);
	}
	t0 = now() - t0;
	io_uring_queue_exit(&ring);
	for (i = 0; i < j->qd; i++)
		free(iov[i].iov_base);
	return bytes / t0 / 1e6;
}

/* One request slot of the driver: header, data and status in guest RAM. */
struct slot {
	u64 hdr, data, st;
};

/* Put slot s's next request on the ring (not yet kicked). */
static void lg_submit(struct vqd_queue *q, const struct job *j, struct slot *sl,
		      int *slot_of, int s, struct offsets *o)
{
	struct { u32 type, ioprio; u64 sector; } h = { j->write, 0, next_off(o) / 512 };
	int head;

	guest_write(&q->d->gm, sl[s].hdr, &h, sizeof(h));
	vqd_chain_begin(q);
	vqd_chain_add(q, sl[s].hdr, 16, false);
	vqd_chain_add(q, sl[s].data, j->bs, !j->write);
	vqd_chain_add(q, sl[s].st, 1, true);
	head = vqd_chain_end(q);
	if (head < 0)
		abort();
	slot_of[head] = s;
	vqd_publish(q, head);
}

/* Through the device: the driver keeps qd requests on the ring. */
static double run_lguest(struct vqd *d, const struct job *j, double secs)
{
	struct offsets o = { j, 0x9e3779b97f4a7c15ULL, 0 };
	struct vqd_queue *q = &d->q[0];
	struct slot sl[64];
	int slot_of[BLK_QUEUE_SIZE], i, inflight = 0;
	u64 bytes = 0;
	double t0, end;

	vqd_heap_reset(d);
	for (i = 0; i < j->qd; i++) {
		sl[i].hdr = vqd_alloc(d, 16, 16);
		sl[i].data = vqd_alloc(d, j->bs, 4096);
		sl[i].st = vqd_alloc(d, 1, 1);
		memset(vqd_ptr(d, sl[i].data, j->bs), 0x5a, j->bs);
	}
	t0 = now();
	end = t0 + secs;
	for (i = 0; i < j->qd; i++, inflight++)
		lg_submit(q, j, sl, slot_of, i, &o);
	vqd_notify(q);
	while (inflight) {
		u16 head;
		u32 len;

		/* A vCPU waiting for I/O halts, and KVM polls a halted vCPU
		 * for up to 200 us (halt_poll_ns) before it really sleeps:
		 * the driver here waits the same way. */
		for (double t = now() + 200e-6; !vqd_used_pending(q) && now() < t;)
			__builtin_ia32_pause();
		if (!vqd_wait_used(q, VQD_TIMEOUT_MS, &head, &len))
			abort();
		/* Take everything used, refill, then one notify: as Linux's
		 * virtio-blk completes a batch and submits the next. */
		do {
			int s = slot_of[head];

			if (*(u8 *)vqd_ptr(d, sl[s].st, 1) != 0)
				abort();
			bytes += j->bs;
			inflight--;
			if (now() < end) {
				lg_submit(q, j, sl, slot_of, s, &o);
				inflight++;
			}
		} while (vqd_used_pending(q) && vqd_wait_used(q, 0, &head, &len));
		vqd_notify(q);
	}
	t0 = now() - t0;
	return bytes / t0 / 1e6;
}

/* A file of FILE_MB MiB of non-zero data (holes would read too fast). */
static int make_file(char *path, u64 size)
{
	static u8 buf[1 << 20];
	u64 off;
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	memset(buf, 0xa5, sizeof(buf));
	for (off = 0; off < size; off += sizeof(buf))
		if (pwrite(fd, buf, sizeof(buf), off) != sizeof(buf))
			return -1;
	fsync(fd);
	return fd;
}

int main(int argc, char **argv)
{
	char path[] = "/var/tmp/lguest-blkbench.XXXXXX";
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	struct virtio_dev *dev;
	struct vqd d;
	unsigned i;
	int fd, k;

	file_size = MiB(argc > 1 ? atoi(argv[1]) : 512);
	fd = make_file(path, file_size);
	if (fd < 0) {
		perror("blkbench: making the test file");
		return 1;
	}
	if (blk_device_create(path, 0, &dev) < 0 ||
	    vqd_init(&d, dev, MiB(64), VQD_ALL_FEATURES, 0) < 0 || vqd_start(&d) < 0) {
		fprintf(stderr, "blkbench: %s\n", last_error());
		unlink(path);
		return 1;
	}
	printf("# %llu MiB file %s, %.1f s per run, device backend %s\n",
	       (unsigned long long)(file_size >> 20), path, secs, virtio_blk_backend(dev));
	printf("%-20s %12s %10s %7s  target>=%.2f\n", "name", "lguest MB/s", "raw MB/s",
	       "ratio", TARGET);
	for (i = 0; i < ARRAY_SIZE(jobs); i++) {
		double raw = 0, lg = 0;

		if (argc > 3 && strcmp(argv[3], jobs[i].name))
			continue;
		for (k = 0; k < 3; k++) {
			raw = MAX(raw, run_raw(fd, &jobs[i], secs));
			lg = MAX(lg, run_lguest(&d, &jobs[i], secs));
		}
		printf("%-20s %12.1f %10.1f %7.2f  %s\n", jobs[i].name, lg, raw,
		       raw > 0 ? lg / raw : 0, raw > 0 && lg / raw >= TARGET ? "ok" : "MISS");
		fflush(stdout);
	}
	vqd_destroy(&d);
	virtio_blk_free(dev);
	close(fd);
	unlink(path);
	return 0;
}
