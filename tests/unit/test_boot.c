/*
 * test_boot.c: x86_boot_load() on every kind of kernel file, built here.
 *
 * The fixtures are tiny but real: a two-segment x86-64 ELF with words at
 * known places and a relocation table pointing at them, wrapped into a
 * bzImage whose payload is compressed with the same libraries (and, for
 * xz, the same BCJ filter) the kernel build uses.  Each test boots a file
 * into fresh guest memory and reads back what the guest would see.
 */
#include "tap.h"
#include "x86/x86.h"

#include <elf.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

/* --- a synthetic vmlinux --------------------------------------------- */

#define LINK_BASE	0x1000000ULL
#define SEG0_OFF	0x1000
#define SEG1_OFF	0x3000
#define SEG1_PADDR	(LINK_BASE + 0x200000)
#define ELF_SIZE	0x4000
#define SPAN		(SEG1_PADDR + 0x3000 - LINK_BASE)
/* Words in segment 0 that the relocation table names. */
#define R32_AT		0x100
#define INV_AT		0x200
#define R64_AT		0x300
#define R32_VAL		0x81000500u		/* low half of 0xffffffff81000500 */
#define INV_VAL		0x00010000u
#define R64_VAL		0xffffffff81200010ULL
#define KVA(off)	((u32)(0x81000000u + (off)))	/* a reloc entry */

static void put32(u8 *p, u32 v) { memcpy(p, &v, 4); }
static void put64(u8 *p, u64 v) { memcpy(p, &v, 8); }
static u32 get32(const void *p) { u32 v; memcpy(&v, p, 4); return v; }
static u64 get64(const void *p) { u64 v; memcpy(&v, p, 8); return v; }

static size_t make_elf(u8 *b, u16 machine)
{
	Elf64_Ehdr eh = {
		.e_type = ET_EXEC, .e_machine = machine, .e_version = EV_CURRENT,
		.e_entry = LINK_BASE, .e_phoff = sizeof(Elf64_Ehdr),
		.e_ehsize = sizeof(Elf64_Ehdr), .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 2,
	};
	Elf64_Phdr ph[2] = {
		{ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = SEG0_OFF,
		  .p_vaddr = START_KERNEL_MAP + LINK_BASE, .p_paddr = LINK_BASE,
		  .p_filesz = 0x2000, .p_memsz = 0x2000, .p_align = 0x200000 },
		{ .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = SEG1_OFF,
		  .p_vaddr = START_KERNEL_MAP + SEG1_PADDR, .p_paddr = SEG1_PADDR,
		  .p_filesz = 0x1000, .p_memsz = 0x3000, .p_align = 0x200000 },
	};

	memset(b, 0, ELF_SIZE);
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	memcpy(b, &eh, sizeof(eh));
	memcpy(b + sizeof(eh), ph, sizeof(ph));
	memcpy(b + SEG0_OFF, "SEG0", 4);
	put32(b + SEG0_OFF + R32_AT, R32_VAL);
	put32(b + SEG0_OFF + INV_AT, INV_VAL);
	put64(b + SEG0_OFF + R64_AT, R64_VAL);
	memcpy(b + SEG1_OFF, "SEG1", 4);
	return ELF_SIZE;
}

/* vmlinux.relocs as the kernel's relocs tool writes it for x86-64:
 * 0, 64-bit, 0, inverse 32-bit, 0, 32-bit (read back from the end). */
static size_t add_relocs(u8 *b, size_t len, u32 r32, u32 inv, u32 r64)
{
	const u32 table[] = { 0, r64, 0, inv, 0, r32 };

	memcpy(b + len, table, sizeof(table));
	return len + sizeof(table);
}

static size_t make_payload(u8 *b)
{
	return add_relocs(b, make_elf(b, EM_X86_64), KVA(R32_AT), KVA(INV_AT), KVA(R64_AT));
}

/* --- compressing it as the kernel build does ------------------------- */

