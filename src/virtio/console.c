/*
 * console.c: the virtio console (virtio 1.2, 5.3), a guest's hvc0.
 *
 * The serial port costs a vCPU exit per byte; this costs one per buffer.
 * The device has one thread, which sleeps in poll() on the queues' kick
 * eventfds and on our own stop.
 *
 * Output (transmitq0).  On a kick the thread pops each chain, writes its
 * bytes to out_fd, and only then pushes it back.  Linux's hvc driver
 * spins until its buffer comes back, so a slow stdout slows the guest's
 * printing down to stdout's pace: that is the backpressure, and it is why
 * nothing is ever lost.  Writes go out in pieces no larger than PIPE_BUF
 * after poll() says out_fd has room, so that a reset never waits on a
 * stdout nobody reads for longer than one piece takes.
 *
 * Input (receiveq0).  The guest posts empty buffers; typed bytes go into
 * them through vcon_input(), called by the terminal code on the main
 * thread, under rx_lock, which is what keeps "one thread at a time" on
 * that queue.  When no buffer is posted vcon_input() takes nothing and
 * asks the guest to kick when it posts one; the device thread answers
 * that kick by calling the room callback, and the terminal reads again.
 * Between the two, unread input waits in the terminal's own buffers.
 *
 * Why MULTIPORT, for one port.  Without it, Linux posts its receive
 * buffers before it has hooked the port to hvc0, and throws away any
 * input that lands in between (in_intr() discards data for a port not
 * yet "connected"): whatever the user typed ahead during boot would be
 * lost.  With MULTIPORT the driver tells us, over the control queues,
 * when the console port is open (5.3.6.2): we announce port 0 as a
 * console, and hold input back until the driver says PORT_OPEN.  A
 * driver that does not take MULTIPORT gets the plain two-queue device.
 *
 * The terminal's size goes only through the configuration space
 * (F_SIZE), which Linux reads only without MULTIPORT.  Under MULTIPORT
 * it would take a RESIZE control message, whose field order Linux
 * changed in 2024 (commit 5326ab737a47): whatever order we chose, some
 * kernels would swap rows and columns, so we send none.
 */
#include "virtio/console.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Feature bits (5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE		0
#define VIRTIO_CONSOLE_F_MULTIPORT	1

/* Control events (5.3.6.2) we take or send. */
#define VCON_DEVICE_READY	0	/* driver: ready for ports */
#define VCON_DEVICE_ADD		1	/* device: here is port `id` */
#define VCON_PORT_READY		3	/* driver: port `id` is set up */
#define VCON_CONSOLE_PORT	4	/* device: port `id` is a console */
#define VCON_PORT_OPEN		6	/* either side: opened (value 1) or closed */

/* Our one port, and how many control messages may wait for a buffer. */
#define VCON_PORT		0
#define VCON_CTL_PENDING	8

/* The biggest write we make after poll() reports room: a pipe that says
 * POLLOUT takes this much without blocking. */
#define VCON_WRITE_CHUNK	4096

/* Device configuration (5.3.4), without the EMERG_WRITE part we do not
 * offer. */
struct vcon_config {
	u16 cols;
	u16 rows;
	u32 max_nr_ports;
} __attribute__((packed));

_Static_assert(sizeof(struct vcon_config) == 8, "virtio-console config layout");

/* A control message (5.3.6.2), either way. */
struct vcon_control {
	u32 id;				/* port number */
	u16 event;
	u16 value;
} __attribute__((packed));

_Static_assert(sizeof(struct vcon_control) == 8, "virtio-console control layout");

struct vcon {
	struct virtio_dev vdev;
	int out_fd;
	bool out_dead;			/* a write failed for good: discard output */
	u32 size;			/* cols | rows << 16, atomic; 0: unknown */

	void (*room)(void *arg);
	void *room_arg;

	/* The receive queue belongs to whoever holds rx_lock. */
	pthread_mutex_t rx_lock;
	bool rx_live;			/* between activate and reset */
	bool multiport;			/* negotiated: input waits for guest_open */
	bool guest_open;		/* the driver said PORT_OPEN 1 */
	struct vq_chain rx_chain;

