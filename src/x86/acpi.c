/*
 * acpi.c: the ACPI tables, and the three ports behind them.
 *
 * Why ACPI at all, when the MP table already tells Linux about the CPUs?
 * Because without it a guest cannot switch itself off: `poweroff` ends in
 * an ACPI S5 transition, and a kernel with no ACPI just halts and waits
 * forever.  So we give the guest the smallest set of tables a stock kernel
 * accepts as a real PC: an FADT describing full (not hardware-reduced)
 * ACPI with a PM1 register block, a DSDT with \_S5, and a MADT.
 *
 * Once Linux has ACPI it stops believing in anything ACPI does not
 * describe, which is why the DSDT also carries the PCI host bridge (no
 * PNP0A03 device, no PCI bus: the legacy probe is skipped) with its
 * interrupt routing, mirroring what bus/pci.h promises the MP table.
 *
 * The tables are laid out in a host buffer, checksummed, and copied into
 * guest memory at BOOT_ACPI_ADDR in one guest_write(): that area is in the
 * e820 hole below 1 MiB, where Linux also scans for the RSDP if the boot
 * protocol's acpi_rsdp_addr is not set.
 *
 * Layouts and values are from the ACPI 6.3 specification (sections 5.2
 * and 19/20); the section of each is named where it is used.
 */
#include "x86/acpi.h"
#include "x86/boot.h"
#include "bus/bus.h"
#include "bus/pci.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define PACKED __attribute__((packed))

/* --- table layouts (5.2) ------------------------------------------------ */

/* 5.2.5.3: the Root System Description Pointer, version 2. */
struct acpi_rsdp {
	char signature[8];	/* "RSD PTR " */
	u8 checksum;		/* the first 20 bytes (ACPI 1.0 part) sum to 0 */
	char oem_id[6];
	u8 revision;		/* 2: the fields below exist */
	u32 rsdt_address;	/* 0: we only give an XSDT */
	u32 length;
	u64 xsdt_address;
	u8 ext_checksum;	/* all 36 bytes sum to 0 */
	u8 reserved[3];
} PACKED;

/* 5.2.6: the header every description table starts with. */
struct acpi_header {
	char signature[4];
	u32 length;		/* whole table, header included */
	u8 revision;
	u8 checksum;		/* whole table sums to 0 */
	char oem_id[6];
	char oem_table_id[8];
	u32 oem_revision;
	char creator_id[4];
	u32 creator_revision;
} PACKED;

/* 5.2.3.2: Generic Address Structure. */
struct acpi_gas {
	u8 space_id;		/* 1: system I/O */
	u8 bit_width;
	u8 bit_offset;
	u8 access_size;		/* 1 byte, 2 word, 3 dword */
	u64 address;
} PACKED;

/* 5.2.9: Fixed ACPI Description Table, revision 6. */
struct acpi_fadt {
	struct acpi_header h;
	u32 firmware_ctrl;
	u32 dsdt;
	u8 reserved0;
	u8 preferred_pm_profile;
	u16 sci_int;
	u32 smi_cmd;
	u8 acpi_enable;
	u8 acpi_disable;
	u8 s4bios_req;
	u8 pstate_cnt;
	u32 pm1a_evt_blk;
	u32 pm1b_evt_blk;
	u32 pm1a_cnt_blk;
	u32 pm1b_cnt_blk;
	u32 pm2_cnt_blk;
	u32 pm_tmr_blk;
	u32 gpe0_blk;
	u32 gpe1_blk;
	u8 pm1_evt_len;
	u8 pm1_cnt_len;
	u8 pm2_cnt_len;
	u8 pm_tmr_len;
	u8 gpe0_blk_len;
	u8 gpe1_blk_len;
	u8 gpe1_base;
	u8 cst_cnt;
	u16 p_lvl2_lat;
	u16 p_lvl3_lat;
	u16 flush_size;
	u16 flush_stride;
	u8 duty_offset;
	u8 duty_width;
	u8 day_alrm;
	u8 mon_alrm;
	u8 century;
	u16 iapc_boot_arch;
	u8 reserved1;
	u32 flags;
	struct acpi_gas reset_reg;
	u8 reset_value;
	u16 arm_boot_arch;
	u8 minor_version;
	u64 x_firmware_ctrl;
	u64 x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	u64 hypervisor_vendor_id;
} PACKED;

/* 5.2.10: Firmware ACPI Control Structure.  No checksum; 64-byte aligned. */
struct acpi_facs {
	char signature[4];
	u32 length;
	u32 hardware_signature;
	u32 waking_vector;
	u32 global_lock;
	u32 flags;
	u64 x_waking_vector;
	u8 version;
	u8 reserved0[3];
	u32 ospm_flags;
	u8 reserved1[24];
} PACKED;

/* 5.2.12: Multiple APIC Description Table and its entries. */
struct acpi_madt {
	struct acpi_header h;
	u32 lapic_address;
	u32 flags;
} PACKED;

