/*
 * pci.c: the virtio 1.x PCI transport.
 *
 * Everything the driver does to set a device up arrives here as register
 * writes on a vCPU thread: feature negotiation, queue addresses, status.
 * We keep that state in struct virtio_dev, and at DRIVER_OK we check the
 * rings (vq_start), wire the doorbells and interrupts to eventfds, and
 * hand the device over to its own thread (ops->activate).  From then on a
 * kick goes guest -> ioeventfd -> device thread, and a completion device
 * thread -> MSI-X irqfd -> guest, without passing through here.
 *
 * Two locks: vp->lock serialises the driver's register accesses (several
 * vCPUs may poke at once); vp->isr_lock pairs the ISR byte with the INTx
 * line it drives.  Device threads (signal, needs_reset) never take
 * vp->lock, so ops->reset may wait for them while we hold it.  Fields a
 * device thread reads while the driver may write them (status, the
 * vectors, call_fd) are accessed atomically.
 */
#include "virtio/virtio_pci.h"
#include "bus/pci.h"
#include "vm/irq.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Features every device gets from the transport and the queue code. */
#define TRANSPORT_FEATURES	(1ULL << VIRTIO_F_VERSION_1 | \
				 1ULL << VIRTIO_F_INDIRECT_DESC | \
				 1ULL << VIRTIO_F_EVENT_IDX)

/*
 * A queue's doorbell rings in two places: the notify area of BAR 0
 * (memory) and the doorbell BAR (ports).  The capability list names the
 * ports first, and Linux takes the first it can map: a port write exits
 * with the next instruction's address in hand, where a memory write makes
 * KVM fetch and decode the instruction (on AMD without decode assists,
 * and in a nested guest, that is most of the exit's cost).  Both stay
 * bound, so a driver may use either.
 */
enum { DOOR_MMIO, DOOR_PIO, DOORS };

struct door {
	bool mapped;			/* its BAR decodes at base */
	u64 base;			/* where queue 0's doorbell is */
	/* Queue q's kick eventfd is bound at base + q * NOTIFY_MULT; base
	 * only changes once every queue is unbound (vp_bar_map). */
	bool bound[VIRTIO_MAX_QUEUES];
};

struct vpci {
	struct pci_dev pd;
	struct virtio_dev *dev;
	pthread_mutex_t lock;		/* the driver's register accesses */
	pthread_mutex_t isr_lock;	/* isr and the INTx line */
	u8 isr;
	u32 dfselect, gfselect;		/* feature word selects */
	u64 driver_features;		/* as written, before FEATURES_OK */
	u16 msix_config;		/* config-change vector (atomic) */
	u16 queue_select;
	u8 cfg_cap;			/* offset of the PCI_CFG capability */
	bool started;			/* DRIVER_OK handled: doorbells wanted */
	struct door door[DOORS];
};

/* PCI hooks get the function; we registered the transport as its opaque. */
static struct vpci *to_vpci(struct pci_dev *pd)
{
	return pd->opaque;
}

/* Registers are little-endian, like the x86 hosts KVM runs us on. */
static u64 get_le(const void *p, u32 len)
{
	u64 v = 0;

	memcpy(&v, p, MIN(len, 8u));
	return v;
}

/* The inverse, for building register images. */
static void put_le(u8 *p, u64 v, u32 len)
{
	memcpy(p, &v, len);
}

/* Device threads may set NEEDS_RESET at any moment: read atomically. */
static u8 status_get(const struct virtio_dev *dev)
{
	return __atomic_load_n(&dev->status, __ATOMIC_ACQUIRE);
}

/* Split-ring index arithmetic needs power-of-2 queue sizes. */
static bool is_pow2(u32 x)
{
	return x && !(x & (x - 1));
}

/* ---- interrupts ---------------------------------------------------------- */

/* ISR bit + INTx line, for when MSI-X is off (4.1.4.5). */
static void isr_raise(struct vpci *vp, u8 bit, bool line)
{
	pthread_mutex_lock(&vp->isr_lock);
	vp->isr |= bit;
	if (line)
		pci_set_irq(&vp->pd, 1);
	pthread_mutex_unlock(&vp->isr_lock);
}

