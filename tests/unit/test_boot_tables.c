/*
 * test_boot_tables.c: the tables the loader writes around the kernel.
 *
 * The e820 map and zero page for small and for >3 GiB guests (5 GiB of
 * MAP_NORESERVE memory costs nothing until touched), the identity page
 * tables walked the way the MMU walks them, the GDT's descriptors, and the
 * MP table read back the way Linux's mpparse does: find the floating
 * pointer, check both checksums, count the processors.
 */
#include "tap.h"
#include "x86/x86.h"

#include <stdlib.h>
#include <string.h>

static struct guest_mem gm;

static void fresh_mem(u64 size)
{
	guest_mem_free(&gm);
	if (guest_mem_init(&gm, size) < 0)
		abort();
}

static u64 rd64(u64 gpa)
{
	u64 v = ~0ULL;

	guest_read(&gm, gpa, &v, sizeof(v));
	return v;
}

static bool e820_is(const struct e820_entry *e, u64 addr, u64 size, u32 type)
{
	return e->addr == addr && e->size == size && e->type == type;
}

static void test_e820_small(void)
{
	struct e820_entry t[E820_MAX];
	int n;

	fresh_mem(MiB(128));
	n = e820_build(&gm, t, E820_MAX);
	is_int(n, 3, "128 MiB: three e820 entries");
	ok(e820_is(&t[0], 0, 0x9fc00, E820_RAM), "base memory up to the EBDA is RAM");
	ok(e820_is(&t[1], 0x9fc00, 0x100000 - 0x9fc00, E820_RESERVED),
	   "EBDA, VGA and BIOS area reserved");
	ok(e820_is(&t[2], MiB(1), MiB(127), E820_RAM), "1 MiB to the end is RAM");
}

static void test_e820_large(void)
{
	struct e820_entry t[E820_MAX];
	int n;

	fresh_mem(GiB(5));
	n = e820_build(&gm, t, E820_MAX);
	is_int(n, 4, "5 GiB: four e820 entries");
	ok(e820_is(&t[2], MiB(1), GiB(3) - MiB(1), E820_RAM), "low RAM stops at the PCI hole");
	ok(e820_is(&t[3], GiB(4), GiB(2), E820_RAM), "the rest continues at 4 GiB");
}

/* The zero page of a >3 GiB guest, with the loader's fields. */
static void test_zero_page(void)
{
	struct kernel k = { .path = "k", .load = MiB(16), .end = MiB(32), .kaslr_delta = MiB(6) };
	struct boot_params *bp;

	fresh_mem(GiB(5));
	k.hdr.version = 0x20f;
	k.hdr.loadflags = LOADED_HIGH;
	k.hdr.cmdline_size = 255;
	ok(bootparams_write(&gm, &k, 0x7000000, 12345) == 0, "zero page written");
	bp = guest_ptr(&gm, BOOT_PARAMS_ADDR, sizeof(*bp));
	is_int(bp->e820_entries, 4, "zero page carries the 4-entry map");
	ok(bp->e820_table[3].addr == GiB(4) && bp->e820_table[3].size == GiB(2),
	   "high RAM in the zero page");
	ok(bp->hdr.ramdisk_image == 0x7000000 && bp->hdr.ramdisk_size == 12345 &&
	   bp->ext_ramdisk_image == 0, "ramdisk fields");
	is_int(bp->hdr.loadflags, LOADED_HIGH | KASLR_FLAG | CAN_USE_HEAP,
	       "loadflags: kernel's own, KASLR_FLAG, CAN_USE_HEAP");
	is_int(bp->sentinel, 0, "sentinel zero: the header was copied, not garbage");
	ok(cmdline_write(&gm, &k, "root=/dev/vda") == 0 &&
	   !strcmp(guest_ptr(&gm, BOOT_CMDLINE_ADDR, 14), "root=/dev/vda"), "command line");
	{
		char line[300];

		memset(line, 'x', sizeof(line) - 1);
		line[sizeof(line) - 1] = 0;
		ok(cmdline_write(&gm, &k, line) < 0 &&
		   strstr(last_error(), "k: command line is 299 bytes, the kernel accepts at most 255"),
		   "a command line over cmdline_size is refused: %s", last_error());
	}
}