static size_t gzip_it(const u8 *in, size_t n, u8 *out, size_t cap)
{
	z_stream zs = { 0 };

	deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	zs.next_in = (u8 *)in;
	zs.avail_in = n;
	zs.next_out = out;
	zs.avail_out = cap;
	deflate(&zs, Z_FINISH);
	deflateEnd(&zs);
	return zs.total_out;
}

static size_t xz_it(const u8 *in, size_t n, u8 *out, size_t cap)
{
	lzma_options_lzma opt;
	lzma_filter filters[] = {
		{ LZMA_FILTER_X86, NULL }, { LZMA_FILTER_LZMA2, &opt }, { LZMA_VLI_UNKNOWN, NULL },
	};
	size_t pos = 0;

	lzma_lzma_preset(&opt, 6);
	if (lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, NULL, in, n, out, &pos, cap))
		return 0;
	return pos;
}

/* Compress raw in the named format; all but gzip get the size appended. */
static size_t compress_as(const char *fmt, const u8 *raw, size_t n, u8 *out, size_t cap)
{
	size_t len;

	if (!strcmp(fmt, "gzip"))
		return gzip_it(raw, n, out, cap);
	if (!strcmp(fmt, "xz"))
		len = xz_it(raw, n, out, cap);
	else if (!strcmp(fmt, "zstd"))
		len = ZSTD_compress(out, cap, raw, n, 19);
	else {	/* lz4 legacy magic and junk: recognised, not decompressed */
		memcpy(out, "\x02\x21\x4c\x18junkjunk", 12);
		len = 12;
	}
	put32(out + len, n);
	return len + 4;
}

/* --- a synthetic bzImage --------------------------------------------- */

struct bz_opts {
	const char *fmt;
	u16 version;
	u16 xloadflags;
	u32 init_size;
	u32 cmdline_size;
	u32 initrd_max;
};

#define SETUP_SIZE	1024		/* setup_sects = 1 */
#define PAYLOAD_OFF	0x400
#define BZ_CAP		(256 * 1024)

static const struct bz_opts bz_default = {
	.fmt = "gzip", .version = 0x20f, .xloadflags = 0x3,
	.init_size = 0x400000, .cmdline_size = 2047, .initrd_max = 0x7fffffff,
};

static size_t make_bzimage(u8 *out, const u8 *raw, size_t raw_len, const struct bz_opts *o)
{
	struct setup_header h = {
		.setup_sects = 1, .boot_flag = BOOT_FLAG_MAGIC, .jump = 0x6aeb,
		.header = HDRS_MAGIC, .version = o->version, .loadflags = LOADED_HIGH,
		.kernel_alignment = 0x200000, .relocatable_kernel = 1,
		.xloadflags = o->xloadflags, .cmdline_size = o->cmdline_size,
		.initrd_addr_max = o->initrd_max, .pref_address = LINK_BASE,
		.init_size = o->init_size, .payload_offset = PAYLOAD_OFF,
	};
	u8 *pm = out + SETUP_SIZE;
	size_t n, pm_size;

	memset(out, 0, BZ_CAP);
	memcpy(pm, "PM32", 4);
	memcpy(pm + 0x200, "PM64", 4);
	n = compress_as(o->fmt, raw, raw_len, pm + PAYLOAD_OFF, BZ_CAP - SETUP_SIZE - PAYLOAD_OFF - 16);
	pm_size = ALIGN_UP(PAYLOAD_OFF + n, 16);
	h.payload_length = n;
	h.syssize = pm_size / 16;
	memcpy(out + SETUP_HDR_OFFSET, &h, sizeof(h));
	return SETUP_SIZE + pm_size;
}

/* --- booting files into fresh guest memory --------------------------- */

static char dir[] = "/tmp/test_boot.XXXXXX";
static struct guest_mem gm;
static u8 raw[ELF_SIZE + 64];
static size_t raw_len;

