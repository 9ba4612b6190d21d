/*
 * pci.h: a PCI bus just big enough for virtio devices.
 *
 * One bus (0), a host bridge at 00:00.0 so Linux believes in the bus, and
 * up to 31 single-function devices in slots 1..31.  The guest reaches
 * configuration space through mechanism #1 (address at port 0xCF8, data at
 * 0xCFC..0xCFF), the way Linux finds a PCI bus without ACPI.  Devices get
 * 32-bit memory BARs in the hole below 4 GiB, small I/O BARs (virtio's
 * doorbells: a port write is the cheapest exit KVM has), a capability
 * list, legacy INTx and MSI-X.  No 64-bit BARs, no bridges: virtio 1.x
 * needs none of them.
 *
 * Start-up order (main.c):
 *   1. guest_mem_init(), create the VM (irq.h calls happen only once the
 *      guest runs, but they need the VM then).
 *   2. pci_init(): the host bridge and the 0xCF8/0xCFC ports.
 *   3. each device: virtio_pci_add() (or, for a non-virtio function,
 *      pci_dev_init, pci_bar_add, pci_cap_add, pci_msix_init, pci_add).
 *   4. x86_boot_load(): the MP table writer adds a bus entry for PCI
 *      ("PCI   ", bus id of its choosing) and one I/O interrupt entry per
 *      pci_for_each_irq() callback (see "Legacy interrupts" below).
 *   5. start the vCPUs.
 *
 * Legacy interrupts: the device in slot s uses pin INTA and IOAPIC input
 *	gsi = PCI_GSI_BASE + (s - 1) % PCI_GSI_COUNT	(16..23)
 * Pins 0..15 are left to the ISA devices, which the MP table maps one to
 * one with edge triggering; a PCI line must be level-triggered, and a pin
 * cannot be both.  More than eight devices share lines, which level
 * triggering allows: pci_set_irq() ORs the devices on a line.  The MP
 * entry: type INT, flags 0 (conforms to the PCI bus: level, active low;
 * KVM's IOAPIC does not model polarity, so the high level we drive reads
 * as asserted), source bus = the PCI bus id, source IRQ =
 * (slot << 2) | (pin - 1), destination = the IOAPIC, pin = gsi.
 *
 * Threads: configuration cycles are serialised by one bus lock, held
 * while the device hooks in struct pci_dev_ops run.  MSI-X state has a
 * lock of its own and INTx one more, so device threads can interrupt the
 * guest while a vCPU is in the middle of a config cycle.  Lock order:
 * bus lock, then a device's own lock, then MSI-X, then INTx.
 */
#ifndef BUS_PCI_H
#define BUS_PCI_H

#include "bus/bus.h"

#define PCI_MAX_SLOTS		32	/* slot 0 is the host bridge */
#define PCI_CFG_SIZE		256
#define PCI_NUM_BARS		6
#define PCI_GSI_BASE		16
#define PCI_GSI_COUNT		8

/*
 * Where the BARs live: the 32-bit hole above RAM, ending below the IOAPIC
 * (0xFEC00000) and so also below the local APIC (0xFEE00000).  We assign
 * BARs from PCI_BAR_BASE, PCI_SLOT_WINDOW bytes per slot, so a BAR's
 * address tells which slot it belongs to.  A guest may move a BAR
 * anywhere in [PCI_HOLE_START, PCI_MMIO_END); elsewhere it stops decoding.
 */
#define PCI_BAR_BASE		0xE0000000ULL
#define PCI_SLOT_WINDOW		0x800000ULL	/* 8 MiB */
#define PCI_MMIO_END		0xFEC00000ULL

/*
 * I/O BARs the same way, in port space: PCI_IO_SLOT_WINDOW ports per slot
 * from PCI_IO_BAR_BASE (slot 31 ends at 0xC800).  The guest may move one
 * anywhere in [PCI_IO_START, PCI_IO_END): above the legacy ports (ISA,
 * ACPI, the 0xCF8 config ports), inside the 16-bit port space.
 */
#define PCI_IO_BAR_BASE		0xC000
#define PCI_IO_SLOT_WINDOW	0x40
#define PCI_IO_START		0x1000
#define PCI_IO_END		0x10000