struct madt_lapic {		/* 5.2.12.2, type 0 */
	u8 type, length;
	u8 processor_uid;
	u8 apic_id;
	u32 flags;		/* bit 0: enabled */
} PACKED;

struct madt_ioapic {		/* 5.2.12.3, type 1 */
	u8 type, length;
	u8 id;
	u8 reserved;
	u32 address;
	u32 gsi_base;
} PACKED;

struct madt_iso {		/* 5.2.12.5, type 2 */
	u8 type, length;
	u8 bus;			/* 0: ISA */
	u8 source;		/* ISA IRQ */
	u32 gsi;
	u16 flags;		/* polarity bits 1:0, trigger bits 3:2 */
} PACKED;

struct madt_lapic_nmi {		/* 5.2.12.7, type 4 */
	u8 type, length;
	u8 processor_uid;	/* 0xff: all processors */
	u16 flags;
	u8 lint;
} PACKED;

static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");
static_assert(sizeof(struct acpi_header) == 36, "table header is 36 bytes");
static_assert(sizeof(struct acpi_gas) == 12, "GAS is 12 bytes");
static_assert(sizeof(struct acpi_fadt) == 276, "FADT rev 6 is 276 bytes");
static_assert(offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "IAPC_BOOT_ARCH");
static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "X_DSDT");
static_assert(offsetof(struct acpi_fadt, x_pm1a_cnt_blk) == 172, "X_PM1a_CNT_BLK");
static_assert(offsetof(struct acpi_fadt, hypervisor_vendor_id) == 268, "hypervisor id");
static_assert(sizeof(struct acpi_facs) == 64, "FACS is 64 bytes");
static_assert(sizeof(struct acpi_madt) == 44, "MADT header");
static_assert(sizeof(struct madt_lapic) == 8, "MADT local APIC");
static_assert(sizeof(struct madt_ioapic) == 12, "MADT IOAPIC");
static_assert(sizeof(struct madt_iso) == 10, "MADT override");
static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT local APIC NMI");

#define GAS_SYSTEM_IO		1
#define GAS_ACCESS_BYTE		1
#define GAS_ACCESS_WORD		2
#define GAS_ACCESS_DWORD	3

/* FADT flags (5.2.9, table 5-34). */
#define FADT_WBINVD		(1u << 0)
#define FADT_PROC_C1		(1u << 2)
#define FADT_PWR_BUTTON		(1u << 4)	/* set: no fixed power button */
#define FADT_SLP_BUTTON		(1u << 5)	/* set: no fixed sleep button */
#define FADT_FIX_RTC		(1u << 6)	/* set: no RTC wake status */
/* IA-PC boot architecture flags (5.2.9.3). */
#define BOOT_ARCH_8042		(1u << 1)
#define BOOT_ARCH_NO_VGA	(1u << 2)

#define MADT_PCAT_COMPAT	1	/* there are 8259 PICs too */
#define MADT_ENABLED		1
#define ISO_ACTIVE_HIGH		0x1
#define ISO_LEVEL		(0x3 << 2)

#define LAPIC_ADDRESS		0xfee00000u
#define IOAPIC_ADDRESS		0xfec00000u

/* --- laying the tables out ------------------------------------------------ */

/*
 * The staging buffer: everything acpi_build() writes, in guest order.
 * 16 KiB holds the largest MADT (254 CPUs: ~2 KiB) many times over.
 */
#define ACPI_AREA_SIZE		KiB(16)

struct acpi_area {
	u8 buf[ACPI_AREA_SIZE];
	u64 used;
};

/*
 * Claim len bytes at the given alignment; offset into the area, or -1.
 * The area is zeroed, so reserved fields need no writing.
 */
static s64 area_alloc(struct acpi_area *a, u64 len, u64 align)
{
	u64 off = ALIGN_UP(a->used, align);

	if (off > ACPI_AREA_SIZE || len > ACPI_AREA_SIZE - off)
		return fail("ACPI tables do not fit in %llu KiB",
			    (unsigned long long)(ACPI_AREA_SIZE >> 10));
	a->used = off + len;
	return off;
}

static u64 area_gpa(s64 off)
{
	return BOOT_ACPI_ADDR + off;
}

/* The byte that makes [p, p+len) sum to zero (mod 256). */
static u8 acpi_checksum(const void *p, u64 len)
{
	const u8 *b = p;
	u8 sum = 0;

	for (u64 i = 0; i < len; i++)
		sum += b[i];
	return (u8)-sum;
}

/* A table header with our identity; the checksum comes last. */
static void header_init(struct acpi_header *h, const char *sig, u32 len, u8 rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, "LGUEST", 6);
	memcpy(h->oem_table_id, "LGUEST  ", 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "LGST", 4);
	h->creator_revision = 1;
}

/* Seal a finished table: its checksum covers every byte of it. */
static void header_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = acpi_checksum(h, h->length);
}