/* Paths live until the end of the test; free_paths() lets them go. */
static char *paths_made[128];
static int n_paths;

static char *tpath(const char *name)
{
	char *p;

	if (n_paths == ARRAY_SIZE(paths_made) || asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return paths_made[n_paths++] = p;
}

static void free_paths(void)
{
	while (n_paths)
		free(paths_made[--n_paths]);
}

static char *write_file(const char *name, const void *data, size_t n)
{
	char *p = tpath(name);
	FILE *f = fopen(p, "w");

	if (!f || fwrite(data, 1, n, f) != n || fclose(f))
		abort();
	return p;
}

static u64 file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? 0 : (u64)st.st_size;
}

static struct boot_setup setup_for(const char *kernel)
{
	return (struct boot_setup){
		.kernel_path = kernel, .cmdline = "console=ttyS0 nokaslr",
		.ncpus = 1, .cache_dir = "",
	};
}

static int boot(const struct boot_setup *s, u64 mem_mib, struct boot_entry *e)
{
	guest_mem_free(&gm);
	if (guest_mem_init(&gm, MiB(mem_mib)) < 0)
		abort();
	return x86_boot_load(&gm, s, e);
}

/* Boot and report which path ran, or why it failed. */
static bool boots_as(const struct boot_setup *s, u64 mem_mib, struct boot_entry *e,
		     const char *how, const char *what)
{
	int rc = boot(s, mem_mib, e);

	return ok(rc == 0 && e->how && !strcmp(e->how, how), "%s: boots as \"%s\" (%s)",
		  what, how, rc ? last_error() : e->how);
}

static struct boot_params *zero_page(void)
{
	return guest_ptr(&gm, BOOT_PARAMS_ADDR, sizeof(struct boot_params));
}

static const u8 *at(u64 gpa, u64 len)
{
	const u8 *p = guest_ptr(&gm, gpa, len);

	if (!p)
		abort();
	return p;
}

static char *bzimage_file(const char *name, const u8 *payload, size_t n, const struct bz_opts *o)
{
	static u8 bz[BZ_CAP];

	return write_file(name, bz, make_bzimage(bz, payload, n, o));
}

/* The boot error line for kernel file `path`, or "" if it booted. */
static const char *boot_error(const char *path, u64 mem_mib)
{
	struct boot_setup s = setup_for(path);
	struct boot_entry e;

	return boot(&s, mem_mib, &e) < 0 ? last_error() : "";
}

static void expect_error(const char *path, u64 mem_mib, const char *want, const char *what)
{
	const char *got = boot_error(path, mem_mib);

	ok(strstr(got, want) && strstr(got, path) && !strchr(got, '\n'),
	   "%s: one line naming the file: \"%s\"", what, got);
}

/* --- the tests ------------------------------------------------------- */

static void test_plain_bzimage(void)
{
	struct bz_opts o = bz_default;
	struct boot_setup s = setup_for(bzimage_file("plain.bz", raw, raw_len, &o));
	struct boot_entry e;
	struct boot_params *bp;

	s.no_host_decompress = true;
	boots_as(&s, 64, &e, "bzImage", "no_host_decompress");
	is_int(e.rip, LINK_BASE + 0x200, "entry is startup_64 at load + 0x200");
	is_int(e.rsi, BOOT_PARAMS_ADDR, "rsi points at the zero page");
	ok(!memcmp(at(LINK_BASE, 4), "PM32", 4) && !memcmp(at(LINK_BASE + 0x200, 4), "PM64", 4),
	   "protected-mode part copied to pref_address");
	bp = zero_page();
	is_int(bp->hdr.boot_flag, BOOT_FLAG_MAGIC, "setup header copied into the zero page");
	is_int(bp->hdr.type_of_loader, 0xff, "type_of_loader");
	ok((bp->hdr.loadflags & CAN_USE_HEAP) && bp->hdr.heap_end_ptr == BZ_HEAP_END,
	   "CAN_USE_HEAP with heap_end_ptr");
	ok(!(bp->hdr.loadflags & KASLR_FLAG), "KASLR_FLAG clear: the kernel does its own");
	is_int(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR, "cmd_line_ptr");
	ok(!strcmp((const char *)at(BOOT_CMDLINE_ADDR, 64), "console=ttyS0 nokaslr"),
	   "command line written, NUL-terminated");
	ok(bp->hdr.ramdisk_image == 0 && bp->hdr.ramdisk_size == 0, "no initrd");
}