/* Reading ISR acknowledges: it clears, and the line drops with it. */
static u8 isr_ack(struct vpci *vp)
{
	u8 v;

	pthread_mutex_lock(&vp->isr_lock);
	v = vp->isr;
	vp->isr = 0;
	pci_set_irq(&vp->pd, 0);
	pthread_mutex_unlock(&vp->isr_lock);
	return v;
}

/*
 * dev->signal: interrupt the driver about queue q (or, q = -1, a config
 * change) through the vector it chose, or through INTx and ISR when MSI-X
 * is off.  Runs on device threads.
 */
static void vp_signal(struct virtio_dev *dev, int q)
{
	struct vpci *vp = dev->transport;
	u16 vec;

	if (q >= (int)dev->ops->n_queues)
		return;
	if (q < 0) {
		/* The config bit is set even under MSI-X, before the
		 * message, so a driver that reads ISR sees why. */
		isr_raise(vp, VIRTIO_PCI_ISR_CONFIG, false);
		vec = __atomic_load_n(&vp->msix_config, __ATOMIC_RELAXED);
	} else {
		vec = __atomic_load_n(&dev->vqs[q].msix_vector, __ATOMIC_RELAXED);
	}
	if (pci_msix_notify(&vp->pd, vec) < 0)
		isr_raise(vp, q < 0 ? VIRTIO_PCI_ISR_CONFIG : VIRTIO_PCI_ISR_QUEUE, true);
}

/* dev->needs_reset: the device found the driver's rings corrupt. */
static void vp_needs_reset(struct virtio_dev *dev)
{
	__atomic_fetch_or(&dev->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_RELEASE);
	vp_signal(dev, -1);
}

/* ---- doorbells ----------------------------------------------------------- */

/* Bind queue q's kick eventfd to doorbell d, if that decodes now. */
static void door_bind(struct vpci *vp, int d, int q)
{
	struct virtqueue *vq = &vp->dev->vqs[q];
	struct door *door = &vp->door[d];

	if (!vp->started || !vq->ready || !door->mapped || door->bound[q])
		return;
	/* Length 0: any write width rings.  If the VM cannot bind, the
	 * write exits to notify_write() instead: slower, still correct. */
	if (ioevent_bind(vq->kick_fd, door->base + q * VIRTIO_PCI_NOTIFY_MULT, 0,
			 d == DOOR_PIO) < 0) {
		verbose("virtio-pci: %s queue %d: %s; kicks will exit",
			vp->dev->ops->name, q, last_error());
		return;
	}
	door->bound[q] = true;
}

/* Before its BAR moves or the device resets: no doorbell at a stale address. */
static void door_unbind(struct vpci *vp, int d, int q)
{
	struct door *door = &vp->door[d];

	if (!door->bound[q])
		return;
	ioevent_unbind(vp->dev->vqs[q].kick_fd, door->base + q * VIRTIO_PCI_NOTIFY_MULT, 0,
		       d == DOOR_PIO);
	door->bound[q] = false;
}

/* Queue q's doorbells, both of them. */
static void kick_bind(struct vpci *vp, int q)
{
	for (int d = 0; d < DOORS; d++)
		door_bind(vp, d, q);
}

static void kick_unbind(struct vpci *vp, int q)
{
	for (int d = 0; d < DOORS; d++)
		door_unbind(vp, d, q);
}

/* A notify write that reached us: the ioeventfd is missing or unbound. */
static void notify_write(struct vpci *vp, u64 off)
{
	u64 q = off / VIRTIO_PCI_NOTIFY_MULT;

	if (off % VIRTIO_PCI_NOTIFY_MULT || q >= vp->dev->ops->n_queues)
		return;
	if (eventfd_write(vp->dev->vqs[q].kick_fd, 1) < 0)
		verbose("virtio-pci: %s queue %llu: kick eventfd saturated",
			vp->dev->ops->name, (unsigned long long)q);
}

/* pci_dev_ops.bar_map: a BAR with doorbells moved; they move with it. */
static void vp_bar_map(struct pci_dev *pd, int bar, u64 addr, bool on)
{
	struct vpci *vp = to_vpci(pd);
	u32 n = vp->dev->ops->n_queues;
	int d;

	if (bar == VIRTIO_PCI_BAR)
		d = DOOR_MMIO, addr += VIRTIO_PCI_NOTIFY_OFF;
	else if (bar == VIRTIO_PCI_NOTIFY_BAR)
		d = DOOR_PIO;
	else
		return;
	pthread_mutex_lock(&vp->lock);
	for (u32 q = 0; q < n; q++)
		door_unbind(vp, d, q);
	vp->door[d].mapped = on;
	vp->door[d].base = addr;
	for (u32 q = 0; q < n; q++)
		door_bind(vp, d, q);
	pthread_mutex_unlock(&vp->lock);
}

