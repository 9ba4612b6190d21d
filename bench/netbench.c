/*
 * netbench.c: how close does the userspace virtio-net backend come to
 * reading and writing the tap directly?
 *
 * One tap, no address, IPv6 off, frames of an experimental EtherType
 * (0x88B5, "local use") that the host's stack drops on arrival: nothing
 * leaves this machine and no protocol does work on our behalf.  Both sides
 * move the same frames through the same tap in the same run:
 *
 *   tx  raw:    one thread write()s header + frame to the tap, in a loop.
 *       lguest: a driver (tests/unit/vqdriver.c) keeps the tx ring full
 *               and kicks; the card's tx thread pops, checks the header,
 *               writev()s to the tap and pushes used entries back.
 *   rx  a sender thread injects frames into the tap through a packet
 *       socket, as fast as it can, for both sides;
 *       raw:    one thread read()s the tap, in a loop.
 *       lguest: the card's rx thread reads into posted buffers; the
 *               driver takes used entries and reposts the buffers.
 *
 * The figure is frames per second that made it through; the ratio is what
 * the rings, the header check and the thread hop cost.  Each job runs
 * PAIRS pairs of runs and reports their medians (pairs.h), and lguest's
 * kicks and interrupts per frame.
 *
 * The transmitting driver waits as a guest's vCPU does (vqd_poll_used:
 * KVM's halt polling), and asks for interrupts as Linux's virtio-net does.
 *
 *   netbench [SECONDS [JOB]]     (default 1 s per run, every job; needs
 *                                 CAP_NET_ADMIN)
 */
#include "pairs.h"
#include "vqdriver.h"
#include "host/tap.h"
#include "virtio/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TARGET		0.90
#define PAIRS		5
#define ETHERTYPE	0x88b5
#define RXBUF		2048
#define MAXF		1514

struct job {
	const char *name;
	bool rx;
	u32 len;		/* Ethernet frame bytes */
};

static const struct job jobs[] = {
	{ "net-tx-60B", false, 60 },
	{ "net-tx-1514B", false, 1514 },
	{ "net-rx-60B", true, 60 },
	{ "net-rx-1514B", true, 1514 },
};

static char ifname[IFNAMSIZ];
static int raw_fd;			/* a dup of the card's tap descriptor */
static u8 frame[NET_HDR_LEN + MAXF];	/* zero header, then the frame */
static double run_secs = 1.0;		/* per run */

/* A frame for nobody: broadcast, experimental EtherType, counter bytes. */
static void make_frame(void)
{
	u8 *f = frame + NET_HDR_LEN;

	memset(frame, 0, NET_HDR_LEN);
	memset(f, 0xff, 6);
	memcpy(f + 6, "\x02\x4c\x47\x00\x00\x09", 6);
	f[12] = ETHERTYPE >> 8;
	f[13] = ETHERTYPE & 0xff;
	for (int i = 14; i < MAXF; i++)
		f[i] = i;
}

/* ---- rx: a sender thread stands in for the host's side of the link ---- */

static volatile bool sending;
static u32 send_len;

static void *sender(void *arg)
{
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETHERTYPE),
				  .sll_ifindex = if_nametoindex(ifname), .sll_halen = 6 };
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), one = 1;

	memset(to.sll_addr, 0xff, 6);
	if (s < 0)
		return NULL;
	setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	while (sending)
		if (sendto(s, frame + NET_HDR_LEN, send_len, 0, (struct sockaddr *)&to,
			   sizeof(to)) < 0 && errno != ENOBUFS && errno != EAGAIN)
			break;
	close(s);
	return NULL;
}

static pthread_t start_sender(u32 len)
{
	pthread_t t;

	send_len = len;
	sending = true;
	if (pthread_create(&t, NULL, sender, NULL))
		abort();
	return t;
}

static void stop_sender(pthread_t t)
{
	sending = false;
	pthread_join(t, NULL);
}

/* Empty the tap's queue so a run starts from nothing. */
static void drain_tap(void)
{
	static u8 buf[NET_HDR_LEN + 65536];

	while (read(raw_fd, buf, sizeof(buf)) > 0)
		;
}

/* ---- raw ---- */

