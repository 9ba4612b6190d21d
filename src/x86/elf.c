/*
 * elf.c: vmlinux, the kernel as the linker left it.
 *
 * We meet it twice: given directly on the command line, and as what comes
 * out of a bzImage's payload (payload.c).  Either way only the program
 * headers matter: each PT_LOAD segment goes to its physical address
 * (p_paddr, 16 MiB for x86-64), or to the same offset from wherever we
 * chose to load the kernel instead.
 *
 * The file may be anything the user (or a corrupt cache) hands us, so every
 * header is copied out before use (no unaligned pointers into the file) and
 * every offset and size is checked against the file, with the sums
 * overflow-checked, before a byte is copied.
 */
#include "x86/x86.h"

#include <elf.h>
#include <string.h>

/* A vmlinux has five; more than this is not a kernel. */
#define ELF_MAX_PHDRS 64

/* Only the magic: what follows is checked by elf_parse(), so that a
 * broken ELF is reported as one rather than as "not a kernel". */
bool elf_is(const struct blob *f)
{
	return f->size >= SELFMAG && !memcmp(f->data, ELFMAG, SELFMAG);
}

/* Copied out, because a hostile e_phoff need not be aligned. */
static void read_phdr(const struct elf_image *e, const Elf64_Ehdr *eh, int i, Elf64_Phdr *ph)
{
	memcpy(ph, e->data + eh->e_phoff + (u64)i * sizeof(*ph), sizeof(*ph));
}

/* Is this an x86-64 executable whose header tables lie inside the file? */
static int check_header(const Elf64_Ehdr *eh, const char *name, u64 size, u64 *tables_end)
{
	u64 ph_end, sh_end;

	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return fail("%s: not a 64-bit little-endian ELF", name);
	if (eh->e_machine != EM_X86_64)
		return fail("%s: ELF for another machine (e_machine %u), need x86-64",
			    name, eh->e_machine);
	if (eh->e_type != ET_EXEC)
		return fail("%s: ELF type %u is not an executable", name, eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > ELF_MAX_PHDRS)
		return fail("%s: bad ELF program header table (%u entries of %u bytes)",
			    name, eh->e_phnum, eh->e_phentsize);
	ph_end = eh->e_phoff + (u64)eh->e_phnum * sizeof(Elf64_Phdr);
	if (eh->e_phoff > size || ph_end > size)
		return fail("%s: truncated ELF (program headers past the end of the file)", name);
	sh_end = eh->e_shoff + (u64)eh->e_shnum * eh->e_shentsize;
	if (eh->e_shnum && (eh->e_shoff > size || sh_end > size))
		return fail("%s: truncated ELF (section headers past the end of the file)", name);
	*tables_end = MAX(ph_end, eh->e_shnum ? sh_end : 0);
	return 0;
}

/* One PT_LOAD: its bytes must be in the file and its addresses must not
 * wrap; fold it into the image's span. */
static int add_segment(struct elf_image *e, const Elf64_Phdr *ph, int i, const char *name)
{
	u64 file_end, mem_end;

	if (ph->p_filesz > ph->p_memsz)
		return fail("%s: bad ELF segment %d (file size larger than memory size)", name, i);
	if (__builtin_add_overflow(ph->p_offset, ph->p_filesz, &file_end) || file_end > e->size)
		return fail("%s: truncated ELF (segment %d ends past the end of the file)", name, i);
	if (__builtin_add_overflow(ph->p_paddr, ph->p_memsz, &mem_end) || mem_end > PCI_HOLE_START)
		return fail("%s: ELF segment %d at %#llx is not in low memory", name, i,
			    (unsigned long long)ph->p_paddr);
	e->base = MIN(e->base, ph->p_paddr);
	e->end = MAX(e->end, mem_end);
	e->data_end = MAX(e->data_end, file_end);
	return 0;
}

/*
 * The entry point is physical in a vmlinux (phys_startup_64), but accept a
 * virtual one too by translating it through the segment that holds it.
 */