/* A register block of `bytes` bytes at an I/O port, for the X_ fields. */
static struct acpi_gas io_gas(u16 port, u8 bytes)
{
	return (struct acpi_gas){
		.space_id = GAS_SYSTEM_IO,
		.bit_width = bytes * 8,
		.access_size = bytes == 4 ? GAS_ACCESS_DWORD :
			       bytes == 2 ? GAS_ACCESS_WORD : GAS_ACCESS_BYTE,
		.address = port,
	};
}

/* --- AML, by hand (section 20) ----------------------------------------- */

/*
 * The DSDT's body is AML bytecode.  Rather than carry a compiler, we emit
 * the few constructs we need with the functions below, each named for the
 * ASL it stands for.  Nested objects (Scope, Device, Package, Buffer) start
 * with a PkgLength that counts their own body; we write the body first
 * and insert the PkgLength when the object is closed, once its size is
 * known, so each length takes the fewest bytes (20.2.4).
 */
#define AML_MAX_DEPTH		8

#define AML_ZERO		0x00
#define AML_ONE			0x01
#define AML_NAME		0x08
#define AML_BYTE_PREFIX		0x0a
#define AML_WORD_PREFIX		0x0b
#define AML_DWORD_PREFIX	0x0c
#define AML_STRING_PREFIX	0x0d
#define AML_QWORD_PREFIX	0x0e
#define AML_SCOPE		0x10
#define AML_BUFFER		0x11
#define AML_PACKAGE		0x12
#define AML_EXT_PREFIX		0x5b
#define AML_EXT_DEVICE		0x82
#define AML_ROOT_CHAR		0x5c

struct aml {
	u8 *p;
	size_t len, cap;
	size_t open[AML_MAX_DEPTH];	/* body start of each open object */
	int depth;
	bool overflow;			/* ran out of room: the caller fails */
};

/* Append raw bytes; running out of room is remembered, not fatal here. */
static void aml_bytes(struct aml *a, const void *b, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->p + a->len, b, n);
	a->len += n;
}

/* One opcode or data byte. */
static void aml_byte(struct aml *a, u8 b)
{
	aml_bytes(a, &b, 1);
}

/* An integer constant in its shortest encoding (20.2.3). */
static void aml_int(struct aml *a, u64 v)
{
	u8 le[8];
	int n;

	if (v == 0 || v == 1) {
		aml_byte(a, v ? AML_ONE : AML_ZERO);
		return;
	}
	if (v <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		n = 1;
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD_PREFIX);
		n = 2;
	} else if (v <= 0xffffffff) {
		aml_byte(a, AML_DWORD_PREFIX);
		n = 4;
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		n = 8;
	}
	for (int i = 0; i < n; i++)
		le[i] = v >> (8 * i);
	aml_bytes(a, le, n);
}

/* A NameSeg: always four characters, short names padded with '_'. */
static void aml_nameseg(struct aml *a, const char *seg)
{
	assert(strlen(seg) == 4);
	aml_bytes(a, seg, 4);
}

/* "Name (seg, ...)": the value follows as the next object emitted. */
static void aml_name(struct aml *a, const char *seg)
{
	aml_byte(a, AML_NAME);
	aml_nameseg(a, seg);
}

/* "..." as a String object. */
static void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

/* Start an object with a PkgLength: the caller emitted its opcode. */
static void aml_open(struct aml *a)
{
	if (a->depth == AML_MAX_DEPTH) {
		a->overflow = true;
		return;
	}
	a->open[a->depth++] = a->len;
}

/*
 * Close the innermost object: insert its PkgLength in front of the body.
 * The length counts its own bytes: one byte holds up to 63, otherwise
 * the lead byte says how many bytes follow (bits 7:6) and holds the low
 * nibble, and each following byte the next 8 bits.
 */
static void aml_close(struct aml *a)
{
	size_t start, body, n;
	u8 enc[4];

	if (a->overflow || a->depth == 0) {
		a->overflow = true;
		return;
	}
	start = a->open[--a->depth];
	body = a->len - start;
	if (body + 1 < 0x40)
		n = 1;
	else if (body + 2 < 0x1000)
		n = 2;
	else if (body + 3 < 0x100000)
		n = 3;
	else
		n = 4;
	if (body + n >= 0x10000000 || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	body += n;
	if (n == 1) {
		enc[0] = body;
	} else {
		enc[0] = ((n - 1) << 6) | (body & 0xf);
		for (size_t i = 1; i < n; i++)
			enc[i] = body >> (4 + 8 * (i - 1));
	}
	memmove(a->p + start + n, a->p + start, a->len - start);
	memcpy(a->p + start, enc, n);
	a->len += n;
}

/* "Scope (\name) {" and "Device (name) {"; closed by aml_close(). */
static void aml_scope_root(struct aml *a, const char *seg)
{
	aml_byte(a, AML_SCOPE);
	aml_open(a);
	aml_byte(a, AML_ROOT_CHAR);
	aml_nameseg(a, seg);
}

/* Device is an extended opcode (0x5b prefix) with a PkgLength. */
static void aml_device(struct aml *a, const char *seg)
{
	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_EXT_DEVICE);
	aml_open(a);
	aml_nameseg(a, seg);
}