	/* The device thread and what only it touches. */
	bool running;			/* between activate and reset */
	bool sync_mode;			/* no thread: vcon_serve_sync() serves */
	struct worker worker;		/* the thread, unless sync_mode */
	struct vq_chain tx_chain;	/* scratch for transmit and control chains */
	struct vcon_control ctl[VCON_CTL_PENDING];	/* waiting for a buffer */
	unsigned ctl_head, ctl_n;
};

/* The transport hands us the generic device; our state is behind it. */
static struct vcon *to_vcon(const struct virtio_dev *dev)
{
	return dev->priv;
}

/* --- the transport's view: features and configuration -------------------- */

/* MULTIPORT always; F_SIZE only when we know a size to tell. */
static u64 vcon_features(struct virtio_dev *dev)
{
	u64 f = 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;

	if (__atomic_load_n(&to_vcon(dev)->size, __ATOMIC_RELAXED))
		f |= 1ULL << VIRTIO_CONSOLE_F_SIZE;
	return f;
}

/* Built on each read from the one atomic word, so cols and rows always
 * belong together.  Bounds checked again here against the struct. */
static void vcon_config_read(struct virtio_dev *dev, u32 offset, void *data, u32 len)
{
	u32 size = __atomic_load_n(&to_vcon(dev)->size, __ATOMIC_RELAXED);
	struct vcon_config cfg = {
		.cols = size & 0xffff,
		.rows = size >> 16,
		.max_nr_ports = 1,
	};

	if (offset > sizeof(cfg) || len > sizeof(cfg) - offset)
		return;
	memcpy(data, (u8 *)&cfg + offset, len);
}

/* cols, rows and max_nr_ports are read-only for the driver. */
static void vcon_config_write(struct virtio_dev *dev, u32 offset, const void *data, u32 len)
{
}

/* --- output ----------------------------------------------------------------- */

/*
 * All of [p, p+len) to out_fd, however long stdout takes, unless reset
 * asks us to stop (returns -1).  A write that fails for good (stdout
 * closed, disk full) makes the console discard output from then on: the
 * guest must not hang because the host stopped listening.
 */