/* Translate a virtual address by walking the tables from cr3; ~0 if
 * unmapped.  Only what we build: 4 levels, 2 MiB leaves. */
static u64 walk(u64 cr3, u64 va)
{
	u64 pml4e = rd64(cr3 + ((va >> 39) & 511) * 8);
	u64 pdpte, pde;

	if (!(pml4e & 1))
		return ~0ULL;
	pdpte = rd64((pml4e & ~0xfffULL) + ((va >> 30) & 511) * 8);
	if (!(pdpte & 1))
		return ~0ULL;
	pde = rd64((pdpte & ~0xfffULL) + ((va >> 21) & 511) * 8);
	if (!(pde & 1) || !(pde & 0x80) || !(pde & 2))
		return ~0ULL;
	return (pde & ~(MiB(2) - 1) & 0xffffffffffULL) | (va & (MiB(2) - 1));
}

static void test_pagetables(void)
{
	static const u64 probes[] = { 0, 0x7000, MiB(16) + 0x200, 0x7ffff123,
				      0xbfffffff, 0xfec00000, 0xfee00000, 0xffffffff };
	u64 cr3 = 0;
	size_t i, same = 0;

	fresh_mem(MiB(64));
	ok(pagetables_write(&gm, &cr3) == 0, "page tables written");
	is_int(cr3, BOOT_PGTABLE_ADDR, "cr3");
	for (i = 0; i < ARRAY_SIZE(probes); i++)
		same += walk(cr3, probes[i]) == probes[i];
	is_int(same, ARRAY_SIZE(probes), "first 4 GiB identity mapped (8 probes)");
	ok(walk(cr3, GiB(4)) == ~0ULL && walk(cr3, 0xffffffff80000000ULL) == ~0ULL,
	   "nothing above 4 GiB");
	ok(BOOT_PGTABLE_ADDR + 6 * 4096 <= 0xf000 && BOOT_PARAMS_ADDR + 4096 <= BOOT_PGTABLE_ADDR,
	   "six table pages between the zero page and 0xf000");
}

static void test_gdt(void)
{
	u64 base = 0;
	u16 limit = 0;

	fresh_mem(MiB(64));
	ok(gdt_write(&gm, &base, &limit) == 0, "GDT written");
	ok(base == BOOT_GDT_ADDR && limit == 6 * 8 - 1, "base %#llx limit %u",
	   (unsigned long long)base, limit);
	is_int(rd64(base + BOOT_CS), 0x00af9b000000ffffULL, "0x10: flat 64-bit code (L=1, D=0)");
	is_int(rd64(base + BOOT_DS), 0x00cf93000000ffffULL, "0x18: flat 4 GiB data");
	is_int(rd64(base + BOOT_TSS), 0x00008b0000000067ULL, "0x20: busy TSS, limit 0x67");
	ok(rd64(base) == 0 && rd64(base + 8) == 0, "null descriptors");
}

/* What Linux checks: every byte of a structure sums to zero. */
static u8 sum(const u8 *p, size_t n)
{
	u8 s = 0;

	while (n--)
		s += *p++;
	return s;
}

