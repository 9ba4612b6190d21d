/*
 * virtio.c: the three calls a device makes back into its transport.
 *
 * They are thin on purpose.  Devices do not know whether they sit behind
 * PCI or behind the unit tests' fake transport (tests/unit/vqdriver.c);
 * they only know these functions and the callbacks the transport stored
 * in struct virtio_dev.
 */
#include "virtio/virtio.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A queue index the device made up is a bug in lguest, not in the guest. */
static void check_qidx(const struct virtio_dev *dev, int qidx)
{
	if (qidx < -1 || qidx >= VIRTIO_MAX_QUEUES) {
		fprintf(stderr, "lguest: %s: signal on queue %d\n", dev->ops->name, qidx);
		abort();
	}
}

/* Used buffers are waiting: interrupt only if the driver wants to hear. */
void virtio_signal(struct virtio_dev *dev, int qidx)
{
	check_qidx(dev, qidx);
	if (qidx >= 0 && !vq_need_signal(&dev->vqs[qidx]))
		return;
	if (qidx >= 0)
		vq_count(&dev->vqs[qidx].stats.interrupts, 1);
	if (dev->signal)
		dev->signal(dev, qidx);
}

/* Config changes (and anything else that must not be suppressed). */
void virtio_interrupt(struct virtio_dev *dev, int qidx)
{
	check_qidx(dev, qidx);
	if (dev->signal)
		dev->signal(dev, qidx);
}

/* The guest broke a ring: the transport sets NEEDS_RESET and tells it. */
void virtio_needs_reset(struct virtio_dev *dev)
{
	if (dev->needs_reset)
		dev->needs_reset(dev);
}

/*
 * A queue's counters as text ("3 kicks, 7 chains, 5 interrupts"), for the
 * exit report and the SIGUSR2 dump; false if all three are still zero.
 */
static bool vq_counts(const struct virtqueue *vq, char *buf, size_t len)
{
	const struct vq_stats *s = &vq->stats;
	u64 kicks = __atomic_load_n(&s->kicks, __ATOMIC_RELAXED);
	u64 chains = __atomic_load_n(&s->chains, __ATOMIC_RELAXED);
	u64 irqs = __atomic_load_n(&s->interrupts, __ATOMIC_RELAXED);

	snprintf(buf, len, "%llu kicks, %llu chains, %llu interrupts", (unsigned long long)kicks,
		 (unsigned long long)chains, (unsigned long long)irqs);
	return kicks || chains || irqs;
}

void virtio_report(struct virtio_dev *dev, const char *where)
{
	char counts[96];

	if (!verbose_on)
		return;
	for (u32 q = 0; q < dev->ops->n_queues; q++)
		if (vq_counts(&dev->vqs[q], counts, sizeof(counts)))
			verbose("%s %s queue %u: %s", dev->ops->name, where, q, counts);
	if (dev->ops->report)
		dev->ops->report(dev);
}

void virtio_dump(struct virtio_dev *dev, const char *where)
{
	char counts[96], state[256];

	for (u32 q = 0; q < dev->ops->n_queues; q++) {
		struct virtqueue *vq = &dev->vqs[q];

		if (!vq->avail)
			continue;
		vq_counts(vq, counts, sizeof(counts));
		vq_describe(vq, state, sizeof(state));
		fprintf(stderr, "lguest: %s %s queue %u: %s; %s\n", dev->ops->name, where, q,
			counts, state);
	}
}

void virtio_dev_init(struct virtio_dev *dev, const struct virtio_dev_ops *ops, void *priv)
{
	dev->ops = ops;
	dev->priv = priv;
	for (int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		dev->vqs[q].kick_fd = dev->vqs[q].call_fd = -1;
		vq_reset(&dev->vqs[q]);
	}
}

u64 eventfd_drain(int fd)
{
	u64 v;

	if (read(fd, &v, sizeof(v)) == sizeof(v))
		return v;
	if (errno != EAGAIN)
		verbose("reading eventfd %d: %s", fd, strerror(errno));
	return 0;
}

void vq_kicked(struct virtqueue *vq)
{
	vq_count(&vq->stats.kicks, eventfd_drain(vq->kick_fd));
}

int virtio_thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!err)
		thread_name(*t, name);
	return err;
}

int worker_start(struct worker *w, const char *name, void *(*fn)(void *), void *arg)
{
	int err;

	w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->stop_fd < 0)
		return errno;
	err = virtio_thread_start(&w->tid, name, fn, arg);
	if (err) {
		close(w->stop_fd);
		w->stop_fd = -1;
		return err;
	}
	w->running = true;
	return 0;
}

bool worker_wait(struct pollfd *fds, nfds_t n, const char *who)
{
	while (poll(fds, n, -1) < 0) {
		if (errno != EINTR) {
			warn_user("%s stops: poll: %s", who, strerror(errno));
			return false;
		}
	}
	return !fds[0].revents;
}

void worker_stop(struct worker *w)
{
	if (!w->running)
		return;
	/* A thread we cannot stop would go on using guest memory after
	 * reset: that is no state to carry on in. */
	if (eventfd_write(w->stop_fd, 1) < 0) {
		fprintf(stderr, "lguest: cannot stop a device thread: %s\n", strerror(errno));
		abort();
	}
	pthread_join(w->tid, NULL);
	close(w->stop_fd);
	w->stop_fd = -1;
	w->running = false;
}
