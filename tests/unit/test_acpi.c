/*
 * test_acpi.c: the ACPI tables as a guest kernel would walk them, and the
 * two ports behind them (PM1 for soft-off, pvpanic).
 *
 * The walk starts where Linux starts, at the RSDP, and follows pointers
 * only: a table reachable from nowhere would be as good as missing.  If
 * acpica-tools' iasl is installed, each table is also disassembled by it,
 * as a second opinion from the reference implementation.
 */
#include "tap.h"
#include "x86/acpi.h"
#include "x86/boot.h"
#include "bus/bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct guest_mem gm;

/* Bytes [gpa, gpa+len) of guest memory, or NULL. */
static const u8 *at(u64 gpa, u64 len)
{
	return guest_ptr(&gm, gpa, len);
}

static u32 le32(const u8 *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24;
}

static u64 le64(const u8 *p)
{
	return le32(p) | (u64)le32(p + 4) << 32;
}

static u8 sum(const u8 *p, u64 len)
{
	u8 s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* A whole table at gpa, checked: in RAM, signature, checksum. */
static const u8 *table(u64 gpa, const char *sig)
{
	const u8 *h = at(gpa, 36);
	u32 len;

	if (!h || memcmp(h, sig, 4))
		return NULL;
	len = le32(h + 4);
	h = at(gpa, len);
	ok(h && sum(h, len) == 0, "%s at %#llx: %u bytes, checksum sums to 0", sig,
	   (unsigned long long)gpa, len);
	return h;
}

/* Are these exact bytes somewhere in the table?  (AML has no index.) */
static bool contains(const u8 *p, u64 len, const void *needle, u64 n)
{
	for (u64 i = 0; i + n <= len; i++)
		if (!memcmp(p + i, needle, n))
			return true;
	return false;
}

/* MADT entries of one type. */
static int madt_count(const u8 *madt, u8 type)
{
	u32 len = le32(madt + 4), off = 44;
	int n = 0;

	while (off + 2 <= len && madt[off + 1] >= 2) {
		if (madt[off] == type)
			n++;
		off += madt[off + 1];
	}
	return n;
}

/* The first MADT entry of a type, or NULL. */
static const u8 *madt_find(const u8 *madt, u8 type)
{
	u32 len = le32(madt + 4), off = 44;

	while (off + 2 <= len && madt[off + 1] >= 2) {
		if (madt[off] == type)
			return madt + off;
		off += madt[off + 1];
	}
	return NULL;
}

struct found {
	const u8 *fadt, *madt, *dsdt, *facs;
};

/* From the RSDP down, as Linux does. */
static struct found walk(u64 rsdp_gpa)
{
	struct found f = { 0 };
	const u8 *r = at(rsdp_gpa, 36), *x;
	u32 n;

	ok(r && !memcmp(r, "RSD PTR ", 8), "RSDP signature");
	if (!r)
		return f;
	ok(sum(r, 20) == 0 && sum(r, 36) == 0 && r[15] == 2 && le32(r + 20) == 36,
	   "RSDP: revision 2, both checksums right");
	x = table(le64(r + 24), "XSDT");
	if (!x)
		return f;
	n = (le32(x + 4) - 36) / 8;
	is_int(n, 2, "XSDT has two entries");
	for (u32 i = 0; i < n; i++) {
		u64 gpa = le64(x + 36 + 8 * i);
		const u8 *h = at(gpa, 4);

		if (h && !memcmp(h, "FACP", 4))
			f.fadt = table(gpa, "FACP");
		else if (h && !memcmp(h, "APIC", 4))
			f.madt = table(gpa, "APIC");
	}
	ok(f.fadt && f.madt, "XSDT points at the FADT and the MADT");
	if (!f.fadt)
		return f;
	f.dsdt = table(le64(f.fadt + 140), "DSDT");
	ok(f.dsdt && le32(f.fadt + 40) == le64(f.fadt + 140), "FADT points at the DSDT (32 and 64 bit)");
	f.facs = at(le64(f.fadt + 132), 64);
	ok(f.facs && !memcmp(f.facs, "FACS", 4) && le32(f.facs + 4) == 64 &&
	   le64(f.fadt + 132) % 64 == 0, "FADT points at a 64-byte aligned FACS");
	is_int(le32(f.fadt + 36), 0, "FADT: 32-bit FIRMWARE_CTRL is 0 beside X_FIRMWARE_CTRL");
	return f;
}

/* The FADT fields Linux needs for full-hardware ACPI and soft-off. */
static void check_fadt(const u8 *f)
{
	ok(f[8] == 6 && le32(f + 4) == 276, "FADT revision 6, 276 bytes");
	ok(!(le32(f + 112) & (1u << 20)), "FADT: not HW_REDUCED_ACPI");
	is_int(f[46] | f[47] << 8, ACPI_SCI_IRQ, "FADT: SCI interrupt");
	is_int(le32(f + 48), 0, "FADT: no SMI_CMD, already in ACPI mode");
	is_int(le32(f + 56), ACPI_PM1_EVT_PORT, "FADT: PM1a event block");
	is_int(le32(f + 64), ACPI_PM1_CNT_PORT, "FADT: PM1a control block");
	ok(f[88] == 4 && f[89] == 2, "FADT: PM1 lengths 4 and 2");
	ok((f[109] | f[110] << 8) & 2, "FADT: IAPC_BOOT_ARCH says there is an 8042");
	ok(!((f[109] | f[110] << 8) & 8), "FADT: MSI not disabled");
	ok(f[172] == 1 && le64(f + 176) == ACPI_PM1_CNT_PORT && f[173] == 16,
	   "FADT: X_PM1a_CNT_BLK is the 16-bit I/O port");
}

/* CPUs, IOAPIC and interrupt wiring, as KVM sets them up. */
static void check_madt(const u8 *m, int ncpus)
{
	const u8 *io = madt_find(m, 1), *iso = madt_find(m, 2);
	bool ids_ok = true;
	u32 off = 44;

	is_int(madt_count(m, 0), ncpus, "MADT: one local APIC per CPU");
	for (int i = 0; off < le32(m + 4); off += m[off + 1]) {
		if (m[off] != 0)
			continue;
		/* uid, APIC id = index; enabled */
		ids_ok &= m[off + 2] == i && m[off + 3] == i && (le32(m + off + 4) & 1);
		i++;
	}
	ok(ids_ok, "MADT: APIC ids 0..%d, all enabled", ncpus - 1);
	ok(io && io[2] == ncpus && le32(io + 4) == 0xfec00000 && le32(io + 8) == 0,
	   "MADT: IOAPIC id %d at 0xfec00000, GSI base 0", ncpus);
	ok(iso && iso[2] == 0 && iso[3] == ACPI_SCI_IRQ && le32(iso + 4) == ACPI_SCI_IRQ &&
	   (iso[8] | iso[9] << 8) == 0xd, "MADT: IRQ 9 -> GSI 9, level, active high");
	is_int(madt_count(m, 2), 1, "MADT: no other overrides (ISA IRQs are identity)");
	is_int(le32(m + 36), 0xfee00000, "MADT: local APIC address");
}

/* The AML we promise, as the bytes iasl would have produced. */
static void check_dsdt(const u8 *d)
{
	u32 len = le32(d + 4);
	/* Name (_S5_, Package (4) { 5, 5, 0, 0 }) */
	static const u8 s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
				 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
	/* Name (_HID, EisaId ("PNP0A03")) */
	static const u8 pci_hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	/* Name (_HID, "QEMU0001") */
	static const u8 pv_hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0d,
				     'Q', 'E', 'M', 'U', '0', '0', '0', '1', 0 };
	/* IO (Decode16, 0x505, 0x505, 1, 1) */
	static const u8 pv_io[] = { 0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01 };
	/* Package (4) { 0x0001ffff, 0, 0, 16 }: slot 1's INTA */
	static const u8 prt1[] = { 0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00,
				   0x00, 0x00, 0x0a, 0x10 };

	ok(d[8] == 2, "DSDT revision 2 (64-bit integers)");
	ok(contains(d, len, s5, sizeof(s5)), "DSDT: \\_S5 package with SLP_TYP %d", ACPI_S5_SLP_TYP);
	ok(contains(d, len, pci_hid, sizeof(pci_hid)), "DSDT: a PNP0A03 host bridge");
	ok(contains(d, len, prt1, sizeof(prt1)), "DSDT: _PRT routes slot 1 INTA to GSI 16");
	ok(contains(d, len, pv_hid, sizeof(pv_hid)) && contains(d, len, pv_io, sizeof(pv_io)),
	   "DSDT: QEMU0001 with I/O port 0x505");
}

