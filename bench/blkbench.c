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
 *   blkbench [FILE_MB [SECONDS [JOB]]]  (defaults 512 MiB, 1 s per run, all jobs;
 *                                       the file goes in $TMPDIR, else /var/tmp)
 *
 * Each job runs PAIRS pairs of runs and reports their medians (pairs.h).
 */
#include "pairs.h"
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
#define PAIRS	7

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
static struct lg_run run_lguest(struct vqd *d, const struct job *j, double secs)
{
	struct offsets o = { j, 0x9e3779b97f4a7c15ULL, 0 };
	struct vqd_queue *q = &d->q[0];
	struct slot sl[64];
	int slot_of[BLK_QUEUE_SIZE], i, inflight = 0, irqs;
	u64 bytes = 0, reqs = 0, kicks = 0;
	struct lg_run st;
	double t0, end;

	/*
	 * Laid out as Linux's virtio-blk lays them: a request's header and
	 * status byte side by side (struct virtblk_req), in a cache line no
	 * other request shares (each lives in its own blk-mq request).  Packed
	 * one after another, a slot's status byte shared a line with the next
	 * slot's header, which the driver rewrites while the device answers:
	 * a cache line bouncing between the two CPUs that no guest has.
	 */
	vqd_heap_reset(d);
	for (i = 0; i < j->qd; i++) {
		sl[i].hdr = vqd_alloc(d, 64, 64);
		sl[i].st = sl[i].hdr + 16;
	}
	for (i = 0; i < j->qd; i++) {
		sl[i].data = vqd_alloc(d, j->bs, 4096);
		memset(vqd_ptr(d, sl[i].data, j->bs), 0x5a, j->bs);
	}
	irqs = vqd_signals(d, 0);
	t0 = now();
	end = t0 + secs;
	for (i = 0; i < j->qd; i++, inflight++)
		lg_submit(q, j, sl, slot_of, i, &o);
	kicks += vqd_notify(q);
	while (inflight) {
		bool more = true;
		u16 head;
		u32 len;

		if (!vqd_poll_used(q, VQD_TIMEOUT_MS, &head, &len))
			abort();
		/* Take everything used, refill, then one notify: as Linux's
		 * virtio-blk completes a batch (interrupts off meanwhile)
		 * and submits the next. */
		for (; more; more = vqd_take_used(q, &head, &len)) {
			int s = slot_of[head];

			if (*(u8 *)vqd_ptr(d, sl[s].st, 1) != 0)
				abort();
			bytes += j->bs;
			reqs++;
			inflight--;
			if (now() < end) {
				lg_submit(q, j, sl, slot_of, s, &o);
				inflight++;
			}
		}
		kicks += vqd_notify(q);
	}
	t0 = now() - t0;
	st.rate = bytes / t0 / 1e6;
	st.kicks = (double)kicks / reqs;
	st.irqs = (double)(vqd_signals(d, 0) - irqs) / reqs;
	return st;
}

/* One job's two sides, for run_pairs(). */
struct job_run {
	struct vqd *d;
	int fd;
	const struct job *j;
	double secs;
};

static double raw_side(void *ctx)
{
	struct job_run *r = ctx;

	return run_raw(r->fd, r->j, r->secs);
}

static struct lg_run lguest_side(void *ctx)
{
	struct job_run *r = ctx;

	return run_lguest(r->d, r->j, r->secs);
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
	const char *dir = getenv("TMPDIR");
	char path[4096];
	double secs = argc > 2 ? atof(argv[2]) : 1.0;
	struct virtio_dev *dev;
	struct vqd d;
	unsigned i;
	int fd;

	/* /var/tmp by default: a disk, where /tmp may be RAM. */
	snprintf(path, sizeof(path), "%s/lguest-blkbench.XXXXXX", dir && *dir ? dir : "/var/tmp");
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
	printf("%-20s %12s %10s %7s  %-6s %9s %8s\n", "name", "lguest MB/s", "raw MB/s",
	       "ratio", "t>=.95", "kicks/req", "irqs/req");
	for (i = 0; i < ARRAY_SIZE(jobs); i++) {
		struct job_run run = { &d, fd, &jobs[i], secs };
		struct pair_sides sides = { raw_side, lguest_side, &run };
		struct pair_row row;

		if (argc > 3 && strcmp(argv[3], jobs[i].name))
			continue;
		row = run_pairs(&sides, PAIRS);
		printf("%-20s %12.1f %10.1f %7.2f  %-6s %9.3f %8.3f\n", jobs[i].name, row.lguest,
		       row.raw, row.ratio, row.ratio >= TARGET ? "ok" : "MISS", row.kicks, row.irqs);
		fflush(stdout);
	}
	vqd_destroy(&d);
	virtio_blk_free(dev);
	close(fd);
	unlink(path);
	return 0;
}