static double raw_tx(u32 len, double secs)
{
	double t0 = now(), end = t0 + secs;
	u64 n = 0;

	while (now() < end)
		for (int i = 0; i < 64; i++)
			if (write(raw_fd, frame, NET_HDR_LEN + len) > 0)
				n++;
	return n / (now() - t0);
}

static double raw_rx(u32 len, double secs)
{
	static u8 buf[NET_HDR_LEN + 65536];
	struct pollfd p = { raw_fd, POLLIN, 0 };
	pthread_t t;
	double t0, end;
	u64 n = 0;

	drain_tap();
	t = start_sender(len);
	t0 = now();
	end = t0 + secs;
	while (now() < end) {
		ssize_t got = read(raw_fd, buf, sizeof(buf));

		if (got > 0)
			n++;
		else if (errno == EAGAIN)
			poll(&p, 1, 10);
	}
	t0 = now() - t0;
	stop_sender(t);
	return n / t0;
}

/* ---- lguest ---- */

/*
 * Descriptor i always describes buffer i, set once: the driver then only
 * recycles heads through the avail ring, as a tuned driver does, so the
 * figure is the card's cost rather than the harness's.
 */
static void fixed_descs(struct vqd *d, struct vqd_queue *q, u64 first, u32 stride, u32 len,
			bool writable)
{
	for (u16 i = 0; i < q->size; i++)
		vqd_desc_set(d, q->desc_gpa, i, first + (u64)i * stride, len,
			     writable ? VQD_F_WRITE : 0, 0);
}

/*
 * Take every used head there is (waiting up to 100 ms for the first, by
 * spinning first as KVM polls a halted vCPU if spin), publish each again,
 * and notify once.  Returns how many; counts kicks.
 */
static u64 recycle(struct vqd_queue *q, bool again, bool spin, u64 *kicks)
{
	u64 n = 0;
	u16 head;
	u32 len;

	if (!(spin ? vqd_poll_used : vqd_wait_used)(q, 100, &head, &len))
		return 0;
	do {
		n++;
		if (again)
			vqd_publish(q, head);
	} while (vqd_take_used(q, &head, &len));
	if (again)
		*kicks += vqd_notify(q);
	return n;
}

/* Per frame, from counts over a run of t seconds. */
static struct lg_run lg_stats(struct vqd *d, int qidx, int irqs0, u64 n, u64 kicks, double t)
{
	struct lg_run st = { n / t, 0, 0 };

	if (n) {
		st.kicks = (double)kicks / n;
		st.irqs = (double)(vqd_signals(d, qidx) - irqs0) / n;
	}
	return st;
}

/*
 * Keep the tx ring full of the frame; count chains the card gives back.
 * Like Linux's virtio-net, which frees sent buffers as it queues new
 * ones, the driver wants a transmit interrupt only when three quarters
 * of those outstanding are done (virtqueue_enable_cb_delayed).
 */
static struct lg_run lg_tx(struct vqd *d, u32 len, double secs)
{
	struct vqd_queue *q = &d->q[NET_TXQ];
	struct net_stats before, after;
	u64 gpa, n = 0, kicks = 0, out = q->size;
	int irqs0 = vqd_signals(d, NET_TXQ);
	double t0, end;

	virtio_net_stats(d->dev, &before);
	vqd_heap_reset(d);
	gpa = vqd_alloc(d, NET_HDR_LEN + len, 64);
	memcpy(vqd_ptr(d, gpa, NET_HDR_LEN + len), frame, NET_HDR_LEN + len);
	fixed_descs(d, q, gpa, 0, NET_HDR_LEN + len, false);
	q->manual_events = true;
	t0 = now();
	end = t0 + secs;
	for (u16 i = 0; i < q->size; i++)
		vqd_publish(q, i);
	kicks += vqd_notify(q);
	while (out) {
		bool more = now() < end;
		u64 got;

		vqd_set_used_event(q, q->last_used + (u16)(q->avail_idx - q->last_used) * 3 / 4);
		got = recycle(q, more, true, &kicks);
		n += got;
		if (!more)
			out -= MIN(out, got);
	}
	q->manual_events = false;
	/* Count what the tap took: a refused write still returns its chain. */
	virtio_net_stats(d->dev, &after);
	n = after.tx_frames - before.tx_frames;
	return lg_stats(d, NET_TXQ, irqs0, n, kicks, now() - t0);
}

