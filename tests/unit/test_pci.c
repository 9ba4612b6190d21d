/*
 * test_pci.c: the PCI bus as a guest sees it, through port and MMIO
 * accesses only: Linux's conf1 probe, header fields, the capability walk,
 * BAR sizing and moving, INTx sharing, MSI-X masking and pending bits,
 * and a storm of malformed accesses.
 */
#include "bus/pci.h"
#include "stub_irq.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- what a guest does ---------------------------------------------------- */

static u64 io(enum bus_space sp, u64 addr, u64 val, u32 len, bool is_write, bool *hit)
{
	u64 v = val;
	bool h = bus_access(sp, addr, &v, len, is_write);

	if (hit)
		*hit = h;
	return is_write ? 0 : v & (len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1);
}

static u32 in(u16 port, u32 len)
{
	return io(BUS_PIO, port, 0, len, false, NULL);
}

static void out(u16 port, u32 val, u32 len)
{
	io(BUS_PIO, port, val, len, true, NULL);
}

static u32 conf1(u8 bus, u8 slot, u8 fn, u32 reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

/* Linux's pci_conf1_read: address, then the data port at the byte offset. */
static u32 cfg_rd(u8 slot, u32 reg, u32 len)
{
	out(0xCF8, conf1(0, slot, 0, reg), 4);
	return in(0xCFC + (reg & 3), len);
}

static void cfg_wr(u8 slot, u32 reg, u32 val, u32 len)
{
	out(0xCF8, conf1(0, slot, 0, reg), 4);
	out(0xCFC + (reg & 3), val, len);
}

static u64 mmio_rd(u64 addr, u32 len, bool *hit)
{
	return io(BUS_MMIO, addr, 0, len, false, hit);
}

static bool mmio_wr(u64 addr, u64 val, u32 len)
{
	bool hit;

	io(BUS_MMIO, addr, val, len, true, &hit);
	return hit;
}

static u32 bar_of(u8 slot, int bar)
{
	return cfg_rd(slot, PCI_BASE_ADDRESS_0 + 4 * bar, 4);
}

/* ---- a test device -------------------------------------------------------- */

struct tdev {
	struct pci_dev pd;
	int reads, writes;
	u64 last_off, last_val;
	int map_on, map_off;
	u64 on_addr, off_addr;
};

/* The BARs answer with their offset tagged, so a test can tell which BAR
 * (and which byte of it) an access reached. */
static void tbar_read(void *opaque, u64 off, void *data, u32 len)
{
	struct tdev *t = opaque;
	u64 v = 0xA5000000u | off;

	t->reads++;
	memcpy(data, &v, len);
}

static void tbar_write(void *opaque, u64 off, const void *data, u32 len)
{
	struct tdev *t = opaque;

	t->writes++;
	t->last_off = off;
	t->last_val = 0;
	memcpy(&t->last_val, data, len);
}

static const struct bus_ops tbar_ops = { tbar_read, tbar_write };

static void tbar_map(struct pci_dev *pd, int bar, u64 addr, bool on)
{
	struct tdev *t = pd->opaque;

	if (bar != 0)
		return;
	if (on) {
		t->map_on++;
		t->on_addr = addr;
	} else {
		t->map_off++;
		t->off_addr = addr;
	}
}

static const struct pci_dev_ops tdev_ops = { .bar_map = tbar_map };

static struct tdev dev, other;	/* other: BAR 2's opaque, to tell BARs apart */
static struct tdev ports;	/* BAR 4's, the I/O BAR */

static void build_dev(void)
{
	u8 vcap1[8] = { PCI_CAP_ID_VNDR, 0xee, 8, 1, 2, 3, 4, 5 };
	u8 vcap2[6] = { PCI_CAP_ID_VNDR, 0xee, 6, 9 };

	pci_dev_init(&dev.pd, "test", 0x1234, 0x5678, 0xff0000, 7, 0x1af4, 0x42);
	dev.pd.ops = &tdev_ops;
	dev.pd.opaque = &dev;
	ok(pci_bar_add(&dev.pd, 0, 0x1000, &tbar_ops, &dev) == 0, "BAR 0: 4 KiB");
	ok(pci_bar_add(&dev.pd, 2, 0x4000, &tbar_ops, &other) == 0, "BAR 2: 16 KiB");
	ok(pci_bar_add(&dev.pd, 2, 0x1000, &tbar_ops, &other) < 0, "BAR 2 twice is refused");
	ok(pci_bar_add(&dev.pd, 3, 0x3000, &tbar_ops, &other) < 0, "a size not a power of 2 is refused");
	ok(pci_bar_add(&dev.pd, 6, 0x1000, &tbar_ops, &other) < 0, "BAR 6 does not exist");
	ok(pci_io_bar_add(&dev.pd, 4, 2, &tbar_ops, &ports) < 0, "an I/O BAR under 4 ports is refused");
	ok(pci_io_bar_add(&dev.pd, 4, 12, &tbar_ops, &ports) < 0, "so is one not a power of 2");
	ok(pci_io_bar_add(&dev.pd, 4, 2 * PCI_IO_SLOT_WINDOW, &tbar_ops, &ports) < 0,
	   "and one bigger than a slot's I/O window");
	ok(pci_io_bar_add(&dev.pd, 2, 16, &tbar_ops, &ports) < 0, "an I/O BAR on a taken BAR too");
	ok(pci_io_bar_add(&dev.pd, 4, 16, &tbar_ops, &ports) == 0, "BAR 4: 16 ports");
	ok(pci_cap_add(&dev.pd, vcap1, sizeof(vcap1)) == PCI_CAP_START, "first capability at 0x40");
	ok(pci_cap_add(&dev.pd, vcap2, sizeof(vcap2)) == 0x48, "second one follows, aligned");
	ok(pci_msix_init(&dev.pd, 1, 4) == 0, "MSI-X, 4 vectors in BAR 1");
	ok(pci_msix_init(&dev.pd, 3, 4) < 0, "MSI-X twice is refused");
	ok(pci_add(&dev.pd) == 0, "device added");
}

/* ---- tests ---------------------------------------------------------------- */

static void test_probe(void)
{
	bool hit;

	bus_reset_all();
	ok(pci_init() == 0, "pci_init");
	ok(pci_init() < 0, "pci_init again without a bus reset fails: ports taken");
	bus_reset_all();
	ok(pci_init() == 0, "pci_init after bus reset");

	/* arch/x86/pci/direct.c: pci_check_type1() */
	io(BUS_PIO, 0xCFB, 1, 1, true, &hit);
	ok(!hit, "0xCFB is not ours (0xCF9 belongs to reset control)");
	out(0xCF8, 0x80000000, 4);
	is_int(in(0xCF8, 4), 0x80000000, "address register reads back");
	out(0xCF8, 0x12, 1);
	is_int(in(0xCF8, 4), 0x80000000, "byte writes leave it alone");
	/* pci_sanity_check(): host bridge class, or an Intel vendor */
	is_int(cfg_rd(0, PCI_CLASS_DEVICE, 2), 0x0600, "00:00.0 is a host bridge");
	is_int(cfg_rd(0, PCI_VENDOR_ID, 2), 0x8086, "host bridge vendor");
	is_int(cfg_rd(0, PCI_VENDOR_ID, 4), 0x29c08086, "vendor/device dword");
	is_int(cfg_rd(0, PCI_HEADER_TYPE, 1), 0, "type 0, single function");
	cfg_wr(0, PCI_VENDOR_ID, 0xdead, 2);
	is_int(cfg_rd(0, PCI_VENDOR_ID, 2), 0x8086, "vendor ID is read-only");
	is_int(cfg_rd(5, PCI_VENDOR_ID, 4), 0xffffffff, "empty slot reads all-ones");
	out(0xCF8, conf1(1, 0, 0, 0), 4);
	is_int(in(0xCFC, 4), 0xffffffff, "bus 1 does not exist");
	out(0xCF8, conf1(0, 0, 1, 0), 4);
	is_int(in(0xCFC, 4), 0xffffffff, "function 1 does not exist");
	out(0xCF8, conf1(0, 0, 0, 0) & ~0x80000000u, 4);
	is_int(in(0xCFC, 4), 0xffffffff, "no enable bit, no cycle");
}

static void test_header(void)
{
	build_dev();
	is_int(dev.pd.slot, 1, "first device in slot 1");
	is_int(dev.pd.gsi, PCI_GSI_BASE, "slot 1 uses GSI 16");
	is_int(cfg_rd(1, PCI_VENDOR_ID, 4), 0x56781234, "vendor/device");
	is_int(cfg_rd(1, PCI_REVISION_ID, 4), 0xff000007, "class and revision");
	is_int(cfg_rd(1, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x00421af4, "subsystem ids");
	ok(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, "status announces a capability list");
	is_int(cfg_rd(1, PCI_INTERRUPT_PIN, 1), 1, "INTA");
	is_int(cfg_rd(1, PCI_INTERRUPT_LINE, 1), 16, "interrupt line preset to the GSI");
	ok(cfg_rd(1, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, "memory decoding on, as firmware leaves it");
	cfg_wr(1, PCI_INTERRUPT_LINE, 11, 1);
	is_int(cfg_rd(1, PCI_INTERRUPT_LINE, 1), 11, "interrupt line is writable");
	cfg_wr(1, PCI_INTERRUPT_PIN, 3, 1);
	is_int(cfg_rd(1, PCI_INTERRUPT_PIN, 1), 1, "interrupt pin is not");
	cfg_wr(1, PCI_CLASS_PROG, 0xffffffff, 4);
	is_int(cfg_rd(1, PCI_REVISION_ID, 4), 0xff000007, "class is read-only");
	cfg_wr(1, 0x30, 0xffffffff, 4);
	is_int(cfg_rd(1, 0x30, 4), 0, "no expansion ROM");
}

static void test_caps(void)
{
	u8 ids[8], n = 0, ptr = cfg_rd(1, PCI_CAPABILITY_LIST, 1), msix = 0;
	int ttl = 48;	/* Linux's bound on a capability walk */

	while (ptr && ttl-- && n < sizeof(ids)) {
		ok(ptr >= PCI_CAP_START && !(ptr & 3), "capability at %#x is in the device area, aligned", ptr);
		ids[n++] = cfg_rd(1, ptr, 1);
		if (ids[n - 1] == PCI_CAP_ID_MSIX)
			msix = ptr;
		ptr = cfg_rd(1, ptr + 1, 1) & ~3;
	}
	ok(n == 3 && ids[0] == PCI_CAP_ID_VNDR && ids[1] == PCI_CAP_ID_VNDR &&
	   ids[2] == PCI_CAP_ID_MSIX, "walk finds vendor, vendor, MSI-X (%u caps)", n);
	is_int(cfg_rd(1, PCI_CAP_START + 3, 1), 1, "capability body kept");
	is_int(cfg_rd(1, PCI_CAP_START + 1, 1), 0x48, "next pointer filled in, not copied");
	is_int(cfg_rd(1, msix + PCI_MSIX_FLAGS, 2), 3, "MSI-X table size N-1, disabled");
	is_int(cfg_rd(1, msix + PCI_MSIX_TABLE, 4), 1, "table at offset 0 of BAR 1");
	is_int(cfg_rd(1, msix + PCI_MSIX_PBA, 4), PCI_MSIX_PBA_OFFSET | 1, "PBA at 0x800 of BAR 1");
	cfg_wr(1, PCI_CAP_START + 4, 0xffffffff, 4);
	is_int(cfg_rd(1, PCI_CAP_START + 4, 4), 0x05040302, "capability bytes are read-only by default");
}

static void test_bars(void)
{
	u32 b0 = bar_of(1, 0), b1 = bar_of(1, 1), b2 = bar_of(1, 2);
	u16 cmd = cfg_rd(1, PCI_COMMAND, 2);
	bool hit;

	ok(b0 >= PCI_BAR_BASE && b0 + 0x1000 <= PCI_MMIO_END && !(b0 & 0xfff), "BAR 0 %#x in the hole, aligned", b0);
	ok(b2 >= PCI_BAR_BASE && !(b2 & 0x3fff), "BAR 2 %#x aligned to its 16 KiB", b2);
	ok(b1 && b1 != b0 && b1 != b2, "BAR 1 %#x placed apart", b1);
	is_int(dev.map_on, 1, "bar_map told the device where BAR 0 is");
	is_int(dev.on_addr, b0, "at the address config space says");
	is_int(mmio_rd(b0 + 0x10, 4, &hit), 0xA5000010, "BAR 0 reaches its ops, offset relative");
	ok(hit, "BAR 0 decodes");
	is_int(mmio_rd(b2 + 0x3ffc, 4, &hit), 0xA5003ffc, "BAR 2 decodes its last dword");

	/* drivers/pci/probe.c: __pci_read_base(), decode off while sizing */
	cfg_wr(1, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
	mmio_rd(b0, 4, &hit);
	ok(!hit, "memory decode off: BAR 0 gone");
	is_int(dev.map_off, 1, "bar_map heard of it");
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xffffffff, 4);
	is_int(bar_of(1, 0), 0xfffff000, "BAR 0 sizes as 4 KiB, 32-bit memory");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 8, 0xffffffff, 4);
	is_int(bar_of(1, 2), 0xffffc000, "BAR 2 sizes as 16 KiB");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 12, 0xffffffff, 4);
	is_int(bar_of(1, 3), 0, "unimplemented BAR 3 reads 0");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 20, 0xffffffff, 4);
	is_int(bar_of(1, 5), 0, "unimplemented BAR 5 reads 0");
	cfg_wr(1, PCI_BASE_ADDRESS_0, b0, 4);
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 8, b2, 4);
	cfg_wr(1, PCI_COMMAND, cmd, 2);
	is_int(mmio_rd(b0, 4, &hit), 0xA5000000, "decode back on: BAR 0 where it was");
	is_int(dev.map_on, 2, "and bar_map heard that too");

	/* A move while decoding, as Linux's resource reassignment does. */
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xE8000000, 4);
	mmio_rd(b0, 4, &hit);
	ok(!hit, "old BAR 0 address no longer decodes");
	is_int(mmio_rd(0xE8000008, 4, &hit), 0xA5000008, "new address does");
	ok(dev.off_addr == b0 && dev.on_addr == 0xE8000000, "bar_map: off at old, on at new");
	ok(mmio_wr(0xE8000004, 0x1234, 2) && dev.last_off == 4 && dev.last_val == 0x1234,
	   "writes arrive with offset and width");

	/* Values a guest may not have. */
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0x10000000, 4);
	is_int(bar_of(1, 0), 0x10000000, "a BAR in RAM reads back as written");
	mmio_rd(0x10000000, 4, &hit);
	ok(!hit, "but does not decode");
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xFEC00000, 4);
	mmio_rd(0xFEC00000, 4, &hit);
	ok(!hit, "nor over the IOAPIC");
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xFEE00000, 4);
	mmio_rd(0xFEE00000, 4, &hit);
	ok(!hit, "nor over the local APIC");
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xFFFFF000, 4);
	mmio_rd(0xFFFFF000, 4, &hit);
	ok(!hit, "nor at the top of 4 GiB");
	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xFEBFF000, 4);
	is_int(mmio_rd(0xFEBFF000, 4, &hit), 0xA5000000, "right below the IOAPIC is fine");
	cfg_wr(1, PCI_BASE_ADDRESS_0, b2, 4);
	is_int(mmio_rd(b2, 4, &hit), 0xA5000000, "BAR 0 onto BAR 2: BAR 2 keeps its range");
	ok(dev.reads > 0 && other.reads > 0, "both BARs were read in this test");
	other.reads = 0;
	mmio_rd(b2 + 0x10, 4, NULL);
	is_int(other.reads, 1, "the access went to BAR 2's owner");
	/* Byte by byte, every intermediate value taken in stride. */
	for (int i = 0; i < 4; i++)
		cfg_wr(1, PCI_BASE_ADDRESS_0 + i, b0 >> (8 * i), 1);
	is_int(bar_of(1, 0), b0, "byte-wise BAR write");
	is_int(mmio_rd(b0 + 4, 4, &hit), 0xA5000004, "BAR 0 home again");
}