/* A decompressed boot with nokaslr: the image exactly as linked. */
static void check_unrelocated(const char *fmt, const struct boot_entry *e)
{
	const u8 *seg0 = at(LINK_BASE, 0x2000);
	const u8 *seg1 = at(SEG1_PADDR, 0x3000);
	static const u8 zero[0x2000];

	is_int(e->rip, LINK_BASE, "entry is vmlinux's e_entry");
	ok(!memcmp(seg0, raw + SEG0_OFF, 0x2000) && !memcmp(seg1, raw + SEG1_OFF, 0x1000),
	   "%s: both segments loaded at their physical addresses", fmt);
	ok(!memcmp(seg1 + 0x1000, zero, 0x2000), "%s: bss is zero", fmt);
	ok(!(zero_page()->hdr.loadflags & KASLR_FLAG), "%s: nokaslr: no KASLR_FLAG", fmt);
}

static void test_decompress_formats(void)
{
	static const char *const fmts[] = { "gzip", "xz", "zstd" };
	struct boot_entry e;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fmts); i++) {
		struct bz_opts o = bz_default;
		struct boot_setup s;

		o.fmt = fmts[i];
		s = setup_for(bzimage_file(fmts[i], raw, raw_len, &o));
		boots_as(&s, 64, &e, "decompressed bzImage", fmts[i]);
		check_unrelocated(fmts[i], &e);
	}
}

/* Without nokaslr the words the table names move by one delta. */
static void test_kaslr(void)
{
	struct boot_setup s = setup_for(bzimage_file("kaslr.bz", raw, raw_len, &bz_default));
	struct boot_entry e;
	int moved = 0, consistent = 0, flagged = 0, in_window = 0, i;

	s.cmdline = "console=ttyS0";
	for (i = 0; i < 8; i++) {
		const u8 *seg0;
		u64 delta;

		if (boot(&s, 64, &e) < 0)
			break;
		seg0 = at(LINK_BASE, 0x2000);
		delta = (u32)(get32(seg0 + R32_AT) - R32_VAL);
		moved += delta != 0;
		consistent += get32(seg0 + INV_AT) == (u32)(INV_VAL - delta) &&
			      get64(seg0 + R64_AT) == R64_VAL + delta;
		flagged += !!(zero_page()->hdr.loadflags & KASLR_FLAG) == (delta != 0);
		in_window += delta % MiB(2) == 0 && LINK_BASE + delta + SPAN <= GiB(1);
	}
	is_int(i, 8, "eight KASLR boots");
	ok(moved > 0, "the virtual base moved (%d of 8 boots)", moved);
	is_int(consistent, 8, "32-bit += delta, inverse -= delta, 64-bit += delta");
	is_int(flagged, 8, "KASLR_FLAG set exactly when the kernel moved");
	is_int(in_window, 8, "delta 2 MiB aligned, image inside the 1 GiB window");
	is_int(e.rip, LINK_BASE, "entry stays physical");
}

