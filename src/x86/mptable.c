/*
 * mptable.c: the Intel MultiProcessor table (MP spec 1.4).
 *
 * Before ACPI, this is how a PC told its OS how many CPUs it has and how
 * interrupts reach them; Linux still reads it when there is no ACPI (or
 * with acpi=off).  It is small and fixed: one processor entry per vCPU,
 * a PCI and an ISA bus, one IOAPIC, the sixteen ISA interrupts wired to
 * it as KVM wires them, and the two local interrupt lines.
 *
 * Linux looks for the floating pointer in the last KiB of base memory
 * (639 KiB = 0x9fc00), which e820 marks reserved so the kernel leaves it
 * alone.  The configuration table follows it directly.
 */
#include "x86/x86.h"

#include <stdlib.h>
#include <string.h>

#define MP_SPEC_REV	4		/* 1.4 */
#define LAPIC_ADDR	0xfee00000u
#define LAPIC_VERSION	0x14
#define IOAPIC_ADDR	0xfec00000u
#define IOAPIC_VERSION	0x11
#define BUS_PCI		0
#define BUS_ISA		1

enum { MP_CPU, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define MP_LEVEL_ACTIVE_HIGH	0x0d	/* trigger 3 (level), polarity 1 (high) */
#define CPU_ENABLED	0x01
#define CPU_BSP		0x02

/* The floating pointer: where the table is, found by its signature. */
struct mpf {
	char signature[4];		/* "_MP_" */
	u32 physptr;
	u8 length;			/* in 16-byte units */
	u8 spec_rev;
	u8 checksum;
	u8 feature[5];			/* 0: a config table follows */
} __attribute__((packed));

struct mpc_header {
	char signature[4];		/* "PCMP" */
	u16 length;			/* header and entries */
	u8 spec_rev;
	u8 checksum;
	char oem[8];
	char product[12];
	u32 oem_ptr;
	u16 oem_size;
	u16 count;			/* entries */
	u32 lapic;
	u16 ext_length;
	u8 ext_checksum;
	u8 reserved;
} __attribute__((packed));

struct mpc_cpu {
	u8 type, apic_id, apic_version, flags;
	u32 signature, features;
	u32 reserved[2];
} __attribute__((packed));

struct mpc_bus {
	u8 type, id;
	char name[6];
} __attribute__((packed));

struct mpc_ioapic {
	u8 type, id, version, flags;
	u32 addr;
} __attribute__((packed));

/* I/O and local interrupt entries share a layout. */
struct mpc_irq {
	u8 type, irq_type;
	u16 flags;			/* 0: polarity and trigger as the bus says */
	u8 src_bus, src_irq, dst_apic, dst_pin;
} __attribute__((packed));

static_assert(sizeof(struct mpf) == 16, "MP floating pointer");
static_assert(sizeof(struct mpc_header) == 44, "MP config header");
static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry");
static_assert(sizeof(struct mpc_bus) == 8 && sizeof(struct mpc_ioapic) == 8 &&
	      sizeof(struct mpc_irq) == 8, "MP 8-byte entries");

#define ISA_IRQS	16
#define MPC_IRQ_ENTRIES	(ISA_IRQS + 2)		/* and LINT0, LINT1 */

/* Entries are appended to one buffer; the header counts them. */
struct mp_buf {
	u8 *p;
	size_t len;
	u16 count;
};

/* The caller sized the buffer for every entry it puts. */
static void put(struct mp_buf *b, const void *entry, size_t n)
{
	memcpy(b->p + b->len, entry, n);
	b->len += n;
	b->count++;
}

/* Every MP structure sums to zero over its bytes. */
static u8 checksum(const void *p, size_t n)
{
	const u8 *b = p;
	u8 sum = 0;

	while (n--)
		sum += *b++;
	return -sum;
}

/* APIC id i for vCPU i, which is what KVM gives them; vCPU 0 boots. */
static void put_cpus(struct mp_buf *b, int ncpus)
{
	int i;

	for (i = 0; i < ncpus; i++)
		put(b, &(struct mpc_cpu){
			.type = MP_CPU, .apic_id = i, .apic_version = LAPIC_VERSION,
			.flags = CPU_ENABLED | (i == 0 ? CPU_BSP : 0),
			.signature = 0x600,		/* family 6 */
			.features = 0x201,		/* FPU, APIC */
		}, sizeof(struct mpc_cpu));
}

/*
 * ISA interrupt n arrives on IOAPIC pin n.  A PC BIOS would send the timer
 * (IRQ0) to pin 2 instead, but that is a wiring choice, and ours is KVM's
 * default GSI routing (src/vm/irq.c), where the in-kernel PIT raises GSI 0
 * on pin 0; the ACPI MADT says the same, with no IRQ0 override.  The two
 * tables must agree, or a guest booted with acpi=off loses its timer.
 */
static void put_irqs(struct mp_buf *b, u8 ioapic_id,
		     const struct boot_pci_irq *pci, int n_pci)
{
	int irq;

	for (irq = 0; irq < ISA_IRQS; irq++)
		put(b, &(struct mpc_irq){
			.type = MP_INTSRC, .irq_type = MP_INT, .src_bus = BUS_ISA,
			.src_irq = irq, .dst_apic = ioapic_id, .dst_pin = irq,
		}, sizeof(struct mpc_irq));
	/*
	 * PCI lines: level-triggered and, as we drive them, active high
	 * (said explicitly; "conforms to the bus" would mean active low).
	 * The source IRQ names the device and its pin: (slot << 2) | pin-1.
	 */
	for (int i = 0; i < n_pci; i++)
		put(b, &(struct mpc_irq){
			.type = MP_INTSRC, .irq_type = MP_INT,
			.flags = MP_LEVEL_ACTIVE_HIGH, .src_bus = BUS_PCI,
			.src_irq = (u8)((pci[i].slot << 2) | ((pci[i].pin - 1) & 3)),
			.dst_apic = ioapic_id, .dst_pin = (u8)pci[i].gsi,
		}, sizeof(struct mpc_irq));
	/* Virtual-wire mode: the 8259 on LINT0 and NMI on LINT1, all CPUs. */
	put(b, &(struct mpc_irq){ .type = MP_LINTSRC, .irq_type = MP_EXTINT,
		.src_bus = BUS_ISA, .dst_apic = 0xff, .dst_pin = 0 }, sizeof(struct mpc_irq));
	put(b, &(struct mpc_irq){ .type = MP_LINTSRC, .irq_type = MP_NMI,
		.src_bus = BUS_ISA, .dst_apic = 0xff, .dst_pin = 1 }, sizeof(struct mpc_irq));
}

/* The configuration table, entries in the order the spec requires. */
static void build_config(struct mp_buf *b, int ncpus,
			 const struct boot_pci_irq *pci, int n_pci)
{
	struct mpc_header h = {
		.signature = "PCMP", .spec_rev = MP_SPEC_REV,
		.oem = "LGUEST  ", .product = "LGUEST      ", .lapic = LAPIC_ADDR,
	};

	b->len = sizeof(h);
	put_cpus(b, ncpus);
	put(b, &(struct mpc_bus){ .type = MP_BUS, .id = BUS_PCI, .name = "PCI   " },
	    sizeof(struct mpc_bus));
	put(b, &(struct mpc_bus){ .type = MP_BUS, .id = BUS_ISA, .name = "ISA   " },
	    sizeof(struct mpc_bus));
	put(b, &(struct mpc_ioapic){ .type = MP_IOAPIC, .id = ncpus,
		.version = IOAPIC_VERSION, .flags = 1, .addr = IOAPIC_ADDR },
	    sizeof(struct mpc_ioapic));
	put_irqs(b, ncpus, pci, n_pci);
	h.length = b->len;
	h.count = b->count;
	memcpy(b->p, &h, sizeof(h));
	h.checksum = checksum(b->p, b->len);
	memcpy(b->p, &h, sizeof(h));
}

/* Build in host memory, checksum, then copy in: no half-written table. */
int mptable_write(struct guest_mem *gm, int ncpus,
		  const struct boot_pci_irq *pci_irqs, int n_pci_irqs)
{
	size_t size = sizeof(struct mpc_header) + ncpus * sizeof(struct mpc_cpu) +
		      2 * sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
		      (MPC_IRQ_ENTRIES + n_pci_irqs) * sizeof(struct mpc_irq);
	u64 config = BOOT_MPTABLE_ADDR + sizeof(struct mpf);
	struct mpf f = { .signature = "_MP_", .physptr = config, .length = 1,
			 .spec_rev = MP_SPEC_REV };
	struct mp_buf b = { 0 };
	int ret;

	if (n_pci_irqs < 0 || n_pci_irqs > BOOT_MAX_PCI_IRQS)
		return fail("%d PCI interrupts: the MP table takes at most %d",
			    n_pci_irqs, BOOT_MAX_PCI_IRQS);
	if (ncpus < 1 || ncpus > MPTABLE_MAX_CPUS)
		return fail("%d CPUs: the MP table describes 1 to %d", ncpus, MPTABLE_MAX_CPUS);
	/* With many CPUs the table runs past 640 KiB into the legacy hole;
	 * it still must not reach the ACPI area. */
	if (config + size > BOOT_ACPI_ADDR)
		return fail("MP table for %d CPUs does not fit below %#llx", ncpus, BOOT_ACPI_ADDR);
	b.p = calloc(1, size);
	if (!b.p)
		return fail("no memory for the MP table");
	build_config(&b, ncpus, pci_irqs, n_pci_irqs);
	f.checksum = checksum(&f, sizeof(f));
	ret = guest_write(gm, BOOT_MPTABLE_ADDR, &f, sizeof(f)) |
	      guest_write(gm, config, b.p, b.len);
	free(b.p);
	return ret < 0 ? fail("guest memory too small for the MP table") : 0;
}
