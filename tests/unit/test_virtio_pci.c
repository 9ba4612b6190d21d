/*
 * test_virtio_pci.c: the virtio-pci transport driven the way Linux's
 * virtio_pci_modern driver drives it: find the capabilities, reset,
 * negotiate, set queues up, DRIVER_OK; then reset and do it all again.
 * A fake device (ops table below) records what the transport asked of it.
 */
#include "bus/pci.h"
#include "virtio/virtio_pci.h"
#include "stub_irq.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the fake device ----------------------------------------------------- */

#define FAKE_F_A	0	/* two device features to negotiate */
#define FAKE_F_B	5
#define FAKE_CFG_SIZE	12

struct fake {
	int activates, resets, cfg_reads, cfg_writes;
	int activate_ret;
	bool overrun;
	u8 config[FAKE_CFG_SIZE];
};

static u64 fake_features(struct virtio_dev *dev)
{
	return 1ULL << FAKE_F_A | 1ULL << FAKE_F_B;
}

static void fake_config_read(struct virtio_dev *dev, u32 off, void *data, u32 len)
{
	struct fake *f = dev->priv;

	f->cfg_reads++;
	if (off + len > FAKE_CFG_SIZE)
		f->overrun = true;
	else
		memcpy(data, f->config + off, len);
}

static void fake_config_write(struct virtio_dev *dev, u32 off, const void *data, u32 len)
{
	struct fake *f = dev->priv;

	f->cfg_writes++;
	if (off + len > FAKE_CFG_SIZE)
		f->overrun = true;
	else
		memcpy(f->config + off, data, len);
}

static int fake_activate(struct virtio_dev *dev)
{
	struct fake *f = dev->priv;

	f->activates++;
	return f->activate_ret;
}

static void fake_reset(struct virtio_dev *dev)
{
	struct fake *f = dev->priv;

	f->resets++;
}

static const struct virtio_dev_ops fake_ops = {
	.name = "fake",
	.device_id = VIRTIO_ID_BLOCK,
	.n_queues = 2,
	.queue_size = 256,
	.config_size = FAKE_CFG_SIZE,
	.features = fake_features,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.reset = fake_reset,
};

static struct guest_mem gm;
static struct fake fake;
static struct virtio_dev vdev;

/* ---- the driver's view ---------------------------------------------------- */

static u64 io(enum bus_space sp, u64 addr, u64 val, u32 len, bool is_write)
{
	u64 v = val;

	bus_access(sp, addr, &v, len, is_write);
	return is_write ? 0 : v & (len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1);
}

static u8 slot;

static u32 cfg_rd(u32 reg, u32 len)
{
	io(BUS_PIO, 0xCF8, 0x80000000u | slot << 11 | (reg & 0xfc), 4, true);
	return io(BUS_PIO, 0xCFC + (reg & 3), 0, len, false);
}

static void cfg_wr(u32 reg, u32 val, u32 len)
{
	io(BUS_PIO, 0xCF8, 0x80000000u | slot << 11 | (reg & 0xfc), 4, true);
	io(BUS_PIO, 0xCFC + (reg & 3), val, len, true);
}

static u64 rd(u64 addr, u32 len)
{
	return io(BUS_MMIO, addr, 0, len, false);
}

static void wr(u64 addr, u64 val, u32 len)
{
	io(BUS_MMIO, addr, val, len, true);
}

/* What vp_modern_probe() learns from the capabilities: the first of each
 * type.  mmio_notify is the second notify structure, in memory. */
static struct {
	u64 common, isr, device, notify, msix, mmio_notify;
	u32 common_len, device_len, notify_len, notify_mult;
	bool notify_pio;
	u8 cfg_cap, msix_cap;
	int n_vendor_caps, n_notify;
} drv;

static bool bar_is_io(u8 bar)
{
	return cfg_rd(PCI_BASE_ADDRESS_0 + 4 * bar, 4) & PCI_BASE_ADDRESS_SPACE_IO;
}

static u64 bar_addr(u8 bar)
{
	return cfg_rd(PCI_BASE_ADDRESS_0 + 4 * bar, 4) & (bar_is_io(bar) ? ~0x3ULL : ~0xfULL);
}

/* vp_notify(): iowrite16 of the queue index, to whichever space. */
static void notify_wr(u64 off, u64 val, u32 len)
{
	io(drv.notify_pio ? BUS_PIO : BUS_MMIO, drv.notify + off, val, len, true);
}