/* "Package (n) {"; the n elements follow, then aml_close(). */
static void aml_package(struct aml *a, u8 n)
{
	aml_byte(a, AML_PACKAGE);
	aml_open(a);
	aml_byte(a, n);
}

/* "Buffer () { bytes }", as a ResourceTemplate compiles to. */
static void aml_buffer(struct aml *a, const u8 *b, size_t n)
{
	aml_byte(a, AML_BUFFER);
	aml_open(a);
	aml_int(a, n);
	aml_bytes(a, b, n);
	aml_close(a);
}

/*
 * EisaId ("PNP0A03"): three letters in 5 bits each and four hex digits,
 * stored big-endian in a DWord (19.6.35).
 */
static u32 eisa_id(const char *id)
{
	u16 letters = ((id[0] - '@') << 10) | ((id[1] - '@') << 5) | (id[2] - '@');
	u32 product = 0;

	for (int i = 3; i < 7; i++) {
		char c = id[i];

		product = (product << 4) | (c <= '9' ? c - '0' : c - 'A' + 10);
	}
	return (u32)(letters >> 8) | (u32)(letters & 0xff) << 8 |
	       (product >> 8) << 16 | (product & 0xff) << 24;
}

/* --- resource descriptors (6.4), for the _CRS buffers --------------------- */

#define RES_IO			0x47	/* small item: I/O port, 7 bytes */
#define RES_END			0x79	/* small item: end tag, 1 byte */
#define RES_DWORD_SPACE		0x87	/* large item: DWord address space */
#define RES_WORD_SPACE		0x88	/* large item: Word address space */

#define SPACE_MEMORY		0
#define SPACE_IO		1
#define SPACE_BUS		2
/* General flags: MinFixed | MaxFixed, positive decode, ResourceProducer. */
#define SPACE_WINDOW		0x0c
#define IO_ENTIRE_RANGE		0x03
#define MEM_READ_WRITE		0x01	/* NonCacheable, ReadWrite */

static void put16(u8 *p, u16 v)
{
	p[0] = v;
	p[1] = v >> 8;
}

