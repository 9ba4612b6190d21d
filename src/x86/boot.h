/*
 * boot.h: putting a Linux kernel into guest memory.
 *
 * x86_boot_load() is the whole boot story: it recognises the kernel file
 * (bzImage or ELF vmlinux), loads it (decompressing a bzImage's payload on
 * the host when it can, from a cache when it has seen the kernel before),
 * loads the initrd(s), writes boot_params with the e820 map and command
 * line, and builds the identity page tables, GDT and MP table.  It returns
 * the register state the boot CPU starts with.  It never calls KVM.
 */
#ifndef X86_BOOT_H
#define X86_BOOT_H

#include "guest_mem.h"

/* Fixed guest-physical layout of the things the loader writes below 1 MiB. */
#define BOOT_GDT_ADDR		0x500ULL
#define BOOT_PARAMS_ADDR	0x7000ULL	/* the "zero page" */
#define BOOT_PGTABLE_ADDR	0x9000ULL	/* PML4, PDPT, 4 PDs: 0x9000..0xefff */
#define BOOT_CMDLINE_ADDR	0x20000ULL
#define BOOT_CMDLINE_MAX	0x10000ULL	/* 64 KiB, cmdline_size caps it further */
#define BOOT_MPTABLE_ADDR	0x9fc00ULL	/* last KiB of base memory */
#define BOOT_EBDA_START		0x9fc00ULL	/* 0x9fc00..0x100000 is not RAM in e820 */
#define BOOT_ACPI_ADDR		0xe0000ULL	/* room for RSDP and tables (issue 5) */

/* Selectors the 64-bit boot protocol requires. */
#define BOOT_CS 0x10
#define BOOT_DS 0x18
/* A busy 64-bit TSS (base 0, limit 0x67) for the task register KVM wants. */
#define BOOT_TSS 0x20

/* A PCI device's legacy interrupt, for the MP table. */
struct boot_pci_irq {
	u8 slot;	/* device number on bus 0 */
	u8 pin;		/* 1 = INTA ... 4 = INTD */
	u32 gsi;	/* IOAPIC input */
};

#define BOOT_MAX_PCI_IRQS 32

struct boot_setup {
	const char *kernel_path;
	const char *const *initrd_paths;	/* concatenated in this order */
	int n_initrd;
	const char *cmdline;		/* final command line (defaults added by caller) */
	int ncpus;			/* for the MP table, >= 1 */
	const struct boot_pci_irq *pci_irqs;	/* for the MP table */
	int n_pci_irqs;
	bool no_host_decompress;	/* force the bzImage path */
	const char *cache_dir;		/* NULL: $XDG_CACHE_HOME/lguest or ~/.cache/lguest; "" disables */
	bool cache_async;		/* write the cache on a thread while the guest starts */
};

/* How the boot CPU starts: 64-bit long mode, paging on, interrupts off. */
struct boot_entry {
	u64 rip;		/* kernel entry (guest-physical, identity mapped) */
	u64 rsi;		/* boot_params address */
	u64 cr3;		/* identity page tables */
	u64 gdt_base;
	u16 gdt_limit;
	const char *how;	/* "bzImage", "decompressed bzImage (cached)", "ELF vmlinux" ... for --verbose */
};

/* 0 on success; -1 with last_error() set to one line naming file and problem. */
int x86_boot_load(struct guest_mem *gm, const struct boot_setup *s, struct boot_entry *out);

#endif
