/*
 * virtio.h: what a virtio device is, independent of its transport.
 *
 * A device (blk, net, console, rng) is a static const ops table plus its
 * private state.  The transport (virtio-pci, in pci.c beside this file)
 * owns feature negotiation, status, queue setup and interrupts, and calls
 * into the device through the ops.  Devices never see PCI or KVM: they see
 * guest memory (through guest_ptr), their virtqueues, and two calls back
 * into the transport, virtio_signal() and virtio_needs_reset().
 *
 * Threads: the transport runs on vCPU threads (register accesses).  A
 * device serves its queues on its own thread(s), woken by each queue's
 * kick eventfd (bound to the notify register by ioeventfd).
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include "guest_mem.h"
#include "virtio/queue.h"

#include <poll.h>
#include <pthread.h>

/* Device IDs (virtio 1.2, 5). */
#define VIRTIO_ID_NET		1
#define VIRTIO_ID_BLOCK		2
#define VIRTIO_ID_CONSOLE	3
#define VIRTIO_ID_RNG		4

/* Feature bits common to all devices (virtio 1.2, 6). */
#define VIRTIO_F_INDIRECT_DESC	28
#define VIRTIO_F_EVENT_IDX	29
#define VIRTIO_F_VERSION_1	32

/* Device status bits (virtio 1.2, 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE	1
#define VIRTIO_STATUS_DRIVER		2
#define VIRTIO_STATUS_DRIVER_OK		4
#define VIRTIO_STATUS_FEATURES_OK	8
#define VIRTIO_STATUS_NEEDS_RESET	64
#define VIRTIO_STATUS_FAILED		128

#define VIRTIO_MAX_QUEUES	8

struct virtio_dev;

struct virtio_dev_ops {
	const char *name;		/* "blk", "net", ... for traces */
	u16 device_id;			/* VIRTIO_ID_* */
	u32 n_queues;
	u16 queue_size;			/* max (and default) queue size, power of 2 */
	u32 config_size;		/* bytes of device-specific config */
	/* Features the device offers, beyond what the transport adds
	 * (VERSION_1, INDIRECT_DESC, EVENT_IDX are added by the transport). */
	u64 (*features)(struct virtio_dev *dev);
	/* Device-specific config space; offset+len <= config_size is checked
	 * by the transport before calling. */
	void (*config_read)(struct virtio_dev *dev, u32 offset, void *data, u32 len);
	void (*config_write)(struct virtio_dev *dev, u32 offset, const void *data, u32 len);
	/* The driver set DRIVER_OK: queues are set up and enabled; start
	 * serving.  Non-zero refuses (the transport sets NEEDS_RESET). */
	int (*activate)(struct virtio_dev *dev);
	/* Stop serving and forget queue state; after return no thread of the
	 * device touches guest memory.  Must tolerate reset without activate. */
	void (*reset)(struct virtio_dev *dev);
	/* Optional: the device's own counters, one verbose() line, for
	 * the report at exit (virtio_report). */
	void (*report)(struct virtio_dev *dev);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;			/* the device's own state */
	struct guest_mem *gm;
	u64 features;			/* negotiated (driver-accepted) features */
	u8 status;
	u16 config_generation;
	struct virtqueue vqs[VIRTIO_MAX_QUEUES];

	/* Filled in by the transport. */
	void *transport;
	void (*signal)(struct virtio_dev *dev, int qidx);	/* qidx -1: config change */
	void (*needs_reset)(struct virtio_dev *dev);
};

/*
 * A device as its constructor leaves it: its ops and state, every queue
 * reset and without eventfds (the transport makes those when it takes
 * the device).
 */
void virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops, void *priv);

static inline bool virtio_has(const struct virtio_dev *dev, int bit)
{
	return dev->features & (1ULL << bit);
}

/*
 * Tell the driver about used buffers on queue qidx, unless event-index or
 * NO_INTERRUPT suppression says it doesn't want to hear (vq_need_signal).
 */
void virtio_signal(struct virtio_dev *dev, int qidx);
/* Interrupt the driver unconditionally (config change: qidx -1). */
void virtio_interrupt(struct virtio_dev *dev, int qidx);
/* The guest broke the rules (corrupt ring): flag NEEDS_RESET, keep running. */
void virtio_needs_reset(struct virtio_dev *dev);

/*
 * Start a device thread, named "lg-<name>" (thread_name).  It is born
 * with every signal blocked: signals belong to the main thread
 * (SIGINT/SIGTERM) and the vCPU threads (their kick), whichever thread
 * the device happens to be activated on.
 * Returns pthread_create()'s error number.
 */
int virtio_thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg);

/*
 * A device's own thread and the eventfd that tells it to leave.  Started
 * at DRIVER_OK, stopped at reset: when worker_stop() returns, the thread
 * has returned, so nothing of the device touches guest memory.  The
 * thread sleeps in poll() with stop_fd among its fds and returns once it
 * is readable.
 */
struct worker {
	pthread_t tid;
	int stop_fd;		/* readable: leave now; -1 while stopped */
	bool running;
};
/* Make a fresh stop_fd and the thread; returns an errno value, 0 if started. */
int worker_start(struct worker *w, const char *name, void *(*fn)(void *), void *arg);
/* Wake the thread through stop_fd and wait for it; a stopped worker is left alone. */
void worker_stop(struct worker *w);
/*
 * A device thread's sleep: poll() fds, the first of which is its stop
 * eventfd, until one is ready.  false: leave (stop asked, or poll failed,
 * which is said to the user naming who); true: look at fds[1..].
 */
bool worker_wait(struct pollfd *fds, nfds_t n, const char *who);

/*
 * Under --verbose: what each queue of dev did (kicks from the driver,
 * chains served, interrupts sent), then the device's own counters.
 * where names the device's place ("00:03.0").
 */
void virtio_report(struct virtio_dev *dev, const char *where);
/*
 * On demand (SIGUSR2), whatever --verbose says: each started queue's
 * counters and both sides' indices (vq_describe), to stderr.  For a guest
 * that seems stuck: it shows whether a request waits on us or on it.
 */
void virtio_dump(struct virtio_dev *dev, const char *where);

/* Empty an eventfd (a kick, a stop request) so poll() sleeps again;
 * returns the count it held (0 if none). */
u64 eventfd_drain(int fd);
/* After a wakeup on vq's kick_fd: drain it, counting the kicks. */
void vq_kicked(struct virtqueue *vq);

#endif