/* Things the host path cannot or should not handle fall back, and say why. */
static void expect_fallback(const char *name, const u8 *payload, size_t n,
			    const char *fmt, const char *why)
{
	struct bz_opts o = bz_default;
	struct boot_setup s;
	struct boot_entry e;

	o.fmt = fmt;
	s = setup_for(bzimage_file(name, payload, n, &o));
	if (boots_as(&s, 64, &e, "bzImage", name))
		ok(!memcmp(at(LINK_BASE + 0x200, 4), "PM64", 4), "%s: plain kernel in place", name);
	ok(strstr(last_error(), why), "%s: the reason is kept: \"%s\"", name, last_error());
}

static void test_fallbacks(void)
{
	u8 bad[sizeof(raw)];
	size_t n;
	static u8 bz[BZ_CAP];
	struct boot_setup s;
	struct boot_entry e;

	expect_fallback("lz4", raw, raw_len, "lz4", "lz4 compressed");
	/* A relocation pointing past the image. */
	n = add_relocs(bad, make_elf(bad, EM_X86_64), KVA(R32_AT), KVA(INV_AT), KVA(0x203000));
	expect_fallback("reloc-out", bad, n, "gzip", "outside the kernel image");
	/* One below it. */
	n = add_relocs(bad, make_elf(bad, EM_X86_64), 0x80fffffcu, KVA(INV_AT), KVA(R64_AT));
	expect_fallback("reloc-below", bad, n, "gzip", "outside the kernel image");
	/* No table at all: the scan runs into the ELF. */
	n = make_elf(bad, EM_X86_64);
	put32(bad + n - 4, 0x12345678);
	expect_fallback("no-relocs", bad, n, "gzip", "no terminator");
	/* A payload that is not an x86-64 ELF. */
	n = add_relocs(bad, make_elf(bad, EM_AARCH64), KVA(R32_AT), KVA(INV_AT), KVA(R64_AT));
	expect_fallback("payload-arm", bad, n, "zstd", "another machine");

	/* Damage the xz stream in the middle. */
	{
		struct bz_opts o = bz_default;
		size_t len;

		o.fmt = "xz";
		len = make_bzimage(bz, raw, raw_len, &o);
		bz[SETUP_SIZE + PAYLOAD_OFF + 40] ^= 0xff;
		bz[SETUP_SIZE + PAYLOAD_OFF + 41] ^= 0xff;
		s = setup_for(write_file("xz-corrupt", bz, len));
		boots_as(&s, 64, &e, "bzImage", "corrupt xz payload");
		ok(strstr(last_error(), "xz payload is corrupt"), "reason: \"%s\"", last_error());
	}
}

static void test_cache(void)
{
	char *cdir = tpath("cache"), *kpath, *cfile = NULL, *xdg;
	struct boot_setup s;
	struct boot_entry e;
	struct blob kf;
	u8 seg0[0x2000];

	kpath = bzimage_file("cached.bz", raw, raw_len, &bz_default);
	s = setup_for(kpath);
	s.cache_dir = cdir;
	boots_as(&s, 64, &e, "decompressed bzImage", "cold boot");
	if (blob_map_file(&kf, kpath) == 0) {
		cfile = cache_path(cdir, &kf);
		blob_free(&kf);
	}
	if (!ok(cfile && file_size(cfile) == raw_len, "cache file <hash>.vmlinux written (%s)",
		cfile ? cfile : "none"))
		return;
	memcpy(seg0, at(LINK_BASE, sizeof(seg0)), sizeof(seg0));
	boots_as(&s, 64, &e, "decompressed bzImage (cached)", "warm boot");
	ok(!memcmp(seg0, at(LINK_BASE, sizeof(seg0)), sizeof(seg0)), "same bytes either way");

	/* A short file is ignored and rewritten. */
	if (truncate(cfile, 100))
		abort();
	boots_as(&s, 64, &e, "decompressed bzImage", "truncated cache file");
	is_int(file_size(cfile), raw_len, "truncated cache file rewritten");
	/* So is one of the right size holding garbage. */
	{
		u8 junk[sizeof(raw)];

		memset(junk, 0x5a, raw_len);
		write_file("junk", junk, raw_len);
		rename(tpath("junk"), cfile);
	}
	boots_as(&s, 64, &e, "decompressed bzImage", "garbage cache file");
	boots_as(&s, 64, &e, "decompressed bzImage (cached)", "rewritten cache file");

	/* The default directory: $XDG_CACHE_HOME/lguest, created on demand. */
	xdg = tpath("xdg/deeper");
	setenv("XDG_CACHE_HOME", xdg, 1);
	s.cache_dir = NULL;
	boots_as(&s, 64, &e, "decompressed bzImage", "first boot, default cache");
	boots_as(&s, 64, &e, "decompressed bzImage (cached)", "$XDG_CACHE_HOME/lguest");
	/* An unwritable cache is not an error. */
	s.cache_dir = "/proc/no-such-cache";
	boots_as(&s, 64, &e, "decompressed bzImage", "unwritable cache directory");
	free(cfile);
}