/* Resource descriptors are little-endian and unaligned: store bytewise. */
static void put32(u8 *p, u32 v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

/* IO (Decode16, port, port, 1, len): a fixed range of ports. */
static size_t res_io(u8 *p, u16 port, u8 len)
{
	p[0] = RES_IO;
	p[1] = 0x01;		/* decodes 16 address bits */
	put16(p + 2, port);	/* minimum base */
	put16(p + 4, port);	/* maximum base */
	p[6] = 1;		/* alignment */
	p[7] = len;
	return 8;
}

/* WordIO / WordBusNumber: a 16-bit window the bridge forwards. */
static size_t res_word(u8 *p, u8 type, u8 type_flags, u16 min, u16 max)
{
	p[0] = RES_WORD_SPACE;
	put16(p + 1, 13);	/* bytes after the length field */
	p[3] = type;
	p[4] = SPACE_WINDOW;
	p[5] = type_flags;
	put16(p + 6, 0);	/* granularity */
	put16(p + 8, min);
	put16(p + 10, max);
	put16(p + 12, 0);	/* translation */
	put16(p + 14, max - min + 1);
	return 16;
}

/* DWordMemory: the 32-bit MMIO window where PCI BARs live. */
static size_t res_dword(u8 *p, u8 type, u8 type_flags, u32 min, u32 max)
{
	p[0] = RES_DWORD_SPACE;
	put16(p + 1, 23);
	p[3] = type;
	p[4] = SPACE_WINDOW;
	p[5] = type_flags;
	put32(p + 6, 0);
	put32(p + 10, min);
	put32(p + 14, max);
	put32(p + 18, 0);
	put32(p + 22, max - min + 1);
	return 26;
}

/* EndTag, with checksum 0 ("treat as correct", 6.4.2.9). */
static size_t res_end(u8 *p)
{
	p[0] = RES_END;
	p[1] = 0;
	return 2;
}

/* --- the DSDT ------------------------------------------------------------ */

/*
 * Name (_S5, Package (4) { 5, 5, 0, 0 })
 *
 * SLP_TYPa and SLP_TYPb for soft-off (7.4.2), then two reserved values.
 * Linux writes SLP_TYPa into PM1a_CNT along with SLP_EN.
 */
static void dsdt_s5(struct aml *a)
{
	aml_name(a, "_S5_");
	aml_package(a, 4);
	aml_int(a, ACPI_S5_SLP_TYP);
	aml_int(a, ACPI_S5_SLP_TYP);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_close(a);
}

/*
 * Name (_CRS, ResourceTemplate () {
 *     WordBusNumber (..., 0x00, 0xff, ...)       buses behind the bridge
 *     IO (Decode16, 0xcf8, 0xcf8, 1, 8)          config mechanism #1
 *     WordIO (..., 0x0000, 0x0cf7, ...)          ports forwarded below
 *     WordIO (..., 0x0d00, 0xffff, ...)          ... and above the config ports
 *     DWordMemory (..., 0xc0000000, 0xfebfffff, ...)   the BAR window
 * })
 */
static void dsdt_pci_crs(struct aml *a)
{
	u8 crs[96];
	size_t n = 0;

	n += res_word(crs + n, SPACE_BUS, 0, 0x00, 0xff);
	n += res_io(crs + n, 0xcf8, 8);
	n += res_word(crs + n, SPACE_IO, IO_ENTIRE_RANGE, 0x0000, 0x0cf7);
	n += res_word(crs + n, SPACE_IO, IO_ENTIRE_RANGE, 0x0d00, 0xffff);
	n += res_dword(crs + n, SPACE_MEMORY, MEM_READ_WRITE,
		       PCI_HOLE_START, PCI_MMIO_END - 1);
	n += res_end(crs + n);
	assert(n <= sizeof(crs));
	aml_name(a, "_CRS");
	aml_buffer(a, crs, n);
}

/*
 * Name (_PRT, Package () {
 *     Package () { 0x0001ffff, 0, 0, 16 },    slot 1, INTA -> GSI 16
 *     ...                                      one per slot, as pci.h wires them
 * })
 *
 * A zero source means "the number is a GSI, no link device" (6.2.13).
 * Without a _PRT, Linux under ACPI would find no INTx line for any device
 * (MSI-X works regardless).
 */
static void dsdt_pci_prt(struct aml *a)
{
	aml_name(a, "_PRT");
	aml_package(a, PCI_MAX_SLOTS - 1);
	for (u32 slot = 1; slot < PCI_MAX_SLOTS; slot++) {
		aml_package(a, 4);
		aml_int(a, (slot << 16) | 0xffff);	/* any function of the slot */
		aml_int(a, 0);				/* INTA */
		aml_int(a, 0);				/* source: none */
		aml_int(a, PCI_GSI_BASE + (slot - 1) % PCI_GSI_COUNT);
		aml_close(a);
	}
	aml_close(a);
}

/*
 * Device (PCI0) {
 *     Name (_HID, EisaId ("PNP0A03"))    a PCI host bridge
 *     Name (_UID, 0)
 *     Name (_CRS, ...)
 *     Name (_PRT, ...)
 * }
 */
static void dsdt_pci0(struct aml *a)
{
	aml_device(a, "PCI0");
	aml_name(a, "_HID");
	aml_int(a, eisa_id("PNP0A03"));
	aml_name(a, "_UID");
	aml_int(a, 0);
	dsdt_pci_crs(a);
	dsdt_pci_prt(a);
	aml_close(a);
}

/*
 * Device (PEVT) {
 *     Name (_HID, "QEMU0001")     what pvpanic-mmio matches
 *     Name (_CRS, ResourceTemplate () { IO (Decode16, 0x505, 0x505, 1, 1) })
 * }
 */
static void dsdt_pvpanic(struct aml *a)
{
	u8 crs[16];
	size_t n = 0;

	n += res_io(crs + n, PVPANIC_PORT, 1);
	n += res_end(crs + n);
	aml_device(a, "PEVT");
	aml_name(a, "_HID");
	aml_string(a, "QEMU0001");
	aml_name(a, "_CRS");
	aml_buffer(a, crs, n);
	aml_close(a);
}

/* The DSDT: \_S5 at the root, the devices under \_SB. */
static s64 dsdt_build(struct acpi_area *area)
{
	struct acpi_header *h;
	struct aml a;
	s64 off;

	off = area_alloc(area, sizeof(*h), 16);
	if (off < 0)
		return -1;
	a = (struct aml){
		.p = area->buf + off + sizeof(*h),
		.cap = ACPI_AREA_SIZE - off - sizeof(*h),
	};
	dsdt_s5(&a);
	aml_scope_root(&a, "_SB_");
	dsdt_pci0(&a);
	dsdt_pvpanic(&a);
	aml_close(&a);
	if (a.overflow || a.depth)
		return fail("ACPI: the DSDT does not fit");
	area->used += a.len;
	h = (struct acpi_header *)(area->buf + off);
	/* Revision 2: integers are 64 bits wide. */
	header_init(h, "DSDT", sizeof(*h) + a.len, 2);
	header_seal(h);
	return off;
}

/* --- the other tables ------------------------------------------------------ */

static s64 facs_build(struct acpi_area *area)
{
	s64 off = area_alloc(area, sizeof(struct acpi_facs), 64);
	struct acpi_facs *f;

	if (off < 0)
		return -1;
	f = (struct acpi_facs *)(area->buf + off);
	memcpy(f->signature, "FACS", 4);
	f->length = sizeof(*f);
	f->version = 2;
	return off;
}

/*
 * The FADT: full ACPI hardware, already in ACPI mode (no SMI_CMD, so the
 * OS never needs to ask firmware for a mode switch), SCI on IRQ 9, the
 * PM1a blocks and PM timer at our ports, no GPE blocks.  The 8042 flag
 * keeps Linux probing the keyboard controller, whose reset line is how
 * `reboot=k` ends the launcher.
 */
static s64 fadt_build(struct acpi_area *area, s64 dsdt, s64 facs)
{
	s64 off = area_alloc(area, sizeof(struct acpi_fadt), 16);
	struct acpi_fadt *f;

	if (off < 0)
		return -1;
	f = (struct acpi_fadt *)(area->buf + off);
	header_init(&f->h, "FACP", sizeof(*f), 6);
	f->minor_version = 3;
	/* Only the 64-bit FACS pointer: with X_FIRMWARE_CTRL set, the spec
	 * wants FIRMWARE_CTRL zero (else Linux installs the FACS twice). */
	f->x_firmware_ctrl = area_gpa(facs);
	f->dsdt = area_gpa(dsdt);
	f->x_dsdt = area_gpa(dsdt);
	f->sci_int = ACPI_SCI_IRQ;
	f->pm1a_evt_blk = ACPI_PM1_EVT_PORT;
	f->pm1a_cnt_blk = ACPI_PM1_CNT_PORT;
	f->pm_tmr_blk = ACPI_PM_TMR_PORT;
	f->pm1_evt_len = 4;
	f->pm1_cnt_len = 2;
	f->pm_tmr_len = 4;
	f->x_pm1a_evt_blk = io_gas(ACPI_PM1_EVT_PORT, 4);
	f->x_pm1a_cnt_blk = io_gas(ACPI_PM1_CNT_PORT, 2);
	f->x_pm_tmr_blk = io_gas(ACPI_PM_TMR_PORT, 4);
	/* x_pm1a_evt_blk is one 32-bit block: status and enable halves are
	 * 16 bits each, which is how the OS accesses them. */
	f->x_pm1a_evt_blk.access_size = GAS_ACCESS_WORD;
	/* C2/C3 are not supported: latencies above 100/1000 us say so. */
	f->p_lvl2_lat = 101;
	f->p_lvl3_lat = 1001;
	f->iapc_boot_arch = BOOT_ARCH_8042 | BOOT_ARCH_NO_VGA;
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON |
		   FADT_SLP_BUTTON | FADT_FIX_RTC;
	memcpy(&f->hypervisor_vendor_id, "LGUEST\0\0", 8);
	header_seal(&f->h);
	return off;
}

/*
 * The MADT: one local APIC per CPU (APIC id = CPU index, as KVM numbers
 * vCPUs), the IOAPIC with id ncpus, and the interrupt wiring of KVM's
 * default routing: ISA IRQ n is GSI n (no override needed) except that
 * the SCI is level-triggered, active high; LINT1 of every CPU is NMI.
 */
static s64 madt_build(struct acpi_area *area, int ncpus)
{
	u64 len = sizeof(struct acpi_madt) + ncpus * sizeof(struct madt_lapic) +
		  sizeof(struct madt_ioapic) + sizeof(struct madt_iso) +
		  sizeof(struct madt_lapic_nmi);
	s64 off = area_alloc(area, len, 16);
	struct madt_ioapic io = {
		.type = 1, .length = sizeof(io),
		.id = ncpus, .address = IOAPIC_ADDRESS, .gsi_base = 0,
	};
	struct madt_iso sci = {
		.type = 2, .length = sizeof(sci),
		.bus = 0, .source = ACPI_SCI_IRQ, .gsi = ACPI_SCI_IRQ,
		.flags = ISO_ACTIVE_HIGH | ISO_LEVEL,
	};
	struct madt_lapic_nmi nmi = {
		.type = 4, .length = sizeof(nmi),
		.processor_uid = 0xff, .flags = 0, .lint = 1,
	};
	struct acpi_madt *m;
	u8 *p;

	if (off < 0)
		return -1;
	m = (struct acpi_madt *)(area->buf + off);
	header_init(&m->h, "APIC", len, 5);
	m->lapic_address = LAPIC_ADDRESS;
	m->flags = MADT_PCAT_COMPAT;
	p = (u8 *)(m + 1);
	for (int i = 0; i < ncpus; i++) {
		struct madt_lapic l = {
			.type = 0, .length = sizeof(l),
			.processor_uid = i, .apic_id = i, .flags = MADT_ENABLED,
		};

		memcpy(p, &l, sizeof(l));
		p += sizeof(l);
	}
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	memcpy(p, &sci, sizeof(sci));
	p += sizeof(sci);
	memcpy(p, &nmi, sizeof(nmi));
	header_seal(&m->h);
	return off;
}

/* The XSDT: 64-bit pointers to the FADT and the MADT. */
static s64 xsdt_build(struct acpi_area *area, s64 fadt, s64 madt)
{
	u64 entries[] = { area_gpa(fadt), area_gpa(madt) };
	u64 len = sizeof(struct acpi_header) + sizeof(entries);
	s64 off = area_alloc(area, len, 16);
	struct acpi_header *h;

	if (off < 0)
		return -1;
	h = (struct acpi_header *)(area->buf + off);
	header_init(h, "XSDT", len, 1);
	memcpy(h + 1, entries, sizeof(entries));
	header_seal(h);
	return off;
}

/* The RSDP: two checksums, the old 20-byte one and the whole. */
static void rsdp_fill(struct acpi_rsdp *r, s64 xsdt)
{
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, "LGUEST", 6);
	r->revision = 2;
	r->length = sizeof(*r);
	r->xsdt_address = area_gpa(xsdt);
	r->checksum = acpi_checksum(r, 20);
	r->ext_checksum = acpi_checksum(r, sizeof(*r));
}

