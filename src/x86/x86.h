/*
 * x86.h: the boot loader's private map, shared by the files in src/x86/.
 *
 * The tour of booting a kernel, in the order x86_boot_load() walks it:
 *
 *   load.c        open the kernel file, tell bzImage from ELF, tie it all up
 *   bzimage.c     the setup header; the plain path (the kernel decompresses
 *                 itself)
 *   payload.c     the fast path: we decompress the payload on the host...
 *   cache.c       ...or find it already decompressed from an earlier boot
 *   elf.c         the vmlinux that comes out of either, or was given directly
 *   kaslr.c       the relocation table, and moving the kernel's virtual base
 *   initrd.c      initial ramdisks, read straight into guest memory
 *   bootparams.c  the zero page: setup header, e820 map, command line
 *   pagetables.c  identity map and GDT for a 64-bit entry
 *   mptable.c     the Intel MP table, so the guest finds its CPUs
 *
 * The structures below are the boot protocol's (Documentation/arch/x86/
 * boot.rst): their layout is ABI, so every offset we rely on is asserted.
 */
#ifndef X86_X86_H
#define X86_X86_H

#include "x86/boot.h"

#include <assert.h>

/* --- the boot protocol ----------------------------------------------- */

/*
 * The setup header: the part of a bzImage's first sectors that the loader
 * reads and then hands back, filled in, inside the zero page.  It starts
 * at 0x1f1 both in the file and in boot_params.
 */
struct setup_header {
	u8 setup_sects;
	u16 root_flags;
	u32 syssize;		/* protected-mode size, 16-byte units */
	u16 ram_size;
	u16 vid_mode;
	u16 root_dev;
	u16 boot_flag;		/* 0xaa55 */
	u16 jump;		/* its second byte gives the header's length */
	u32 header;		/* "HdrS" */
	u16 version;		/* boot protocol, 0x20f = 2.15 */
	u32 realmode_swtch;
	u16 start_sys_seg;
	u16 kernel_version;
	u8 type_of_loader;
	u8 loadflags;
	u16 setup_move_size;
	u32 code32_start;
	u32 ramdisk_image;
	u32 ramdisk_size;
	u32 bootsect_kludge;
	u16 heap_end_ptr;
	u8 ext_loader_ver;
	u8 ext_loader_type;
	u32 cmd_line_ptr;
	u32 initrd_addr_max;	/* highest byte an initrd may occupy */
	u32 kernel_alignment;
	u8 relocatable_kernel;
	u8 min_alignment;
	u16 xloadflags;
	u32 cmdline_size;	/* longest command line, without the NUL */
	u32 hardware_subarch;
	u64 hardware_subarch_data;
	u32 payload_offset;	/* compressed vmlinux, from the protected-mode start */
	u32 payload_length;
	u64 setup_data;
	u64 pref_address;	/* where a relocating loader should put the kernel */
	u32 init_size;		/* memory the kernel needs from its load address */
	u32 handover_offset;
	u32 kernel_info_offset;
} __attribute__((packed));

/* One e820 entry: the BIOS memory map the kernel trusts for RAM. */
struct e820_entry {
	u64 addr;
	u64 size;
	u32 type;
} __attribute__((packed));

#define E820_RAM	1
#define E820_RESERVED	2
#define E820_MAX	128

/*
 * The zero page.  We only fill a few fields; the rest are named so that the
 * offsets of the ones we use can be checked against the protocol.
 */
struct boot_params {
	u8 screen_info[0x40];
	u8 apm_bios_info[0x14];
	u8 _pad2[4];
	u64 tboot_addr;
	u8 ist_info[0x10];
	u64 acpi_rsdp_addr;
	u8 _pad3[8];
	u8 hd0_info[16];
	u8 hd1_info[16];
	u8 sys_desc_table[0x10];
	u8 olpc_ofw_header[0x10];
	u32 ext_ramdisk_image;
	u32 ext_ramdisk_size;
	u32 ext_cmd_line_ptr;
	u8 _pad4[112];
	u32 cc_blob_address;
	u8 edid_info[0x80];
	u8 efi_info[0x20];
	u32 alt_mem_k;
	u32 scratch;
	u8 e820_entries;
	u8 eddbuf_entries;
	u8 edd_mbr_sig_buf_entries;
	u8 kbd_status;
	u8 secure_boot;
	u8 _pad5[2];
	u8 sentinel;
	u8 _pad6[1];
	struct setup_header hdr;
	u8 _pad7[0x290 - 0x1f1 - sizeof(struct setup_header)];
	u32 edd_mbr_sig_buffer[16];
	struct e820_entry e820_table[E820_MAX];
	u8 _pad8[48];
	u8 eddbuf[6 * 82];
	u8 _pad9[276];
} __attribute__((packed));

