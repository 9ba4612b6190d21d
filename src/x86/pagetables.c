/*
 * pagetables.c: the identity map and GDT a 64-bit entry needs.
 *
 * The 64-bit boot protocol starts the kernel with paging already on, so
 * someone has to provide page tables: the first 4 GiB mapped 1:1 with
 * 2 MiB pages covers the kernel, the zero page, the command line and the
 * initrd wherever they are, and costs six pages (PML4, PDPT, four page
 * directories).  The kernel builds its own tables within microseconds;
 * these only have to get it there.
 *
 * The GDT holds the two flat segments the protocol names (__BOOT_CS 0x10
 * and __BOOT_DS 0x18) and a TSS descriptor, because KVM wants a usable
 * task register in long mode.
 */
#include "x86/x86.h"

#include <string.h>

#define PTE_PRESENT	(1ULL << 0)
#define PTE_WRITE	(1ULL << 1)
#define PTE_LARGE	(1ULL << 7)	/* a 2 MiB page in a page directory */
#define PT_ENTRIES	512
#define PT_PAGE		4096

#define PML4_ADDR	BOOT_PGTABLE_ADDR
#define PDPT_ADDR	(BOOT_PGTABLE_ADDR + PT_PAGE)
#define PD_ADDR		(BOOT_PGTABLE_ADDR + 2 * PT_PAGE)
#define PD_COUNT	4		/* one per GiB */

/* One PML4 entry, four PDPT entries, 2048 2 MiB pages: 0..4 GiB. */
int pagetables_write(struct guest_mem *gm, u64 *cr3)
{
	u64 *pml4 = guest_ptr(gm, PML4_ADDR, PT_PAGE);
	u64 *pdpt = guest_ptr(gm, PDPT_ADDR, PT_PAGE);
	u64 *pd = guest_ptr(gm, PD_ADDR, PD_COUNT * PT_PAGE);
	u64 i;

	if (!pml4 || !pdpt || !pd)
		return fail("guest memory too small for the boot page tables");
	memset(pml4, 0, PT_PAGE);
	memset(pdpt, 0, PT_PAGE);
	pml4[0] = PDPT_ADDR | PTE_PRESENT | PTE_WRITE;
	for (i = 0; i < PD_COUNT; i++)
		pdpt[i] = (PD_ADDR + i * PT_PAGE) | PTE_PRESENT | PTE_WRITE;
	/* The four directories are contiguous: entry i maps i * 2 MiB. */
	for (i = 0; i < PD_COUNT * PT_ENTRIES; i++)
		pd[i] = i * MiB(2) | PTE_PRESENT | PTE_WRITE | PTE_LARGE;
	*cr3 = PML4_ADDR;
	return 0;
}

/* Flat descriptors: base 0, limit 0xfffff pages; flags in the kernel's
 * GDT_ENTRY() notation (access byte low, G/D/L nibble high). */
static u64 gdt_entry(u16 flags, u32 base, u32 limit)
{
	return ((u64)(base & 0xff000000) << 32) | ((u64)(flags & 0xf0ff) << 40) |
	       ((u64)(limit & 0x000f0000) << 32) | ((u64)(base & 0x00ffffff) << 16) |
	       (limit & 0x0000ffff);
}

/* Linux's own boot GDT layout, so the selectors mean what it expects. */
int gdt_write(struct guest_mem *gm, u64 *base, u16 *limit)
{
	u64 gdt[] = {
		0,					/* null */
		0,					/* unused, as in Linux */
		gdt_entry(0xa09b, 0, 0xfffff),		/* 0x10: 64-bit code, L=1 */
		gdt_entry(0xc093, 0, 0xfffff),		/* 0x18: data, 4 GiB */
		gdt_entry(0x008b, 0, 0x67),		/* 0x20: busy 64-bit TSS... */
		0,					/* ...whose base is 64 bits */
	};

	if (guest_write(gm, BOOT_GDT_ADDR, gdt, sizeof(gdt)) < 0)
		return fail("guest memory too small for the GDT");
	*base = BOOT_GDT_ADDR;
	*limit = sizeof(gdt) - 1;
	return 0;
}
