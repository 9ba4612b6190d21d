/*
 * kaslr.c: moving the kernel's virtual base, as its own decompressor would.
 *
 * An x86-64 kernel runs at __START_KERNEL_map + 16 MiB unless someone
 * relocates it.  The build leaves a table of every place that holds a
 * kernel address (vmlinux.relocs, appended to vmlinux in the payload), so
 * moving it is a matter of adding a delta at each place.  The physical
 * load address needs no relocation: startup_64 works that out itself.
 *
 * The table is read from the end of the payload backwards, as three lists
 * of 32-bit entries, each ended by a zero:
 *
 *   32-bit relocations          *(u32 *)where += delta
 *   inverse 32-bit relocations  *(u32 *)where -= delta   (per-cpu offsets)
 *   64-bit relocations          *(u64 *)where += delta
 *
 * Each entry is the sign-extended low half of the kernel virtual address
 * to patch.  The table comes from a file, so every address is checked to
 * lie inside the loaded image before anything is patched.
 */
#include "x86/x86.h"

#include <ctype.h>
#include <string.h>
#include <sys/random.h>

static const u8 reloc_width[RELOC_KINDS] = { 4, 4, 8 };
static const char *const reloc_name[RELOC_KINDS] = { "32-bit", "inverse 32-bit", "64-bit" };

/* Entry i of a list, counting down from the list's first (highest) slot. */
static u32 reloc_entry(const struct reloc_table *r, int kind, u64 i)
{
	u32 v;

	memcpy(&v, r->buf + r->start[kind] - 4 * (i + 1), sizeof(v));
	return v;
}

/* The linked physical address an entry names (0x1000000-based). */
static u64 reloc_target(u32 v)
{
	return (u64)(s64)(s32)v - START_KERNEL_MAP;
}

/*
 * Walk one list down from *pos to its zero.  floor is where the ELF's own
 * bytes end: a list that reaches it has no terminator, and what we are
 * reading is no relocation table.
 */
static int scan_list(const u8 *buf, u64 *pos, u64 floor, u64 *count)
{
	u64 p = *pos;
	u32 v;

	*count = 0;
	for (;;) {
		if (p < floor + 4)
			return -1;
		p -= 4;
		memcpy(&v, buf + p, sizeof(v));
		if (!v)
			break;
		(*count)++;
	}
	*pos = p;
	return 0;
}

/* Find the three lists; their entries are checked by relocs_check(). */
int relocs_parse(struct reloc_table *r, const u8 *buf, u64 size, u64 floor)
{
	u64 pos = size;
	int kind;

	memset(r, 0, sizeof(*r));
	r->buf = buf;
	if (floor > size)
		return fail("relocation table: payload ends inside the ELF");
	for (kind = 0; kind < RELOC_KINDS; kind++) {
		r->start[kind] = pos;
		if (scan_list(buf, &pos, floor, &r->count[kind]) < 0)
			return fail("relocation table: %s list has no terminator before the ELF",
				    reloc_name[kind]);
	}
	r->table_start = pos;
	return 0;
}

/* Every place to patch must be inside the image, all of its bytes. */
int relocs_check(const struct reloc_table *r, u64 base, u64 end)
{
	int kind;
	u64 i;

	for (kind = 0; kind < RELOC_KINDS; kind++) {
		u64 width = reloc_width[kind];

		for (i = 0; i < r->count[kind]; i++) {
			u32 v = reloc_entry(r, kind, i);
			u64 at = reloc_target(v);

			if (end < base + width || at < base || at > end - width)
				return fail("relocation table: %s relocation %#x is outside the kernel image",
					    reloc_name[kind], v);
		}
	}
	return 0;
}

/* Patch one place; the delta is added modulo the width, as the kernel's
 * decompressor does. */
static void patch(u8 *p, int kind, s64 delta)
{
	u32 v32;
	u64 v64;

	if (kind == RELOC_64) {
		memcpy(&v64, p, sizeof(v64));
		v64 += delta;
		memcpy(p, &v64, sizeof(v64));
		return;
	}
	memcpy(&v32, p, sizeof(v32));
	v32 = kind == RELOC_32 ? v32 + (u32)delta : v32 - (u32)delta;
	memcpy(p, &v32, sizeof(v32));
}

/* Apply a checked table to a kernel whose linked base sits at GPA load. */
int relocs_apply(struct guest_mem *gm, const struct reloc_table *r,
		 u64 base, u64 load, s64 delta)
{
	int kind;
	u64 i;

	for (kind = 0; kind < RELOC_KINDS; kind++) {
		for (i = 0; i < r->count[kind]; i++) {
			u64 at = reloc_target(reloc_entry(r, kind, i));
			u8 *p = guest_ptr(gm, load + (at - base), reloc_width[kind]);

			if (!p)
				return -1;
			patch(p, kind, delta);
		}
	}
	return 0;
}

/* "nokaslr" as a whole word, the way the kernel's own parser sees it. */
bool cmdline_has_word(const char *cmdline, const char *word)
{
	size_t n = strlen(word);
	const char *p = cmdline;

	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		if (!strncmp(p, word, n) && (!p[n] || isspace((unsigned char)p[n])))
			return true;
		while (*p && !isspace((unsigned char)*p))
			p++;
	}
	return false;
}

/*
 * Pick the new virtual base like the kernel's find_random_virt_addr(): a
 * 2 MiB-aligned slot from the linked base up to where the image would leave
 * the 1 GiB kernel-image window.  Returns the delta from the linked base;
 * 0 (no move) when the kernel does not fit the scheme or no randomness is
 * to be had, which is still a correct boot.
 */
s64 kaslr_choose_delta(u64 base, u64 span)
{
	u64 slots, r;

	if (base % PHYSICAL_ALIGN || base + span > KERNEL_IMAGE_SIZE)
		return 0;
	slots = (KERNEL_IMAGE_SIZE - span - base) / PHYSICAL_ALIGN + 1;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r)) {
		verbose("kernel: no randomness for KASLR, keeping the linked address");
		return 0;
	}
	return (s64)((r % slots) * PHYSICAL_ALIGN);
}
