/*
 * test_boot_reloc.c: the KASLR pieces on their own.
 *
 * A relocation table laid out by hand in a buffer, parsed, checked against
 * an image's bounds and applied with a chosen delta to guest memory; the
 * random choice of delta; the "nokaslr" word match; and the small helpers
 * the payload path leans on (format detection, cache naming).
 */
#include "tap.h"
#include "x86/x86.h"

#include <stdlib.h>
#include <string.h>

#define BASE	0x1000000ULL
#define END	(BASE + 0x10000)

static struct guest_mem gm;

/* A payload of `floor` bytes of "ELF", then the table. */
struct table {
	u8 buf[4096];
	u64 len;
	u64 floor;
};

static void push(struct table *t, u32 v)
{
	memcpy(t->buf + t->len, &v, sizeof(v));
	t->len += sizeof(v);
}

/* In file order: 0, 64-bit..., 0, inverse..., 0, 32-bit... */
static void build(struct table *t, const u32 *r64, int n64, const u32 *inv, int ninv,
		  const u32 *r32, int n32)
{
	int i;

	memset(t, 0, sizeof(*t));
	t->floor = t->len = 64;
	memset(t->buf, 0xee, t->floor);
	push(t, 0);
	for (i = 0; i < n64; i++)
		push(t, r64[i]);
	push(t, 0);
	for (i = 0; i < ninv; i++)
		push(t, inv[i]);
	push(t, 0);
	for (i = 0; i < n32; i++)
		push(t, r32[i]);
}

static u32 kva(u64 phys)
{
	return (u32)(START_KERNEL_MAP + phys);
}

static void test_parse(void)
{
	const u32 r64[] = { kva(BASE + 0x100), kva(BASE + 0x108) };
	const u32 inv[] = { kva(BASE + 0x200) };
	const u32 r32[] = { kva(BASE + 0x300), kva(BASE + 0x304), kva(BASE + 0x308) };
	struct reloc_table r;
	struct table t;

	build(&t, r64, 2, inv, 1, r32, 3);
	ok(relocs_parse(&r, t.buf, t.len, t.floor) == 0, "table parses");
	ok(r.count[RELOC_32] == 3 && r.count[RELOC_32_INV] == 1 && r.count[RELOC_64] == 2,
	   "lists read from the end: 3 x 32-bit, 1 inverse, 2 x 64-bit");
	is_int(r.table_start, t.floor, "the table starts where the ELF ends");
	ok(relocs_check(&r, BASE, END) == 0, "all inside [base, end)");

	build(&t, r64, 2, inv, 1, r32, 3);
	if (relocs_parse(&r, t.buf, t.len, t.floor + 4) == 0)
		fail("parsed");
	ok(
	   strstr(last_error(), "64-bit list has no terminator"),
	   "a list that runs into the ELF is refused: %s", last_error());
	ok(relocs_parse(&r, t.buf, t.len, t.len + 1) < 0, "a floor past the end is refused");
	build(&t, NULL, 0, NULL, 0, NULL, 0);
	ok(relocs_parse(&r, t.buf, t.len, t.floor) == 0 &&
	   r.count[0] + r.count[1] + r.count[2] == 0, "an empty table is a table");
}

/* A single relocation of the given kind at phys: in bounds or not? */
static int check_one(int kind, u64 phys)
{
	const u32 v = kva(phys);
	struct reloc_table r;
	struct table t;

	build(&t, kind == RELOC_64 ? &v : NULL, kind == RELOC_64,
	      kind == RELOC_32_INV ? &v : NULL, kind == RELOC_32_INV,
	      kind == RELOC_32 ? &v : NULL, kind == RELOC_32);
	if (relocs_parse(&r, t.buf, t.len, t.floor) < 0)
		return -2;
	return relocs_check(&r, BASE, END);
}