static void test_elf_vmlinux(void)
{
	struct boot_setup s;
	struct boot_entry e;
	struct boot_params *bp;
	static u8 elf[ELF_SIZE];

	make_elf(elf, EM_X86_64);
	s = setup_for(write_file("vmlinux", elf, ELF_SIZE));
	boots_as(&s, 64, &e, "ELF vmlinux", "vmlinux");
	is_int(e.rip, LINK_BASE, "entry is e_entry");
	ok(!memcmp(at(LINK_BASE, 4), "SEG0", 4) && !memcmp(at(SEG1_PADDR, 4), "SEG1", 4),
	   "segments at p_paddr");
	bp = zero_page();
	ok(bp->hdr.boot_flag == BOOT_FLAG_MAGIC && bp->hdr.header == HDRS_MAGIC &&
	   bp->hdr.version >= 0x20c, "zero page header made from scratch (version %#x)",
	   bp->hdr.version);
	ok(bp->hdr.type_of_loader == 0xff && bp->hdr.cmd_line_ptr == BOOT_CMDLINE_ADDR &&
	   bp->hdr.cmdline_size == 2047 && bp->hdr.initrd_addr_max == 0x7fffffff &&
	   bp->hdr.kernel_alignment == MiB(2), "loader fields, cmdline_size, initrd_addr_max");
	ok(bp->e820_entries == 3, "e820 present");
}

static void test_errors(void)
{
	u8 buf[sizeof(raw)];
	static u8 bz[BZ_CAP];
	struct bz_opts o;
	size_t n;

	expect_error(write_file("text", "#!/bin/sh\necho hello\n", 21), 64,
		     "not a Linux kernel (no bzImage header, not ELF)", "text file");
	expect_error(write_file("empty", "", 0), 64, "empty file", "empty file");
	expect_error(dir, 64, "is a directory", "directory");
	expect_error(tpath("missing"), 64, "No such file or directory", "missing file");

	n = make_bzimage(bz, raw, raw_len, &bz_default);
	expect_error(write_file("trunc-setup", bz, 700), 64, "truncated bzImage", "truncated in setup");
	expect_error(write_file("trunc-pm", bz, n - 100), 64, "truncated bzImage", "truncated payload");

	o = bz_default;
	o.version = 0x205;
	expect_error(bzimage_file("old", raw, raw_len, &o), 64, "boot protocol 2.05 is too old", "2.05");
	o = bz_default;
	o.xloadflags = 0;
	expect_error(bzimage_file("no64", raw, raw_len, &o), 64, "no 64-bit entry point", "32-bit only");
	o = bz_default;
	o.init_size = 0x1000000;
	expect_error(bzimage_file("big", raw, raw_len, &o), 24,
		     "kernel needs 32 MiB of memory, given 24 MiB", "too large for memory");

	make_elf(buf, EM_AARCH64);
	expect_error(write_file("arm", buf, ELF_SIZE), 64, "ELF for another machine", "arm64 ELF");
	make_elf(buf, EM_X86_64);
	expect_error(write_file("elf-trunc", buf, 0x3800), 64, "truncated ELF", "truncated ELF");
	expect_error(write_file("elf-small", buf, ELF_SIZE), 16, "kernel needs 19 MiB of memory, given 16 MiB",
		     "ELF too large for memory");
	buf[EI_CLASS] = ELFCLASS32;
	expect_error(write_file("elf32", buf, ELF_SIZE), 64, "not a 64-bit", "32-bit ELF");

	o = bz_default;
	o.cmdline_size = 10;
	expect_error(bzimage_file("short-cmdline", raw, raw_len, &o), 64,
		     "command line is 21 bytes, the kernel accepts at most 10", "cmdline too long");
}