/* Build every table in the staging area, then copy it in at once. */
int acpi_build(struct guest_mem *gm, int ncpus, u64 *rsdp_gpa)
{
	struct acpi_area area;
	s64 rsdp, facs, dsdt, fadt, madt, xsdt;

	if (ncpus < 1 || ncpus > ACPI_MAX_CPUS)
		return fail("ACPI: %d CPUs (1 to %d)", ncpus, ACPI_MAX_CPUS);
	memset(&area, 0, sizeof(area));
	/* The RSDP first, on a 16-byte boundary, where the BIOS-area scan
	 * would find it too; then each table the one before points to. */
	rsdp = area_alloc(&area, sizeof(struct acpi_rsdp), 16);
	facs = facs_build(&area);
	dsdt = dsdt_build(&area);
	if (rsdp < 0 || facs < 0 || dsdt < 0)
		return -1;
	fadt = fadt_build(&area, dsdt, facs);
	madt = madt_build(&area, ncpus);
	if (fadt < 0 || madt < 0)
		return -1;
	xsdt = xsdt_build(&area, fadt, madt);
	if (xsdt < 0)
		return -1;
	rsdp_fill((struct acpi_rsdp *)(area.buf + rsdp), xsdt);
	if (guest_write(gm, BOOT_ACPI_ADDR, area.buf, area.used))
		return fail("ACPI: no guest RAM at %#llx for the tables",
			    (unsigned long long)BOOT_ACPI_ADDR);
	verbose("ACPI: %llu bytes of tables at %#llx for %d CPU%s",
		(unsigned long long)area.used, (unsigned long long)BOOT_ACPI_ADDR,
		ncpus, ncpus == 1 ? "" : "s");
	*rsdp_gpa = area_gpa(rsdp);
	return 0;
}