/* One vendor capability: where its structure is, as Linux computes it. */
static void probe_vcap(u8 ptr)
{
	u8 type = cfg_rd(ptr + 3, 1), bar = cfg_rd(ptr + VIRTIO_PCI_CAP_BAR, 1);
	u32 off = cfg_rd(ptr + VIRTIO_PCI_CAP_OFFSET, 4);
	u32 len = cfg_rd(ptr + VIRTIO_PCI_CAP_LENGTH, 4);
	u64 addr = bar < 6 ? bar_addr(bar) + off : 0;

	drv.n_vendor_caps++;
	switch (type) {
	case VIRTIO_PCI_CAP_COMMON_CFG:
		drv.common = addr;
		drv.common_len = len;
		break;
	case VIRTIO_PCI_CAP_NOTIFY_CFG:
		if (drv.n_notify++) {
			if (!bar_is_io(bar))
				drv.mmio_notify = addr;
			break;
		}
		drv.notify = addr;
		drv.notify_pio = bar_is_io(bar);
		drv.notify_len = len;
		drv.notify_mult = cfg_rd(ptr + VIRTIO_PCI_CAP_EXTRA, 4);
		break;
	case VIRTIO_PCI_CAP_ISR_CFG:
		drv.isr = addr;
		break;
	case VIRTIO_PCI_CAP_DEVICE_CFG:
		drv.device = addr;
		drv.device_len = len;
		break;
	case VIRTIO_PCI_CAP_PCI_CFG:
		drv.cfg_cap = ptr;
		break;
	}
}

static void probe_caps(void)
{
	u8 ptr = cfg_rd(PCI_CAPABILITY_LIST, 1);

	memset(&drv, 0, sizeof(drv));
	for (int ttl = 48; ptr && ttl; ttl--, ptr = cfg_rd(ptr + 1, 1) & ~3) {
		if (cfg_rd(ptr, 1) == PCI_CAP_ID_VNDR)
			probe_vcap(ptr);
		else if (cfg_rd(ptr, 1) == PCI_CAP_ID_MSIX)
			drv.msix_cap = ptr;
	}
	drv.msix = bar_addr(cfg_rd(drv.msix_cap + PCI_MSIX_TABLE, 4) & 7);
}

#define COMMON(f)	(drv.common + VIRTIO_PCI_COMMON_##f)

static u8 status(void)
{
	return rd(COMMON(STATUS), 1);
}

static void add_status(u8 bits)
{
	wr(COMMON(STATUS), status() | bits, 1);
}

static u64 device_features(void)
{
	u64 f;

	wr(COMMON(DFSELECT), 0, 4);
	f = rd(COMMON(DF), 4);
	wr(COMMON(DFSELECT), 1, 4);
	return f | rd(COMMON(DF), 4) << 32;
}

static void set_driver_features(u64 f)
{
	wr(COMMON(GFSELECT), 0, 4);
	wr(COMMON(GF), (u32)f, 4);
	wr(COMMON(GFSELECT), 1, 4);
	wr(COMMON(GF), f >> 32, 4);
}