static void test_initrd(void)
{
	static u8 a[5001], b[3000];
	const char *paths[2];
	struct bz_opts o = bz_default;
	struct boot_setup s;
	struct boot_entry e;
	struct boot_params *bp;
	u64 addr, size;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	paths[0] = write_file("initrd-a", a, sizeof(a));
	paths[1] = write_file("initrd-b", b, sizeof(b));
	o.initrd_max = 0x2ffffff;
	s = setup_for(bzimage_file("initrd.bz", raw, raw_len, &o));
	s.initrd_paths = paths;
	s.n_initrd = 2;
	boots_as(&s, 64, &e, "decompressed bzImage", "two initrds");
	bp = zero_page();
	addr = bp->hdr.ramdisk_image;
	size = bp->hdr.ramdisk_size;
	is_int(size, 5004 + 3000, "sizes add up (each archive 4-byte aligned)");
	ok(addr % 4096 == 0, "initrd page aligned (%#llx)", (unsigned long long)addr);
	ok(addr + size <= 0x3000000 && addr + size > 0x3000000 - 4096,
	   "as high as initrd_addr_max allows");
	ok(addr >= LINK_BASE + o.init_size, "above the kernel's init_size");
	ok(!memcmp(at(addr, sizeof(a)), a, sizeof(a)) &&
	   !memcmp(at(addr + 5004, sizeof(b)), b, sizeof(b)) && at(addr, 5004)[5001] == 0,
	   "contents concatenated in order");

	/* Without the cap it goes to the top of RAM. */
	o.initrd_max = 0x7fffffff;
	s.kernel_path = bzimage_file("initrd2.bz", raw, raw_len, &o);
	ok(boot(&s, 64, &e) == 0 && zero_page()->hdr.ramdisk_image + size <= MiB(64) &&
	   zero_page()->hdr.ramdisk_image + size > MiB(64) - 4096, "top of low RAM otherwise");

	/* 5 MiB of initrd cannot fit between a kernel ending at 20 MiB and 24 MiB. */
	{
		static u8 big[MiB(5)];

		paths[1] = write_file("initrd-big", big, sizeof(big));
		int rc = boot(&s, 24, &e);

		ok(rc < 0 && strstr(last_error(), "initrd-big: initrd too big"),
		   "too big: \"%s\"", last_error());
	}
	paths[1] = tpath("initrd-missing");
	if (boot(&s, 64, &e) == 0)
		fail("booted without its initrd");
	ok(strstr(last_error(), "initrd-missing") &&
	   strstr(last_error(), "No such file"), "missing initrd: \"%s\"", last_error());
}

int main(void)
{
	char *cmd = NULL;

	if (!mkdtemp(dir))
		abort();
	raw_len = make_payload(raw);
	test_plain_bzimage();
	test_decompress_formats();
	test_kaslr();
	test_fallbacks();
	test_cache();
	test_errors();
	test_initrd();
	test_elf_vmlinux();
	guest_mem_free(&gm);
	free_paths();
	if (asprintf(&cmd, "rm -rf %s", dir) < 0 || system(cmd) != 0)
		tap_diag("could not clean up %s", dir);
	free(cmd);
	return tap_done();
}