/* ---- status: reset, feature negotiation, DRIVER_OK ----------------------- */

/* What we offer: the device's own features plus the transport's. */
static u64 device_features(struct vpci *vp)
{
	const struct virtio_dev_ops *ops = vp->dev->ops;

	return (ops->features ? ops->features(vp->dev) : 0) | TRANSPORT_FEATURES;
}

/* The call eventfd a device thread may write for queue q: its vector's. */
static void call_fd_update(struct vpci *vp, int q)
{
	struct virtqueue *vq = &vp->dev->vqs[q];
	int fd = -1;

	if (vp->started && pci_msix_enabled(&vp->pd))
		fd = pci_msix_fd(&vp->pd, vq->msix_vector);
	__atomic_store_n(&vq->call_fd, fd, __ATOMIC_RELEASE);
}

/* Forget everything the driver set up; the state a fresh device has. */
static void vp_clear(struct vpci *vp)
{
	struct virtio_dev *dev = vp->dev;

	vp->started = false;
	for (u32 q = 0; q < dev->ops->n_queues; q++) {
		struct virtqueue *vq = &dev->vqs[q];
		eventfd_t stale;

		kick_unbind(vp, q);
		vq_reset(vq);
		vq->size = dev->ops->queue_size;
		__atomic_store_n(&vq->call_fd, -1, __ATOMIC_RELEASE);
		/* A kick from the last life must not wake the next one. */
		eventfd_read(vq->kick_fd, &stale);
	}
	dev->features = 0;
	vp->driver_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->queue_select = 0;
	__atomic_store_n(&vp->msix_config, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELAXED);
	isr_ack(vp);
	__atomic_store_n(&dev->status, 0, __ATOMIC_RELEASE);
}

/*
 * The driver wrote 0 to device_status.  The device stops first (after
 * ops->reset no device thread touches guest memory or our queues), then
 * the transport forgets.  Linux does this at probe and at every unbind,
 * so it must leave a device as good as new, any number of times.
 */
static void vp_reset(struct vpci *vp)
{
	vp->dev->ops->reset(vp->dev);
	vp_clear(vp);
}

/* FEATURES_OK holds only if the driver speaks virtio 1 and accepted
 * nothing we did not offer (2.2.2, 6.1). */
static bool features_ok(struct vpci *vp)
{
	u64 want = vp->driver_features;

	if (!(want & 1ULL << VIRTIO_F_VERSION_1) || (want & ~device_features(vp)))
		return false;
	vp->dev->features = want;
	return true;
}

/* The driver's setup was unusable: say so, and keep the VM running. */
static void vp_broken(struct vpci *vp, const char *why)
{
	verbose("virtio-pci: %s: %s; device needs reset", vp->dev->ops->name, why);
	vp_needs_reset(vp->dev);
}

/*
 * DRIVER_OK: every enabled queue's rings are checked once, here, before
 * any device thread could trust them; then doorbells and interrupts are
 * wired and the device starts.
 */
static void driver_ok(struct vpci *vp)
{
	struct virtio_dev *dev = vp->dev;
	bool event_idx = virtio_has(dev, VIRTIO_F_EVENT_IDX);
	bool indirect = virtio_has(dev, VIRTIO_F_INDIRECT_DESC);

	if (!(status_get(dev) & VIRTIO_STATUS_FEATURES_OK)) {
		vp_broken(vp, "DRIVER_OK before FEATURES_OK");
		return;
	}
	for (u32 q = 0; q < dev->ops->n_queues; q++) {
		if (dev->vqs[q].ready && vq_start(&dev->vqs[q], dev->gm, event_idx, indirect) < 0) {
			vp_broken(vp, last_error());
			return;
		}
	}
	vp->started = true;
	for (u32 q = 0; q < dev->ops->n_queues; q++) {
		call_fd_update(vp, q);
		kick_bind(vp, q);
	}
	if (dev->ops->activate(dev) != 0)
		vp_broken(vp, "activation failed");
}

