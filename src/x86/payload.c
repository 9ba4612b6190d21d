/*
 * payload.c: decompressing a bzImage's kernel on the host.
 *
 * The kernel can decompress itself, but inside a fresh guest it does so
 * with caches cold and no help; the host has liblzma, zlib and libzstd,
 * and, better, can skip the work entirely the second time (cache.c).
 *
 * The payload (setup_header.payload_offset/length) is the compressed form
 * of vmlinux.bin followed by vmlinux.relocs, with the uncompressed size in
 * its last four bytes (gzip's ISIZE; the kernel appends the same for every
 * other format).  Out comes an ELF to load and a relocation table to
 * apply for KASLR (kaslr.c).
 *
 * Anything surprising here is not an error: payload_load() fails with a
 * reason, and the caller falls back to letting the kernel do it.
 */
#include "x86/x86.h"

#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>
#include <zstd.h>

/* Magic numbers of the formats a kernel may be compressed with.  The
 * last four we recognise only to name them in the fallback message. */
static const struct {
	const char *name;
	u8 len;
	u8 magic[6];
} formats[] = {
	{ "gzip", 2, { 0x1f, 0x8b } },
	{ "xz", 6, { 0xfd, '7', 'z', 'X', 'Z', 0x00 } },
	{ "zstd", 4, { 0x28, 0xb5, 0x2f, 0xfd } },
	{ "lz4", 4, { 0x02, 0x21, 0x4c, 0x18 } },
	{ "lzo", 4, { 0x89, 'L', 'Z', 'O' } },
	{ "bzip2", 3, { 'B', 'Z', 'h' } },
	{ "lzma", 3, { 0x5d, 0x00, 0x00 } },
};

/* The name of the payload's compression, "unknown" if none we know. */
const char *payload_format(const u8 *p, u64 size)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(formats); i++)
		if (size >= formats[i].len && !memcmp(p, formats[i].magic, formats[i].len))
			return formats[i].name;
	return "unknown";
}

/* Each decompressor reads in[0..in_size) and must fill out exactly. */
static int inflate_gzip(const u8 *in, u64 in_size, struct blob *out)
{
	z_stream zs = { 0 };
	int ret;

	/* 16 + MAX_WBITS: a gzip wrapper, not a zlib one. */
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return fail("zlib: cannot initialise");
	zs.next_in = (u8 *)in;
	zs.avail_in = in_size;
	zs.next_out = out->data;
	zs.avail_out = out->size;
	ret = inflate(&zs, Z_FINISH);
	inflateEnd(&zs);
	if (ret != Z_STREAM_END || zs.total_out != out->size)
		return fail("gzip payload is corrupt (zlib says %d after %lu bytes)", ret, zs.total_out);
	return 0;
}

/* Debian's kernels are xz with the x86 BCJ filter; liblzma's one-shot
 * decoder handles the filter chain from the stream header by itself. */
static int unxz(const u8 *in, u64 in_size, struct blob *out)
{
	u64 memlimit = UINT64_MAX;
	size_t in_pos = 0, out_pos = 0;
	lzma_ret ret;

	ret = lzma_stream_buffer_decode(&memlimit, 0, NULL, in, &in_pos, in_size,
					out->data, &out_pos, out->size);
	if (ret != LZMA_OK || out_pos != out->size)
		return fail("xz payload is corrupt (liblzma says %d after %zu bytes)", ret, out_pos);
	return 0;
}

/* One-shot: the output size is known, so no streaming state is needed. */
static int unzstd(const u8 *in, u64 in_size, struct blob *out)
{
	size_t n = ZSTD_decompress(out->data, out->size, in, in_size);

	if (ZSTD_isError(n))
		return fail("zstd payload is corrupt (%s)", ZSTD_getErrorName(n));
	if (n != out->size)
		return fail("zstd payload gave %zu bytes, expected %llu", n,
			    (unsigned long long)out->size);
	return 0;
}

/*
 * Decompress into a fresh anonymous mapping of exactly the advertised size:
 * one allocation, no reallocs, and a stream that wants to write past the
 * end is corrupt by definition.  A size over ram_size (guest RAM: no
 * kernel bigger than that could ever be loaded) is refused before we write
 * a byte: a corrupt or hostile file would otherwise have us inflate up to
 * 4 GiB for nothing.
 */
