/*
 * vhost_net.c: let the host kernel serve a card's queues.
 *
 * With vhost-net the kernel's worker thread reads the guest's rings and
 * moves frames between them and the tap, woken by the queue's kick
 * eventfd and interrupting the guest through its call eventfd: no copy
 * through us, no syscall per frame.  We tell it three things: where guest
 * RAM is in our address space (the memory table), where each ring is, and
 * which tap is the wire.  One thread of ours stays in the loop: the one
 * that holds transmit kicks while the guest streams (tx_kick_thread).
 *
 * The trade-off: the kernel then does the guest-facing checks (it has
 * its own copy of the ring rules and of the header checks the tap makes),
 * and our counters stay at zero.  LGUEST_NO_VHOST=1 or vhost=off keeps
 * everything in net.c, where it can be read and counted.
 */
#include "virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct vhost_net {
	int fd;
	u64 features;		/* what this kernel's vhost-net offers */
	/* The transmit kick's detour (tx_kick_thread): the guest kicks
	 * guest_kick, the worker listens on worker_kick. */
	int guest_kick, worker_kick, stop_fd;
	const struct virtio_dev *dev;
	pthread_t kick_tid;
	bool kick_running;
};

/* Ring features vhost implements; the net ones it leaves to the tap. */
#define VHOST_WANTED	(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | \
			 1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << VIRTIO_NET_F_MRG_RXBUF)

static void close_fds(struct vhost_net *vh)
{
	if (vh->fd >= 0)
		close(vh->fd);
	if (vh->worker_kick >= 0)
		close(vh->worker_kick);
	if (vh->stop_fd >= 0)
		close(vh->stop_fd);
}

/*
 * Open /dev/vhost-net and make this process its owner (which starts the
 * kernel worker that will act on our memory).  Done once per card, at
 * creation, so a missing module shows up in --verbose at start-up.
 */
struct vhost_net *vhost_net_open(void)
{
	struct vhost_net *vh = calloc(1, sizeof(*vh));

	if (!vh) {
		fail("vhost-net: out of memory");
		return NULL;
	}
	vh->worker_kick = vh->stop_fd = -1;
	vh->fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	if (vh->fd < 0) {
		fail("vhost-net unavailable (/dev/vhost-net: %s)", strerror(errno));
		free(vh);
		return NULL;
	}
	vh->worker_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vh->stop_fd = vh->worker_kick < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vh->stop_fd < 0) {
		fail("vhost-net unavailable (eventfd: %s)", strerror(errno));
		close_fds(vh);
		free(vh);
		return NULL;
	}
	if (ioctl(vh->fd, VHOST_SET_OWNER) < 0 ||
	    ioctl(vh->fd, VHOST_GET_FEATURES, &vh->features) < 0) {
		fail("vhost-net unavailable (set owner: %s)", strerror(errno));
		close_fds(vh);
		free(vh);
		return NULL;
	}
	return vh;
}

/* Closing the descriptor ends the kernel worker and drops its hold on the tap. */
void vhost_net_close(struct vhost_net *vh)
{
	if (!vh)
		return;
	close_fds(vh);
	free(vh);
}

/* Guest RAM as vhost sees it: the low part at GPA 0, the rest at 4 GiB. */
static int set_mem_table(struct vhost_net *vh, const struct guest_mem *gm)
{
	/* The table is a header and a flexible array: room for two. */
	union {
		struct vhost_memory hdr;
		u8 bytes[sizeof(struct vhost_memory) + 2 * sizeof(struct vhost_memory_region)];
	} m;
	struct vhost_memory_region *r = m.hdr.regions;
	int n = 0;

	memset(&m, 0, sizeof(m));
	r[n++] = (struct vhost_memory_region){
		.guest_phys_addr = 0,
		.memory_size = gm->low_size,
		.userspace_addr = (u64)(uintptr_t)gm->host,
	};
	if (gm->high_size)
		r[n++] = (struct vhost_memory_region){
			.guest_phys_addr = HIGH_RAM_START,
			.memory_size = gm->high_size,
			.userspace_addr = (u64)(uintptr_t)(gm->host + gm->low_size),
		};
	m.hdr.nregions = n;
	if (ioctl(vh->fd, VHOST_SET_MEM_TABLE, &m) < 0)
		return fail("vhost-net: SET_MEM_TABLE: %s", strerror(errno));
	return 0;
}

/* One ring: size, where we are in it, where it lives, and its two eventfds. */
static int set_vring(struct vhost_net *vh, unsigned int i, const struct virtqueue *vq)
{
	struct vhost_vring_state num = { .index = i, .num = vq->size };
	struct vhost_vring_state base = { .index = i, .num = vq->last_avail };
	struct vhost_vring_addr addr = {
		.index = i,
		/* vq_start() resolved and range-checked these for us. */
		.desc_user_addr = (u64)(uintptr_t)vq->desc,
		.avail_user_addr = (u64)(uintptr_t)vq->avail,
		.used_user_addr = (u64)(uintptr_t)vq->used,
	};
	struct vhost_vring_file kick = {
		.index = i, .fd = i == NET_TXQ ? vh->worker_kick : vq->kick_fd,
	};
	struct vhost_vring_file call = { .index = i, .fd = vq->call_fd };

	if (ioctl(vh->fd, VHOST_SET_VRING_NUM, &num) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_BASE, &base) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_ADDR, &addr) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_KICK, &kick) < 0 ||
	    ioctl(vh->fd, VHOST_SET_VRING_CALL, &call) < 0)
		return fail("vhost-net: setting up queue %u: %s", i, strerror(errno));
	return 0;
}