static int vcon_write(struct vcon *c, const u8 *p, size_t len)
{
	struct pollfd pfd[2] = {
		{ .fd = c->out_fd, .events = POLLOUT },
		{ .fd = c->worker.stop_fd, .events = POLLIN },
	};

	while (len && !c->out_dead) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			n = -1;
		} else if (pfd[1].revents) {
			return -1;
		} else {
			n = write(c->out_fd, p, MIN(len, VCON_WRITE_CHUNK));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
		}
		if (n < 0) {
			warn_user("console output lost: %s", strerror(errno));
			c->out_dead = true;
			break;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* A transmit chain's readable buffers, in order.  Writable buffers have
 * no meaning on this queue and are ignored. */
static int vcon_write_chain(struct vcon *c, const struct vq_chain *ch)
{
	for (u32 i = 0; i < ch->n_out; i++)
		if (vcon_write(c, ch->iov[i].iov_base, ch->iov[i].iov_len) < 0)
			return -1;
	return 0;
}

/*
 * Serve the transmit queue until it is empty.  Each chain goes back
 * (length 0: we wrote nothing into it) only when its bytes are out, and
 * the driver hears of it at once, since it may be spinning on it.  Kicks
 * are off while we drain.  Returns -1 if reset interrupted a write.
 */
static int vcon_tx(struct vcon *c)
{
	struct virtqueue *vq = &c->vdev.vqs[VCON_TXQ];
	int rc;

	/* Already reported; a broken ring is not touched again. */
	if (vq->broken)
		return 0;
	do {
		vq_disable_kicks(vq);
		while ((rc = vq_pop(vq, &c->tx_chain)) > 0) {
			if (vcon_write_chain(c, &c->tx_chain) < 0)
				return -1;
			vq_push(vq, c->tx_chain.head, 0);
			virtio_signal(&c->vdev, VCON_TXQ);
		}
	} while (rc == 0 && vq_enable_kicks(vq));
	if (rc < 0) {
		verbose("virtio-console: transmit queue: %s; device needs reset", last_error());
		virtio_needs_reset(&c->vdev);
	}
	return 0;
}

/* --- input ------------------------------------------------------------------ */

/*
 * Typed bytes into posted receive buffers, each pushed back as soon as it
 * holds something: a keystroke should not wait for a buffer to fill.  At
 * most one queue's worth of chains per call, so a guest posting useless
 * (read-only) buffers as fast as we return them cannot keep the main
 * thread here.
 */
size_t vcon_input(struct vcon *c, const u8 *buf, size_t len)
{
	struct virtqueue *vq = &c->vdev.vqs[VCON_RXQ];
	struct vq_chain *ch = &c->rx_chain;
	size_t done = 0;
	bool pushed = false;
	int rc = 0;

	pthread_mutex_lock(&c->rx_lock);
	/* Under MULTIPORT, nothing until the driver has hooked the port up:
	 * it would throw the bytes away. */
	if (!c->rx_live || vq->broken || (c->multiport && !c->guest_open)) {
		pthread_mutex_unlock(&c->rx_lock);
		return 0;
	}
	for (u32 budget = vq->size; done < len && budget; budget--) {
		size_t n;

		rc = vq_pop(vq, ch);
		/* Out of buffers: ask for a kick when the next one comes,
		 * unless it came while we asked. */
		if (rc == 0 && vq_enable_kicks(vq))
			continue;
		if (rc <= 0)
			break;
		n = iov_from_buf(ch->iov + ch->n_out, ch->n_in, 0, buf + done, len - done);
		vq_push(vq, ch->head, n);
		pushed = true;
		done += n;
	}
	if (pushed)
		virtio_signal(&c->vdev, VCON_RXQ);
	if (rc < 0) {
		verbose("virtio-console: receive queue: %s; device needs reset", last_error());
		virtio_needs_reset(&c->vdev);
	}
	pthread_mutex_unlock(&c->rx_lock);
	return done;
}

/* The guest posted receive buffers or opened the port (or we just
 * started): tell whoever holds input back that it may try again. */
static void vcon_room(struct vcon *c)
{
	if (c->room)
		c->room(c->room_arg);
}

/* Set once, before activation: the device thread reads it unlocked. */
void vcon_set_room_callback(struct vcon *c, void (*fn)(void *), void *arg)
{
	c->room = fn;
	c->room_arg = arg;
}

/* --- the control queues (MULTIPORT) ------------------------------------------ */

/* Queue a message for the driver; a full queue drops it, which only a
 * driver repeating itself endlessly can cause. */
static void ctl_queue(struct vcon *c, u16 event, u16 value)
{
	if (c->ctl_n == VCON_CTL_PENDING) {
		verbose("virtio-console: control message %u dropped", event);
		return;
	}
	c->ctl[(c->ctl_head + c->ctl_n++) % VCON_CTL_PENDING] =
		(struct vcon_control){ .id = VCON_PORT, .event = event, .value = value };
}

/*
 * Send what waits into the buffers the driver posted on the control
 * receive queue, one message per buffer.  Out of buffers: ask for a kick
 * when the next comes, and keep the rest.
 */
static void ctl_flush(struct vcon *c)
{
	struct virtqueue *vq = &c->vdev.vqs[VCON_CTL_RXQ];
	struct vq_chain *ch = &c->tx_chain;
	bool pushed = false;
	int rc = 0;

	if (vq->broken)
		return;
	while (c->ctl_n) {
		size_t n;

		rc = vq_pop(vq, ch);
		if (rc == 0 && vq_enable_kicks(vq))
			continue;
		if (rc <= 0)
			break;
		n = iov_from_buf(ch->iov + ch->n_out, ch->n_in, 0, &c->ctl[c->ctl_head],
				 sizeof(c->ctl[0]));
		vq_push(vq, ch->head, n);
		pushed = true;
		/* A buffer too small for the message still used it up. */
		c->ctl_head = (c->ctl_head + 1) % VCON_CTL_PENDING;
		c->ctl_n--;
	}
	if (pushed)
		virtio_signal(&c->vdev, VCON_CTL_RXQ);
	if (rc < 0) {
		verbose("virtio-console: control receive queue: %s; device needs reset",
			last_error());
		virtio_needs_reset(&c->vdev);
	}
}

/* The driver opened (or closed) the console port: input may flow (or
 * must stop).  The terminal hears of an opening through the room
 * callback. */
static void ctl_port_open(struct vcon *c, bool open)
{
	pthread_mutex_lock(&c->rx_lock);
	c->guest_open = open;
	pthread_mutex_unlock(&c->rx_lock);
	if (open)
		vcon_room(c);
}

/*
 * One message from the driver.  The handshake for our single port:
 * DEVICE_READY -> we add port 0; PORT_READY -> we make it a console and
 * say our side is open; PORT_OPEN -> the driver's side is open.  Anything
 * else, or about another port, is ignored.
 */
static void ctl_handle(struct vcon *c, const struct vcon_control *m)
{
	switch (m->event) {
	case VCON_DEVICE_READY:
		if (m->value)
			ctl_queue(c, VCON_DEVICE_ADD, 0);
		break;
	case VCON_PORT_READY:
		if (m->id == VCON_PORT && m->value) {
			ctl_queue(c, VCON_CONSOLE_PORT, 1);
			ctl_queue(c, VCON_PORT_OPEN, 1);
		}
		break;
	case VCON_PORT_OPEN:
		if (m->id == VCON_PORT)
			ctl_port_open(c, m->value);
		break;
	}
}

/*
 * Serve the control transmit queue: each chain holds one message, which
 * we copy out (the guest cannot change our copy) and act on; a chain too
 * short for a message is returned and ignored.  Then send any replies.
 */
static void ctl_serve(struct vcon *c)
{
	struct virtqueue *vq = &c->vdev.vqs[VCON_CTL_TXQ];
	struct vq_chain *ch = &c->tx_chain;
	struct vcon_control m;
	bool pushed = false;
	int rc;

	if (vq->broken)
		return;
	do {
		vq_disable_kicks(vq);
		while ((rc = vq_pop(vq, ch)) > 0) {
			if (iov_to_buf(ch->iov, ch->n_out, 0, &m, sizeof(m)) == sizeof(m))
				ctl_handle(c, &m);
			vq_push(vq, ch->head, 0);
			pushed = true;
		}
	} while (rc == 0 && vq_enable_kicks(vq));
	if (pushed)
		virtio_signal(&c->vdev, VCON_CTL_TXQ);
	if (rc < 0) {
		verbose("virtio-console: control transmit queue: %s; device needs reset",
			last_error());
		virtio_needs_reset(&c->vdev);
	}
	ctl_flush(c);
}

/* --- the device thread ------------------------------------------------------- */

/*
 * The device thread: wakes on any queue's kick, or on reset's stop.  The
 * control queues are watched only under MULTIPORT (poll skips fd -1).
 */
static void *vcon_thread(void *arg)
{
	struct vcon *c = arg;
	struct pollfd pfd[5] = {
		{ .fd = c->worker.stop_fd, .events = POLLIN },
		{ .fd = c->vdev.vqs[VCON_TXQ].kick_fd, .events = POLLIN },
		{ .fd = c->vdev.vqs[VCON_RXQ].kick_fd, .events = POLLIN },
		{ .fd = c->multiport ? c->vdev.vqs[VCON_CTL_TXQ].kick_fd : -1, .events = POLLIN },
		{ .fd = c->multiport ? c->vdev.vqs[VCON_CTL_RXQ].kick_fd : -1, .events = POLLIN },
	};

	/* The driver may have posted and kicked before we listened. */
	vcon_room(c);
	if (c->multiport)
		ctl_serve(c);
	if (vcon_tx(c) < 0)
		return NULL;
	while (worker_wait(pfd, 5, "console thread")) {
		if (pfd[3].revents) {
			vq_kicked(&c->vdev.vqs[VCON_CTL_TXQ]);
			ctl_serve(c);
		}
		if (pfd[4].revents) {
			vq_kicked(&c->vdev.vqs[VCON_CTL_RXQ]);
			ctl_flush(c);
		}
		if (pfd[2].revents) {
			vq_kicked(&c->vdev.vqs[VCON_RXQ]);
			vcon_room(c);
		}
		if (pfd[1].revents) {
			vq_kicked(&c->vdev.vqs[VCON_TXQ]);
			if (vcon_tx(c) < 0)
				break;
		}
	}
	return NULL;
}

/* DRIVER_OK: the port's queues (and under MULTIPORT the control queues)
 * are set up; start serving them, with the port closed. */
static int vcon_activate(struct virtio_dev *dev)
{
	struct vcon *c = to_vcon(dev);
	bool multiport = virtio_has(dev, VIRTIO_CONSOLE_F_MULTIPORT);
	int err;

	if (c->running)
		return 0;
	for (int q = 0; q < (multiport ? 4 : 2); q++)
		if (!dev->vqs[q].desc || dev->vqs[q].kick_fd < 0)
			return fail("virtio-console: activated without queue %d", q);
	c->ctl_head = c->ctl_n = 0;
	pthread_mutex_lock(&c->rx_lock);
	c->multiport = multiport;
	c->guest_open = false;
	c->rx_live = true;
	pthread_mutex_unlock(&c->rx_lock);
	if (c->sync_mode) {
		c->running = true;
		return 0;
	}
	err = worker_start(&c->worker, "console", vcon_thread, c);
	if (err) {
		pthread_mutex_lock(&c->rx_lock);
		c->rx_live = false;
		pthread_mutex_unlock(&c->rx_lock);
		return fail("virtio-console: cannot start its thread: %s", strerror(err));
	}
	c->running = true;
	return 0;
}

/*
 * Driver reset: input stops first (under rx_lock, so no vcon_input() is
 * half-way through the ring), then the thread, which gives up a write in
 * progress.  After this nothing of ours touches guest memory.
 */
static void vcon_reset(struct virtio_dev *dev)
{
	struct vcon *c = to_vcon(dev);

	pthread_mutex_lock(&c->rx_lock);
	c->rx_live = false;
	c->guest_open = false;
	pthread_mutex_unlock(&c->rx_lock);
	worker_stop(&c->worker);
	c->running = false;
}

void vcon_sync_mode(struct virtio_dev *dev, bool on)
{
	to_vcon(dev)->sync_mode = on;
}

/* One pass of what the thread does for a kick on every queue. */
int vcon_serve_sync(struct virtio_dev *dev)
{
	struct vcon *c = to_vcon(dev);

	if (!c->running || c->worker.running)
		return -1;
	if (c->multiport)
		ctl_serve(c);
	vcon_room(c);
	return vcon_tx(c);
}

static const struct virtio_dev_ops vcon_ops = {
	.name = "console",
	.device_id = VIRTIO_ID_CONSOLE,
	.n_queues = 4,
	.queue_size = VCON_QUEUE_SIZE,
	.config_size = sizeof(struct vcon_config),
	.features = vcon_features,
	.config_read = vcon_config_read,
	.config_write = vcon_config_write,
	.activate = vcon_activate,
	.reset = vcon_reset,
};

/* --- construction -------------------------------------------------------------- */

void vcon_set_size(struct vcon *c, u16 cols, u16 rows)
{
	__atomic_store_n(&c->size, (u32)cols | (u32)rows << 16, __ATOMIC_RELAXED);
	/* A running driver that took F_SIZE rereads cols and rows on a
	 * configuration change (5.3.6.2); the generation tells it they
	 * changed under its feet.  (Linux under MULTIPORT ignores both.) */
	pthread_mutex_lock(&c->rx_lock);
	if (c->rx_live && virtio_has(&c->vdev, VIRTIO_CONSOLE_F_SIZE)) {
		__atomic_add_fetch(&c->vdev.config_generation, 1, __ATOMIC_RELEASE);
		virtio_interrupt(&c->vdev, -1);
	}
	pthread_mutex_unlock(&c->rx_lock);
}

/* A reset device, with the terminal's size if out_fd is a terminal. */
struct virtio_dev *vcon_create(int out_fd, struct vcon **out)
{
	struct vcon *c = calloc(1, sizeof(*c));
	struct winsize ws;

	if (!c) {
		fail("virtio-console: out of memory");
		return NULL;
	}
	virtio_dev_init(&c->vdev, &vcon_ops, c);
	c->out_fd = out_fd;
	c->worker.stop_fd = -1;
	pthread_mutex_init(&c->rx_lock, NULL);
	if (ioctl(out_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row)
		c->size = (u32)ws.ws_col | (u32)ws.ws_row << 16;
	*out = c;
	return &c->vdev;
}

/* Only after the transport let go of the device. */
void vcon_free(struct virtio_dev *dev)
{
	struct vcon *c;

	if (!dev)
		return;
	c = to_vcon(dev);
	vcon_reset(dev);
	pthread_mutex_destroy(&c->rx_lock);
	free(c);
}