/*
 * A device_status write.  Apart from reset, the driver only ever adds
 * bits (2.1.2), so bits it drops are kept; NEEDS_RESET is the device's
 * alone.  Bits are added atomically because a device thread may be
 * setting NEEDS_RESET at the same moment.
 */
static void status_write(struct vpci *vp, u8 val)
{
	struct virtio_dev *dev = vp->dev;
	u8 old = status_get(dev);
	u8 add = val & ~old & ~VIRTIO_STATUS_NEEDS_RESET;

	if (val == 0) {
		vp_reset(vp);
		return;
	}
	if ((add & VIRTIO_STATUS_FEATURES_OK) && !features_ok(vp))
		add &= ~VIRTIO_STATUS_FEATURES_OK;
	__atomic_fetch_or(&dev->status, add, __ATOMIC_RELEASE);
	if (add & VIRTIO_STATUS_DRIVER_OK)
		driver_ok(vp);
}

/* ---- common configuration ------------------------------------------------ */

static struct virtqueue *selected_vq(struct vpci *vp)
{
	if (vp->queue_select >= vp->dev->ops->n_queues)
		return NULL;
	return &vp->dev->vqs[vp->queue_select];
}

/* A vector number as the driver wrote it, or NO_VECTOR if we have none
 * such (the driver reads it back to learn it failed, 4.1.5.1.2). */
static u16 vector_check(struct vpci *vp, u16 vec)
{
	return vec <= vp->dev->ops->n_queues ? vec : VIRTIO_MSI_NO_VECTOR;
}

/*
 * The common configuration as the driver would read it right now.
 * Building the whole structure lets any access width at any offset read
 * consistent bytes without a case per field.  vp->lock held.
 */
static void common_image(struct vpci *vp, u8 *img)
{
	struct virtio_dev *dev = vp->dev;
	struct virtqueue *vq = selected_vq(vp);
	u64 df = vp->dfselect < 2 ? device_features(vp) >> (32 * vp->dfselect) : 0;
	u64 gf = vp->gfselect < 2 ? vp->driver_features >> (32 * vp->gfselect) : 0;

	memset(img, 0, VIRTIO_PCI_COMMON_LEN);
	put_le(img + VIRTIO_PCI_COMMON_DFSELECT, vp->dfselect, 4);
	put_le(img + VIRTIO_PCI_COMMON_DF, df, 4);
	put_le(img + VIRTIO_PCI_COMMON_GFSELECT, vp->gfselect, 4);
	put_le(img + VIRTIO_PCI_COMMON_GF, gf, 4);
	put_le(img + VIRTIO_PCI_COMMON_MSIX, vp->msix_config, 2);
	put_le(img + VIRTIO_PCI_COMMON_NUMQ, dev->ops->n_queues, 2);
	img[VIRTIO_PCI_COMMON_STATUS] = status_get(dev);
	img[VIRTIO_PCI_COMMON_CFGGENERATION] =
		__atomic_load_n(&dev->config_generation, __ATOMIC_ACQUIRE);
	put_le(img + VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select, 2);
	/* A queue that does not exist reads as size 0: "not available". */
	if (!vq)
		return;
	put_le(img + VIRTIO_PCI_COMMON_Q_SIZE, vq->size, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_MSIX, vq->msix_vector, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_ENABLE, vq->ready, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_select, 2);
	put_le(img + VIRTIO_PCI_COMMON_Q_DESCLO, vq->desc_gpa, 8);
	put_le(img + VIRTIO_PCI_COMMON_Q_AVAILLO, vq->avail_gpa, 8);
	put_le(img + VIRTIO_PCI_COMMON_Q_USEDLO, vq->used_gpa, 8);
}

/* Half or all of a 64-bit queue address; only while the queue is off,
 * since a device thread may be using the ring once it is on. */
static void queue_addr_write(struct virtqueue *vq, u64 *gpa, u32 half, u64 val, u32 len)
{
	if (!vq || vq->ready)
		return;
	if (len == 8)
		*gpa = val;
	else if (half)
		*gpa = (*gpa & 0xffffffffULL) | val << 32;
	else
		*gpa = (*gpa & ~0xffffffffULL) | val;
}

/* Linux reassigns vectors at teardown too, so call_fd follows. */
static void queue_vector_write(struct vpci *vp, struct virtqueue *vq, u16 val)
{
	if (!vq)
		return;
	__atomic_store_n(&vq->msix_vector, vector_check(vp, val), __ATOMIC_RELAXED);
	call_fd_update(vp, vq - vp->dev->vqs);
}

