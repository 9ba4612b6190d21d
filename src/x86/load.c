/*
 * load.c: x86_boot_load(), the start of the boot tour.
 *
 * A kernel arrives as a file.  We map it once, read-only, and everything
 * after that works on the mapping: hashing it for the cache, parsing its
 * headers, copying its bytes into the guest.  A Debian kernel is 8 MiB
 * compressed and 60 MiB unpacked, so "no extra copies" is the performance
 * rule of this directory.
 *
 * Then, in order: the kernel (bzimage.c or elf.c), the command line and
 * initrd which must avoid it, the zero page that describes all three, and
 * the CPU's starting world: page tables, GDT and MP table.
 */
#include "x86/x86.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Every file error names the file, because the user gave us several
 * (kernel, initrds, a cache) and "No such file" alone says nothing.
 */
int blob_map_file(struct blob *b, const char *path)
{
	struct stat st;
	void *p;
	int fd;

	memset(b, 0, sizeof(*b));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		fail("%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		fail("%s: is a directory", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		fail("%s: not a regular file", path);
		goto out;
	}
	if (st.st_size == 0) {
		fail("%s: empty file", path);
		goto out;
	}
	/* MAP_POPULATE: we are about to read every byte (hash or copy), so
	 * one pass of page-table setup beats thousands of minor faults. */
	p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED) {
		fail("%s: cannot map: %s", path, strerror(errno));
		goto out;
	}
	b->data = p;
	b->size = st.st_size;
out:
	close(fd);
	return b->data ? 0 : -1;
}

/* Mappings and decompressed payloads are both mmaps: one way to free. */
void blob_free(struct blob *b)
{
	if (b->data)
		munmap(b->data, b->size);
	memset(b, 0, sizeof(*b));
}

static const u8 zero_page[4096];

/*
 * Copy a kernel's file bytes into guest RAM that is still zero (fresh, or
 * wiped by guest_zero() after a failed attempt).  A vmlinux carries its
 * .bss, .brk and scratch space as zeros in the file (27 of the 57 MiB
 * Debian's kernel loads); copying those pages would buy nothing but the
 * copy and the commit of every page, so they are skipped, untouched.
 */
void copy_skipping_zeros(u8 *dst, const u8 *src, u64 len)
{
	while (len) {
		u64 n = MIN(len, sizeof(zero_page));

		if (memcmp(src, zero_page, n))
			memcpy(dst, src, n);
		dst += n;
		src += n;
		len -= n;
	}
}

/* A bzImage prefers the host-decompression path and falls back to the
 * kernel's own decompressor for anything that path cannot handle. */
static int load_bzimage(struct guest_mem *gm, const struct boot_setup *s,
			const struct blob *file, struct kernel *k)
{
	struct bzimage bz;

	if (bzimage_parse(file, s->kernel_path, &bz) < 0)
		return -1;
	if (bzimage_place(gm, &bz, s->kernel_path, k) < 0)
		return -1;
	if (s->no_host_decompress)
		verbose("kernel: host decompression disabled, the kernel decompresses itself");
	else if (payload_load(gm, s, file, &bz, k) == 0)
		return 0;
	else
		verbose("kernel: not decompressing on the host: %s", last_error());
	return bzimage_load_plain(gm, &bz, k);
}

/* A bare vmlinux: no setup header, so no relocations and no init_size;
 * it goes exactly where it was linked to go. */
static int load_elf(struct guest_mem *gm, const struct blob *file,
		    const char *name, struct kernel *k)
{
	struct elf_image e;

	if (elf_parse(&e, name, file->data, file->size) < 0)
		return -1;
	if (elf_place(gm, &e, name, k) < 0)
		return -1;
	if (elf_load(gm, &e, k->load) < 0)
		return fail("%s: kernel does not fit in guest memory", name);
	k->how = "ELF vmlinux";
	return 0;
}

/* Recognise the kernel by its first bytes and load it. */
static int load_kernel(struct guest_mem *gm, const struct boot_setup *s, struct kernel *k)
{
	struct blob file;
	int ret;

	if (blob_map_file(&file, s->kernel_path) < 0)
		return -1;
	memset(k, 0, sizeof(*k));
	k->path = s->kernel_path;
	if (elf_is(&file))
		ret = load_elf(gm, &file, s->kernel_path, k);
	else if (bzimage_is(&file))
		ret = load_bzimage(gm, s, &file, k);
	else
		ret = fail("%s: not a Linux kernel (no bzImage header, not ELF)",
			   s->kernel_path);
	blob_free(&file);
	return ret;
}

/* The CPU's world at entry: the identity map, a GDT and, for SMP, the MP
 * table.  These live below 1 MiB where nothing else goes. */
static int write_cpu_tables(struct guest_mem *gm, const struct boot_setup *s,
			    struct boot_entry *out)
{
	if (pagetables_write(gm, &out->cr3) < 0)
		return -1;
	if (gdt_write(gm, &out->gdt_base, &out->gdt_limit) < 0)
		return -1;
	return mptable_write(gm, s->ncpus, s->pci_irqs, s->n_pci_irqs);
}

/*
 * The order matters: the kernel first, because where it lands (and how
 * long a command line it accepts) constrains everything placed after it.
 */
int x86_boot_load(struct guest_mem *gm, const struct boot_setup *s, struct boot_entry *out)
{
	struct kernel k;
	u64 initrd_addr, initrd_size;
	double t0 = now_ms();

	memset(out, 0, sizeof(*out));
	if (gm->low_size < MiB(1))
		return fail("%s: guest memory below 1 MiB cannot hold a kernel", s->kernel_path);
	if (load_kernel(gm, s, &k) < 0)
		return -1;
	if (cmdline_write(gm, &k, s->cmdline ? s->cmdline : "") < 0)
		return -1;
	if (initrd_load(gm, s, &k, &initrd_addr, &initrd_size) < 0)
		return -1;
	if (bootparams_write(gm, &k, initrd_addr, initrd_size) < 0)
		return -1;
	if (write_cpu_tables(gm, s, out) < 0)
		return -1;
	out->rip = k.entry;
	out->rsi = BOOT_PARAMS_ADDR;
	out->how = k.how;
	verbose("kernel: %s loaded at %#llx, entry %#llx, in %.1f ms", k.how,
		(unsigned long long)k.load, (unsigned long long)k.entry, now_ms() - t0);
	return 0;
}