/* pci_alloc_irq_vectors() + request_irq(): enable, program, unmask. */
static void msix_on(int nvec)
{
	cfg_wr(drv.msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	for (int v = 0; v < nvec; v++) {
		u64 e = drv.msix + v * PCI_MSIX_ENTRY_SIZE;

		wr(e, 0xFEE00000, 4);
		wr(e + 4, 0, 4);
		wr(e + 8, 0x30 + v, 4);
		wr(e + PCI_MSIX_ENTRY_CTRL, 0, 4);
	}
}

/* pci_free_irq_vectors() */
static void msix_off(void)
{
	cfg_wr(drv.msix_cap + PCI_MSIX_FLAGS, 0, 2);
}

static bool fired(int efd)
{
	u64 n;

	return efd >= 0 && read(efd, &n, sizeof(n)) == sizeof(n) && n;
}

#define RING(q)		(0x100000ULL + (q) * 0x10000ULL)

/* vp_modern setup_vq(): size, addresses, vector (checked), notify off. */
static void setup_queue(int q, u16 size, u16 vec, u64 desc)
{
	wr(COMMON(Q_SELECT), q, 2);
	wr(COMMON(Q_SIZE), size, 2);
	wr(COMMON(Q_DESCLO), (u32)desc, 4);
	wr(COMMON(Q_DESCHI), desc >> 32, 4);
	wr(COMMON(Q_AVAILLO), RING(q) + 0x1000, 4);
	wr(COMMON(Q_AVAILHI), 0, 4);
	wr(COMMON(Q_USEDLO), RING(q) + 0x2000, 4);
	wr(COMMON(Q_USEDHI), 0, 4);
	wr(COMMON(Q_MSIX), vec, 2);
}

static void reset_device(void)
{
	wr(COMMON(STATUS), 0, 1);
}

/* Through FEATURES_OK, as virtio_dev_probe() does it. */
static bool negotiate(void)
{
	reset_device();
	if (status() != 0)
		return false;
	add_status(VIRTIO_STATUS_ACKNOWLEDGE);
	add_status(VIRTIO_STATUS_DRIVER);
	set_driver_features(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX |
			    1ULL << FAKE_F_A);
	add_status(VIRTIO_STATUS_FEATURES_OK);
	return status() & VIRTIO_STATUS_FEATURES_OK;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_identity(void)
{
	ok(virtio_pci_add(&vdev) == 0, "virtio_pci_add");
	slot = virtio_pci_dev(&vdev)->slot;
	is_int(cfg_rd(PCI_VENDOR_ID, 2), 0x1af4, "vendor");
	is_int(cfg_rd(PCI_DEVICE_ID, 2), 0x1042, "device 0x1040 + block");
	is_int(cfg_rd(PCI_REVISION_ID, 1), 1, "revision 1: modern");
	is_int(cfg_rd(PCI_REVISION_ID, 4) >> 8, 0x018000, "class: mass storage, other");
	is_int(cfg_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4, "subsystem vendor");
	ok(cfg_rd(PCI_SUBSYSTEM_ID, 2) >= 0x40, "subsystem id >= 0x40");

	probe_caps();
	is_int(drv.n_vendor_caps, 6, "six virtio capabilities");
	is_int(drv.n_notify, 2, "two of them notify structures");
	ok(drv.notify_pio, "the first, which Linux takes, in an I/O BAR");
	ok(drv.mmio_notify >= PCI_BAR_BASE, "the second in memory, for drivers without port I/O");
	ok(drv.common && drv.common_len >= VIRTIO_PCI_COMMON_LEN, "common config, %u bytes", drv.common_len);
	ok(drv.isr && drv.device && drv.notify && drv.cfg_cap, "ISR, device, notify, PCI_CFG");
	is_int(drv.device_len, FAKE_CFG_SIZE, "device config length");
	is_int(drv.notify_mult, 4, "notify_off_multiplier");
	ok(drv.notify_len >= 1 * drv.notify_mult + 2, "notify area covers the last queue");
	is_int(cfg_rd(drv.msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, 2,
	       "MSI-X: n_queues + 1 vectors");
	is_int(rd(COMMON(NUMQ), 2), 2, "num_queues");
	is_int(rd(COMMON(MSIX), 2), VIRTIO_MSI_NO_VECTOR, "no config vector yet");
	is_int(status(), 0, "status 0");
}

/* One whole driver life, probe to DRIVER_OK, checked at each step. */
static void test_probe(int round)
{
	int resets = fake.resets, activates = fake.activates;
	u64 df;
	u8 isr;

	tap_diag("probe round %d", round);
	reset_device();
	is_int(fake.resets, resets + 1, "reset reaches ops->reset");
	is_int(status(), 0, "status reads 0 after reset");
	add_status(VIRTIO_STATUS_ACKNOWLEDGE);
	add_status(VIRTIO_STATUS_DRIVER);
	is_int(status(), 3, "ACKNOWLEDGE | DRIVER");

	df = device_features();
	ok(df & 1ULL << VIRTIO_F_VERSION_1, "VERSION_1 offered");
	ok((df & 1ULL << VIRTIO_F_EVENT_IDX) && (df & 1ULL << VIRTIO_F_INDIRECT_DESC),
	   "EVENT_IDX and INDIRECT_DESC offered");
	ok((df & 1ULL << FAKE_F_A) && (df & 1ULL << FAKE_F_B), "the device's own features offered");
	wr(COMMON(DFSELECT), 2, 4);
	is_int(rd(COMMON(DF), 4), 0, "feature word 2 is empty");

	set_driver_features(1ULL << FAKE_F_A);
	add_status(VIRTIO_STATUS_FEATURES_OK);
	ok(!(status() & VIRTIO_STATUS_FEATURES_OK), "FEATURES_OK refused without VERSION_1");
	set_driver_features(1ULL << VIRTIO_F_VERSION_1 | 1ULL << 7);
	add_status(VIRTIO_STATUS_FEATURES_OK);
	ok(!(status() & VIRTIO_STATUS_FEATURES_OK), "FEATURES_OK refused for a feature not offered");
	set_driver_features(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << FAKE_F_A);
	add_status(VIRTIO_STATUS_FEATURES_OK);
	ok(status() & VIRTIO_STATUS_FEATURES_OK, "FEATURES_OK accepted");
	is_int(vdev.features, 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << FAKE_F_A,
	       "negotiated features recorded");
	set_driver_features(0);
	wr(COMMON(GFSELECT), 1, 4);
	is_int(rd(COMMON(GF), 4), 1, "driver features frozen after FEATURES_OK");

	memcpy(fake.config, "\x10\x32\x54\x76\x98\xba\xdc\xfe\x01\x02\x03\x04", FAKE_CFG_SIZE);
	is_int(rd(drv.device, 4) | rd(drv.device + 4, 4) << 32, 0xfedcba9876543210ULL,
	       "device config, read as two halves");
	is_int(rd(drv.device + 8, 4), 0x04030201, "last dword of device config");

	msix_on(3);
	wr(COMMON(MSIX), 0, 2);
	is_int(rd(COMMON(MSIX), 2), 0, "config vector 0 accepted");
	for (int q = 0; q < 2; q++) {
		wr(COMMON(Q_SELECT), q, 2);
		is_int(rd(COMMON(Q_SIZE), 2), 256, "queue size reads the maximum");
		is_int(rd(COMMON(Q_ENABLE), 2), 0, "queue not enabled");
		setup_queue(q, 128, q + 1, RING(q));
		is_int(rd(COMMON(Q_MSIX), 2), q + 1, "queue vector accepted");
		is_int(rd(COMMON(Q_NOFF), 2), q, "queue_notify_off");
		is_int(rd(COMMON(Q_DESCLO), 8), RING(q), "desc address reads back whole");
	}
	for (int q = 0; q < 2; q++) {
		wr(COMMON(Q_SELECT), q, 2);
		wr(COMMON(Q_ENABLE), 1, 2);
		is_int(rd(COMMON(Q_ENABLE), 2), 1, "queue enabled");
	}
	add_status(VIRTIO_STATUS_DRIVER_OK);
	is_int(fake.activates, activates + 1, "DRIVER_OK activates the device");
	is_int(status(), 0x0f, "ACK | DRIVER | FEATURES_OK | DRIVER_OK, no NEEDS_RESET");
	ok(vdev.vqs[1].size == 128 && vdev.vqs[1].ready && vdev.vqs[1].desc, "queue 1 started");
	ok(vdev.vqs[0].event_idx && !vdev.vqs[0].indirect, "queue knows the negotiated features");
	is_int(vdev.vqs[1].call_fd, pci_msix_fd(virtio_pci_dev(&vdev), 2), "call_fd is vector 2's eventfd");

	virtio_interrupt(&vdev, 1);
	ok(fired(pci_msix_fd(virtio_pci_dev(&vdev), 2)), "queue 1 interrupt on vector 2");
	virtio_interrupt(&vdev, -1);
	ok(fired(pci_msix_fd(virtio_pci_dev(&vdev), 0)), "config interrupt on vector 0");
	isr = rd(drv.isr, 1);
	is_int(isr, VIRTIO_PCI_ISR_CONFIG, "ISR says config even under MSI-X");
	notify_wr(1 * drv.notify_mult, 1, 2);
	ok(fired(vdev.vqs[1].kick_fd), "notify write reaches queue 1's kick eventfd");
	ok(!fired(vdev.vqs[0].kick_fd), "and not queue 0's");
	wr(drv.mmio_notify, 0, 2);
	ok(fired(vdev.vqs[0].kick_fd), "the memory doorbell rings queue 0 too");
	for (int q = 0; q < 2; q++) {
		is_int(stub_ioevent_bound(drv.notify + q * drv.notify_mult, true), 1,
		       "queue's port doorbell bound to an ioeventfd");
		is_int(stub_ioevent_bound(drv.mmio_notify + q * drv.notify_mult, false), 1,
		       "and its memory doorbell");
	}
}

static void test_reset_state(void)
{
	int resets = fake.resets;

	reset_device();
	is_int(fake.resets, resets + 1, "reset after DRIVER_OK reaches ops->reset");
	is_int(status(), 0, "status 0");
	is_int(vdev.features, 0, "features forgotten");
	is_int(rd(COMMON(MSIX), 2), VIRTIO_MSI_NO_VECTOR, "config vector forgotten");
	wr(COMMON(Q_SELECT), 1, 2);
	is_int(rd(COMMON(Q_ENABLE), 2), 0, "queue disabled");
	is_int(rd(COMMON(Q_SIZE), 2), 256, "queue size back to the maximum");
	is_int(rd(COMMON(Q_MSIX), 2), VIRTIO_MSI_NO_VECTOR, "queue vector forgotten");
	is_int(rd(COMMON(Q_DESCLO), 8), 0, "queue address forgotten");
	ok(!vdev.vqs[1].desc && vdev.vqs[1].call_fd == -1, "no ring, no call_fd");
	msix_off();
}

static void test_queue_select(void)
{
	negotiate();
	wr(COMMON(Q_SELECT), 2, 2);
	is_int(rd(COMMON(Q_SIZE), 2), 0, "queue 2 does not exist: size 0");
	wr(COMMON(Q_SIZE), 64, 2);
	wr(COMMON(Q_ENABLE), 1, 2);
	wr(COMMON(Q_DESCLO), 0x1000, 4);
	is_int(rd(COMMON(Q_ENABLE), 2), 0, "writes to it are dropped");
	is_int(rd(COMMON(Q_SELECT), 2), 2, "queue_select reads back");
	wr(COMMON(Q_SELECT), 0xffff, 2);
	is_int(rd(COMMON(Q_SIZE), 2) | rd(COMMON(Q_DESCLO), 8), 0, "queue 0xffff reads 0");
	wr(COMMON(Q_SELECT), 0, 2);
	ok(rd(COMMON(Q_SIZE), 2) == 256 && rd(COMMON(Q_ENABLE), 2) == 0 && rd(COMMON(Q_DESCLO), 8) == 0,
	   "queue 0 untouched");

	wr(COMMON(Q_SIZE), 100, 2);
	is_int(rd(COMMON(Q_SIZE), 2), 256, "size not a power of 2: ignored");
	wr(COMMON(Q_SIZE), 512, 2);
	is_int(rd(COMMON(Q_SIZE), 2), 256, "size above the maximum: ignored");
	wr(COMMON(Q_SIZE), 0, 2);
	is_int(rd(COMMON(Q_SIZE), 2), 256, "size 0: ignored");
	wr(COMMON(Q_MSIX), 3, 2);
	is_int(rd(COMMON(Q_MSIX), 2), VIRTIO_MSI_NO_VECTOR, "vector 3 does not exist: NO_VECTOR");
	wr(COMMON(MSIX), 0x7fff, 2);
	is_int(rd(COMMON(MSIX), 2), VIRTIO_MSI_NO_VECTOR, "nor config vector 0x7fff");
	wr(COMMON(Q_ENABLE), 1, 2);
	wr(COMMON(Q_SIZE), 64, 2);
	wr(COMMON(Q_DESCLO), 0x5000, 4);
	ok(rd(COMMON(Q_SIZE), 2) == 256 && rd(COMMON(Q_DESCLO), 4) == 0,
	   "size and addresses are frozen once the queue is enabled");
	wr(COMMON(Q_ENABLE), 0, 2);
	is_int(rd(COMMON(Q_ENABLE), 2), 1, "writing 0 to queue_enable does nothing");
}

/* Queue 0 with desc at `desc`: DRIVER_OK must flag NEEDS_RESET instead. */
static void check_bad_ring(u64 desc, const char *what)
{
	int activates = fake.activates;
	int cfg_fd = pci_msix_fd(virtio_pci_dev(&vdev), 0);

	ok(negotiate(), "negotiated (%s)", what);
	msix_on(3);
	wr(COMMON(MSIX), 0, 2);
	setup_queue(0, 128, 1, desc);
	wr(COMMON(Q_ENABLE), 1, 2);
	add_status(VIRTIO_STATUS_DRIVER_OK);
	ok(status() & VIRTIO_STATUS_NEEDS_RESET, "%s: NEEDS_RESET", what);
	is_int(fake.activates, activates, "device not activated");
	ok(fired(cfg_fd), "config interrupt sent");
	reset_device();
	ok(status() == 0, "reset clears NEEDS_RESET");
	msix_off();
}

static void test_bad_setup(void)
{
	int activates = fake.activates;

	check_bad_ring(0xFFFFF000, "desc beyond RAM");
	check_bad_ring(0xFFFFFFFFFFFFF000ULL, "desc address that wraps");
	check_bad_ring(RING(0) + 8, "misaligned desc");
	check_bad_ring(gm.size - 0x400, "desc ring running off the end of RAM");

	reset_device();
	add_status(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	add_status(VIRTIO_STATUS_DRIVER_OK);
	ok(status() & VIRTIO_STATUS_NEEDS_RESET, "DRIVER_OK without FEATURES_OK: NEEDS_RESET");
	is_int(fake.activates, activates, "and no activation");
	wr(COMMON(STATUS), VIRTIO_STATUS_NEEDS_RESET, 1);
	ok(status() & VIRTIO_STATUS_NEEDS_RESET, "the driver cannot clear NEEDS_RESET but by reset");

	negotiate();
	fake.activate_ret = -1;
	add_status(VIRTIO_STATUS_DRIVER_OK);
	ok(status() & VIRTIO_STATUS_NEEDS_RESET, "activation refused: NEEDS_RESET");
	fake.activate_ret = 0;
	reset_device();
	reset_device();
	is_int(status(), 0, "reset twice in a row is fine");
}

static void test_intx(void)
{
	u32 gsi = virtio_pci_dev(&vdev)->gsi;
	u8 isr;

	ok(negotiate(), "negotiated, MSI-X off");
	setup_queue(0, 64, VIRTIO_MSI_NO_VECTOR, RING(0));
	wr(COMMON(Q_ENABLE), 1, 2);
	add_status(VIRTIO_STATUS_DRIVER_OK);
	ok(!(status() & VIRTIO_STATUS_NEEDS_RESET), "DRIVER_OK");
	is_int(vdev.vqs[0].call_fd, -1, "no call_fd without MSI-X");
	virtio_interrupt(&vdev, 0);
	is_int(stub_irq_line_level[gsi], 1, "queue interrupt raises INTx");
	isr = rd(drv.isr, 1);
	is_int(isr, VIRTIO_PCI_ISR_QUEUE, "ISR: queue");
	is_int(stub_irq_line_level[gsi], 0, "reading ISR lowers the line");
	isr = rd(drv.isr, 1);
	is_int(isr, 0, "and clears it");
	virtio_interrupt(&vdev, -1);
	isr = rd(drv.isr, 1);
	is_int(isr, VIRTIO_PCI_ISR_CONFIG, "ISR: config change");
	virtio_needs_reset(&vdev);
	ok(status() & VIRTIO_STATUS_NEEDS_RESET, "device-side needs_reset sets NEEDS_RESET");
	is_int(stub_irq_line_level[gsi], 1, "and interrupts");
	isr = rd(drv.isr, 1);
	is_int(isr, VIRTIO_PCI_ISR_CONFIG, "as a config change");
	virtio_interrupt(&vdev, 0);
	reset_device();
	is_int(stub_irq_line_level[gsi], 0, "reset drops a pending INTx");
	isr = rd(drv.isr, 1);
	is_int(isr, 0, "and clears ISR");
}

static void test_odd_accesses(void)
{
	int reads = fake.cfg_reads, writes = fake.cfg_writes;

	negotiate();
	wr(COMMON(STATUS), 0, 4);
	ok(status() & VIRTIO_STATUS_FEATURES_OK, "a dword write to status is not a reset");
	wr(COMMON(Q_SELECT), 1, 4);
	is_int(rd(COMMON(Q_SELECT), 2), 0, "nor a dword write a queue select");
	is_int(rd(COMMON(NUMQ) + 1, 1), 0, "byte read inside a field");
	is_int(rd(COMMON(DFSELECT), 8), (u64)0x30000021 << 32,
	       "qword read across fields: select 0, then feature word 0");
	is_int(rd(drv.common + 0x34, 8), 0, "read running past the structure: 0");
	is_int(rd(drv.common + 0x800, 4), 0, "unused part of the page: 0");
	wr(drv.common + 0x800, 0xffffffff, 4);
	is_int(rd(drv.isr + 4, 4), 0, "past ISR: 0");
	is_int(rd(drv.device + 10, 4), 0, "device config read past its end: 0");
	wr(drv.device + 12, 1, 1);
	wr(drv.device + 0xfff, 1, 8);
	ok(fake.cfg_reads == reads && fake.cfg_writes == writes, "and never reaches the device");
	wr(drv.device + 2, 0xabcd, 2);
	ok(fake.cfg_writes == writes + 1 && fake.config[2] == 0xcd, "an in-range write does");
	ok(!fake.overrun, "the device never saw an out-of-range access");
	notify_wr(2 * drv.notify_mult, 2, 2);
	notify_wr(1, 1, 1);
	wr(drv.mmio_notify + 2 * drv.notify_mult, 2, 2);
	wr(drv.mmio_notify + 1, 1, 1);
	ok(!fired(vdev.vqs[0].kick_fd) && !fired(vdev.vqs[1].kick_fd),
	   "notify beyond the queues or misaligned: no kick");
	reset_device();
}

/* The PCI_CFG window: BAR access through config space (4.1.4.9). */
static void window(u8 bar, u32 off, u32 len)
{
	cfg_wr(drv.cfg_cap + VIRTIO_PCI_CAP_BAR, bar, 1);
	cfg_wr(drv.cfg_cap + VIRTIO_PCI_CAP_OFFSET, off, 4);
	cfg_wr(drv.cfg_cap + VIRTIO_PCI_CAP_LENGTH, len, 4);
}

static void test_cfg_window(void)
{
	u32 data = drv.cfg_cap + VIRTIO_PCI_CAP_EXTRA;

	negotiate();
	window(0, VIRTIO_PCI_COMMON_STATUS, 1);
	is_int(cfg_rd(data, 1), status(), "status read through the window");
	window(0, VIRTIO_PCI_COMMON_Q_SELECT, 2);
	cfg_wr(data, 1, 2);
	is_int(rd(COMMON(Q_SELECT), 2), 1, "queue_select written through the window");
	window(0, VIRTIO_PCI_COMMON_NUMQ, 2);
	is_int(cfg_rd(data, 2), 2, "num_queues through the window");
	window(1, 8, 4);
	is_int(cfg_rd(data, 4), 0x30, "the MSI-X BAR through the window too (vector 0 data)");
	window(0, VIRTIO_PCI_COMMON_NUMQ, 3);
	cfg_wr(data, 0x11223344, 4);
	is_int(cfg_rd(data, 4), 0x11223344, "length 3 is ignored: data holds what was written");
	window(0, VIRTIO_PCI_COMMON_NUMQ + 1, 2);
	is_int(cfg_rd(data, 4), 0x11223344, "misaligned offset is ignored");
	window(5, 0, 4);
	is_int(cfg_rd(data, 4), 0x11223344, "a BAR that doesn't exist is ignored");
	window(0, VIRTIO_PCI_BAR_SIZE - 2, 4);
	is_int(cfg_rd(data, 4), 0x11223344, "a range past the BAR is ignored");
	window(0, 0xfffffffc, 4);
	cfg_wr(data, 0, 4);
	ok(status() & VIRTIO_STATUS_FEATURES_OK, "and so is a write there");
	reset_device();
}

/* The guest moves BAR 0 while the device runs: the doorbells follow. */
static void test_bar_move(void)
{
	u64 old = bar_addr(0), to = 0xE4000000;
	u16 cmd = cfg_rd(PCI_COMMAND, 2);

	ok(negotiate(), "negotiated");
	setup_queue(0, 64, VIRTIO_MSI_NO_VECTOR, RING(0));
	wr(COMMON(Q_ENABLE), 1, 2);
	add_status(VIRTIO_STATUS_DRIVER_OK);
	cfg_wr(PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
	cfg_wr(PCI_BASE_ADDRESS_0, to, 4);
	cfg_wr(PCI_COMMAND, cmd, 2);
	is_int(rd(old + VIRTIO_PCI_COMMON_STATUS, 1), 0xff, "nothing at the old address");
	probe_caps();
	is_int(drv.common, to, "capabilities now point at the new place");
	is_int(status(), 0x0f, "the device kept running");
	wr(drv.mmio_notify, 0, 2);
	ok(fired(vdev.vqs[0].kick_fd), "a kick at the new address arrives");
	is_int(stub_ioevent_bound(old + VIRTIO_PCI_NOTIFY_OFF, false), 0, "no doorbell left at the old one");
	is_int(stub_ioevent_bound(drv.mmio_notify, false), 1, "its ioeventfd moved");
	reset_device();
	is_int(stub_ioevent_bound(drv.mmio_notify, false) + stub_ioevent_bound(drv.notify, true), 0,
	       "reset unbinds both doorbells");
}

/* The same for the port doorbells, and a place they may not go. */
static void test_io_bar_move(void)
{
	u64 old = bar_addr(VIRTIO_PCI_NOTIFY_BAR), to = 0xD000;
	u16 cmd = cfg_rd(PCI_COMMAND, 2);

	ok(negotiate(), "negotiated");
	setup_queue(0, 64, VIRTIO_MSI_NO_VECTOR, RING(0));
	wr(COMMON(Q_ENABLE), 1, 2);
	add_status(VIRTIO_STATUS_DRIVER_OK);
	is_int(stub_ioevent_bound(old, true), 1, "port doorbell bound");
	cfg_wr(PCI_COMMAND, cmd & ~PCI_COMMAND_IO, 2);
	is_int(stub_ioevent_bound(old, true), 0, "I/O decoding off: unbound");
	ok(io(BUS_PIO, old, 0, 2, true) == 0 && !fired(vdev.vqs[0].kick_fd), "and silent");
	cfg_wr(PCI_BASE_ADDRESS_0 + 4 * VIRTIO_PCI_NOTIFY_BAR, to, 4);
	cfg_wr(PCI_COMMAND, cmd, 2);
	probe_caps();
	is_int(drv.notify, to, "the notify structure now points at the new ports");
	is_int(stub_ioevent_bound(to, true), 1, "bound there");
	notify_wr(0, 0, 2);
	ok(fired(vdev.vqs[0].kick_fd), "and a kick there arrives");
	cfg_wr(PCI_BASE_ADDRESS_0 + 4 * VIRTIO_PCI_NOTIFY_BAR, 0x3f8, 4);
	is_int(stub_ioevent_bound(0x3f8, true) + stub_ioevent_bound(to, true), 0,
	       "onto the legacy ports: no doorbell anywhere");
	wr(drv.mmio_notify, 0, 2);
	ok(fired(vdev.vqs[0].kick_fd), "the memory doorbell still rings");
	cfg_wr(PCI_BASE_ADDRESS_0 + 4 * VIRTIO_PCI_NOTIFY_BAR, old, 4);
	is_int(stub_ioevent_bound(old, true), 1, "home again, bound again");
	reset_device();
}

static u32 rnd(void)
{
	static u32 x = 88172645u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

/* Whatever a guest throws at the registers, the device stays sane. */
static void test_storm(void)
{
	static const u32 lens[] = { 1, 2, 4, 8 };
	u64 bar0 = bar_addr(0), bar1 = bar_addr(1), bar2 = bar_addr(VIRTIO_PCI_NOTIFY_BAR);

	for (int i = 0; i < 100000; i++) {
		u32 len = lens[rnd() % 4];
		u64 v = (u64)rnd() << 32 | rnd();
		bool w = rnd() % 3 == 0;
		u32 pick = rnd() % 8;

		if (pick < 5)
			io(BUS_MMIO, bar0 + rnd() % (VIRTIO_PCI_COMMON_LEN + 8), v, len, w);
		else if (pick == 5)
			io(BUS_MMIO, bar0 + rnd() % (VIRTIO_PCI_BAR_SIZE + 16), v, len, w);
		else if (pick == 6 && rnd() % 2)
			io(BUS_MMIO, bar1 + rnd() % 0x1000, v, len, w);
		else if (pick == 6)
			io(BUS_PIO, bar2 + rnd() % (VIRTIO_PCI_NOTIFY_BAR_SIZE + 4), v, len, w);
		else if (w && (rnd() % 4 == 0))
			cfg_wr(drv.cfg_cap + rnd() % 20, v, len > 4 ? 4 : len);
		else
			cfg_rd(rnd() % 256, len > 4 ? 4 : len);
	}
	ok(!fake.overrun, "config accesses always in range");
	reset_device();
	is_int(status(), 0, "and a reset still brings it back");
	ok(negotiate(), "and it negotiates again");
	reset_device();
}

static void test_remove(void)
{
	struct virtio_dev bad = { 0 };
	struct virtio_dev_ops bad_ops = fake_ops;
	u64 bar0 = bar_addr(0);
	int resets = fake.resets;

	virtio_pci_remove(&vdev);
	is_int(fake.resets, resets + 1, "removal stops the device");
	is_int(rd(bar0 + VIRTIO_PCI_COMMON_NUMQ, 2), 0xffff, "its registers are gone");
	is_int(cfg_rd(PCI_VENDOR_ID, 2), 0xffff, "and its slot is empty");
	ok(vdev.transport == NULL && vdev.signal == NULL, "transport detached");

	bad.ops = &bad_ops;
	bad_ops.n_queues = 0;
	ok(virtio_pci_add(&bad) < 0, "no queues: refused (%s)", last_error());
	bad_ops.n_queues = 2;
	bad_ops.queue_size = 100;
	ok(virtio_pci_add(&bad) < 0, "queue size 100: refused (%s)", last_error());
	bad_ops.queue_size = 256;
	bad_ops.config_size = 0x2000;
	ok(virtio_pci_add(&bad) < 0, "8 KiB config: refused (%s)", last_error());
}

int main(void)
{
	bus_reset_all();
	if (pci_init() < 0 || guest_mem_init(&gm, MiB(16)) < 0) {
		tap_diag("setup: %s", last_error());
		return 1;
	}
	vdev.ops = &fake_ops;
	vdev.priv = &fake;
	vdev.gm = &gm;

	test_identity();
	for (int round = 1; round <= 3; round++) {
		test_probe(round);
		test_reset_state();
	}
	test_queue_select();
	test_bad_setup();
	test_intx();
	test_odd_accesses();
	test_cfg_window();
	test_bar_move();
	test_io_bar_move();
	test_storm();
	test_remove();
	guest_mem_free(&gm);
	return tap_done();
}