/* Write one table to dir/name.dat for iasl. */
static bool dump(const char *dir, const char *name, const u8 *t)
{
	char path[256];
	FILE *f;
	bool good;

	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return false;
	good = fwrite(t, 1, le32(t + 4), f) == le32(t + 4);
	return fclose(f) == 0 && good;
}

/*
 * iasl -d: the reference disassembler parses every table and the AML.
 * It fails on AML it cannot parse, reports errors and warnings in its
 * log and marks bad checksums in its output; we accept none of these.
 * Then the disassembled DSDT must name what we put in it.
 */
static void check_with_iasl(const struct found *f)
{
	char dir[] = "/tmp/lguest-acpi-XXXXXX", cmd[512];
	static const char *const names[] = { "facp", "apic", "dsdt" };
	const u8 *tabs[] = { f->fadt, f->madt, f->dsdt };
	int rc;

	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		ok(1, "# SKIP iasl not installed (apt-get install acpica-tools)");
		return;
	}
	if (!mkdtemp(dir)) {
		ok(0, "temporary directory for iasl");
		return;
	}
	for (int i = 0; i < 3; i++) {
		if (!dump(dir, names[i], tabs[i])) {
			ok(0, "dump %s", names[i]);
			continue;
		}
		snprintf(cmd, sizeof(cmd),
			 "cd %s && iasl -d %s.dat >%s.log 2>&1 && "
			 "! grep -Eiq 'error|warning' %s.log && "
			 "! grep -q 'Incorrect checksum' %s.dsl",
			 dir, names[i], names[i], names[i], names[i]);
		rc = system(cmd);
		ok(rc == 0, "iasl disassembles %s without errors or warnings", names[i]);
		if (rc) {
			snprintf(cmd, sizeof(cmd), "sed 's/^/# /' %s/%s.log", dir, names[i]);
			if (system(cmd))
				tap_diag("(no iasl log)");
		}
	}
	snprintf(cmd, sizeof(cmd),
		 "cd %s && grep -q 'Name (_S5, Package (0x04)' dsdt.dsl && "
		 "grep -q 'EisaId (\"PNP0A03\")' dsdt.dsl && grep -q '\"QEMU0001\"' dsdt.dsl && "
		 "grep -q 'Device (PCI0)' dsdt.dsl && grep -q 'Device (PEVT)' dsdt.dsl && "
		 "grep -q 'DWordMemory' dsdt.dsl", dir);
	ok(system(cmd) == 0, "iasl's DSDT: _S5, PCI0 (PNP0A03), PEVT (QEMU0001), memory window");
	/* Round trip: the disassembly compiles back. */
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -p recompiled dsdt.dsl >recompile.log 2>&1", dir);
	ok(system(cmd) == 0, "iasl recompiles the disassembled DSDT");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		tap_diag("could not remove %s", dir);
}