/* Queue size: a power of 2 up to the device's maximum (2.7), and only
 * before the queue is enabled.  Anything else keeps the old size. */
static void queue_size_write(struct vpci *vp, struct virtqueue *vq, u16 val)
{
	if (vq && !vq->ready && is_pow2(val) && val <= vp->dev->ops->queue_size)
		vq->size = val;
}

/* queue_enable: only 1 means anything (4.1.4.3.2), and only before
 * DRIVER_OK, when the rings are checked. */
static void queue_enable_write(struct vpci *vp, struct virtqueue *vq, u16 val)
{
	if (vq && val == 1 && !(status_get(vp->dev) & VIRTIO_STATUS_DRIVER_OK))
		vq->ready = true;
}

/* One 32-bit word of what the driver accepts, chosen by gfselect. */
static void driver_features_write(struct vpci *vp, u32 val)
{
	u32 shift = 32 * vp->gfselect;

	/* Features are fixed once FEATURES_OK is set. */
	if (vp->gfselect >= 2 || (status_get(vp->dev) & VIRTIO_STATUS_FEATURES_OK))
		return;
	vp->driver_features &= ~(0xffffffffULL << shift);
	vp->driver_features |= (u64)val << shift;
}

#define REG(off, len)	((off) << 4 | (len))

/*
 * A write to the common configuration.  The spec has drivers use each
 * field's natural width (64-bit fields may be written as two halves);
 * writes of any other shape are dropped.  vp->lock held.
 */
static void common_write(struct vpci *vp, u32 off, u64 val, u32 len)
{
	struct virtqueue *vq = selected_vq(vp);

	switch (REG(off, len)) {
	case REG(VIRTIO_PCI_COMMON_DFSELECT, 4):
		vp->dfselect = val;
		break;
	case REG(VIRTIO_PCI_COMMON_GFSELECT, 4):
		vp->gfselect = val;
		break;
	case REG(VIRTIO_PCI_COMMON_GF, 4):
		driver_features_write(vp, val);
		break;
	case REG(VIRTIO_PCI_COMMON_MSIX, 2):
		__atomic_store_n(&vp->msix_config, vector_check(vp, val), __ATOMIC_RELAXED);
		break;
	case REG(VIRTIO_PCI_COMMON_STATUS, 1):
		status_write(vp, val);
		break;
	case REG(VIRTIO_PCI_COMMON_Q_SELECT, 2):
		vp->queue_select = val;
		break;
	case REG(VIRTIO_PCI_COMMON_Q_SIZE, 2):
		queue_size_write(vp, vq, val);
		break;
	case REG(VIRTIO_PCI_COMMON_Q_MSIX, 2):
		queue_vector_write(vp, vq, val);
		break;
	case REG(VIRTIO_PCI_COMMON_Q_ENABLE, 2):
		queue_enable_write(vp, vq, val);
		break;
	case REG(VIRTIO_PCI_COMMON_Q_DESCLO, 4):
	case REG(VIRTIO_PCI_COMMON_Q_DESCLO, 8):
	case REG(VIRTIO_PCI_COMMON_Q_DESCHI, 4):
		queue_addr_write(vq, vq ? &vq->desc_gpa : NULL,
				 off == VIRTIO_PCI_COMMON_Q_DESCHI, val, len);
		break;
	case REG(VIRTIO_PCI_COMMON_Q_AVAILLO, 4):
	case REG(VIRTIO_PCI_COMMON_Q_AVAILLO, 8):
	case REG(VIRTIO_PCI_COMMON_Q_AVAILHI, 4):
		queue_addr_write(vq, vq ? &vq->avail_gpa : NULL,
				 off == VIRTIO_PCI_COMMON_Q_AVAILHI, val, len);
		break;
	case REG(VIRTIO_PCI_COMMON_Q_USEDLO, 4):
	case REG(VIRTIO_PCI_COMMON_Q_USEDLO, 8):
	case REG(VIRTIO_PCI_COMMON_Q_USEDHI, 4):
		queue_addr_write(vq, vq ? &vq->used_gpa : NULL,
				 off == VIRTIO_PCI_COMMON_Q_USEDHI, val, len);
		break;
	default:
		/* Read-only fields, reserved bytes, odd widths. */
		break;
	}
}

