/*
 * fuzz_pci.c: libFuzzer target for the PCI bus and the virtio-pci
 * transport.
 *
 * Each input is a hostile guest's register traffic: a sequence of
 * configuration cycles, port accesses and MMIO accesses to a fake virtio
 * device's BARs, interleaved with what the device side may do at any time
 * (signal a queue, ask for a reset) and with writes to the guest RAM that
 * holds its rings.  Every input starts from a freshly plugged device.
 * ASan and UBSan catch memory errors; the checks below catch a transport
 * that handed the device something out of range or activated it on
 * rings it never checked.
 *
 * Input: 12-byte records
 *   byte 0      operation (see enum below, modulo OP_COUNT)
 *   byte 1      access width: 1 << (byte & 3)
 *   bytes 2-3   offset (little-endian)
 *   bytes 4-11  value (little-endian)
 */
#include "bus/pci.h"
#include "virtio/virtio_pci.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REC_SIZE	12
#define RING_GPA	0x100000ULL
#define RING_SPAN	0x30000ULL
#define NQ		2

enum {
	OP_CFG_READ, OP_CFG_WRITE,	/* slot's config space through 0xCF8/0xCFC */
	OP_PIO_READ, OP_PIO_WRITE,	/* 0xCF8..0xCFF, or the doorbell BAR */
	OP_BAR0_READ, OP_BAR0_WRITE,	/* the virtio structures */
	OP_BAR1_READ, OP_BAR1_WRITE,	/* MSI-X table and PBA */
	OP_SIGNAL,			/* device: used buffers on a queue */
	OP_NEEDS_RESET,			/* device: the rings are corrupt */
	OP_RAM_WRITE,			/* guest: scribble over the rings */
	OP_COUNT
};

struct fake {
	bool active;
	bool started[NQ];		/* rings checked by vq_start at activation */
	u8 config[8];
};

static struct guest_mem gm;
static struct fake fake;
static struct virtio_dev vdev;

static u64 fake_features(struct virtio_dev *dev)
{
	return 1ULL << 0;
}

static void fake_config_read(struct virtio_dev *dev, u32 off, void *data, u32 len)
{
	if (off + len > sizeof(fake.config))
		abort();
	memcpy(data, fake.config + off, len);
}

static void fake_config_write(struct virtio_dev *dev, u32 off, const void *data, u32 len)
{
	if (off + len > sizeof(fake.config))
		abort();
	memcpy(fake.config + off, data, len);
}

/* The transport promises that every enabled queue passed vq_start. */
static int fake_activate(struct virtio_dev *dev)
{
	for (int q = 0; q < NQ; q++) {
		struct virtqueue *vq = &dev->vqs[q];

		if (vq->ready && (!vq->desc || !vq->avail || !vq->used))
			abort();
		fake.started[q] = vq->ready;
	}
	fake.active = true;
	return 0;
}

static void fake_reset(struct virtio_dev *dev)
{
	memset(fake.started, 0, sizeof(fake.started));
	fake.active = false;
}

static const struct virtio_dev_ops fake_ops = {
	.name = "fuzz",
	.device_id = VIRTIO_ID_BLOCK,
	.n_queues = NQ,
	.queue_size = 64,
	.config_size = sizeof(((struct fake *)0)->config),
	.features = fake_features,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.reset = fake_reset,
};

static u64 bar_base(struct pci_dev *pd, int bar)
{
	u32 v;

	memcpy(&v, &pd->cfg[PCI_BASE_ADDRESS_0 + 4 * bar], 4);
	return v & ~0xfULL;
}

static void bus_io(enum bus_space sp, u64 addr, u64 val, u32 len, bool is_write)
{
	bus_access(sp, addr, &val, len, is_write);
}

static void cfg_cycle(struct pci_dev *pd, u16 off, u64 val, u32 len, bool is_write)
{
	u32 reg = off & 0xff;

	len = len > 4 ? 4 : len;
	bus_io(BUS_PIO, 0xCF8, 0x80000000u | pd->slot << 11 | (reg & 0xfc), 4, true);
	bus_io(BUS_PIO, 0xCFC + (reg & 3), val, len, is_write);
}

/* What a device thread may do between any two guest accesses. */
static void device_side(int op, u16 off)
{
	int q = off % (NQ + 1) - 1;

	if (op == OP_NEEDS_RESET) {
		virtio_needs_reset(&vdev);
		return;
	}
	/* A device only signals queues it serves, while it serves them. */
	if (fake.active && (q < 0 || fake.started[q]))
		virtio_signal(&vdev, q);
}

static void run(const u8 *rec)
{
	struct pci_dev *pd = virtio_pci_dev(&vdev);
	int op = rec[0] % OP_COUNT;
	u32 len = 1u << (rec[1] & 3);
	u16 off = rec[2] | rec[3] << 8;
	u64 val;

	memcpy(&val, rec + 4, 8);
	switch (op) {
	case OP_CFG_READ:
	case OP_CFG_WRITE:
		cfg_cycle(pd, off, val, len, op == OP_CFG_WRITE);
		break;
	case OP_PIO_READ:
	case OP_PIO_WRITE:
		/* The config ports, or the doorbell BAR wherever it is now. */
		if (off & 0x8000)
			bus_io(BUS_PIO, bar_base(pd, VIRTIO_PCI_NOTIFY_BAR) +
			       off % (VIRTIO_PCI_NOTIFY_BAR_SIZE + 8), val, len, op == OP_PIO_WRITE);
		else
			bus_io(BUS_PIO, 0xCF8 + off % 8, val, len, op == OP_PIO_WRITE);
		break;
	case OP_BAR0_READ:
	case OP_BAR0_WRITE:
		bus_io(BUS_MMIO, bar_base(pd, 0) + off % (VIRTIO_PCI_BAR_SIZE + 64),
		       val, len, op == OP_BAR0_WRITE);
		break;
	case OP_BAR1_READ:
	case OP_BAR1_WRITE:
		bus_io(BUS_MMIO, bar_base(pd, 1) + off % (PCI_MSIX_BAR_SIZE + 16),
		       val, len, op == OP_BAR1_WRITE);
		break;
	case OP_RAM_WRITE:
		guest_write(&gm, RING_GPA + (u64)off * 8 % RING_SPAN, &val, len);
		break;
	default:
		device_side(op, off);
		break;
	}
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static bool ready;

	if (!ready) {
		bus_reset_all();
		if (pci_init() < 0 || guest_mem_init(&gm, MiB(2)) < 0) {
			fprintf(stderr, "fuzz_pci: %s\n", last_error());
			abort();
		}
		ready = true;
	}
	memset(&vdev, 0, sizeof(vdev));
	memset(&fake, 0, sizeof(fake));
	memset(guest_ptr(&gm, RING_GPA, RING_SPAN), 0, RING_SPAN);
	vdev.ops = &fake_ops;
	vdev.priv = &fake;
	vdev.gm = &gm;
	if (virtio_pci_add(&vdev) < 0) {
		fprintf(stderr, "fuzz_pci: %s\n", last_error());
		abort();
	}
	bus_io(BUS_PIO, 0xCF8, 0, 4, true);
	for (size_t i = 0; i + REC_SIZE <= size; i += REC_SIZE)
		run(data + i);
	virtio_pci_remove(&vdev);
	if (fake.active)
		abort();	/* removal must stop the device */
	return 0;
}
