/*
 * bus.h: where a vCPU's port and MMIO accesses go.
 *
 * The VM layer decodes a KVM exit into (address, size, data, direction)
 * and hands it to bus_access().  Devices register a range and a small
 * ops table; they never see KVM.  An access that hits no device reads as
 * all-ones and writes are dropped, as on real hardware with nothing
 * decoding the address.
 */
#ifndef BUS_H
#define BUS_H

#include "lguest.h"

struct bus_ops {
	/* offset is relative to the start of the registered range; len is
	 * 1, 2, 4 or 8.  data is little-endian, len bytes. */
	void (*read)(void *opaque, u64 offset, void *data, u32 len);
	void (*write)(void *opaque, u64 offset, const void *data, u32 len);
};

enum bus_space { BUS_PIO, BUS_MMIO, BUS_NR };

/* Add a device at [base, base+len); -1 if it overlaps another. */
int bus_register(enum bus_space space, u64 base, u64 len,
		 const struct bus_ops *ops, void *opaque, const char *name);
/* Remove it (PCI BAR moves, device teardown); -1 if not found. */
int bus_unregister(enum bus_space space, u64 base, void *opaque);
/* Move a registered range to new_base (a guest reprogrammed a BAR). */
int bus_move(enum bus_space space, u64 old_base, void *opaque, u64 new_base);

/* Dispatch one access; false if nothing claimed it (the caller traces). */
bool bus_access(enum bus_space space, u64 addr, void *data, u32 len, bool is_write);

/* Forget every registration (tests). */
void bus_reset_all(void);

#endif