/*
 * Post every rx buffer; count frames; repost each as it comes back.  The
 * driver sleeps until interrupted: frames come at the sender's pace, and
 * a spinning driver would be a third busy thread (sender, card, driver)
 * on a two-CPU host, taking the CPU the other two need.
 */
static struct lg_run lg_rx(struct vqd *d, u32 len, double secs)
{
	struct vqd_queue *q = &d->q[NET_RXQ];
	int irqs0 = vqd_signals(d, NET_RXQ);
	u64 n = 0, kicks = 0;
	double t0, end;
	pthread_t t;

	vqd_heap_reset(d);
	fixed_descs(d, q, vqd_alloc(d, (u64)RXBUF * q->size, 64), RXBUF, RXBUF, true);
	for (u16 i = 0; i < q->size; i++)
		vqd_publish(q, i);
	kicks += vqd_notify(q);
	t = start_sender(len);
	t0 = now();
	end = t0 + secs;
	while (now() < end)
		n += recycle(q, true, false, &kicks);
	t0 = now() - t0;
	stop_sender(t);
	return lg_stats(d, NET_RXQ, irqs0, n, kicks, t0);
}

/* One job's two sides, for run_pairs(). */
struct job_run {
	struct vqd *d;
	const struct job *j;
	bool failed;		/* the card would not start: the row is void */
};

static double raw_side(void *ctx)
{
	struct job_run *r = ctx;

	return r->j->rx ? raw_rx(r->j->len, run_secs) : raw_tx(r->j->len, run_secs);
}

static struct lg_run lguest_side(void *ctx)
{
	struct job_run *r = ctx;
	struct lg_run st = { 0 };

	drain_tap();
	if (vqd_start(r->d) < 0) {
		fprintf(stderr, "netbench: %s\n", last_error());
		r->failed = true;
		return st;
	}
	st = r->j->rx ? lg_rx(r->d, r->j->len, run_secs) : lg_tx(r->d, r->j->len, run_secs);
	vqd_stop(r->d);
	return st;
}

/* Turn IPv6 off before the link goes up: no autoconfiguration frames. */
static void no_ipv6(void)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			perror("netbench: disable_ipv6");
		close(fd);
	}
}

int main(int argc, char **argv)
{
	struct net_opts o = { .mac = { 2, 0x4c, 0x47, 0, 0, 1 }, .is_tap = true };
	struct virtio_dev *dev;
	struct vqd d;
	int fd;

	if (argc > 1)
		run_secs = atof(argv[1]);
	make_frame();
	fd = tap_create(ifname);
	if (fd < 0) {
		printf("# SKIP netbench: %s\n", last_error());
		return 0;
	}
	no_ipv6();
	if (tap_set_vnet_hdr_size(fd, NET_HDR_LEN) || tap_set_up(ifname) ||
	    (raw_fd = dup(fd)) < 0 || !(dev = virtio_net_new(fd, &o)) ||
	    vqd_init(&d, dev, MiB(64), VQD_ALL_FEATURES, 0) < 0) {
		fprintf(stderr, "netbench: %s\n", last_error());
		return 1;
	}
	printf("# tap %s, %.1f s per run, userspace backend, %d-entry queues\n", ifname, run_secs,
	       NET_QUEUE_SIZE);
	printf("%-20s %12s %10s %7s  %-6s %10s %9s\n", "name", "lguest kfps", "raw kfps", "ratio",
	       "t>=.90", "kicks/frm", "irqs/frm");
	for (unsigned i = 0; i < ARRAY_SIZE(jobs); i++) {
		const struct job *j = &jobs[i];
		struct job_run run = { &d, j, false };
		struct pair_sides sides = { raw_side, lguest_side, &run };
		struct pair_row row;

		if (argc > 2 && strcmp(argv[2], j->name))
			continue;
		row = run_pairs(&sides, PAIRS);
		if (run.failed)
			return 1;
		printf("%-20s %12.1f %10.1f %7.2f  %-6s %10.4f %9.4f\n", j->name, row.lguest / 1e3,
		       row.raw / 1e3, row.ratio, row.ratio >= TARGET ? "ok" : "MISS", row.kicks,
		       row.irqs);
		fflush(stdout);
	}
	vqd_destroy(&d);
	virtio_net_free(dev);
	close(raw_fd);
	return 0;
}