int payload_decompress(const u8 *p, u64 size, u64 ram_size, struct blob *out)
{
	const char *fmt = payload_format(p, size);
	u32 expect;
	void *buf;
	int ret;

	memset(out, 0, sizeof(*out));
	if (size < 8)
		return fail("payload is only %llu bytes", (unsigned long long)size);
	memcpy(&expect, p + size - 4, sizeof(expect));
	if (expect < sizeof(struct setup_header))
		return fail("payload claims to decompress to %u bytes", expect);
	if (expect > ram_size)
		return fail("payload claims to decompress to %u MiB, more than guest RAM holds",
			    expect >> 20);
	buf = mmap(NULL, expect, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return fail("no memory to decompress %u bytes", expect);
	/* Tens of MiB written once, front to back: 2 MiB pages take a few
	 * dozen faults instead of thousands. */
	madvise(buf, expect, MADV_HUGEPAGE);
	out->data = buf;
	out->size = expect;
	if (!strcmp(fmt, "gzip"))
		ret = inflate_gzip(p, size, out);
	else if (!strcmp(fmt, "xz"))
		ret = unxz(p, size - 4, out);
	else if (!strcmp(fmt, "zstd"))
		ret = unzstd(p, size - 4, out);
	else
		ret = fail("payload is %s compressed, which lguest does not decompress", fmt);
	if (ret < 0)
		blob_free(out);
	return ret;
}

/* Back to zero where the kernel was being written (a failed install). */
static void wipe_kernel(struct guest_mem *gm, const struct kernel *k)
{
	guest_zero(gm, k->load, k->end - k->load);
}

/*
 * Load the decompressed vmlinux and relocate it.  Every check happens
 * before the first byte is written, so a failure leaves guest memory as it
 * was (zero: elf_load() relies on it) and the plain path can take over
 * cleanly; the two writing steps cannot fail after those checks, and
 * should they ever, they wipe what they wrote.
 */
static int install(struct guest_mem *gm, const struct boot_setup *s,
		   const struct blob *raw, struct kernel *k)
{
	const char *name = "decompressed payload";
	struct elf_image e;
	struct reloc_table r = { 0 };
	bool relocatable = k->hdr.relocatable_kernel;
	s64 delta = 0;

	if (elf_parse(&e, name, raw->data, raw->size) < 0)
		return -1;
	if (e.end - e.base > k->end - k->load)
		return fail("%s: vmlinux spans %llu MiB, more than init_size allows", name,
			    (unsigned long long)((e.end - e.base) >> 20));
	if (relocatable && (relocs_parse(&r, raw->data, raw->size, e.data_end) < 0 ||
			    relocs_check(&r, e.base, e.end) < 0))
		return -1;
	if (relocatable && !(s->cmdline && cmdline_has_word(s->cmdline, "nokaslr")))
		delta = kaslr_choose_delta(e.base, e.end - e.base);
	if (elf_load(gm, &e, k->load) < 0) {
		wipe_kernel(gm, k);
		return fail("%s: vmlinux does not fit in guest memory", name);
	}
	if (delta && relocs_apply(gm, &r, e.base, k->load, delta) < 0) {
		wipe_kernel(gm, k);
		return fail("%s: relocation outside guest memory", name);
	}
	k->entry = k->load + (e.entry - e.base);
	k->kaslr_delta = delta;
	return 0;
}

/* The payload's own claim of its decompressed size: the cache file must
 * have exactly this many bytes. */
static u32 payload_size(const struct bzimage *bz)
{
	u32 n;

	memcpy(&n, bz->payload + bz->payload_size - 4, sizeof(n));
	return n;
}

/* A cache hit that installs is the fast path; anything wrong with the file
 * just means decompressing again (and rewriting it). */
static bool try_cache(struct guest_mem *gm, const struct boot_setup *s,
		      const char *cpath, const struct bzimage *bz, struct kernel *k)
{
	struct blob raw;
	bool ok;

	if (!cpath || cache_read(cpath, payload_size(bz), &raw) < 0)
		return false;
	ok = install(gm, s, &raw, k) == 0;
	if (!ok)
		verbose("cache: ignoring %s: %s", cpath, last_error());
	blob_free(&raw);
	return ok;
}

/* The slow path: decompress, load, and remember the result for next time
 * (only once it has proved loadable, so the cache holds no junk). */
static int decompress_and_install(struct guest_mem *gm, const struct boot_setup *s,
				  const char *cpath, const struct bzimage *bz, struct kernel *k)
{
	struct blob raw;
	double t0 = now_ms();
	int ret;

	if (payload_decompress(bz->payload, bz->payload_size, gm->size, &raw) < 0)
		return -1;
	verbose("kernel: %s payload decompressed to %llu MiB in %.1f ms",
		payload_format(bz->payload, bz->payload_size),
		(unsigned long long)(raw.size >> 20), now_ms() - t0);
	ret = install(gm, s, &raw, k);
	if (ret == 0 && cpath) {
		if (s->cache_async)
			cache_write_async(cpath, &raw);
		else
			cache_write(cpath, &raw);
	}
	blob_free(&raw);
	return ret;
}

/* Only the formats we can decompress are worth hashing the file for. */
int payload_load(struct guest_mem *gm, const struct boot_setup *s,
		 const struct blob *file, const struct bzimage *bz, struct kernel *k)
{
	const char *fmt;
	char *cpath;
	int ret = 0;

	if (!bz->payload)
		return fail("the setup header locates no payload inside the file");
	fmt = payload_format(bz->payload, bz->payload_size);
	if (strcmp(fmt, "gzip") && strcmp(fmt, "xz") && strcmp(fmt, "zstd"))
		return fail("payload is %s compressed, which lguest does not decompress", fmt);
	cpath = cache_path(s->cache_dir, file);
	if (try_cache(gm, s, cpath, bz, k))
		k->how = "decompressed bzImage (cached)";
	else if ((ret = decompress_and_install(gm, s, cpath, bz, k)) == 0)
		k->how = "decompressed bzImage";
	free(cpath);
	if (ret == 0 && k->kaslr_delta)
		verbose("kernel: KASLR moved the kernel's virtual base by %lld MiB",
			(long long)(k->kaslr_delta >> 20));
	return ret;
}
