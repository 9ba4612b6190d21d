/*
 * guest_mem.c: guest RAM, and the bounds-checked accessor.
 */
#include "guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>

/*
 * A mapping whose start is aligned to `align`: only then can a guest's
 * 2 MiB page be backed by one host huge page (and one EPT/NPT entry).
 * Over-map by `align` and trim both ends.
 */
static void *map_aligned(u64 size, u64 align)
{
	u8 *p, *start;
	u64 lead;

	if (size > UINT64_MAX - align)
		return NULL;
	p = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	start = (u8 *)ALIGN_UP((uintptr_t)p, align);
	lead = start - p;
	if (lead)
		munmap(p, lead);
	munmap(start + size, align - lead);
	return start;
}

int guest_mem_init(struct guest_mem *gm, u64 size)
{
	void *p;

	memset(gm, 0, sizeof(*gm));
	if (size == 0)
		return fail("memory size must be at least 1 MiB");
	/*
	 * MAP_NORESERVE: we promise the guest `size` bytes but commit none up
	 * front; a guest that never touches its RAM costs us nothing.
	 */
	p = map_aligned(size, MiB(2));
	if (!p)
		return fail("cannot map %llu MiB of guest memory: %s; give less memory",
			    (unsigned long long)(size >> 20), strerror(errno));
	/*
	 * Guest RAM is a fine candidate for transparent huge pages: fewer TLB
	 * misses for the guest, and 30 faults instead of 15000 when we copy
	 * a kernel in.  Not the first 2 MiB: the boot structures there are a
	 * few pages, and zeroing a whole huge page for them would be a good
	 * part of our start-up time.
	 */
	if (size > MiB(2))
		madvise((u8 *)p + MiB(2), size - MiB(2), MADV_HUGEPAGE);
	gm->host = p;
	gm->size = size;
	gm->low_size = MIN(size, PCI_HOLE_START);
	gm->high_size = size - gm->low_size;
	return 0;
}

void guest_mem_free(struct guest_mem *gm)
{
	if (gm->host)
		munmap(gm->host, gm->size);
	memset(gm, 0, sizeof(*gm));
}

u64 guest_mem_resident(const struct guest_mem *gm)
{
	const u64 chunk = MiB(64);
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *vec;
	u64 pages = 0;

	vec = malloc(chunk / page);
	if (!vec)
		return 0;
	/* A chunk at a time, so the vector stays small for huge guests. */
	for (u64 off = 0; off < gm->size; off += chunk) {
		u64 len = MIN(chunk, gm->size - off);

		if (mincore(gm->host + off, len, vec) < 0)
			break;
		for (u64 i = 0; i < len / page; i++)
			pages += vec[i] & 1;
	}
	free(vec);
	return pages * page;
}

void *guest_ptr(const struct guest_mem *gm, u64 gpa, u64 len)
{
	u64 end;

	/* gpa + len may wrap: a guest can hand us 0xffff...f000 and a length
	 * of two pages.  Check the sum before trusting it. */
	if (__builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (end <= gm->low_size)
		return gm->host + gpa;
	if (gpa >= HIGH_RAM_START && end - HIGH_RAM_START <= gm->high_size)
		return gm->host + gm->low_size + (gpa - HIGH_RAM_START);
	return NULL;
}

u64 guest_ram_left(const struct guest_mem *gm, u64 gpa)
{
	if (gpa < gm->low_size)
		return gm->low_size - gpa;
	if (gpa >= HIGH_RAM_START && gpa - HIGH_RAM_START < gm->high_size)
		return gm->high_size - (gpa - HIGH_RAM_START);
	return 0;
}

int guest_zero(const struct guest_mem *gm, u64 gpa, u64 len)
{
	u8 *p = guest_ptr(gm, gpa, len);
	u8 *first, *last;

	if (!p)
		return -1;
	first = (u8 *)ALIGN_UP((uintptr_t)p, 4096);
	last = (u8 *)ALIGN_DOWN((uintptr_t)(p + len), 4096);
	if (first >= last || madvise(first, last - first, MADV_DONTNEED) < 0) {
		memset(p, 0, len);
		return 0;
	}
	memset(p, 0, first - p);
	memset(last, 0, p + len - last);
	return 0;
}

int guest_write(const struct guest_mem *gm, u64 gpa, const void *src, u64 len)
{
	void *p = guest_ptr(gm, gpa, len);

	if (!p)
		return -1;
	memcpy(p, src, len);
	return 0;
}

int guest_read(const struct guest_mem *gm, u64 gpa, void *dst, u64 len)
{
	const void *p = guest_ptr(gm, gpa, len);

	if (!p)
		return -1;
	memcpy(dst, p, len);
	return 0;
}