/* The I/O BAR: placed, sized, moved and refused like a memory one, in
 * port space, and never over the legacy ports or past 64 KiB. */
static void test_io_bars(void)
{
	u32 b4 = bar_of(1, 4), port = b4 & ~3u;
	u16 cmd = cfg_rd(1, PCI_COMMAND, 2);
	int reads = ports.reads, others = dev.reads + other.reads;
	bool hit;
	u64 v;

	is_int(b4 & 3, PCI_BASE_ADDRESS_SPACE_IO, "BAR 4 says I/O");
	ok(port >= PCI_IO_BAR_BASE + PCI_IO_SLOT_WINDOW && !(port & 15) &&
	   port + 16 <= PCI_IO_BAR_BASE + 2 * PCI_IO_SLOT_WINDOW,
	   "in slot 1's I/O window (%#x), aligned", port);
	ok((cmd & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)) == (PCI_COMMAND_IO | PCI_COMMAND_MEMORY),
	   "I/O and memory decoding on, as firmware leaves them");
	v = io(BUS_PIO, port + 12, 0, 4, false, &hit);
	is_int(v, 0xA500000c, "BAR 4 reaches its ops by port");
	ok(hit && ports.reads == reads + 1 && dev.reads + other.reads == others, "and only its own owner");
	io(BUS_PIO, port + 2, 0xbeef, 2, true, &hit);
	ok(hit && ports.last_off == 2 && ports.last_val == 0xbeef, "port writes arrive with offset and width");
	mmio_rd(port, 4, &hit);
	ok(!hit, "the port number means nothing in memory space");

	cfg_wr(1, PCI_COMMAND, cmd & ~PCI_COMMAND_IO, 2);
	io(BUS_PIO, port, 0, 4, false, &hit);
	ok(!hit, "I/O decode off: BAR 4 gone");
	mmio_rd(bar_of(1, 0), 4, &hit);
	ok(hit, "memory BARs stay");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 16, 0xffffffff, 4);
	is_int(bar_of(1, 4), 0xfffffff1, "BAR 4 sizes as 16 ports, I/O");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 16, 0xD000, 4);
	is_int(bar_of(1, 4), 0xD001, "the I/O bit stays set whatever is written");
	cfg_wr(1, PCI_COMMAND, cmd, 2);
	io(BUS_PIO, port, 0, 4, false, &hit);
	ok(!hit, "decode back on: not at the old port");
	is_int(io(BUS_PIO, 0xD004, 0, 2, false, &hit), 0x0004, "at the new one");

	cfg_wr(1, PCI_BASE_ADDRESS_0 + 16, 0x600, 4);
	io(BUS_PIO, 0x600, 0, 4, false, &hit);
	ok(!hit, "over the legacy ports: kept, not decoded");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 16, 0xCF0, 4);
	is_int(cfg_rd(1, PCI_VENDOR_ID, 2), 0x1234, "over the config ports: the bus still answers");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 16, 0x1FFF0, 4);
	io(BUS_PIO, 0xFFF0, 0, 4, false, &hit);
	ok(!hit, "past 64 KiB of ports: not decoded");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 16, 0xFFF0, 4);
	is_int(io(BUS_PIO, 0xFFFC, 0, 4, false, &hit), 0xA500000c, "the last 16 ports are fine");
	cfg_wr(1, PCI_BASE_ADDRESS_0 + 16, b4, 4);
	is_int(io(BUS_PIO, port, 0, 1, false, &hit), 0, "BAR 4 home again");
	ok(hit, "and decoding");
}

