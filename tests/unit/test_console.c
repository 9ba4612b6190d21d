/*
 * test_console.c: virtio-console driven through vqdriver as a guest would.
 *
 * Output goes to a pipe the test reads, so we can hold stdout "full" and
 * watch the device wait: a transmit buffer must come back only once its
 * bytes are written, in order, and a reset must not hang on a full pipe.
 * Input goes in through vcon_input(), which may only fill buffers the
 * guest posted; the room callback must fire when it posts more.  Under
 * MULTIPORT input must also wait until the driver has opened the port,
 * which it says over the control queues after a short handshake.
 */
#include "tap.h"
#include "vqdriver.h"
#include "virtio/console.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MEM	MiB(16)
#define F_MULTIPORT	(1ULL << 1)
/* The plain two-queue device, as a driver without MULTIPORT sees it:
 * input flows as soon as buffers are posted. */
#define PLAIN	(VQD_ALL_FEATURES & ~F_MULTIPORT)

/* Control events (virtio 1.2, 5.3.6.2). */
#define DEVICE_READY	0
#define DEVICE_ADD	1
#define PORT_READY	3
#define CONSOLE_PORT	4
#define PORT_OPEN	6

static int rooms;

/* The room callback, counted (it runs on the device thread). */
static void count_room(void *arg)
{
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* How often it ran so far. */
static int room_count(void)
{
	return __atomic_load_n(&rooms, __ATOMIC_SEQ_CST);
}

/* Wait (up to 5 s) until the room callback has run more than `than` times. */
static bool room_after(int than)
{
	for (int i = 0; i < 5000; i++) {
		if (room_count() > than)
			return true;
		usleep(1000);
	}
	return false;
}

/* Seconds on a clock that never jumps. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read exactly len bytes from fd within 10 s; returns bytes read. */
static size_t read_all(int fd, u8 *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	double end = now_s() + 10;

	while (got < len && now_s() < end) {
		ssize_t n;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(fd, buf + got, len - got);
		if (n > 0)
			got += n;
	}
	return got;
}

/* Nothing more arrives on fd within ms. */
static bool quiet(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 0;
}

/* A guest buffer holding s (not NUL-terminated). */
static u64 put_str(struct vqd *d, const char *s)
{
	u64 gpa = vqd_alloc(d, strlen(s), 1);

	memcpy(vqd_ptr(d, gpa, strlen(s)), s, strlen(s));
	return gpa;
}

/* A one-buffer chain on q, published. */
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

struct rig {
	struct vqd d;
	struct virtio_dev *dev;
	struct vcon *c;
	int pipe[2];
	struct vqd_queue *rx, *tx;
};

/* A started console writing into a pipe of pipe_size bytes. */
static bool rig_up(struct rig *r, int pipe_size, u64 features)
{
	memset(r, 0, sizeof(*r));
	if (pipe2(r->pipe, O_CLOEXEC) < 0)
		return false;
	if (pipe_size)
		fcntl(r->pipe[1], F_SETPIPE_SZ, pipe_size);
	r->dev = vcon_create(r->pipe[1], &r->c);
	if (!r->dev)
		return false;
	vcon_set_room_callback(r->c, count_room, &rooms);
	if (vqd_init(&r->d, r->dev, MEM, features, 0) < 0 || vqd_start(&r->d) < 0) {
		tap_diag("rig: %s", last_error());
		return false;
	}
	r->rx = &r->d.q[VCON_RXQ];
	r->tx = &r->d.q[VCON_TXQ];
	return true;
}

/* Undo rig_up(), device thread included. */
static void rig_down(struct rig *r)
{
	vqd_destroy(&r->d);
	vcon_free(r->dev);
	close(r->pipe[0]);
	close(r->pipe[1]);
}

/* Three chains, one, two and (indirect) one buffer: bytes come out in
 * order, and each chain returns with length 0. */
static void test_output_order(u64 features, const char *how)
{
	struct rig r;
	u8 buf[64] = { 0 };
	int h1, h2, h3;
	size_t n;

	if (!ok(rig_up(&r, 0, features), "%s: console up", how))
		return;
	h1 = post1(r.tx, put_str(&r.d, "hello "), 6, false);
	vqd_chain_begin(r.tx);
	vqd_chain_add(r.tx, put_str(&r.d, "wor"), 3, false);
	vqd_chain_add(r.tx, put_str(&r.d, "ld"), 2, false);
	h2 = vqd_chain_end(r.tx);
	vqd_publish(r.tx, h2);
	vqd_chain_begin(r.tx);
	vqd_chain_indirect(r.tx, 4);
	vqd_chain_add(r.tx, put_str(&r.d, "!\n"), 2, false);
	h3 = vqd_chain_end(r.tx);
	vqd_publish(r.tx, h3);
	vqd_notify(r.tx);
	ok(vqd_expect_used(r.tx, h1, 0), "%s: first chain back, length 0", how);
	ok(vqd_expect_used(r.tx, h2, 0), "%s: second chain back", how);
	ok(vqd_expect_used(r.tx, h3, 0), "%s: indirect chain back", how);
	n = read_all(r.pipe[0], buf, 13);
	is_int(n, 13, "output length");
	ok(!memcmp(buf, "hello world!\n", 13), "%s: output in order: 'hello world!\\n'", how);
	ok(quiet(r.pipe[0], 50), "%s: nothing more written", how);
	ok(vqd_signals(&r.d, VCON_TXQ) > 0, "%s: the driver was interrupted", how);
	rig_down(&r);
}

/*
 * stdout full: nothing comes back until the reader drains it, then both
 * chains come back in order, every byte intact.
 */
static void test_backpressure(void)
{
	enum { BIG = 64 * 1024 };
	static u8 want[BIG + 4], got[BIG + 4];
	struct rig r;
	size_t n;
	u64 a;
	int ha, hb;

	if (!ok(rig_up(&r, 4096, VQD_ALL_FEATURES), "backpressure: console up"))
		return;
	for (int i = 0; i < BIG; i++)
		want[i] = 'a' + i % 26;
	memcpy(want + BIG, "tail", 4);
	a = vqd_alloc(&r.d, BIG, 16);
	memcpy(vqd_ptr(&r.d, a, BIG), want, BIG);
	ha = post1(r.tx, a, BIG, false);
	hb = post1(r.tx, put_str(&r.d, "tail"), 4, false);
	vqd_notify(r.tx);
	usleep(300 * 1000);
	n = vqd_used_pending(r.tx);
	is_int(n, 0, "a full stdout holds both chains back");
	n = read_all(r.pipe[0], got, BIG + 4);
	is_int(n, BIG + 4, "every byte arrives once read");
	ok(!memcmp(got, want, BIG + 4), "... intact and in order");
	ok(vqd_expect_used(r.tx, ha, 0), "the big chain is back after its bytes");
	ok(vqd_expect_used(r.tx, hb, 0), "then the small one");
	rig_down(&r);
}

/* Reset while the thread waits on a full pipe: returns, promptly. */
static void test_reset_while_blocked(void)
{
	enum { BIG = 256 * 1024 };
	struct rig r;
	double t;
	size_t n;
	u64 a;

	if (!ok(rig_up(&r, 4096, VQD_ALL_FEATURES), "reset: console up"))
		return;
	a = vqd_alloc(&r.d, BIG, 16);
	memset(vqd_ptr(&r.d, a, BIG), 'x', BIG);
	post1(r.tx, a, BIG, false);
	vqd_notify(r.tx);
	usleep(100 * 1000);
	t = now_s();
	vqd_stop(&r.d);
	ok(now_s() - t < 2, "reset returns while stdout is full (%.3f s)", now_s() - t);
	n = vqd_used_pending(r.tx);
	is_int(n, 0, "the unwritten chain was not returned");
	n = vcon_input(r.c, (const u8 *)"x", 1);
	is_int(n, 0, "no input after reset");
	rig_down(&r);
}

/* Input goes only into posted buffers; the room callback says when. */
static void test_input(void)
{
	struct rig r;
	u64 b1, b2, b3, ro, w;
	int h1, h2, h3, hro, hw, before = room_count();
	size_t n;

	if (!ok(rig_up(&r, 0, PLAIN), "input: console up"))
		return;
	ok(room_after(before), "the room callback runs when the device starts");
	n = vcon_input(r.c, (const u8 *)"abc", 3);
	is_int(n, 0, "no buffer posted: nothing taken");

	b1 = vqd_alloc(&r.d, 4, 1);
	b2 = vqd_alloc(&r.d, 4, 1);
	before = room_count();
	h1 = post1(r.rx, b1, 4, true);
	h2 = post1(r.rx, b2, 4, true);
	ok(vqd_notify(r.rx), "the device asked for a kick when it ran dry");
	ok(room_after(before), "posting buffers calls the room callback");
	n = vcon_input(r.c, (const u8 *)"hello world", 11);
	is_int(n, 8, "8 bytes fit in two 4-byte buffers");
	ok(vqd_expect_used(r.rx, h1, 4) && !memcmp(vqd_ptr(&r.d, b1, 4), "hell", 4),
	   "first buffer: 'hell', length 4");
	ok(vqd_expect_used(r.rx, h2, 4) && !memcmp(vqd_ptr(&r.d, b2, 4), "o wo", 4),
	   "second buffer: 'o wo', length 4");
	n = vcon_input(r.c, (const u8 *)"rld", 3);
	is_int(n, 0, "buffers used up: nothing taken");

	b3 = vqd_alloc(&r.d, 64, 1);
	before = room_count();
	h3 = post1(r.rx, b3, 64, true);
	ok(vqd_notify(r.rx), "kicks were re-enabled when input found no buffer");
	ok(room_after(before), "the new buffer calls the room callback again");
	n = vcon_input(r.c, (const u8 *)"rld", 3);
	is_int(n, 3, "the rest fits");
	ok(vqd_expect_used(r.rx, h3, 3) && !memcmp(vqd_ptr(&r.d, b3, 3), "rld", 3),
	   "third buffer: 'rld', length 3");
	ok(vqd_signals(&r.d, VCON_RXQ) > 0, "the driver was interrupted for input");

	/* A read-only buffer is no place for input: skipped, returned empty. */
	ro = put_str(&r.d, "keep");
	w = vqd_alloc(&r.d, 8, 1);
	hro = post1(r.rx, ro, 4, false);
	hw = post1(r.rx, w, 8, true);
	vqd_notify(r.rx);
	n = vcon_input(r.c, (const u8 *)"xy", 2);
	is_int(n, 2, "input skips a read-only buffer");
	ok(vqd_expect_used(r.rx, hro, 0) && !memcmp(vqd_ptr(&r.d, ro, 4), "keep", 4),
	   "the read-only buffer comes back untouched, length 0");
	ok(vqd_expect_used(r.rx, hw, 2) && !memcmp(vqd_ptr(&r.d, w, 2), "xy", 2),
	   "the next one gets the bytes");
	rig_down(&r);
}

/* Corrupt rings: NEEDS_RESET, no crash, and a reset brings it back. */
static void test_malformed(void)
{
	struct rig r;
	u8 buf[8];
	int before, resets;
	size_t n;

	if (!ok(rig_up(&r, 0, PLAIN), "malformed: console up"))
		return;
	/* A transmit buffer outside guest RAM. */
	post1(r.tx, MEM - 2, 16, false);
	vqd_notify(r.tx);
	ok(vqd_wait_needs_reset(&r.d, VQD_TIMEOUT_MS), "tx buffer past RAM: NEEDS_RESET");
	ok(quiet(r.pipe[0], 50), "... and nothing was written");

	ok(vqd_restart(&r.d) == 0, "restart after NEEDS_RESET");
	before = vqd_needs_reset_count(&r.d);
	/* A receive head out of range. */
	vqd_avail_put(r.rx, 0, 4000);
	vqd_avail_set_idx(r.rx, 1);
	vqd_kick(r.rx);
	n = vcon_input(r.c, (const u8 *)"zz", 2);
	is_int(n, 0, "rx head out of range: nothing taken");
	resets = vqd_needs_reset_count(&r.d);
	is_int(resets, before + 1, "... and NEEDS_RESET");
	n = vcon_input(r.c, (const u8 *)"zz", 2);
	resets = vqd_needs_reset_count(&r.d);
	ok(n == 0 && resets == before + 1, "a broken rx ring stays untouched, reported once");

	/* A transmit chain that loops. */
	ok(vqd_restart(&r.d) == 0, "restart again");
	before = vqd_needs_reset_count(&r.d);
	vqd_desc_set(&r.d, r.tx->desc_gpa, 0, put_str(&r.d, "loop"), 4, VQD_F_NEXT, 1);
	vqd_desc_set(&r.d, r.tx->desc_gpa, 1, put_str(&r.d, "loop"), 4, VQD_F_NEXT, 0);
	vqd_avail_put(r.tx, 0, 0);
	vqd_avail_set_idx(r.tx, 1);
	vqd_kick(r.tx);
	for (int i = 0; i < 5000 && vqd_needs_reset_count(&r.d) == before; i++)
		usleep(1000);
	resets = vqd_needs_reset_count(&r.d);
	is_int(resets, before + 1, "tx chain loop: NEEDS_RESET");

	ok(vqd_restart(&r.d) == 0, "and once more");
	post1(r.tx, put_str(&r.d, "alive"), 5, false);
	vqd_notify(r.tx);
	ok(read_all(r.pipe[0], buf, 5) == 5 && !memcmp(buf, "alive", 5),
	   "the console works after all that");
	rig_down(&r);
}

/* One 8-byte control message from the driver, returned with length 0. */
static bool ctl_send(struct rig *r, u32 id, u16 event, u16 value)
{
	struct vqd_queue *q = &r->d.q[VCON_CTL_TXQ];
	u64 gpa = vqd_alloc(&r->d, 8, 8);
	u8 *p = vqd_ptr(&r->d, gpa, 8);
	int head;

	memcpy(p, &id, 4);
	memcpy(p + 4, &event, 2);
	memcpy(p + 6, &value, 2);
	head = post1(q, gpa, 8, false);
	vqd_notify(q);
	return vqd_expect_used(q, head, 0);
}

/* Buffers the device may send control messages into; their addresses
 * by head, to read what came back. */
static u64 ctl_buf[VCON_QUEUE_SIZE];

static void ctl_post(struct rig *r, int n, u32 len)
{
	struct vqd_queue *q = &r->d.q[VCON_CTL_RXQ];

	for (int i = 0; i < n; i++) {
		u64 gpa = vqd_alloc(&r->d, len, 8);
		int head = post1(q, gpa, len, true);

		if (head >= 0)
			ctl_buf[head] = gpa;
	}
	vqd_notify(q);
}

/* The next control message from the device is (port 0, event, value). */
static bool ctl_expect(struct rig *r, u16 event, u16 value)
{
	struct vqd_queue *q = &r->d.q[VCON_CTL_RXQ];
	u16 head, ev, val;
	u32 len, id;
	u8 *p;

	if (!vqd_wait_used(q, VQD_TIMEOUT_MS, &head, &len) || len != 8 ||
	    head >= VCON_QUEUE_SIZE)
		return false;
	p = vqd_ptr(&r->d, ctl_buf[head], 8);
	memcpy(&id, p, 4);
	memcpy(&ev, p + 4, 2);
	memcpy(&val, p + 6, 2);
	return id == 0 && ev == event && val == value;
}

/*
 * The MULTIPORT handshake as Linux does it, and input held back until
 * the driver opens the port: what keeps type-ahead from being dropped.
 */
static void test_multiport(void)
{
	struct vqd_queue *rx;
	struct rig r;
	int before, h;
	size_t n;
	u64 b;

	if (!ok(rig_up(&r, 0, VQD_ALL_FEATURES), "multiport: console up"))
		return;
	rx = r.rx;
	ok(virtio_has(r.dev, 1), "MULTIPORT negotiated");
	b = vqd_alloc(&r.d, 4, 1);
	h = post1(rx, b, 4, true);
	vqd_notify(rx);
	usleep(50 * 1000);
	n = vcon_input(r.c, (const u8 *)"early", 5);
	is_int(n, 0, "buffers posted, port not open: input held back");

	/* A control buffer too small for a message: filled as far as it goes. */
	{
		struct vqd_queue *q = &r.d.q[VCON_CTL_RXQ];
		u16 head;
		u32 len;

		post1(q, vqd_alloc(&r.d, 4, 4), 4, true);
		vqd_notify(q);
		ctl_send(&r, 0xffffffff, DEVICE_READY, 1);
		ok(vqd_wait_used(q, VQD_TIMEOUT_MS, &head, &len) && len == 4,
		   "a 4-byte control buffer gets the first 4 bytes of DEVICE_ADD");
	}

	/* The handshake proper, into 8-byte buffers (one is left over). */
	ctl_post(&r, 4, 8);
	ok(ctl_send(&r, 0xffffffff, DEVICE_READY, 1), "DEVICE_READY taken");
	ok(ctl_expect(&r, DEVICE_ADD, 0), "... answered with DEVICE_ADD for port 0");
	ok(ctl_send(&r, 0, PORT_READY, 1), "PORT_READY taken");
	ok(ctl_expect(&r, CONSOLE_PORT, 1), "... answered with CONSOLE_PORT");
	ok(ctl_expect(&r, PORT_OPEN, 1), "... and PORT_OPEN from our side");
	n = vcon_input(r.c, (const u8 *)"early", 5);
	is_int(n, 0, "still held until the driver opens the port");

	before = room_count();
	ok(ctl_send(&r, 0, PORT_OPEN, 1), "the driver opens the port");
	ok(room_after(before), "... which calls the room callback");
	n = vcon_input(r.c, (const u8 *)"early", 5);
	is_int(n, 4, "now input flows into the posted buffer");
	ok(vqd_expect_used(rx, h, 4) && !memcmp(vqd_ptr(&r.d, b, 4), "earl", 4),
	   "... 'earl', length 4");

	ok(ctl_send(&r, 0, PORT_OPEN, 0), "the driver closes the port");
	post1(rx, vqd_alloc(&r.d, 4, 1), 4, true);
	vqd_notify(rx);
	usleep(50 * 1000);
	n = vcon_input(r.c, (const u8 *)"y", 1);
	is_int(n, 0, "a closed port takes no input");
	ok(ctl_send(&r, 0, PORT_OPEN, 1), "opened again");
	n = vcon_input(r.c, (const u8 *)"y", 1);
	is_int(n, 1, "... and input flows again");

	/* Nonsense from the driver: ignored, no reply, nothing breaks. */
	ok(ctl_send(&r, 7, PORT_READY, 1), "PORT_READY for a port we lack");
	ok(ctl_send(&r, 0, 99, 1), "an unknown event");
	{
		struct vqd_queue *q = &r.d.q[VCON_CTL_TXQ];
		u64 gpa = vqd_alloc(&r.d, 4, 4);
		int hs = post1(q, gpa, 4, false);

		vqd_notify(q);
		ok(vqd_expect_used(q, hs, 0), "a 4-byte control message comes back, ignored");
	}
	usleep(50 * 1000);
	n = vqd_used_pending(&r.d.q[VCON_CTL_RXQ]);
	is_int(n, 0, "none of them got an answer");
	is_int(vqd_needs_reset_count(&r.d), 0, "none of them broke the device");

	/* A flood of DEVICE_READY with one buffer to answer in: the other
	 * answers wait, at most 8 of them, and go out when buffers come. */
	for (int i = 0; i < 20; i++)
		ctl_send(&r, 0, DEVICE_READY, 1);
	ctl_post(&r, 20, 8);
	usleep(100 * 1000);
	n = 0;
	while (vqd_used_pending(&r.d.q[VCON_CTL_RXQ]) && ctl_expect(&r, DEVICE_ADD, 0))
		n++;
	is_int(n, 1 + 8, "20 DEVICE_READY: one answer sent at once, 8 kept for later");

	/* A control chain outside RAM: NEEDS_RESET; a restart starts over,
	 * with the port closed. */
	post1(&r.d.q[VCON_CTL_TXQ], MEM - 4, 8, false);
	vqd_kick(&r.d.q[VCON_CTL_TXQ]);
	ok(vqd_wait_needs_reset(&r.d, VQD_TIMEOUT_MS), "control buffer past RAM: NEEDS_RESET");
	ok(vqd_restart(&r.d) == 0, "restart");
	post1(rx, vqd_alloc(&r.d, 4, 1), 4, true);
	vqd_notify(rx);
	usleep(50 * 1000);
	n = vcon_input(r.c, (const u8 *)"z", 1);
	is_int(n, 0, "after a reset the port is closed again");
	rig_down(&r);
}

/* F_SIZE: offered once a size is known, readable, and changes announced. */
static void test_size(void)
{
	struct virtio_dev *dev;
	struct vcon *c;
	struct vqd d;
	u16 cfg[2], gen;
	int p[2];

	if (!ok(pipe2(p, O_CLOEXEC) == 0, "size: pipe"))
		return;
	dev = vcon_create(p[1], &c);
	ok(!(dev->ops->features(dev) & 1), "a pipe has no size: no F_SIZE");
	ok(dev->ops->features(dev) & F_MULTIPORT, "MULTIPORT offered");
	vcon_set_size(c, 100, 40);
	ok(dev->ops->features(dev) & 1, "a size set: F_SIZE offered");
	if (!ok(vqd_init(&d, dev, MEM, PLAIN, 0) == 0 && vqd_start(&d) == 0,
		"size: console up"))
		return;
	dev->ops->config_read(dev, 0, cfg, 4);
	ok(cfg[0] == 100 && cfg[1] == 40, "config: cols 100, rows 40");
	gen = dev->config_generation;
	vcon_set_size(c, 132, 50);
	dev->ops->config_read(dev, 0, cfg, 4);
	ok(cfg[0] == 132 && cfg[1] == 50, "config: cols 132, rows 50 after a resize");
	ok(d.n_config == 1 && dev->config_generation != gen,
	   "the resize raised a config interrupt and a new generation");
	vqd_destroy(&d);
	vcon_free(dev);
	close(p[0]);
	close(p[1]);
}

/* Output with and without EVENT_IDX, then the rest once. */
int main(void)
{
	test_output_order(VQD_ALL_FEATURES, "event-idx");
	test_output_order(~(1ULL << VIRTIO_F_EVENT_IDX), "no event-idx");
	test_backpressure();
	test_reset_while_blocked();
	test_input();
	test_malformed();
	test_multiport();
	test_size();
	return tap_done();
}