static void test_bounds(void)
{
	ok(check_one(RELOC_32, BASE) == 0 && check_one(RELOC_32, END - 4) == 0,
	   "32-bit: first and last word of the image accepted");
	ok(check_one(RELOC_32, BASE - 4) < 0, "32-bit: below the image refused");
	ok(check_one(RELOC_32, END - 2) < 0, "32-bit: straddling the end refused");
	ok(check_one(RELOC_32_INV, END) < 0, "inverse: at the end refused");
	ok(check_one(RELOC_64, END - 8) == 0 && check_one(RELOC_64, END - 4) < 0,
	   "64-bit: needs all 8 bytes inside");
	/* 0x00001234 sign-extends to a user address, nowhere near the kernel. */
	{
		const u32 v = 0x1234;
		struct reloc_table r;
		struct table t;

		build(&t, NULL, 0, NULL, 0, &v, 1);
		ok(relocs_parse(&r, t.buf, t.len, t.floor) == 0 &&
		   relocs_check(&r, BASE, END) < 0 && strstr(last_error(), "0x1234"),
		   "a non-kernel address is refused: %s", last_error());
	}
}

static void put32(u64 gpa, u32 v) { guest_write(&gm, gpa, &v, 4); }
static void put64(u64 gpa, u64 v) { guest_write(&gm, gpa, &v, 8); }
static u32 get32(u64 gpa) { u32 v = 0; guest_read(&gm, gpa, &v, 4); return v; }
static u64 get64(u64 gpa) { u64 v = 0; guest_read(&gm, gpa, &v, 8); return v; }

/* Apply with a fixed delta, the kernel loaded 32 MiB above its link base. */
static void test_apply(void)
{
	const u64 load = BASE + MiB(32);
	const u32 r64[] = { kva(BASE + 0x100) };
	const u32 inv[] = { kva(BASE + 0x200) };
	const u32 r32[] = { kva(BASE + 0x300), kva(BASE + 0x305) };
	const s64 delta = MiB(6);
	struct reloc_table r;
	struct table t;

	if (guest_mem_init(&gm, MiB(64)) < 0)
		abort();
	put64(load + 0x100, 0xffffffff81234567ULL);
	put32(load + 0x200, 0x4000);
	put32(load + 0x300, 0x81000000);
	put32(load + 0x305, 0xfffffff0);	/* unaligned, and wraps */
	build(&t, r64, 1, inv, 1, r32, 2);
	ok(relocs_parse(&r, t.buf, t.len, t.floor) == 0 && relocs_check(&r, BASE, END) == 0,
	   "table checked");
	ok(relocs_apply(&gm, &r, BASE, load, delta) == 0, "applied");
	is_int(get64(load + 0x100), 0xffffffff81234567ULL + delta, "64-bit += delta");
	is_int(get32(load + 0x200), (u32)(0x4000 - delta), "inverse 32-bit -= delta");
	is_int(get32(load + 0x300), 0x81000000 + delta, "32-bit += delta");
	is_int(get32(load + 0x305), (u32)(0xfffffff0 + delta), "32-bit wraps modulo 2^32, unaligned ok");
	is_int(get32(BASE + 0x300), 0, "the link address itself untouched");
	ok(relocs_apply(&gm, &r, BASE, GiB(3) - 0x200, delta) < 0,
	   "a load address whose targets are not RAM is refused");
	guest_mem_free(&gm);
}

static void test_kaslr_choice(void)
{
	int i, good = 0, moved = 0;

	for (i = 0; i < 200; i++) {
		s64 d = kaslr_choose_delta(BASE, MiB(58));

		good += d >= 0 && d % MiB(2) == 0 && BASE + d + MiB(58) <= GiB(1);
		moved += d != 0;
	}
	is_int(good, 200, "200 draws: 2 MiB aligned, image inside the 1 GiB window");
	ok(moved > 190, "draws are random (%d of 200 moved)", moved);
	is_int(kaslr_choose_delta(BASE + 0x1000, MiB(58)), 0, "misaligned base: no move");
	is_int(kaslr_choose_delta(BASE, GiB(1)), 0, "image too big for the window: no move");
	is_int(kaslr_choose_delta(BASE, GiB(1) - BASE), 0, "exactly filling the window: one slot");
}

static void test_cmdline_word(void)
{
	ok(cmdline_has_word("nokaslr", "nokaslr"), "alone");
	ok(cmdline_has_word("console=ttyS0  nokaslr\tquiet", "nokaslr"), "between others");
	ok(!cmdline_has_word("nokaslrx quiet", "nokaslr"), "not a prefix of a word");
	ok(!cmdline_has_word("xnokaslr foo=nokaslr", "nokaslr"), "not a suffix or a value");
	ok(!cmdline_has_word("", "nokaslr"), "empty line");
}