static void test_cfg_garbage(void)
{
	u32 v;

	pci_cfg_read(&dev.pd, 0x100, &v, 4);
	is_int(v, 0xffffffff, "offset 256 reads all-ones");
	pci_cfg_read(&dev.pd, 0xfe, &v, 4);
	is_int(v, 0xffffffff, "a read running past 256 reads all-ones");
	v = 0;
	pci_cfg_write(&dev.pd, 0xfff, &v, 4);
	pci_cfg_read(&dev.pd, 0, &v, 4);
	is_int(v, 0x56781234, "a write past the end changes nothing");
	out(0xCF8, conf1(0, 1, 0, 0) | 1 << 24, 4);
	is_int(in(0xCFC, 4), 0xffffffff, "extended register bits: beyond 256");
	out(0xCF8, conf1(0, 1, 0, 0), 4);
	is_int(in(0xCFE, 2), 0x5678, "word at 0xCFE: bytes 2-3");
	is_int(in(0xCFD, 1), 0x12, "byte at 0xCFD");
	is_int(in(0xCFD, 2), 0x7812, "unaligned word inside the data port");
	is_int(in(0xCFD, 4), 0xffffffff, "dword running past 0xCFF: no cycle");
	is_int(io(BUS_PIO, 0xCFC, 0, 8, false, NULL), ~0ULL, "8-byte port read: no cycle");
	out(0xCFD, 0xffffffff, 4);
	is_int(cfg_rd(1, PCI_VENDOR_ID, 4), 0x56781234, "and an overlong write does nothing");
}

