/*
 * bus.c: port and MMIO dispatch.
 *
 * A small sorted array per address space, searched by bisection.  A VM has
 * a dozen devices, so anything cleverer would only be harder to read.
 * Registrations change rarely (start-up, a guest moving a BAR) and lookups
 * happen on every exit, from every vCPU: a read-write lock lets lookups
 * run side by side.
 */
#include "bus.h"

#include <pthread.h>
#include <string.h>

struct bus_range {
	u64 base, len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES 128

struct bus {
	pthread_rwlock_t lock;
	int n;
	struct bus_range r[BUS_MAX_RANGES];
};

static struct bus buses[BUS_NR] = {
	{ .lock = PTHREAD_RWLOCK_INITIALIZER },
	{ .lock = PTHREAD_RWLOCK_INITIALIZER },
};

/* Index of the range holding addr, or -1.  Caller holds the lock. */
static int bus_find(const struct bus *b, u64 addr)
{
	int lo = 0, hi = b->n - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		const struct bus_range *r = &b->r[mid];

		if (addr < r->base)
			hi = mid - 1;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

static bool overlaps(const struct bus_range *r, u64 base, u64 len)
{
	return base < r->base + r->len && r->base < base + len;
}

static int bus_insert(struct bus *b, const struct bus_range *nr)
{
	int i;

	if (nr->len == 0 || nr->base + nr->len < nr->base)
		return fail("bus: bad range for %s", nr->name);
	if (b->n == BUS_MAX_RANGES)
		return fail("bus: too many devices");
	for (i = 0; i < b->n; i++)
		if (overlaps(&b->r[i], nr->base, nr->len))
			return fail("bus: %s overlaps %s", nr->name, b->r[i].name);
	for (i = b->n; i > 0 && b->r[i - 1].base > nr->base; i--)
		b->r[i] = b->r[i - 1];
	b->r[i] = *nr;
	b->n++;
	return 0;
}

static int bus_remove(struct bus *b, u64 base, void *opaque, struct bus_range *out)
{
	int i;

	for (i = 0; i < b->n; i++) {
		if (b->r[i].base == base && b->r[i].opaque == opaque) {
			if (out)
				*out = b->r[i];
			memmove(&b->r[i], &b->r[i + 1], (b->n - i - 1) * sizeof(b->r[0]));
			b->n--;
			return 0;
		}
	}
	return fail("bus: nothing registered at %#llx", (unsigned long long)base);
}

int bus_register(enum bus_space space, u64 base, u64 len,
		 const struct bus_ops *ops, void *opaque, const char *name)
{
	struct bus *b = &buses[space];
	struct bus_range nr = { base, len, ops, opaque, name };
	int ret;

	pthread_rwlock_wrlock(&b->lock);
	ret = bus_insert(b, &nr);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_unregister(enum bus_space space, u64 base, void *opaque)
{
	struct bus *b = &buses[space];
	int ret;

	pthread_rwlock_wrlock(&b->lock);
	ret = bus_remove(b, base, opaque, NULL);
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_move(enum bus_space space, u64 old_base, void *opaque, u64 new_base)
{
	struct bus *b = &buses[space];
	struct bus_range r;
	int ret;

	pthread_rwlock_wrlock(&b->lock);
	ret = bus_remove(b, old_base, opaque, &r);
	if (ret == 0) {
		u64 was = r.base;

		r.base = new_base;
		ret = bus_insert(b, &r);
		if (ret) {
			/* The new place is taken: stay where we were, so a
			 * guest's bad BAR value never loses the device. */
			r.base = was;
			bus_insert(b, &r);
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

bool bus_access(enum bus_space space, u64 addr, void *data, u32 len, bool is_write)
{
	struct bus *b = &buses[space];
	struct bus_range r;
	int i;

	pthread_rwlock_rdlock(&b->lock);
	i = bus_find(b, addr);
	if (i >= 0)
		r = b->r[i];
	pthread_rwlock_unlock(&b->lock);

	if (i < 0) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	/* The device's handler runs without the bus lock: it may itself move
	 * a BAR (PCI config writes) without deadlocking. */
	if (is_write)
		r.ops->write(r.opaque, addr - r.base, data, len);
	else
		r.ops->read(r.opaque, addr - r.base, data, len);
	return true;
}

void bus_reset_all(void)
{
	for (int s = 0; s < BUS_NR; s++) {
		pthread_rwlock_wrlock(&buses[s].lock);
		buses[s].n = 0;
		pthread_rwlock_unlock(&buses[s].lock);
	}
}