#define BP_OFF(field) offsetof(struct boot_params, field)
static_assert(sizeof(struct boot_params) == 4096, "zero page is one page");
static_assert(sizeof(struct setup_header) == 0x26c - 0x1f1, "setup header ends at 0x26c");
static_assert(BP_OFF(acpi_rsdp_addr) == 0x070, "acpi_rsdp_addr");
static_assert(BP_OFF(ext_ramdisk_image) == 0x0c0, "ext_ramdisk_image");
static_assert(BP_OFF(ext_cmd_line_ptr) == 0x0c8, "ext_cmd_line_ptr");
static_assert(BP_OFF(cc_blob_address) == 0x13c, "cc_blob_address");
static_assert(BP_OFF(e820_entries) == 0x1e8, "e820_entries");
static_assert(BP_OFF(sentinel) == 0x1ef, "sentinel");
static_assert(BP_OFF(hdr) == 0x1f1, "hdr");
static_assert(BP_OFF(hdr.boot_flag) == 0x1fe, "boot_flag");
static_assert(BP_OFF(hdr.header) == 0x202, "header");
static_assert(BP_OFF(hdr.version) == 0x206, "version");
static_assert(BP_OFF(hdr.type_of_loader) == 0x210, "type_of_loader");
static_assert(BP_OFF(hdr.loadflags) == 0x211, "loadflags");
static_assert(BP_OFF(hdr.ramdisk_image) == 0x218, "ramdisk_image");
static_assert(BP_OFF(hdr.heap_end_ptr) == 0x224, "heap_end_ptr");
static_assert(BP_OFF(hdr.cmd_line_ptr) == 0x228, "cmd_line_ptr");
static_assert(BP_OFF(hdr.initrd_addr_max) == 0x22c, "initrd_addr_max");
static_assert(BP_OFF(hdr.kernel_alignment) == 0x230, "kernel_alignment");
static_assert(BP_OFF(hdr.relocatable_kernel) == 0x234, "relocatable_kernel");
static_assert(BP_OFF(hdr.xloadflags) == 0x236, "xloadflags");
static_assert(BP_OFF(hdr.cmdline_size) == 0x238, "cmdline_size");
static_assert(BP_OFF(hdr.payload_offset) == 0x248, "payload_offset");
static_assert(BP_OFF(hdr.pref_address) == 0x258, "pref_address");
static_assert(BP_OFF(hdr.init_size) == 0x260, "init_size");
static_assert(BP_OFF(edd_mbr_sig_buffer) == 0x290, "edd_mbr_sig_buffer");
static_assert(BP_OFF(e820_table) == 0x2d0, "e820_table");
static_assert(BP_OFF(eddbuf) == 0xd00, "eddbuf");

#define SETUP_HDR_OFFSET	0x1f1
#define BOOT_FLAG_MAGIC		0xaa55
#define HDRS_MAGIC		0x53726448	/* "HdrS" */
#define BOOT_PROTO_MIN		0x206
#define BOOT_PROTO_OURS		0x20f		/* what we write for a bare ELF */

/* loadflags */
#define LOADED_HIGH		0x01
#define KASLR_FLAG		0x02
#define CAN_USE_HEAP		0x80
/* xloadflags */
#define XLF_KERNEL_64		0x01

#define LOADER_TYPE_UNKNOWN	0xff
#define BZ_ENTRY_64		0x200		/* startup_64, from the load address */
#define BZ_HEAP_END		(0xfe00 - 0x200)	/* heap_end_ptr, as the protocol suggests */
#define ELF_CMDLINE_SIZE	2047		/* COMMAND_LINE_SIZE - 1 on x86 */
#define ELF_INITRD_MAX		0x7fffffffu

/* The kernel's own constants, for the relocation arithmetic. */
#define START_KERNEL_MAP	0xffffffff80000000ULL
#define KERNEL_IMAGE_SIZE	GiB(1)		/* with CONFIG_RANDOMIZE_BASE */
#define PHYSICAL_ALIGN		MiB(2)

/* --- what the loaders agree on --------------------------------------- */

/* Bytes in host memory: an mmap of a file, or a decompressed payload. */
struct blob {
	u8 *data;
	u64 size;
};

/* Map path read-only; failures name the file.  blob_free() undoes it. */
int blob_map_file(struct blob *b, const char *path);
void blob_free(struct blob *b);

