/*
 * initrd.c: initial ramdisks, concatenated and placed high.
 *
 * Several --initrd files become one ramdisk, in the order given (the
 * kernel unpacks concatenated cpio archives one after another).  It goes
 * as high as the kernel allows: below both the top of low RAM and the
 * kernel's initrd_addr_max, page aligned, and it must stay above the
 * kernel's init_size so the kernel can unpack without treading on it.
 *
 * An initrd is often tens of MiB, so each file is read with pread()
 * straight into guest memory: no bounce buffer, no extra copy.
 */
#include "x86/x86.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE_SIZE	4096
/* Each archive starts 4-byte aligned, as cpio's own padding expects. */
#define INITRD_ALIGN	4

/* Open one initrd and learn its size; errors name the file. */
static int open_initrd(const char *path, u64 *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fail("%s: cannot read initrd: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fail("%s: initrd is not a regular file", path);
		close(fd);
		return -1;
	}
	*size = st.st_size;
	return fd;
}

/* Read all of len bytes at dst, in big chunks; a file that shrank after
 * we sized it is an error, not a short initrd. */
static int read_into(int fd, u8 *dst, u64 len, const char *path)
{
	u64 off = 0;

	while (off < len) {
		ssize_t n = pread(fd, dst + off, MIN(len - off, GiB(1)), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("%s: cannot read initrd: %s", path, strerror(errno));
		if (n == 0)
			return fail("%s: initrd shrank while being read", path);
		off += n;
	}
	return 0;
}

/*
 * Where the ramdisk may go: from just above the kernel (and 1 MiB) to the
 * lower of the top of low RAM and initrd_addr_max.
 */
static void initrd_window(const struct guest_mem *gm, const struct kernel *k,
			  u64 *lo, u64 *hi)
{
	*hi = ALIGN_DOWN(MIN(gm->low_size, (u64)k->hdr.initrd_addr_max + 1), PAGE_SIZE);
	*lo = ALIGN_UP(MAX(k->end, MiB(1)), PAGE_SIZE);
	if (*lo > *hi)
		*lo = *hi;
}

/* Open everything and size the whole ramdisk, naming the initrd that
 * makes it too big. */
static int size_initrds(const struct boot_setup *s, int *fds, u64 *sizes,
			u64 room, u64 *total)
{
	int i;

	*total = 0;
	for (i = 0; i < s->n_initrd; i++) {
		fds[i] = open_initrd(s->initrd_paths[i], &sizes[i]);
		if (fds[i] < 0)
			return -1;
		*total = ALIGN_UP(*total, INITRD_ALIGN) + sizes[i];
		if (sizes[i] > room || *total > room)
			return fail("%s: initrd too big: %llu MiB in all, but only %llu MiB fit between the kernel and the top of memory",
				    s->initrd_paths[i],
				    (unsigned long long)(*total >> 20),
				    (unsigned long long)(room >> 20));
	}
	return 0;
}

/* Read each file into place, zeroing the few bytes of padding between. */
static int read_initrds(struct guest_mem *gm, const struct boot_setup *s,
			const int *fds, const u64 *sizes, u64 addr)
{
	u64 off = 0, pad;
	u8 *dst;
	int i;

	for (i = 0; i < s->n_initrd; i++) {
		pad = ALIGN_UP(off, INITRD_ALIGN) - off;
		dst = guest_ptr(gm, addr + off, pad + sizes[i]);
		if (!dst)
			return fail("%s: initrd does not fit in guest memory", s->initrd_paths[i]);
		memset(dst, 0, pad);
		if (read_into(fds[i], dst + pad, sizes[i], s->initrd_paths[i]) < 0)
			return -1;
		off += pad + sizes[i];
	}
	return 0;
}

/* Size everything first, so a too-big initrd is refused before any of
 * them is read; then read each straight into place. */
int initrd_load(struct guest_mem *gm, const struct boot_setup *s,
		const struct kernel *k, u64 *addr, u64 *size)
{
	u64 lo, hi, total = 0, *sizes;
	int i, ret, *fds;

	*addr = *size = 0;
	if (s->n_initrd <= 0)
		return 0;
	fds = calloc(s->n_initrd, sizeof(*fds));
	sizes = calloc(s->n_initrd, sizeof(*sizes));
	if (!fds || !sizes) {
		free(fds);
		free(sizes);
		return fail("no memory for %d initrds", s->n_initrd);
	}
	for (i = 0; i < s->n_initrd; i++)
		fds[i] = -1;
	initrd_window(gm, k, &lo, &hi);
	ret = size_initrds(s, fds, sizes, hi - lo, &total);
	if (ret == 0 && total) {
		*addr = ALIGN_DOWN(hi - total, PAGE_SIZE);
		*size = total;
		ret = read_initrds(gm, s, fds, sizes, *addr);
	}
	for (i = 0; i < s->n_initrd; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	free(sizes);
	if (ret == 0 && total)
		verbose("initrd: %llu bytes at %#llx", (unsigned long long)total,
			(unsigned long long)*addr);
	return ret;
}