static int find_entry(struct elf_image *e, const Elf64_Ehdr *eh, const char *name)
{
	Elf64_Phdr ph;
	int i;

	if (eh->e_entry >= e->base && eh->e_entry < e->end) {
		e->entry = eh->e_entry;
		return 0;
	}
	for (i = 0; i < eh->e_phnum; i++) {
		read_phdr(e, eh, i, &ph);
		if (ph.p_type == PT_LOAD && eh->e_entry - ph.p_vaddr < ph.p_memsz) {
			e->entry = ph.p_paddr + (eh->e_entry - ph.p_vaddr);
			return 0;
		}
	}
	return fail("%s: ELF entry point %#llx is outside the kernel", name,
		    (unsigned long long)eh->e_entry);
}

/* Check the whole file and learn its span and entry; nothing is loaded
 * yet, so a caller can still pick another path. */
int elf_parse(struct elf_image *e, const char *name, const u8 *data, u64 size)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int i, nload = 0;

	memset(e, 0, sizeof(*e));
	e->data = data;
	e->size = size;
	e->base = ~0ULL;
	if (size < sizeof(eh))
		return fail("%s: truncated ELF (%llu bytes)", name, (unsigned long long)size);
	memcpy(&eh, data, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return fail("%s: not an ELF file", name);
	if (check_header(&eh, name, size, &e->data_end) < 0)
		return -1;
	for (i = 0; i < eh.e_phnum; i++) {
		read_phdr(e, &eh, i, &ph);
		if (ph.p_type != PT_LOAD)
			continue;
		if (add_segment(e, &ph, i, name) < 0)
			return -1;
		nload++;
	}
	if (!nload)
		return fail("%s: ELF has no loadable segments", name);
	return find_entry(e, &eh, name);
}

/*
 * Copy the segments so that e->base lands at load, into RAM that is still
 * zero there: fresh, as guest RAM is until the kernel is loaded, or wiped
 * with guest_zero().  The caller has checked [load, load + span) is RAM;
 * guest_ptr() checks again because this is the only place that turns ELF
 * numbers into host pointers.
 */
int elf_load(struct guest_mem *gm, const struct elf_image *e, u64 load)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	u8 *dst;
	int i;

	memcpy(&eh, e->data, sizeof(eh));
	for (i = 0; i < eh.e_phnum; i++) {
		read_phdr(e, &eh, i, &ph);
		if (ph.p_type != PT_LOAD)
			continue;
		dst = guest_ptr(gm, load + (ph.p_paddr - e->base), ph.p_memsz);
		if (!dst)
			return -1;
		/* Past p_filesz, the segment's memory is zero already. */
		copy_skipping_zeros(dst, e->data + ph.p_offset, ph.p_filesz);
	}
	return 0;
}

/*
 * A bare vmlinux carries no setup header, so we write the one a bzImage of
 * the same kernel would have had: enough for the kernel to find its command
 * line and initrd, and to know a 2.15 loader put it there.
 */
int elf_place(const struct guest_mem *gm, const struct elf_image *e,
	      const char *name, struct kernel *k)
{
	struct setup_header *h = &k->hdr;

	if (e->base < MiB(1))
		return fail("%s: ELF loads at %#llx, below 1 MiB where the boot tables live",
			    name, (unsigned long long)e->base);
	if (kernel_fits(gm, name, e->end) < 0)
		return -1;
	memset(h, 0, sizeof(*h));
	h->boot_flag = BOOT_FLAG_MAGIC;
	h->header = HDRS_MAGIC;
	h->version = BOOT_PROTO_OURS;
	h->loadflags = LOADED_HIGH;
	h->code32_start = e->base;
	h->initrd_addr_max = ELF_INITRD_MAX;
	h->kernel_alignment = PHYSICAL_ALIGN;
	h->xloadflags = XLF_KERNEL_64;
	h->cmdline_size = ELF_CMDLINE_SIZE;
	h->pref_address = e->base;
	h->init_size = e->end - e->base;
	k->load = e->base;
	k->end = e->end;
	k->entry = e->entry;
	return 0;
}