/* Config space offsets and bits (PCI Local Bus 3.0, 6.1 and 6.2). */
#define PCI_VENDOR_ID		0x00
#define PCI_DEVICE_ID		0x02
#define PCI_COMMAND		0x04
#define  PCI_COMMAND_IO		0x0001
#define  PCI_COMMAND_MEMORY	0x0002
#define  PCI_COMMAND_MASTER	0x0004
#define  PCI_COMMAND_PARITY	0x0040
#define  PCI_COMMAND_SERR	0x0100
#define  PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS		0x06
#define  PCI_STATUS_INTERRUPT	0x0008
#define  PCI_STATUS_CAP_LIST	0x0010
#define PCI_REVISION_ID		0x08
#define PCI_CLASS_PROG		0x09
#define PCI_CLASS_DEVICE	0x0a
#define PCI_CACHE_LINE_SIZE	0x0c
#define PCI_LATENCY_TIMER	0x0d
#define PCI_HEADER_TYPE		0x0e
#define PCI_BASE_ADDRESS_0	0x10
#define  PCI_BASE_ADDRESS_SPACE_IO 0x01
#define PCI_SUBSYSTEM_VENDOR_ID	0x2c
#define PCI_SUBSYSTEM_ID	0x2e
#define PCI_CAPABILITY_LIST	0x34
#define PCI_INTERRUPT_LINE	0x3c
#define PCI_INTERRUPT_PIN	0x3d
#define PCI_CAP_START		0x40	/* first byte after the type-0 header */

#define PCI_CAP_ID_VNDR		0x09
#define PCI_CAP_ID_MSIX		0x11

/* MSI-X (PCI Local Bus 3.0, 6.8.2). */
#define PCI_MSIX_FLAGS		2	/* message control, from the cap start */
#define  PCI_MSIX_FLAGS_QSIZE	0x07ff
#define  PCI_MSIX_FLAGS_MASKALL	0x4000
#define  PCI_MSIX_FLAGS_ENABLE	0x8000
#define PCI_MSIX_TABLE		4
#define PCI_MSIX_PBA		8
#define PCI_MSIX_CAP_LEN	12
#define PCI_MSIX_ENTRY_SIZE	16
#define  PCI_MSIX_ENTRY_CTRL	12	/* vector control, bit 0 masks */
#define PCI_MSIX_PBA_OFFSET	0x800	/* in the BAR, after the table */
#define PCI_MSIX_BAR_SIZE	0x1000
#define PCI_MSIX_MAX_VECTORS	64	/* the PBA fits in one u64 */

struct pci_dev;
struct pci_msix;

/* What a device wants to hear about besides its BAR accesses.  All
 * optional; all called with the bus lock held. */
struct pci_dev_ops {
	/* Before a config read of [off, off+len) returns: the device may
	 * refresh bytes it keeps live (virtio's PCI_CFG window). */
	void (*cfg_read)(struct pci_dev *pd, u32 off, u32 len);
	/* After a config write to [off, off+len) has been stored. */
	void (*cfg_write)(struct pci_dev *pd, u32 off, u32 len);
	/* A BAR started (on) or stopped (!on) decoding at addr: move what
	 * hangs off guest addresses, like ioeventfds. */
	void (*bar_map)(struct pci_dev *pd, int bar, u64 addr, bool on);
};

struct pci_bar {
	u64 size;			/* power of 2; 0: BAR not implemented */
	u64 addr;			/* where it decodes, while mapped */
	bool io;			/* in port space, not memory */
	bool mapped;			/* registered on its bus */
	const struct bus_ops *ops;
	void *opaque;
};

struct pci_dev {
	/* Filled in by the device (through pci_dev_init and friends). */
	u8 cfg[PCI_CFG_SIZE];		/* config space as the guest sees it */
	u8 wmask[PCI_CFG_SIZE];		/* bits the guest may write */
	const struct pci_dev_ops *ops;	/* may be NULL */
	void *opaque;			/* the device behind the function */
	const char *name;
	struct pci_bar bar[PCI_NUM_BARS];
	u8 last_cap;			/* offset of the last capability, 0: none */
	u8 cap_end;			/* where the next capability goes */

