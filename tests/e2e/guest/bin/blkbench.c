/*
 * blkbench.c: virtio-blk throughput as the guest sees it (busybox has no
 * fio).  Built static into the e2e guest initramfs by guest-initrd.sh and
 * run by tests/e2e/guest/blkbench.sh for bench/nested/blk.sh.
 *
 *   blkbench [DEVICE [SECONDS [nostats]]]   (defaults /dev/vda, 3 s per job)
 *
 * BLKBENCH_ONLY=NAME in the environment runs just that job (to repeat one
 * workload for a long time, e.g. while hunting a stall).
 *
 * Each job opens DEVICE with O_DIRECT (so every request reaches the
 * device, not the guest's page cache) and runs QD threads for SECONDS,
 * each thread doing one blocking pread/pwrite at a time: QD requests in
 * flight.  Random jobs pick aligned offsets from a per-thread generator;
 * sequential jobs share one cursor that walks the device and wraps.
 * Prints one line per job:  LGTEST blkbench NAME MBPS  (MB = 10^6 bytes),
 * then what it cost the guest:  LGTEST blkbench stats NAME busy=B% irq/req=I
 * (the guest CPU's busy share, and virtio interrupts per request).  Under
 * nested KVM the guest's CPU is usually what runs out first, so these say
 * whether a launcher is slower because it is slow or because it makes
 * the guest work harder.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
	const char *name;
	int write, seq;
	size_t bs;
	int qd;
};

static const struct job jobs[] = {
	{ "randread-4k-qd1", 0, 0, 4096, 1 },
	{ "randread-4k-qd32", 0, 0, 4096, 32 },
	{ "randwrite-4k-qd32", 1, 0, 4096, 32 },
	{ "seqread-1m-qd4", 0, 1, 1 << 20, 4 },
	{ "seqwrite-1m-qd4", 1, 1, 1 << 20, 4 },
};

static int fd;
static uint64_t dev_size;
static const struct job *job;
static volatile int stop;
static uint64_t cursor;		/* sequential jobs: next offset (atomic) */

struct worker {
	pthread_t tid;
	uint64_t seed, bytes;
	int failed;
};

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	uint64_t blocks = dev_size / job->bs;
	void *buf;

	if (posix_memalign(&buf, 4096, job->bs)) {
		w->failed = 1;
		return NULL;
	}
	memset(buf, 0x5a, job->bs);
	while (!stop) {
		uint64_t off;
		ssize_t n;

		if (job->seq)
			off = (__atomic_fetch_add(&cursor, 1, __ATOMIC_RELAXED) % blocks) * job->bs;
		else
			off = (next_rand(&w->seed) % blocks) * job->bs;
		n = job->write ? pwrite(fd, buf, job->bs, off) : pread(fd, buf, job->bs, off);
		if (n != (ssize_t)job->bs) {
			perror(job->write ? "blkbench: pwrite" : "blkbench: pread");
			w->failed = 1;
			break;
		}
		w->bytes += job->bs;
	}
	free(buf);
	return NULL;
}

/* Busy and total jiffies of all CPUs, from /proc/stat's first line. */
static void cpu_jiffies(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4];	/* minus idle and iowait */
	}
	fclose(f);
}

/* Interrupts so far on the lines of /proc/interrupts that name virtio. */
static uint64_t virtio_interrupts(void)
{
	char line[512];
	uint64_t n = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!p || !strstr(line, "virtio"))
			continue;
		for (p++;;) {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			n += v;
			p = end;
		}
	}
	fclose(f);
	return n;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/vda";
	double secs = argc > 2 ? atof(argv[2]) : 3.0;
	int stats = !(argc > 3 && !strcmp(argv[3], "nostats"));
	const char *only = getenv("BLKBENCH_ONLY");
	int status = 0;

	fd = open(dev, O_RDWR | O_DIRECT);
	if (fd < 0 || (off_t)(dev_size = lseek(fd, 0, SEEK_END)) <= 0) {
		perror(dev);
		return 1;
	}
	for (size_t j = 0; j < sizeof(jobs) / sizeof(jobs[0]); j++) {
		struct worker w[64] = { 0 };
		uint64_t bytes = 0;
		struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };
		double t0, t1;
		uint64_t busy0, total0, busy1, total1, irq0, irq1;
		int failed = 0;

		job = &jobs[j];
		if (only && *only && strcmp(only, job->name))
			continue;
		stop = 0;
		cursor = 0;
		busy0 = total0 = busy1 = total1 = irq0 = irq1 = 0;
		if (stats) {
			cpu_jiffies(&busy0, &total0);
			irq0 = virtio_interrupts();
		}
		t0 = now();
		for (int i = 0; i < job->qd; i++) {
			w[i].seed = 0x9e3779b97f4a7c15ULL * (i + 1) + j;
			pthread_create(&w[i].tid, NULL, run, &w[i]);
		}
		nanosleep(&ts, NULL);
		stop = 1;
		for (int i = 0; i < job->qd; i++) {
			pthread_join(w[i].tid, NULL);
			bytes += w[i].bytes;
			failed |= w[i].failed;
		}
		t1 = now();
		if (stats) {
			cpu_jiffies(&busy1, &total1);
			irq1 = virtio_interrupts();
		}
		if (job->write)
			fsync(fd);
		if (failed) {
			printf("LGTEST blkbench %s failed\n", job->name);
			status = 1;
		} else {
			uint64_t reqs = bytes / job->bs;

			printf("LGTEST blkbench %s %.1f\n", job->name, bytes / (t1 - t0) / 1e6);
			printf("LGTEST blkbench stats %s busy=%.0f%% irq/req=%.2f\n", job->name,
			       total1 > total0 ? 100.0 * (busy1 - busy0) / (total1 - total0) : 0.0,
			       reqs ? (double)(irq1 - irq0) / reqs : 0.0);
		}
		fflush(stdout);
	}
	close(fd);
	return status;
}