/*
 * A kernel placed in guest memory: what the rest of the boot needs to know
 * about it, whichever way it got there.
 */
struct kernel {
	const char *path;
	struct setup_header hdr;	/* becomes the zero page's header */
	u64 load;			/* GPA of its first byte */
	u64 end;			/* GPA past everything it may use (init_size) */
	u64 entry;			/* 64-bit entry point (GPA) */
	s64 kaslr_delta;		/* virtual offset applied by us, 0 if none */
	const char *how;
};

/* The bzImage's setup header, checked. */
struct bzimage {
	struct setup_header hdr;
	const u8 *pm;			/* protected-mode part of the file */
	u64 pm_size;
	const u8 *payload;		/* compressed vmlinux + relocs, or NULL */
	u64 payload_size;
};

/* bzimage.c */
bool bzimage_is(const struct blob *f);
int bzimage_parse(const struct blob *f, const char *name, struct bzimage *bz);
int bzimage_place(const struct guest_mem *gm, const struct bzimage *bz,
		  const char *name, struct kernel *k);
int bzimage_load_plain(struct guest_mem *gm, const struct bzimage *bz, struct kernel *k);
int kernel_fits(const struct guest_mem *gm, const char *name, u64 end);

/* payload.c: the host-decompression path, 0 if it loaded the kernel */
const char *payload_format(const u8 *p, u64 size);
int payload_decompress(const u8 *p, u64 size, u64 ram_size, struct blob *out);
int payload_load(struct guest_mem *gm, const struct boot_setup *s,
		 const struct blob *file, const struct bzimage *bz, struct kernel *k);

/* cache.c: decompressed payloads by the hash of the bzImage */
char *cache_path(const char *cache_dir, const struct blob *file);
int cache_read(const char *path, u64 expect_size, struct blob *out);
void cache_write(const char *path, const struct blob *payload);
/* The same on a background thread; takes ownership of payload (zeroed). */
void cache_write_async(const char *path, struct blob *payload);

/* elf.c */
struct elf_image {
	const u8 *data;
	u64 size;
	u64 base, end;		/* physical span of the PT_LOAD segments, as linked */
	u64 entry;		/* physical, as linked */
	u64 data_end;		/* bytes the ELF itself accounts for */
};
bool elf_is(const struct blob *f);
int elf_parse(struct elf_image *e, const char *name, const u8 *data, u64 size);
int elf_load(struct guest_mem *gm, const struct elf_image *e, u64 load);
int elf_place(const struct guest_mem *gm, const struct elf_image *e,
	      const char *name, struct kernel *k);

/* kaslr.c */
enum reloc_kind { RELOC_32, RELOC_32_INV, RELOC_64, RELOC_KINDS };
struct reloc_table {
	const u8 *buf;		/* the decompressed payload; the table is at its end */
	u64 start[RELOC_KINDS];	/* offset of each list's first (highest) entry */
	u64 count[RELOC_KINDS];
	u64 table_start;	/* offset of the table's lowest byte */
};
int relocs_parse(struct reloc_table *r, const u8 *buf, u64 size, u64 floor);
int relocs_check(const struct reloc_table *r, u64 base, u64 end);
int relocs_apply(struct guest_mem *gm, const struct reloc_table *r,
		 u64 base, u64 load, s64 delta);
bool cmdline_has_word(const char *cmdline, const char *word);
s64 kaslr_choose_delta(u64 base, u64 span);

/* initrd.c */
int initrd_load(struct guest_mem *gm, const struct boot_setup *s,
		const struct kernel *k, u64 *addr, u64 *size);

/* bootparams.c */
int e820_build(const struct guest_mem *gm, struct e820_entry *table, int max);
int cmdline_write(struct guest_mem *gm, const struct kernel *k, const char *cmdline);
int bootparams_write(struct guest_mem *gm, const struct kernel *k,
		     u64 initrd_addr, u64 initrd_size);

/* pagetables.c */
int pagetables_write(struct guest_mem *gm, u64 *cr3);
int gdt_write(struct guest_mem *gm, u64 *base, u16 *limit);

/* mptable.c */
#define MPTABLE_MAX_CPUS	254	/* the IOAPIC takes the next APIC id */
int mptable_write(struct guest_mem *gm, int ncpus,
		  const struct boot_pci_irq *pci_irqs, int n_pci_irqs);

/* Copy len bytes into RAM that is zero, skipping the source's zero pages. */
void copy_skipping_zeros(u8 *dst, const u8 *src, u64 len);

/* Monotonic milliseconds, for --verbose timings. */
static inline double now_ms(void)
{
	return monotonic_ns() / 1e6;
}

#endif