/* --- the PM1 registers and the PM timer (4.8) ------------------------------ */

/* PM1 status (write 1 to clear) and enable bits we model. */
#define PM1_STS_VALID		0xc731	/* TMR, BM, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE, WAK */
#define PM1_EN_VALID		0x4721	/* TMR, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE_DIS */
/* PM1 control. */
#define PM1_CNT_SCI_EN		0x0001	/* reads 1: we are always in ACPI mode */
#define PM1_CNT_BM_RLD		0x0002
#define PM1_CNT_SLP_TYP_SHIFT	10
#define PM1_CNT_SLP_TYP		(7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN		0x2000	/* write-only: go to sleep now */

#define PM_TMR_HZ		3579545ULL	/* the ACPI PM timer's rate */

/* Offsets within our 12-port range. */
#define PM1_STS_OFF		0
#define PM1_EN_OFF		2
#define PM1_CNT_OFF		(ACPI_PM1_CNT_PORT - ACPI_PM1_EVT_PORT)
#define PM_TMR_OFF		(ACPI_PM_TMR_PORT - ACPI_PM1_EVT_PORT)

static struct {
	pthread_mutex_t lock;
	u16 sts, en, cnt;
	void (*poweroff)(void);
} pm = { .lock = PTHREAD_MUTEX_INITIALIZER };

/*
 * The PM timer: a free-running 24-bit count at 3.579545 MHz (TMR_VAL_EXT
 * is not set).  Taken from the host's monotonic clock, in two parts so
 * the multiplication cannot overflow however long the host has been up.
 */
static u32 pm_timer(void)
{
	struct timespec ts;
	u64 ticks;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ticks = (u64)ts.tv_sec * PM_TMR_HZ + (u64)ts.tv_nsec * PM_TMR_HZ / 1000000000ULL;
	return ticks & 0xffffff;
}

/* One byte of the register file, as it reads; caller holds pm.lock. */
static u8 pm_read_byte(u64 off, u32 timer)
{
	switch (off) {
	case PM1_STS_OFF:
	case PM1_STS_OFF + 1:
		return pm.sts >> (8 * (off - PM1_STS_OFF));
	case PM1_EN_OFF:
	case PM1_EN_OFF + 1:
		return pm.en >> (8 * (off - PM1_EN_OFF));
	case PM1_CNT_OFF:
	case PM1_CNT_OFF + 1:
		return pm.cnt >> (8 * (off - PM1_CNT_OFF));
	case PM_TMR_OFF ... PM_TMR_OFF + 3:
		return timer >> (8 * (off - PM_TMR_OFF));
	}
	return off < ACPI_PM_PORTS ? 0 : 0xff;	/* past the range: nothing decodes */
}