static int poweroffs, panics;

/* The callbacks main() would pass (vm_stop), counted instead. */
static void count_poweroff(void)
{
	poweroffs++;
}

/* Likewise for pvpanic. */
static void count_panic(void)
{
	panics++;
}

/* A guest IN of len bytes. */
static u32 pio_read(u16 port, u32 len)
{
	u32 v = 0;

	bus_access(BUS_PIO, port, &v, len, false);
	return v;
}

/* A guest OUT of len bytes (little-endian v). */
static void pio_write(u16 port, u32 v, u32 len)
{
	bus_access(BUS_PIO, port, &v, len, true);
}

#define SLP_EN		0x2000
#define SLP_TYP(t)	((t) << 10)

/* SLP_EN with SLP_TYP 5 powers off; nothing else does. */
static void test_pm(void)
{
	u32 t0, t1;

	bus_reset_all();
	ok(acpi_pm_create(count_poweroff) == 0, "PM1 registers on the port bus");
	ok(pio_read(ACPI_PM1_CNT_PORT, 2) & 1, "PM1 control reads SCI_EN: ACPI mode");
	pio_write(ACPI_PM1_CNT_PORT, SLP_TYP(ACPI_S5_SLP_TYP), 2);
	is_int(poweroffs, 0, "SLP_TYP 5 without SLP_EN does nothing");
	is_int(pio_read(ACPI_PM1_CNT_PORT, 2), SLP_TYP(ACPI_S5_SLP_TYP) | 1,
	       "SLP_TYP reads back, SCI_EN kept");
	pio_write(ACPI_PM1_CNT_PORT, SLP_TYP(1) | SLP_EN, 2);
	pio_write(ACPI_PM1_CNT_PORT, SLP_TYP(3) | SLP_EN, 2);
	pio_write(ACPI_PM1_CNT_PORT, SLP_TYP(0) | SLP_EN, 2);
	is_int(poweroffs, 0, "SLP_EN with SLP_TYP 0, 1 or 3 does not power off");
	is_int(pio_read(ACPI_PM1_CNT_PORT, 2) & SLP_EN, 0, "SLP_EN reads as 0");
	pio_write(ACPI_PM1_CNT_PORT, SLP_TYP(ACPI_S5_SLP_TYP) | SLP_EN, 2);
	is_int(poweroffs, 1, "SLP_EN with SLP_TYP 5 (16-bit write) powers off");
	/* The high byte alone, as a byte-wide OS write would do it. */
	pio_write(ACPI_PM1_CNT_PORT + 1, (SLP_TYP(ACPI_S5_SLP_TYP) | SLP_EN) >> 8, 1);
	is_int(poweroffs, 2, "... and as a byte write to the high half");
	pio_write(ACPI_PM1_CNT_PORT, 0, 2);
	ok(pio_read(ACPI_PM1_CNT_PORT, 2) == 1, "writing 0 cannot clear SCI_EN");

	pio_write(ACPI_PM1_EVT_PORT + 2, 0xffff, 2);
	is_int(pio_read(ACPI_PM1_EVT_PORT + 2, 2), 0x4721, "PM1 enable keeps only defined bits");
	pio_write(ACPI_PM1_EVT_PORT + 2, 0x0100, 2);
	is_int(pio_read(ACPI_PM1_EVT_PORT + 2, 2), 0x0100, "PM1 enable reads back");
	pio_write(ACPI_PM1_EVT_PORT, 0xffff, 2);
	is_int(pio_read(ACPI_PM1_EVT_PORT, 2), 0, "PM1 status: nothing pending, write-1-to-clear");
	is_int(pio_read(ACPI_PM1_EVT_PORT, 4), 0x01000000, "PM1 event block as one dword");

	t0 = pio_read(ACPI_PM_TMR_PORT, 4);
	usleep(2000);
	t1 = pio_read(ACPI_PM_TMR_PORT, 4);
	ok(t0 < 0x1000000 && t1 < 0x1000000, "PM timer is 24 bits");
	/* 2 ms at 3.58 MHz is ~7160 ticks; allow a slow scheduler. */
	ok(((t1 - t0) & 0xffffff) >= 7000 && ((t1 - t0) & 0xffffff) < 3579545,
	   "PM timer advances at ~3.58 MHz (%u ticks in 2 ms+)", (t1 - t0) & 0xffffff);
	pio_write(ACPI_PM_TMR_PORT, 0, 4);
	is_int(pio_read(ACPI_PM_TMR_PORT + 3, 1), 0, "PM timer's top byte is 0 and writes are dropped");
	is_int(pio_read(ACPI_PM_TMR_PORT + 2, 4) >> 16, 0xffff,
	       "a read running past the block gets all-ones there");
	is_int(poweroffs, 2, "none of that powered off");
}