static void test_helpers(void)
{
	static const u8 gz[] = { 0x1f, 0x8b, 8 }, xz[] = { 0xfd, '7', 'z', 'X', 'Z', 0 },
			zs[] = { 0x28, 0xb5, 0x2f, 0xfd }, bz2[] = { 'B', 'Z', 'h', '9' };
	u8 page[8192] = { 0 }, junk[64];
	struct blob a = { page, 4096 }, b = { page, 4097 }, out;
	char *pa, *pb;

	ok(!strcmp(payload_format(gz, 3), "gzip") && !strcmp(payload_format(xz, 6), "xz") &&
	   !strcmp(payload_format(zs, 4), "zstd") && !strcmp(payload_format(bz2, 4), "bzip2") &&
	   !strcmp(payload_format(xz, 3), "unknown"), "payload formats by magic");
	memset(junk, 0, sizeof(junk));
	memcpy(junk, xz, sizeof(xz));
	ok(payload_decompress(junk, sizeof(junk), GiB(4), &out) < 0 && !out.data,
	   "a payload claiming 0 bytes is refused: %s", last_error());
	junk[60] = 0x00, junk[61] = 0x10;	/* claims 4 KiB */
	ok(payload_decompress(junk, sizeof(junk), GiB(4), &out) < 0 && strstr(last_error(), "xz"),
	   "a broken xz stream is refused: %s", last_error());
	junk[63] = 0x10;			/* claims 256 MiB + 4 KiB */
	ok(payload_decompress(junk, sizeof(junk), MiB(256), &out) < 0 && !out.data &&
	   strstr(last_error(), "more than guest RAM"),
	   "a payload claiming more than guest RAM is refused unread: %s", last_error());

	pa = cache_path("/c", &a);
	pb = cache_path("/c", &b);
	ok(pa && pb && strlen(pa) == strlen("/c/") + 32 + strlen(".vmlinux") &&
	   strcmp(pa, pb), "cache names: 128-bit hex of the file, different files differ");
	ok(cache_path("", &a) == NULL, "\"\" disables the cache");
	free(pa);
	free(pb);

	/* guest_zero over 4 pages' worth from byte 100: partial pages at
	 * both ends, whole ones between; the bytes around it are kept. */
	struct guest_mem ram_gm;
	bool all_zero = true;
	u8 *ram;

	if (guest_mem_init(&ram_gm, MiB(4)) == 0) {
		ram = guest_ptr(&ram_gm, 0, 6 * 4096);
		memset(ram, 0x77, 6 * 4096);
		ok(guest_zero(&ram_gm, 100, 4 * 4096) == 0, "guest_zero in RAM");
		for (unsigned i = 100; i < 100 + 4 * 4096; i++)
			all_zero &= ram[i] == 0;
		ok(all_zero && ram[99] == 0x77 && ram[100 + 4 * 4096] == 0x77,
		   "guest_zero: exactly the range reads as zero");
		ok(guest_zero(&ram_gm, MiB(4) - 4096, 8192) < 0, "guest_zero: a range past RAM is refused");
		guest_mem_free(&ram_gm);
	}

	/* A segment of data, a page of zeros, then data that ends mid-page. */
	static u8 src[3 * 4096 + 100], dst[3 * 4096 + 100];

	memset(src, 0xa5, 4096);
	memset(src + 2 * 4096, 0x5a, 4096 + 100);
	copy_skipping_zeros(dst, src, sizeof(src));
	ok(!memcmp(dst, src, sizeof(src)), "copy_skipping_zeros: exact into zeroed memory");
	dst[4096 + 7] = 1;
	copy_skipping_zeros(dst, src, sizeof(src));
	ok(dst[4096 + 7] == 1 && dst[2 * 4096] == 0x5a,
	   "copy_skipping_zeros: a page of zeros is not written, the others are");
}

int main(void)
{
	test_parse();
	test_bounds();
	test_apply();
	test_kaslr_choice();
	test_cmdline_word();
	test_helpers();
	return tap_done();
}
