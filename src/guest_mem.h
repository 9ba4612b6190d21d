/*
 * guest_mem.h: guest RAM and the one way to reach it.
 *
 * Guest RAM is one private anonymous mapping.  Up to 3 GiB it sits at
 * guest-physical 0; beyond that it continues at 4 GiB, leaving the 32-bit
 * hole (3..4 GiB) to PCI BARs, the IOAPIC and the local APIC.
 *
 * Every guest-physical address the launcher touches goes through
 * guest_ptr(), which answers NULL unless the whole range lies in RAM.
 * Nothing else adds a guest address to a host pointer: the guest is
 * hostile, and one place to get the arithmetic right is better than many.
 */
#ifndef GUEST_MEM_H
#define GUEST_MEM_H

#include "lguest.h"

#define PCI_HOLE_START	0xC0000000ULL	/* 3 GiB: RAM below, devices above */
#define HIGH_RAM_START	0x100000000ULL	/* 4 GiB: RAM resumes here */

struct guest_mem {
	u8 *host;	/* the whole of guest RAM, low part first */
	u64 size;	/* bytes of RAM in all */
	u64 low_size;	/* bytes at GPA 0 (at most PCI_HOLE_START) */
	u64 high_size;	/* bytes at GPA HIGH_RAM_START (may be 0) */
};

/*
 * Map guest RAM: reserves address space only; pages are committed when the
 * guest first touches them.  Returns -1 with last_error() set.
 */
int guest_mem_init(struct guest_mem *gm, u64 size);
void guest_mem_free(struct guest_mem *gm);

/* Bytes of guest RAM the guest has touched (resident in the host). */
u64 guest_mem_resident(const struct guest_mem *gm);

/* Host pointer to [gpa, gpa+len) if all of it is RAM, else NULL. */
void *guest_ptr(const struct guest_mem *gm, u64 gpa, u64 len);

/* Bytes of RAM from gpa to the end of its region (0 if gpa isn't RAM). */
u64 guest_ram_left(const struct guest_mem *gm, u64 gpa);

/*
 * Make [gpa, gpa+len) read as zero without committing memory to it: whole
 * pages go back to the host (zero again on the next touch), the partial
 * pages at either end are cleared.  -1 if the range isn't RAM.  Reading a
 * fresh page to see whether it is zero would not do: it maps the shared
 * zero page there, and the guest's first write then copies it 4 KiB at a
 * time where a huge page would have come whole.
 */
int guest_zero(const struct guest_mem *gm, u64 gpa, u64 len);

/* Copy in or out through guest_ptr(); -1 if the range isn't RAM. */
int guest_write(const struct guest_mem *gm, u64 gpa, const void *src, u64 len);
int guest_read(const struct guest_mem *gm, u64 gpa, void *dst, u64 len);

#endif