/* Attach (fd = the tap) or detach (fd = -1) both queues' backend. */
static int set_backend(struct vhost_net *vh, int fd)
{
	for (unsigned int i = 0; i < 2; i++) {
		struct vhost_vring_file b = { .index = i, .fd = fd };

		if (ioctl(vh->fd, VHOST_NET_SET_BACKEND, &b) < 0)
			return fail("vhost-net: SET_BACKEND: %s", strerror(errno));
	}
	return 0;
}

/*
 * The transmit kick's detour.  vhost's worker sends what the guest queued
 * as soon as it is kicked, one frame per kick while a TCP stream flows;
 * our own tx thread waits NET_HOLD_NS first when the guest streams,
 * which lets its TCP build bigger frames (net.h).  So the guest's tx kick
 * comes here, and goes on to the worker at once after a quiet spell, or
 * after the hold while kicks keep coming.  The worker still does all the
 * work; no kick is lost, a held one only goes later.
 */
static void *tx_kick_thread(void *arg)
{
	struct vhost_net *vh = arg;
	struct pollfd p[2] = { { vh->stop_fd, POLLIN, 0 }, { vh->guest_kick, POLLIN, 0 } };
	u64 last = 0;
	u16 rx_seen = 0;

	/* A kick may have come before we listened: the worker looks. */
	eventfd_write(vh->worker_kick, 1);
	while (worker_wait(p, 2, "vhost-net's transmit kick thread")) {
		eventfd_t v;

		if (eventfd_read(vh->guest_kick, &v) < 0)
			continue;
		/* The worker owns the tx ring: how much waits, we do not ask. */
		net_tx_hold(vh->dev, &last, &rx_seen, 0);
		eventfd_write(vh->worker_kick, 1);
	}
	return NULL;
}

static int start_kicks(struct vhost_net *vh, const struct virtio_dev *dev)
{
	eventfd_t stale;
	int err;

	eventfd_read(vh->stop_fd, &stale);
	vh->dev = dev;
	vh->guest_kick = dev->vqs[NET_TXQ].kick_fd;
	err = virtio_thread_start(&vh->kick_tid, "vhost-kick", tx_kick_thread, vh);
	if (err)
		return fail("vhost-net: cannot start the kick thread: %s", strerror(err));
	vh->kick_running = true;
	return 0;
}

static void stop_kicks(struct vhost_net *vh)
{
	if (!vh->kick_running)
		return;
	eventfd_write(vh->stop_fd, 1);
	pthread_join(vh->kick_tid, NULL);
	vh->kick_running = false;
}

/*
 * Hand the running queues to the kernel.  The header size on the tap
 * (12 with VERSION_1 or MRG_RXBUF) was set by the caller; vhost then adds
 * no header of its own (no VHOST_NET_F_VIRTIO_NET_HDR) and fills in
 * num_buffers itself.
 */
int vhost_net_start(struct vhost_net *vh, struct virtio_dev *dev, int tap_fd)
{
	u64 features = dev->features & VHOST_WANTED;

	/* A ring feature the guest took that this vhost lacks would make
	 * the two disagree about the ring layout. */
	if (features & ~vh->features)
		return fail("vhost-net lacks features %#llx the guest took",
			    (unsigned long long)(features & ~vh->features));
	if (ioctl(vh->fd, VHOST_SET_FEATURES, &features) < 0)
		return fail("vhost-net: SET_FEATURES: %s", strerror(errno));
	if (set_mem_table(vh, dev->gm))
		return -1;
	for (unsigned int i = 0; i < 2; i++)
		if (set_vring(vh, i, &dev->vqs[i]))
			return -1;
	if (set_backend(vh, tap_fd)) {
		set_backend(vh, -1);
		return -1;
	}
	if (start_kicks(vh, dev)) {
		vhost_net_stop(vh, dev);
		return -1;
	}
	return 0;
}

/*
 * Take the queues back: after this the kernel no longer touches the rings
 * or guest memory, and no longer holds the tap.
 */
void vhost_net_stop(struct vhost_net *vh, struct virtio_dev *dev)
{
	set_backend(vh, -1);
	for (unsigned int i = 0; i < 2; i++) {
		struct vhost_vring_state base = { .index = i };
		struct vhost_vring_file none = { .index = i, .fd = -1 };

		/* GET_VRING_BASE also stops the ring (the kernel flushes its
		 * worker first); then drop its hold on the eventfds. */
		ioctl(vh->fd, VHOST_GET_VRING_BASE, &base);
		ioctl(vh->fd, VHOST_SET_VRING_KICK, &none);
		ioctl(vh->fd, VHOST_SET_VRING_CALL, &none);
	}
	stop_kicks(vh);
}