/* ---- BAR 0 --------------------------------------------------------------- */

/* Device config: the transport checks the range so devices need not. */
static bool device_cfg_range(struct vpci *vp, u64 off, u32 len)
{
	u32 size = vp->dev->ops->config_size;

	return off < size && len <= size - off;
}

/* BAR 0 reads: dispatched by region; all of it zero-filled first. */
static void vp_bar_read(void *opaque, u64 off, void *data, u32 len)
{
	struct vpci *vp = opaque;

	memset(data, 0, len);
	if (off < VIRTIO_PCI_ISR_OFF) {
		u8 img[VIRTIO_PCI_COMMON_LEN];

		if (off + len > VIRTIO_PCI_COMMON_LEN)
			return;
		pthread_mutex_lock(&vp->lock);
		common_image(vp, img);
		pthread_mutex_unlock(&vp->lock);
		memcpy(data, img + off, len);
	} else if (off == VIRTIO_PCI_ISR_OFF) {
		*(u8 *)data = isr_ack(vp);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_NOTIFY_OFF) {
		off -= VIRTIO_PCI_DEVICE_OFF;
		if (!device_cfg_range(vp, off, len))
			return;
		pthread_mutex_lock(&vp->lock);
		vp->dev->ops->config_read(vp->dev, off, data, len);
		pthread_mutex_unlock(&vp->lock);
	}
	/* The rest of ISR's page and the notify area read as zero. */
}

/* BAR 0 writes: common config, device config, or a doorbell. */
static void vp_bar_write(void *opaque, u64 off, const void *data, u32 len)
{
	struct vpci *vp = opaque;

	if (off < VIRTIO_PCI_ISR_OFF) {
		pthread_mutex_lock(&vp->lock);
		common_write(vp, off, get_le(data, len), len);
		pthread_mutex_unlock(&vp->lock);
	} else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_NOTIFY_OFF) {
		off -= VIRTIO_PCI_DEVICE_OFF;
		if (!device_cfg_range(vp, off, len))
			return;
		pthread_mutex_lock(&vp->lock);
		if (vp->dev->ops->config_write)
			vp->dev->ops->config_write(vp->dev, off, data, len);
		pthread_mutex_unlock(&vp->lock);
	} else if (off >= VIRTIO_PCI_NOTIFY_OFF) {
		notify_write(vp, off - VIRTIO_PCI_NOTIFY_OFF);
	}
	/* ISR is read-only. */
}

static const struct bus_ops vp_bar_ops = {
	.read = vp_bar_read,
	.write = vp_bar_write,
};

/* The doorbell BAR holds nothing to read. */
static void vp_doorbell_read(void *opaque, u64 off, void *data, u32 len)
{
	memset(data, 0, len);
}

/* A port doorbell that reached us (its ioeventfd is not bound). */
static void vp_doorbell_write(void *opaque, u64 off, const void *data, u32 len)
{
	notify_write(opaque, off);
}

static const struct bus_ops vp_doorbell_ops = {
	.read = vp_doorbell_read,
	.write = vp_doorbell_write,
};

/* ---- the PCI_CFG window (4.1.4.9) ---------------------------------------- */

/*
 * The driver names a BAR, offset and length in the capability, then reads
 * or writes pci_cfg_data: we perform that access on the BAR.  Lengths
 * other than 1, 2, 4, misaligned offsets and ranges outside the BAR are
 * ignored.  Bus lock held (we are inside a config cycle).
 */
static void cfg_window(struct vpci *vp, bool is_write)
{
	u8 *cap = &vp->pd.cfg[vp->cfg_cap];
	u8 bar = cap[VIRTIO_PCI_CAP_BAR];
	u32 off = get_le(cap + VIRTIO_PCI_CAP_OFFSET, 4);
	u32 len = get_le(cap + VIRTIO_PCI_CAP_LENGTH, 4);
	u8 *window = cap + VIRTIO_PCI_CAP_EXTRA;
	u8 buf[4] = { 0 };

	if ((len != 1 && len != 2 && len != 4) || off % len)
		return;
	if (is_write) {
		memcpy(buf, window, len);
		pci_bar_access(&vp->pd, bar, off, buf, len, true);
	} else if (pci_bar_access(&vp->pd, bar, off, buf, len, false)) {
		memcpy(window, buf, len);
	}
}

