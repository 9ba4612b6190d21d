/*
 * bzimage.c: the bzImage's setup header, and the plain way to load one.
 *
 * A bzImage is real-mode setup code (whose first sectors carry the setup
 * header) followed by a protected-mode part: a small decompressor with the
 * compressed kernel inside it.  We never run the real-mode code: with a
 * 64-bit entry the CPU starts at the protected-mode part's offset 0x200
 * (startup_64), already in long mode.
 *
 * The "plain" path copies the protected-mode part to pref_address and lets
 * the kernel decompress itself.  payload.c does better when it can, but
 * this path always works, so it is the fallback for everything payload.c
 * does not understand.
 */
#include "x86/x86.h"

#include <string.h>

/* The two magic numbers every bzImage since 1.0 carries at fixed places. */
bool bzimage_is(const struct blob *f)
{
	u16 flag;
	u32 magic;

	if (f->size < BP_OFF(hdr.header) + sizeof(magic))
		return false;
	memcpy(&flag, f->data + BP_OFF(hdr.boot_flag), sizeof(flag));
	memcpy(&magic, f->data + BP_OFF(hdr.header), sizeof(magic));
	return flag == BOOT_FLAG_MAGIC && magic == HDRS_MAGIC;
}

/*
 * The header's length is told by the jump instruction that skips over it:
 * its second byte is a displacement from 0x202.  Fields past the end are
 * left zero, which is how old kernels say "not supported".
 */
static void copy_header(const struct blob *f, struct setup_header *h, u64 *hdr_end)
{
	u64 end = 0x202 + f->data[0x201];
	u64 n = MIN(end, SETUP_HDR_OFFSET + sizeof(*h));

	memset(h, 0, sizeof(*h));
	n = MIN(n, f->size) - SETUP_HDR_OFFSET;
	memcpy(h, f->data + SETUP_HDR_OFFSET, n);
	*hdr_end = end;
}

/* What we need from the protocol: 2.06 or later, with a 64-bit entry
 * point, and a header long enough to hold pref_address and init_size. */
static int check_protocol(const struct setup_header *h, u64 hdr_end, const char *name)
{
	unsigned int major = h->version >> 8, minor = h->version & 0xff;

	if (h->version < BOOT_PROTO_MIN)
		return fail("%s: boot protocol %u.%02u is too old (need 2.06 or later)",
			    name, major, minor);
	if (h->version < 0x20c || !(h->xloadflags & XLF_KERNEL_64))
		return fail("%s: kernel has no 64-bit entry point (boot protocol %u.%02u, xloadflags %#x)",
			    name, major, minor, h->xloadflags);
	if (hdr_end < BP_OFF(hdr.init_size) + sizeof(h->init_size))
		return fail("%s: bzImage setup header is truncated (ends at %#llx)",
			    name, (unsigned long long)hdr_end);
	return 0;
}

/*
 * Split the file into setup and protected-mode parts and check that what
 * the header promises is really in the file: a truncated download must be
 * refused here, not found by the guest halfway through decompressing.
 */
static int split_file(const struct blob *f, struct bzimage *bz, const char *name)
{
	const struct setup_header *h = &bz->hdr;
	u64 sects = h->setup_sects ? h->setup_sects : 4;
	u64 setup_size = (sects + 1) * 512;
	u64 claimed = setup_size + (u64)h->syssize * 16;

	if (setup_size >= f->size || claimed > f->size)
		return fail("%s: truncated bzImage (%llu bytes, its header says %llu)",
			    name, (unsigned long long)f->size,
			    (unsigned long long)MAX(claimed, setup_size + 1));
	bz->pm = f->data + setup_size;
	bz->pm_size = f->size - setup_size;
	return 0;
}

/* The compressed vmlinux, if the header locates it inside the file; its
 * absence only means payload.c cannot help. */
static void find_payload(struct bzimage *bz)
{
	u64 off = bz->hdr.payload_offset, len = bz->hdr.payload_length;

	if (len >= 8 && off + len <= bz->pm_size) {
		bz->payload = bz->pm + off;
		bz->payload_size = len;
	}
}

/* Everything about the file that can be refused is refused here, before
 * guest memory is touched. */
int bzimage_parse(const struct blob *f, const char *name, struct bzimage *bz)
{
	struct setup_header *h = &bz->hdr;
	u64 hdr_end;

	memset(bz, 0, sizeof(*bz));
	copy_header(f, h, &hdr_end);
	if (check_protocol(h, hdr_end, name) < 0 || split_file(f, bz, name) < 0)
		return -1;
	/* startup_64 refuses to run from an address that is not 2 MiB
	 * aligned; better to say so now than to watch the guest hang. */
	if (h->pref_address < MiB(1) || h->pref_address % PHYSICAL_ALIGN ||
	    h->pref_address >= PCI_HOLE_START)
		return fail("%s: bzImage wants to load at %#llx, not a 2 MiB-aligned address in low memory",
			    name, (unsigned long long)h->pref_address);
	if (h->init_size < bz->pm_size)
		return fail("%s: corrupt bzImage header (init_size %#x is smaller than the kernel)",
			    name, h->init_size);
	find_payload(bz);
	return 0;
}

/* One wording for "too big" on every path, because it is the error users
 * will actually meet: they asked for too little memory. */
int kernel_fits(const struct guest_mem *gm, const char *name, u64 end)
{
	if (end > gm->low_size)
		return fail("%s: kernel needs %llu MiB of memory, given %llu MiB", name,
			    (unsigned long long)(ALIGN_UP(end, MiB(1)) >> 20),
			    (unsigned long long)(gm->size >> 20));
	return 0;
}

/*
 * Decide where the kernel goes, before anything is written: pref_address,
 * with init_size bytes from there reserved for it.  Both load paths use the
 * same place, so falling back from one to the other never moves anything.
 */
int bzimage_place(const struct guest_mem *gm, const struct bzimage *bz,
		  const char *name, struct kernel *k)
{
	k->hdr = bz->hdr;
	k->load = bz->hdr.pref_address;
	k->end = k->load + bz->hdr.init_size;
	k->entry = k->load + BZ_ENTRY_64;
	return kernel_fits(gm, name, k->end);
}

/* The kernel's own decompressor will do the work (and its own KASLR). */
int bzimage_load_plain(struct guest_mem *gm, const struct bzimage *bz, struct kernel *k)
{
	u8 *dst = guest_ptr(gm, k->load, k->end - k->load);

	if (!dst)
		return kernel_fits(gm, k->path, k->end);
	memcpy(dst, bz->pm, bz->pm_size);
	/* init_size promises the decompressor room that holds nothing but
	 * zeros: fresh guest RAM does, and so does RAM that a failed
	 * decompressed install wiped; make sure without touching a page. */
	guest_zero(gm, k->load + bz->pm_size, k->end - k->load - bz->pm_size);
	k->hdr.loadflags &= ~KASLR_FLAG;
	k->entry = k->load + BZ_ENTRY_64;
	k->kaslr_delta = 0;
	k->how = "bzImage";
	return 0;
}