	/* Owned by pci.c once the device is added. */
	u8 slot;
	u32 gsi;
	bool intx_level;		/* the device's INTA input */
	bool intx_masked;		/* INTX_DISABLE set, or MSI-X on */
	struct pci_msix *msix;		/* NULL without MSI-X */
	u8 msix_cap;			/* offset of the MSI-X capability */
};

/*
 * (Re)start an empty bus: host bridge at 00:00.0, mechanism #1 ports.
 * The PIO bus must not hold 0xCF8/0xCFC yet (tests: bus_reset_all()
 * first).  -1 with last_error() set.
 */
int pci_init(void);

/* A fresh type-0 header: ids, class (base << 16 | sub << 8 | prog-if). */
void pci_dev_init(struct pci_dev *pd, const char *name, u16 vendor, u16 device,
		  u32 class, u8 revision, u16 subsys_vendor, u16 subsys_id);
/* A 32-bit memory BAR of size bytes (power of 2, 16..PCI_SLOT_WINDOW)
 * whose accesses go to ops with opaque.  Before pci_add(). */
int pci_bar_add(struct pci_dev *pd, int bar, u64 size,
		const struct bus_ops *ops, void *opaque);
/* An I/O BAR of size ports (power of 2, 4..PCI_IO_SLOT_WINDOW). */
int pci_io_bar_add(struct pci_dev *pd, int bar, u32 size,
		   const struct bus_ops *ops, void *opaque);
/*
 * Append a capability: cap[0] is its ID, cap[1] (the next pointer) is
 * filled in here, len bytes in all.  Returns its config offset, or -1 if
 * config space is full.  The bytes are read-only until pci_set_wmask().
 */
int pci_cap_add(struct pci_dev *pd, const void *cap, u8 len);
/* Let the guest write all bits of [off, off+len). */
void pci_set_wmask(struct pci_dev *pd, u32 off, u32 len);
/* MSI-X with nvec vectors: the capability, and table + PBA in BAR bar. */
int pci_msix_init(struct pci_dev *pd, int bar, u16 nvec);

/*
 * Plug the device into the first free slot: give it a GSI, place its BARs
 * in the slot's windows, enable memory (and I/O) decoding, as firmware
 * would, and register the BARs.  -1 with last_error() set; pci_remove() then still
 * frees what pci_msix_init() allocated.
 */
int pci_add(struct pci_dev *pd);
/* Unplug: unregister its BARs, free its slot and MSI-X state.  Also
 * fine on a device that was never (or not successfully) added. */
void pci_remove(struct pci_dev *pd);

/*
 * Every present device's legacy interrupt, for the MP table: pin is the
 * config-space value (1 = INTA).  Returns how many there were.
 */
int pci_for_each_irq(void (*fn)(void *arg, u8 slot, u8 pin, u32 gsi), void *arg);

/* Drive the device's INTA input; the line is the OR of its sharers. */
void pci_set_irq(struct pci_dev *pd, int level);

/*
 * Interrupt through MSI-X vector vec: write the vector's eventfd (bound by
 * irqfd), or set its pending bit while it is masked.  Returns -1 if
 * MSI-X is disabled (the caller falls back to INTx), else 0, also for a
 * vector that does not exist (the driver chose "no vector").
 */
int pci_msix_notify(struct pci_dev *pd, u16 vec);
/* Is MSI-X enabled by the driver? */
bool pci_msix_enabled(struct pci_dev *pd);
/* The eventfd behind vector vec (-1 if none): a device thread may write
 * it directly; a masked vector's writes show up as its pending bit. */
int pci_msix_fd(struct pci_dev *pd, u16 vec);

/*
 * Config space of one function, as a configuration cycle sees it.  Any
 * off and len 1..4; bytes past 256 read as 0xff and drop writes.  Takes
 * the bus lock: not for use from inside a pci_dev_ops hook.
 */
void pci_cfg_read(struct pci_dev *pd, u32 off, void *data, u32 len);
void pci_cfg_write(struct pci_dev *pd, u32 off, const void *data, u32 len);

/* An access to one of the device's BARs, whether mapped or not (virtio's
 * PCI_CFG window).  false if the BAR or the range doesn't exist. */
bool pci_bar_access(struct pci_dev *pd, int bar, u64 off, void *data, u32 len, bool is_write);

#endif