/* Only pci_cfg_data triggers a BAR access, not aiming the window. */
static bool touches_window(struct vpci *vp, u32 off, u32 len)
{
	u32 data = vp->cfg_cap + VIRTIO_PCI_CAP_EXTRA;

	return off < data + 4 && data < off + len;
}

/* Fill pci_cfg_data before the config read returns it. */
static void vp_cfg_read(struct pci_dev *pd, u32 off, u32 len)
{
	if (touches_window(to_vpci(pd), off, len))
		cfg_window(to_vpci(pd), false);
}

/* Pass what the driver put in pci_cfg_data on to the BAR. */
static void vp_cfg_write(struct pci_dev *pd, u32 off, u32 len)
{
	if (touches_window(to_vpci(pd), off, len))
		cfg_window(to_vpci(pd), true);
}

static const struct pci_dev_ops vp_pci_ops = {
	.cfg_read = vp_cfg_read,
	.cfg_write = vp_cfg_write,
	.bar_map = vp_bar_map,
};

/* ---- setting up a function ----------------------------------------------- */

/* PCI class codes for the device types Linux cares to tell apart. */
static u32 class_of(u16 device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET:
		return 0x020000;	/* network controller, ethernet */
	case VIRTIO_ID_BLOCK:
		return 0x018000;	/* mass storage, other */
	case VIRTIO_ID_CONSOLE:
		return 0x078000;	/* communication, other */
	default:
		return 0xff0000;	/* unassigned class */
	}
}

/* A virtio capability pointing into a BAR, with extra_len bytes of
 * type-specific tail (notify multiplier, PCI_CFG data window). */
static int vcap_add(struct pci_dev *pd, u8 type, u8 bar, u32 off, u32 len,
		    u8 extra_len, u32 extra)
{
	u8 cap[VIRTIO_PCI_CAP_EXTRA + 4] = {
		PCI_CAP_ID_VNDR, 0, VIRTIO_PCI_CAP_EXTRA + extra_len, type, bar,
	};

	put_le(cap + VIRTIO_PCI_CAP_OFFSET, off, 4);
	put_le(cap + VIRTIO_PCI_CAP_LENGTH, len, 4);
	put_le(cap + VIRTIO_PCI_CAP_EXTRA, extra, extra_len);
	return pci_cap_add(pd, cap, VIRTIO_PCI_CAP_EXTRA + extra_len);
}

/*
 * The capability list, in the order Linux looks: it takes the first of
 * each type it can map, so the port doorbells come before the memory
 * ones (see struct door).  Config space has room for all of them several
 * times over, so pci_cap_add cannot fail here.
 */
static void vcaps_add(struct vpci *vp)
{
	const struct virtio_dev_ops *ops = vp->dev->ops;
	struct pci_dev *pd = &vp->pd;
	u32 doorbells = ops->n_queues * VIRTIO_PCI_NOTIFY_MULT;
	int cfg;

	vcap_add(pd, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_BAR, VIRTIO_PCI_COMMON_OFF,
		 VIRTIO_PCI_COMMON_LEN, 0, 0);
	vcap_add(pd, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_BAR, 0,
		 doorbells, 4, VIRTIO_PCI_NOTIFY_MULT);
	vcap_add(pd, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_BAR, VIRTIO_PCI_NOTIFY_OFF,
		 doorbells, 4, VIRTIO_PCI_NOTIFY_MULT);
	vcap_add(pd, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_BAR, VIRTIO_PCI_ISR_OFF, 1, 0, 0);
	if (ops->config_size)
		vcap_add(pd, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_BAR,
			 VIRTIO_PCI_DEVICE_OFF, ops->config_size, 0, 0);
	cfg = vcap_add(pd, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, 4, 0);
	/* The driver aims the window: bar, offset, length, and the data. */
	pci_set_wmask(pd, cfg + VIRTIO_PCI_CAP_BAR, 1);
	pci_set_wmask(pd, cfg + VIRTIO_PCI_CAP_OFFSET, 12);
	vp->cfg_cap = cfg;
}