/* Read back an MP table for ncpus and check it as mpparse would. */
static void check_mptable(int ncpus)
{
	const u8 *f, *c, *e;
	u32 physptr;
	u16 len, count, i;
	int cpus = 0, bsp = 0, ioapics = 0, irqs = 0, lints = 0, ioapic_id = -1, buses = 0;
	int identity = 0, pci_irqs = 0;
	/* Two PCI functions, as main() reports them from the PCI bus. */
	static const struct boot_pci_irq pci[] = { { 1, 1, 16 }, { 2, 1, 17 } };

	fresh_mem(MiB(64));
	if (!ok(mptable_write(&gm, ncpus, pci, 2) == 0, "%d CPUs: MP table written", ncpus))
		return;
	f = guest_ptr(&gm, BOOT_MPTABLE_ADDR, 16);
	memcpy(&physptr, f + 4, 4);
	ok(!memcmp(f, "_MP_", 4) && sum(f, 16) == 0 && f[8] == 1 && f[9] == 4,
	   "%d CPUs: floating pointer at 0x9fc00, checksum ok, spec 1.4", ncpus);
	c = guest_ptr(&gm, physptr, 44);
	memcpy(&len, c + 4, 2);
	memcpy(&count, c + 34, 2);
	c = guest_ptr(&gm, physptr, len);
	ok(c && !memcmp(c, "PCMP", 4) && sum(c, len) == 0,
	   "%d CPUs: config table checksum ok (%u bytes)", ncpus, len);
	for (e = c + 44, i = 0; i < count && e < c + len; i++) {
		switch (e[0]) {
		case 0:
			cpus += (e[3] & 1) && e[1] == cpus;
			bsp += (e[3] & 2) ? (e[1] == 0 ? 1 : 100) : 0;
			e += 20;
			continue;
		case 1:
			buses += (e[1] == 0 && !memcmp(e + 2, "PCI   ", 6)) ||
				 (e[1] == 1 && !memcmp(e + 2, "ISA   ", 6));
			break;
		case 2:
			ioapics++;
			ioapic_id = e[1];
			ok(e[2] == 0x11 && e[3] == 1 && e[4] == 0x00 && e[7] == 0xfe,
			   "%d CPUs: IOAPIC version 0x11 at 0xfec00000", ncpus);
			break;
		case 3:
			if (e[4] == 0) {	/* PCI: (slot << 2 | pin-1) -> gsi, level, high */
				pci_irqs += e[6] == ncpus && e[2] == 0x0d &&
					    ((e[5] == (1 << 2) && e[7] == 16) ||
					     (e[5] == (2 << 2) && e[7] == 17));
				break;
			}
			irqs++;
			identity += e[5] == e[7] && e[6] == ncpus && e[4] == 1;
			break;
		case 4:
			lints += (e[1] == 3 && e[7] == 0) || (e[1] == 1 && e[7] == 1);
			break;
		}
		e += 8;
	}
	ok(i == count && e == c + len, "%d CPUs: %u entries fill the table exactly", ncpus, count);
	is_int(cpus, ncpus, "processor entries, APIC ids 0..n-1");
	is_int(bsp, 1, "one boot processor, APIC id 0");
	ok(ioapics == 1 && ioapic_id == ncpus, "one IOAPIC with id n (%d)", ioapic_id);
	ok(irqs == 16 && identity == 16, "16 ISA interrupts, IRQ n on IOAPIC pin n (KVM's routing)");
	is_int(lints, 2, "ExtINT on LINT0, NMI on LINT1");
	is_int(pci_irqs, 2, "PCI INTA of slots 1 and 2 on GSI 16 and 17, level, active high");
	is_int(buses, 2, "bus 0 is PCI, bus 1 is ISA");
}

static void test_mptable(void)
{
	check_mptable(1);
	check_mptable(4);
	check_mptable(64);	/* past the first KiB: still below the ACPI area */
	check_mptable(MPTABLE_MAX_CPUS);
	ok(mptable_write(&gm, 0, NULL, 0) < 0 &&
	   mptable_write(&gm, MPTABLE_MAX_CPUS + 1, NULL, 0) < 0,
	   "0 or 255 CPUs refused: %s", last_error());
}

int main(void)
{
	test_e820_small();
	test_e820_large();
	test_zero_page();
	test_pagetables();
	test_gdt();
	test_mptable();
	guest_mem_free(&gm);
	return tap_done();
}