/* Reads offer PANICKED; only a write with bit 0 reports a panic. */
static void test_pvpanic(void)
{
	bus_reset_all();
	ok(pvpanic_create(count_panic) == 0, "pvpanic on the port bus");
	is_int(pio_read(PVPANIC_PORT, 1), PVPANIC_PANICKED, "pvpanic offers PANICKED only");
	pio_write(PVPANIC_PORT, PVPANIC_CRASH_LOADED, 1);
	pio_write(PVPANIC_PORT, 0, 1);
	is_int(panics, 0, "CRASH_LOADED and 0 are not a panic");
	pio_write(PVPANIC_PORT, PVPANIC_PANICKED, 1);
	is_int(panics, 1, "writing PANICKED reports the panic");
	pio_write(PVPANIC_PORT, 0xff, 1);
	is_int(panics, 2, "any value with bit 0 does");
}

/* Build, walk and check tables for 4, 254 and 1 CPUs; then the ports. */
int main(void)
{
	struct found f;
	u64 rsdp = 0;

	if (guest_mem_init(&gm, MiB(16))) {
		ok(0, "guest_mem_init: %s", last_error());
		return tap_done();
	}
	ok(acpi_build(&gm, 0, &rsdp) < 0, "0 CPUs refused");
	ok(acpi_build(&gm, ACPI_MAX_CPUS + 1, &rsdp) < 0, "%d CPUs refused", ACPI_MAX_CPUS + 1);

	ok(acpi_build(&gm, 4, &rsdp) == 0, "tables for 4 CPUs built");
	is_int(rsdp, BOOT_ACPI_ADDR, "RSDP at BOOT_ACPI_ADDR");
	f = walk(rsdp);
	if (f.fadt && f.madt && f.dsdt) {
		check_fadt(f.fadt);
		check_madt(f.madt, 4);
		check_dsdt(f.dsdt);
		check_with_iasl(&f);
	}

	/* The largest machine still fits, and a 1-CPU one is tidy too. */
	ok(acpi_build(&gm, ACPI_MAX_CPUS, &rsdp) == 0, "tables for %d CPUs built", ACPI_MAX_CPUS);
	f = walk(rsdp);
	if (f.madt)
		check_madt(f.madt, ACPI_MAX_CPUS);
	ok(acpi_build(&gm, 1, &rsdp) == 0, "tables for 1 CPU built");
	f = walk(rsdp);
	if (f.madt)
		is_int(madt_count(f.madt, 0), 1, "MADT: one local APIC");
	guest_mem_free(&gm);

	/* No RAM where the tables go: an error, not a crash. */
	ok(guest_mem_init(&gm, KiB(512)) == 0 && acpi_build(&gm, 1, &rsdp) < 0,
	   "a guest without RAM at 0xe0000 gets an error");
	guest_mem_free(&gm);

	test_pm();
	test_pvpanic();
	return tap_done();
}