static void test_intx(void)
{
	struct pci_dev bare[31];
	int n_added = 1;
	u8 line;

	pci_set_irq(&dev.pd, 1);
	is_int(stub_irq_line_level[16], 1, "INTA raises GSI 16");
	ok(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "status shows the interrupt");
	cfg_wr(1, PCI_COMMAND, cfg_rd(1, PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE, 2);
	is_int(stub_irq_line_level[16], 0, "INTX_DISABLE drops the line");
	ok(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "status still shows the input");
	cfg_wr(1, PCI_COMMAND, cfg_rd(1, PCI_COMMAND, 2) & ~PCI_COMMAND_INTX_DISABLE, 2);
	is_int(stub_irq_line_level[16], 1, "and clearing it raises it again");

	for (int i = 0; i < 31; i++) {
		pci_dev_init(&bare[i], "bare", 0x1234, 0x1000 + i, 0xff0000, 0, 0, 0);
		if (pci_add(&bare[i]) == 0)
			n_added++;
	}
	is_int(n_added, 31, "31 devices fit on the bus, the 32nd does not");
	ok(strstr(last_error(), "no free slot") != NULL, "and says why: %s", last_error());
	is_int(bare[7].slot, 9, "slot 9");
	is_int(bare[7].gsi, 16, "shares GSI 16 with slot 1");
	is_int(bare[0].gsi, 17, "slot 2 on GSI 17");
	is_int(bare[6].gsi, 23, "slot 8 on GSI 23");
	is_int(bare[29].gsi, 22, "slot 31 on GSI 22");
	pci_set_irq(&bare[7], 1);
	pci_set_irq(&dev.pd, 0);
	is_int(stub_irq_line_level[16], 1, "a shared line stays up while one sharer asserts");
	pci_set_irq(&bare[7], 0);
	is_int(stub_irq_line_level[16], 0, "and drops when the last lets go");
	line = 0;
	for (int s = 1; s < 32; s++)
		line |= cfg_rd(s, PCI_INTERRUPT_PIN, 1) != 1;
	ok(!line, "every slot reports INTA");
	for (int i = 0; i < 31; i++)
		pci_remove(&bare[i]);
	is_int(cfg_rd(9, PCI_VENDOR_ID, 4), 0xffffffff, "removed devices leave their slots empty");
}

struct irq_seen {
	int n;
	u8 slot[32], pin[32];
	u32 gsi[32];
};

static void note_irq(void *arg, u8 slot, u8 pin, u32 gsi)
{
	struct irq_seen *s = arg;

	s->slot[s->n] = slot;
	s->pin[s->n] = pin;
	s->gsi[s->n] = gsi;
	s->n++;
}

static void test_for_each_irq(void)
{
	struct irq_seen seen = { 0 };
	struct pci_dev extra;
	int n;

	pci_dev_init(&extra, "extra", 0x1234, 0x9999, 0xff0000, 0, 0, 0);
	ok(pci_add(&extra) == 0, "a second device");
	n = pci_for_each_irq(note_irq, &seen);

	is_int(n, 2, "two interrupts to describe");
	ok(seen.n == 2 && seen.slot[0] == 1 && seen.pin[0] == 1 && seen.gsi[0] == 16,
	   "slot 1 INTA -> 16");
	ok(seen.slot[1] == 2 && seen.pin[1] == 1 && seen.gsi[1] == 17, "slot 2 INTA -> 17");
	pci_remove(&extra);
}

static u8 msix_cap(void)
{
	u8 ptr = cfg_rd(1, PCI_CAPABILITY_LIST, 1);

	for (int ttl = 48; ptr && ttl; ttl--, ptr = cfg_rd(1, ptr + 1, 1))
		if (cfg_rd(1, ptr, 1) == PCI_CAP_ID_MSIX)
			return ptr;
	return 0;
}

static bool efd_fired(int efd)
{
	u64 n;

	return read(efd, &n, sizeof(n)) == sizeof(n) && n;
}

static void test_msix(void)
{
	u8 cap = msix_cap();
	u64 tbl = bar_of(1, 1) & ~0xfULL, pba = tbl + PCI_MSIX_PBA_OFFSET;
	int fd0 = pci_msix_fd(&dev.pd, 0), binds;
	u64 one = 1;

	ok(cap != 0, "MSI-X capability found");
	ok(fd0 >= 0 && pci_msix_fd(&dev.pd, 4) < 0, "one eventfd per vector, none past them");
	ok(!pci_msix_enabled(&dev.pd), "MSI-X starts disabled");
	ok(pci_msix_notify(&dev.pd, 0) < 0, "notify while disabled says: use INTx");
	is_int(mmio_rd(tbl + PCI_MSIX_ENTRY_CTRL, 4, NULL), 1, "vectors start masked");

	cfg_wr(1, cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | 0x7ff, 2);
	is_int(cfg_rd(1, cap + PCI_MSIX_FLAGS, 2), PCI_MSIX_FLAGS_ENABLE | 3,
	       "enable is writable, table size is not");
	ok(pci_msix_enabled(&dev.pd), "MSI-X enabled");
	pci_set_irq(&dev.pd, 1);
	is_int(stub_irq_line_level[16], 0, "INTx is silent while MSI-X is on");
	pci_set_irq(&dev.pd, 0);

	ok(pci_msix_notify(&dev.pd, 0) == 0, "notify a masked vector");
	ok(!efd_fired(fd0), "no message while masked");
	is_int(mmio_rd(pba, 8, NULL), 1, "pending bit 0 set");
	mmio_wr(tbl + 0, 0xFEE00000, 4);
	mmio_wr(tbl + 4, 0, 4);
	mmio_wr(tbl + 8, 0x41, 4);
	binds = stub_msi_binds;
	mmio_wr(tbl + PCI_MSIX_ENTRY_CTRL, 0, 4);
	is_int(stub_msi_binds, binds + 1, "unmasking binds the vector's irqfd");
	ok(efd_fired(fd0), "and delivers what was pending");
	is_int(mmio_rd(pba, 8, NULL), 0, "pending bit cleared");
	is_int(mmio_rd(tbl, 8, NULL), 0xFEE00000, "table reads back (qword)");
	is_int(mmio_rd(tbl + 8, 4, NULL), 0x41, "message data reads back");

	pci_msix_notify(&dev.pd, 0);
	ok(efd_fired(fd0), "unmasked: notify writes the eventfd");
	mmio_wr(tbl + 8, 0x42, 4);
	is_int(stub_msi_binds, binds + 2, "a new message while unmasked retargets");

	cfg_wr(1, cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	pci_msix_notify(&dev.pd, 0);
	ok(!efd_fired(fd0), "function mask holds the message back");
	is_int(mmio_rd(pba, 1, NULL), 1, "as pending");
	cfg_wr(1, cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	ok(efd_fired(fd0), "function unmask delivers it");

	mmio_wr(tbl + PCI_MSIX_ENTRY_CTRL, 1, 4);
	ok(write(fd0, &one, sizeof(one)) == sizeof(one), "a device thread writes the eventfd directly");
	is_int(mmio_rd(pba, 4, NULL), 1, "while masked that shows as pending");
	mmio_wr(tbl + PCI_MSIX_ENTRY_CTRL, 0, 4);
	ok(efd_fired(fd0), "and is delivered once on unmask");
	ok(!efd_fired(fd0), "exactly once");

	ok(pci_msix_notify(&dev.pd, 3) == 0 && !efd_fired(pci_msix_fd(&dev.pd, 3)),
	   "vector 3 is masked: no message");
	ok(pci_msix_notify(&dev.pd, 4) == 0, "a vector that does not exist: nothing, no crash");
	ok(pci_msix_notify(&dev.pd, 0xffff) == 0, "nor does 0xffff");
	is_int(mmio_rd(pba, 8, NULL), 8, "only vector 3 pending");

	mmio_wr(tbl + 16 + PCI_MSIX_ENTRY_CTRL, 0xffffffff, 4);
	is_int(mmio_rd(tbl + 16 + PCI_MSIX_ENTRY_CTRL, 4, NULL), 1, "vector control: reserved bits read 0");
	mmio_wr(pba, 0xff, 8);
	is_int(mmio_rd(pba, 8, NULL), 8, "PBA is read-only");
	is_int(mmio_rd(tbl + 0x400, 4, NULL), 0, "past the table reads 0");
	is_int(mmio_rd(tbl + 0xffc, 8, NULL), 0, "a read running off the BAR reads 0");
	mmio_wr(tbl + 4 * 16 - 2, 0xffffffffffffffffULL, 8);
	is_int(mmio_rd(tbl + 3 * 16 + 12, 4, NULL), 1, "a write straddling the table end lands only inside");

	cfg_wr(1, cap + PCI_MSIX_FLAGS, 0, 2);
	ok(!pci_msix_enabled(&dev.pd), "disabled again");
	is_int(mmio_rd(pba, 8, NULL), 0, "disabling forgets pending messages");
	ok(pci_msix_notify(&dev.pd, 0) < 0, "and notify falls back to INTx");
}

static u32 rnd(void)
{
	static u32 x = 2463534242u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

static void test_storm(void)
{
	static const u32 lens[] = { 1, 2, 4, 8 };
	u32 tbl = bar_of(1, 1) & ~0xfu;
	int hits = 0;

	for (int i = 0; i < 200000; i++) {
		u32 len = lens[rnd() % 4];
		u64 v = (u64)rnd() << 32 | rnd();
		bool wr = rnd() & 1, hit;

		switch (rnd() % 3) {
		case 0:
			io(BUS_PIO, 0xCF8 + rnd() % 8, v, len, wr, &hit);
			break;
		case 1:
			io(BUS_MMIO, tbl + rnd() % 0x1010, v, len, wr, &hit);
			break;
		default:
			io(BUS_MMIO, PCI_BAR_BASE + rnd() % 0x1000000, v, len, wr, &hit);
			break;
		}
		hits += hit;
	}
	/* Surviving is the test; the count shows the storm reached devices. */
	ok(hits > 50000, "200000 random config, MSI-X and MMIO accesses: %d reached a device", hits);
	out(0xCF8, conf1(0, 0, 0, 0), 4);
	is_int(in(0xCFC, 4), 0x29c08086, "the host bridge is unmoved");
	is_int(cfg_rd(1, PCI_VENDOR_ID, 4), 0x56781234, "the device's ids too");
}

static void test_remove(void)
{
	u32 b0 = bar_of(1, 0) & ~0xfu;
	bool hit;

	cfg_wr(1, PCI_BASE_ADDRESS_0, 0xE0900000, 4);
	cfg_wr(1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	mmio_rd(0xE0900000, 4, &hit);
	ok(hit, "BAR 0 decoding before removal (was %#x)", b0);
	pci_remove(&dev.pd);
	mmio_rd(0xE0900000, 4, &hit);
	ok(!hit, "gone after removal");
	is_int(cfg_rd(1, PCI_VENDOR_ID, 4), 0xffffffff, "slot 1 empty");
	memset(&dev, 0, sizeof(dev));
	build_dev();
	is_int(dev.pd.slot, 1, "a new device takes the freed slot");
	pci_remove(&dev.pd);
}

int main(void)
{
	test_probe();
	test_header();
	test_caps();
	test_bars();
	test_io_bars();
	test_cfg_garbage();
	test_intx();
	test_for_each_irq();
	test_msix();
	test_storm();
	test_remove();
	return tap_done();
}