/* Any width, any offset: assembled a byte at a time under the lock. */
static void pm_read(void *opaque, u64 offset, void *data, u32 len)
{
	u32 timer = pm_timer();	/* one sample per access: a dword read is coherent */
	u8 *out = data;

	pthread_mutex_lock(&pm.lock);
	for (u32 i = 0; i < len; i++)
		out[i] = pm_read_byte(offset + i, timer);
	pthread_mutex_unlock(&pm.lock);
}

/*
 * One byte written; returns true if it asked for soft-off.  SLP_TYP and
 * SLP_EN share the control register's high byte, so a byte at a time
 * sees them together whatever width the guest used.
 */
static bool pm_write_byte(u64 off, u8 v)
{
	u16 sh, bits;

	switch (off) {
	case PM1_STS_OFF:
	case PM1_STS_OFF + 1:
		sh = 8 * (off - PM1_STS_OFF);
		pm.sts &= ~(((u16)v << sh) & PM1_STS_VALID);
		return false;
	case PM1_EN_OFF:
	case PM1_EN_OFF + 1:
		sh = 8 * (off - PM1_EN_OFF);
		pm.en = (pm.en & ~(0xff << sh)) | (((u16)v << sh) & PM1_EN_VALID);
		return false;
	case PM1_CNT_OFF:
	case PM1_CNT_OFF + 1:
		sh = 8 * (off - PM1_CNT_OFF);
		bits = (u16)v << sh;
		/* Keep the writable bits of this byte: BM_RLD and SLP_TYP.
		 * SCI_EN stays set; GBL_RLS and SLP_EN are actions. */
		pm.cnt = (pm.cnt & ~(0xff << sh)) |
			 (bits & (PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP)) |
			 PM1_CNT_SCI_EN;
		return (bits & PM1_CNT_SLP_EN) &&
		       ((pm.cnt & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT) == ACPI_S5_SLP_TYP;
	}
	return false;		/* the timer is read-only; past the range: dropped */
}

/* Any width: applied a byte at a time; soft-off is acted on last. */
static void pm_write(void *opaque, u64 offset, const void *data, u32 len)
{
	const u8 *in = data;
	bool off = false;

	pthread_mutex_lock(&pm.lock);
	for (u32 i = 0; i < len; i++)
		off |= pm_write_byte(offset + i, in[i]);
	pthread_mutex_unlock(&pm.lock);
	/* Outside the lock: the callback stops the VM, which may wait for
	 * vCPUs, one of which could be spinning on our lock. */
	if (off) {
		verbose("ACPI: the guest entered S5 (soft-off)");
		pm.poweroff();
	}
}

static const struct bus_ops pm_ops = { .read = pm_read, .write = pm_write };

/* Power-on state: nothing pending or enabled, SCI_EN set (ACPI mode). */
int acpi_pm_create(void (*poweroff)(void))
{
	pthread_mutex_lock(&pm.lock);
	pm.sts = 0;
	pm.en = 0;
	pm.cnt = PM1_CNT_SCI_EN;
	pm.poweroff = poweroff;
	pthread_mutex_unlock(&pm.lock);
	return bus_register(BUS_PIO, ACPI_PM1_EVT_PORT, ACPI_PM_PORTS, &pm_ops, &pm,
			    "ACPI PM1/timer");
}

/* --- pvpanic ------------------------------------------------------------- */

static void (*pvpanic_cb)(void);

/* Reads say which events we take: only PANICKED.  Not CRASH_LOADED, so a
 * guest with a crash kernel loaded keeps it to itself and kdumps. */
static void pvpanic_read(void *opaque, u64 offset, void *data, u32 len)
{
	u8 *out = data;

	for (u32 i = 0; i < len; i++)
		out[i] = offset + i == 0 ? PVPANIC_PANICKED : 0xff;
}

/* Bit 0 of a write to the port: the guest kernel panicked.  Other bits
 * (CRASH_LOADED, newer events) are not offered and are ignored. */
static void pvpanic_write(void *opaque, u64 offset, const void *data, u32 len)
{
	u8 v = *(const u8 *)data;

	if (offset == 0 && (v & PVPANIC_PANICKED)) {
		verbose("pvpanic: the guest kernel panicked");
		pvpanic_cb();
	}
}

static const struct bus_ops pvpanic_ops = { .read = pvpanic_read, .write = pvpanic_write };

/* One byte-wide port; wider accesses see 0xff past it. */
int pvpanic_create(void (*panicked)(void))
{
	pvpanic_cb = panicked;
	return bus_register(BUS_PIO, PVPANIC_PORT, 1, &pvpanic_ops, NULL, "pvpanic");
}
