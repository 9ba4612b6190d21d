/*
 * bootparams.c: the zero page, where a loader tells Linux about the world.
 *
 * It starts as a copy of the kernel's own setup header (so the kernel sees
 * its own values back) with the loader's answers filled in: who loaded it,
 * where the command line and initrd are, and the e820 map of RAM.
 */
#include "x86/x86.h"

#include <string.h>

/* Empty ranges are left out: a 0-byte e820 entry confuses nobody but
 * helps nobody either. */
static int e820_add(struct e820_entry *t, int n, int max, u64 addr, u64 size, u32 type)
{
	if (n < max && size)
		t[n++] = (struct e820_entry){ .addr = addr, .size = size, .type = type };
	return n;
}

/*
 * The map a PC BIOS would give: base memory up to the EBDA (where our MP
 * table lives), the legacy hole up to 1 MiB reserved, the rest of low RAM,
 * and RAM above 4 GiB if there is more than fits below the PCI hole.  The
 * hole itself is not listed: the kernel then leaves it to devices.
 */
int e820_build(const struct guest_mem *gm, struct e820_entry *table, int max)
{
	int n = 0;

	n = e820_add(table, n, max, 0, MIN(gm->low_size, BOOT_EBDA_START), E820_RAM);
	n = e820_add(table, n, max, BOOT_EBDA_START, MiB(1) - BOOT_EBDA_START, E820_RESERVED);
	if (gm->low_size > MiB(1))
		n = e820_add(table, n, max, MiB(1), gm->low_size - MiB(1), E820_RAM);
	n = e820_add(table, n, max, HIGH_RAM_START, gm->high_size, E820_RAM);
	return n;
}

/* The kernel copies at most cmdline_size bytes; a longer line would be
 * cut silently, so we refuse it instead. */
int cmdline_write(struct guest_mem *gm, const struct kernel *k, const char *cmdline)
{
	size_t len = strlen(cmdline);
	u64 limit = MIN((u64)k->hdr.cmdline_size, BOOT_CMDLINE_MAX - 1);

	if (len > limit)
		return fail("%s: command line is %zu bytes, the kernel accepts at most %llu",
			    k->path, len, (unsigned long long)limit);
	if (guest_write(gm, BOOT_CMDLINE_ADDR, cmdline, len + 1) < 0)
		return fail("guest memory too small for the command line");
	return 0;
}

/* The loader's half of the setup header. */
static void fill_header(struct setup_header *h, const struct kernel *k,
			u64 initrd_addr, u64 initrd_size)
{
	*h = k->hdr;
	h->type_of_loader = LOADER_TYPE_UNKNOWN;
	h->loadflags |= CAN_USE_HEAP;
	h->heap_end_ptr = BZ_HEAP_END;
	/* KASLR_FLAG says the kernel was relocated; only we know if it was. */
	if (k->kaslr_delta)
		h->loadflags |= KASLR_FLAG;
	else
		h->loadflags &= ~KASLR_FLAG;
	h->cmd_line_ptr = BOOT_CMDLINE_ADDR;
	h->ramdisk_image = (u32)initrd_addr;
	h->ramdisk_size = (u32)initrd_size;
}

/* The zero page starts all-zero: any field we do not set means "none",
 * which is what the kernel assumes of a loader that knows nothing. */
int bootparams_write(struct guest_mem *gm, const struct kernel *k,
		     u64 initrd_addr, u64 initrd_size)
{
	struct boot_params *bp = guest_ptr(gm, BOOT_PARAMS_ADDR, sizeof(*bp));
	struct setup_header h;
	struct e820_entry e820[E820_MAX];

	if (!bp)
		return fail("guest memory too small for the zero page");
	/* Build in locals and copy: packed fields, no pointers into them. */
	memset(bp, 0, sizeof(*bp));
	fill_header(&h, k, initrd_addr, initrd_size);
	memcpy(&bp->hdr, &h, sizeof(h));
	bp->ext_ramdisk_image = initrd_addr >> 32;
	bp->ext_ramdisk_size = initrd_size >> 32;
	bp->e820_entries = e820_build(gm, e820, E820_MAX);
	memcpy(bp->e820_table, e820, bp->e820_entries * sizeof(e820[0]));
	return 0;
}