/* What a device description must satisfy before a guest sees it. */
static int ops_check(const struct virtio_dev_ops *ops)
{
	if (ops->n_queues == 0 || ops->n_queues > VIRTIO_MAX_QUEUES)
		return fail("virtio-pci: %s: %u queues (1..%d supported)",
			    ops->name, ops->n_queues, VIRTIO_MAX_QUEUES);
	if (!is_pow2(ops->queue_size) || ops->queue_size > VQ_MAX_SIZE)
		return fail("virtio-pci: %s: queue size %u is not a power of 2 up to %u",
			    ops->name, ops->queue_size, VQ_MAX_SIZE);
	if (ops->config_size > VIRTIO_PCI_REGION_SIZE)
		return fail("virtio-pci: %s: %u bytes of config space is too much",
			    ops->name, ops->config_size);
	if (!ops->activate || !ops->reset || (ops->config_size && !ops->config_read))
		return fail("virtio-pci: %s: ops table incomplete", ops->name);
	return 0;
}

/* Off the bus, then the eventfds: unplugging unbinds what hangs off them. */
static void vp_free(struct vpci *vp)
{
	pci_remove(&vp->pd);
	for (u32 q = 0; q < vp->dev->ops->n_queues; q++)
		if (vp->dev->vqs[q].kick_fd >= 0)
			close(vp->dev->vqs[q].kick_fd);
	pthread_mutex_destroy(&vp->lock);
	pthread_mutex_destroy(&vp->isr_lock);
	free(vp);
}

/* Doorbells exist for the device's life; only their binding comes and goes. */
static int kick_fds_create(struct virtio_dev *dev)
{
	for (u32 q = 0; q < dev->ops->n_queues; q++) {
		dev->vqs[q].kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (dev->vqs[q].kick_fd < 0)
			return fail("virtio-pci: %s: cannot create an eventfd", dev->ops->name);
	}
	return 0;
}

/* Build the function (BARs, capabilities, MSI-X), then plug it in. */
int virtio_pci_add(struct virtio_dev *dev)
{
	const struct virtio_dev_ops *ops = dev->ops;
	struct vpci *vp;

	if (ops_check(ops) < 0)
		return -1;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return fail("virtio-pci: %s: out of memory", ops->name);
	pthread_mutex_init(&vp->lock, NULL);
	pthread_mutex_init(&vp->isr_lock, NULL);
	vp->dev = dev;
	for (u32 q = 0; q < VIRTIO_MAX_QUEUES; q++)
		dev->vqs[q].kick_fd = dev->vqs[q].call_fd = -1;

	pci_dev_init(&vp->pd, ops->name, VIRTIO_PCI_VENDOR,
		     VIRTIO_PCI_DEVICE_BASE + ops->device_id, class_of(ops->device_id),
		     1, VIRTIO_PCI_VENDOR, VIRTIO_PCI_SUBSYS_ID);
	vp->pd.ops = &vp_pci_ops;
	vp->pd.opaque = vp;
	if (pci_bar_add(&vp->pd, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, &vp_bar_ops, vp) < 0 ||
	    pci_io_bar_add(&vp->pd, VIRTIO_PCI_NOTIFY_BAR, VIRTIO_PCI_NOTIFY_BAR_SIZE,
			   &vp_doorbell_ops, vp) < 0 ||
	    kick_fds_create(dev) < 0)
		goto fail;
	vcaps_add(vp);
	if (pci_msix_init(&vp->pd, VIRTIO_PCI_MSIX_BAR, ops->n_queues + 1) < 0)
		goto fail;

	dev->transport = vp;
	dev->signal = vp_signal;
	dev->needs_reset = vp_needs_reset;
	vp_clear(vp);
	if (pci_add(&vp->pd) < 0)
		goto fail;
	return 0;
fail:
	dev->transport = NULL;
	dev->signal = NULL;
	dev->needs_reset = NULL;
	vp_free(vp);
	return -1;
}

/* Shutdown and tests: the reverse of virtio_pci_add(). */
void virtio_pci_remove(struct virtio_dev *dev)
{
	struct vpci *vp = dev->transport;

	if (!vp)
		return;
	/* The device stops first: until ops->reset returns its threads
	 * may still interrupt through our MSI-X state. */
	pthread_mutex_lock(&vp->lock);
	vp_reset(vp);
	pthread_mutex_unlock(&vp->lock);
	dev->transport = NULL;
	dev->signal = NULL;
	dev->needs_reset = NULL;
	vp_free(vp);
}

/* Tests and the fuzzer find the device's slot and BARs through this. */
struct pci_dev *virtio_pci_dev(struct virtio_dev *dev)
{
	struct vpci *vp = dev->transport;

	return vp ? &vp->pd : NULL;
}
