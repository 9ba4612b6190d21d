/*
 * pci.c: configuration space, BARs, INTx and MSI-X for bus 0.
 *
 * A function's config space is 256 bytes the guest reads as they are,
 * plus a write mask saying which bits it may change (the way hardware is
 * specified).  Everything interesting follows from a write landing on a
 * few registers: COMMAND and the BARs decide where the device decodes,
 * the MSI-X message control decides how it interrupts.
 *
 * The guest owns the values in config space and may write nonsense into
 * any of them.  Nothing it writes is trusted: a BAR it puts over RAM or
 * the APICs is remembered but not decoded, an access outside config
 * space reads all-ones, and an MSI-X table entry is only ever handed to
 * the VM layer, never used as an address here.
 */
#include "bus/pci.h"
#include "guest_mem.h"
#include "vm/irq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Configuration mechanism #1 (PCI Local Bus 3.0, 3.2.2.3.2). */
#define CONF1_ADDR_PORT		0xCF8
#define CONF1_DATA_PORT		0xCFC
#define CONF1_ENABLE		0x80000000u

#define HOST_BRIDGE_VENDOR	0x8086	/* Intel */
#define HOST_BRIDGE_DEVICE	0x29c0	/* a Q35-era DRAM controller */
#define CLASS_HOST_BRIDGE	0x060000

struct pci_msix_vec {
	int efd;		/* writing it interrupts the guest (irqfd) */
	int route;		/* irq_msi_bind handle, -1: not bound */
	u64 bound_addr;		/* the message the route was made for */
	u32 bound_data;
};

struct pci_msix {
	pthread_mutex_t lock;	/* table, pending bits, routes */
	u16 nvec;
	bool enabled;		/* message control: MSI-X enable */
	bool masked_all;	/* message control: function mask */
	u64 pending;		/* the PBA */
	u8 table[PCI_MSIX_MAX_VECTORS * PCI_MSIX_ENTRY_SIZE];
	struct pci_msix_vec vec[PCI_MSIX_MAX_VECTORS];
};

static struct {
	pthread_mutex_t lock;	/* config cycles and the slot table */
	u32 addr;		/* the 0xCF8 register */
	struct pci_dev *slot[PCI_MAX_SLOTS];
	struct pci_dev host;
} pci = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* INTx lines: guarded apart from the bus so device threads never wait
 * for a config cycle to raise an interrupt. */
static pthread_mutex_t intx_lock = PTHREAD_MUTEX_INITIALIZER;
static bool gsi_level[PCI_GSI_COUNT];

/*
 * Config space and device registers are little-endian, and so is every
 * host KVM on x86 runs on: copying the low bytes is the conversion.
 */
static u64 get_le(const void *p, u32 len)
{
	u64 v = 0;

	memcpy(&v, p, MIN(len, 8u));
	return v;
}

/* A register of len bytes, for code that thinks in registers. */
static u32 cfg_get(const struct pci_dev *pd, u32 off, u32 len)
{
	return get_le(&pd->cfg[off], len);
}

/* Set a register as the device, past the write mask. */
static void cfg_put(struct pci_dev *pd, u32 off, u32 val, u32 len)
{
	memcpy(&pd->cfg[off], &val, len);
}

/* Say which bits of a register the guest may change. */
static void wmask_put(struct pci_dev *pd, u32 off, u32 mask, u32 len)
{
	memcpy(&pd->wmask[off], &mask, len);
}

/* Does the access [off, off+len) touch the register [reg, reg+rlen)? */
static bool touches(u32 off, u32 len, u32 reg, u32 rlen)
{
	return off < reg + rlen && reg < off + len;
}

/* Writing an eventfd is how every interrupt and doorbell leaves us. */
static void efd_signal(int efd)
{
	/* Only fails if the counter is saturated: the guest already has
	 * more interrupts pending than it will ever count. */
	if (eventfd_write(efd, 1) < 0)
		verbose("pci: eventfd %d saturated", efd);
}

/* Drain an eventfd; true if it had been written since the last drain. */
static bool efd_consume(int efd)
{
	eventfd_t n;

	return eventfd_read(efd, &n) == 0 && n;
}

/* ---- INTx -------------------------------------------------------------- */

/* A shared level-triggered line is high while any sharer asserts it:
 * recompute it from all devices rather than trust one device's view. */
static void intx_line_update(u32 gsi)
{
	bool level = false;

	for (int s = 1; s < PCI_MAX_SLOTS; s++) {
		const struct pci_dev *pd = pci.slot[s];

		if (pd && pd->gsi == gsi && pd->intx_level && !pd->intx_masked)
			level = true;
	}
	if (level != gsi_level[gsi - PCI_GSI_BASE]) {
		gsi_level[gsi - PCI_GSI_BASE] = level;
		irq_line(gsi, level);
	}
}

/* The device's INTA input changed: recompute its shared line. */
void pci_set_irq(struct pci_dev *pd, int level)
{
	pthread_mutex_lock(&intx_lock);
	__atomic_store_n(&pd->intx_level, level != 0, __ATOMIC_RELAXED);
	if (pd->slot)
		intx_line_update(pd->gsi);
	pthread_mutex_unlock(&intx_lock);
}

/* COMMAND.INTX_DISABLE or MSI-X just changed: a function that is told
 * not to use INTx must let go of its line. */
static void intx_refresh(struct pci_dev *pd)
{
	bool masked = cfg_get(pd, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE;

	if (pd->msix && pci_msix_enabled(pd))
		masked = true;
	pthread_mutex_lock(&intx_lock);
	pd->intx_masked = masked;
	if (pd->slot)
		intx_line_update(pd->gsi);
	pthread_mutex_unlock(&intx_lock);
}

/* ---- MSI-X ------------------------------------------------------------- */

static u32 msix_entry(const struct pci_msix *m, u16 v, u32 field)
{
	return get_le(&m->table[v * PCI_MSIX_ENTRY_SIZE + field], 4);
}

/* Three things hold a vector back: MSI-X off, the function mask, its own mask. */
static bool msix_masked(const struct pci_msix *m, u16 v)
{
	return !m->enabled || m->masked_all || (msix_entry(m, v, PCI_MSIX_ENTRY_CTRL) & 1);
}

/*
 * A device thread may write a vector's eventfd directly.  While the
 * vector is masked nothing is bound to it, so the write waits in the
 * counter: that is the vector's pending bit.
 */
static void msix_harvest(struct pci_msix *m, u16 v)
{
	if (efd_consume(m->vec[v].efd))
		m->pending |= 1ULL << v;
}

/* Masked vectors have no route, so their eventfd writes wait as pending. */
static void msix_unbind(struct pci_msix_vec *x)
{
	if (x->route >= 0)
		irq_msi_unbind(x->efd, &x->route);
	x->route = -1;
}

/*
 * Make vector v's irqfd binding match its table entry and mask state:
 * unbound while masked, bound to the current message while not, and a
 * pending interrupt delivered the moment it becomes deliverable.
 * Caller holds m->lock.
 */
static void msix_update(struct pci_msix *m, u16 v)
{
	struct pci_msix_vec *x = &m->vec[v];
	u64 addr;
	u32 data;

	if (msix_masked(m, v)) {
		msix_unbind(x);
		return;
	}
	addr = msix_entry(m, v, 0) | (u64)msix_entry(m, v, 4) << 32;
	data = msix_entry(m, v, 8);
	/* Collect what was written while masked before binding, so it is
	 * delivered once, by us, whatever the VM layer does with a count
	 * it finds at bind time. */
	msix_harvest(m, v);
	if (x->route < 0 || x->bound_addr != addr || x->bound_data != data) {
		if (irq_msi_bind(x->efd, addr, data, &x->route) < 0) {
			/* The VM refused the message: leave the vector
			 * undeliverable, its interrupts pending, and retry
			 * when the guest next touches it. */
			verbose("pci: MSI-X vector %u: cannot route %#llx/%#x",
				v, (unsigned long long)addr, data);
			msix_unbind(x);
			return;
		}
		x->bound_addr = addr;
		x->bound_data = data;
	}
	if (m->pending & (1ULL << v)) {
		m->pending &= ~(1ULL << v);
		efd_signal(x->efd);
	}
}

/* The guest wrote the MSI-X message control.  Caller holds the bus lock. */
static void msix_control(struct pci_dev *pd)
{
	struct pci_msix *m = pd->msix;
	u16 ctl = cfg_get(pd, pd->msix_cap + PCI_MSIX_FLAGS, 2);
	bool was_enabled;

	pthread_mutex_lock(&m->lock);
	was_enabled = m->enabled;
	m->enabled = ctl & PCI_MSIX_FLAGS_ENABLE;
	m->masked_all = ctl & PCI_MSIX_FLAGS_MASKALL;
	if (was_enabled && !m->enabled) {
		/* A driver that turns MSI-X off is done with it; stale
		 * pending bits would only fire into its successor. */
		for (u16 v = 0; v < m->nvec; v++)
			efd_consume(m->vec[v].efd);
		m->pending = 0;
	}
	for (u16 v = 0; v < m->nvec; v++)
		msix_update(m, v);
	pthread_mutex_unlock(&m->lock);
	intx_refresh(pd);
}

/* One byte of the MSI-X BAR: the table, then the PBA, zeros elsewhere. */
static u8 msix_byte(const struct pci_msix *m, u64 off)
{
	if (off < (u64)m->nvec * PCI_MSIX_ENTRY_SIZE)
		return m->table[off];
	if (off >= PCI_MSIX_PBA_OFFSET && off < PCI_MSIX_PBA_OFFSET + 8)
		return m->pending >> (8 * (off - PCI_MSIX_PBA_OFFSET));
	return 0;
}

/*
 * The spec asks drivers for aligned dword or qword accesses; we take any
 * size at any offset byte by byte, which costs nothing at these rates and
 * leaves no odd case to get wrong.
 */
static void msix_bar_read(void *opaque, u64 off, void *data, u32 len)
{
	struct pci_dev *pd = opaque;
	struct pci_msix *m = pd->msix;
	u8 *out = data;

	pthread_mutex_lock(&m->lock);
	if (touches(off, len, PCI_MSIX_PBA_OFFSET, 8))
		for (u16 v = 0; v < m->nvec; v++)
			if (msix_masked(m, v))
				msix_harvest(m, v);
	for (u32 i = 0; i < len; i++)
		out[i] = msix_byte(m, off + i);
	pthread_mutex_unlock(&m->lock);
}

/* Table writes, then each touched vector's binding brought up to date. */
static void msix_bar_write(void *opaque, u64 off, const void *data, u32 len)
{
	struct pci_dev *pd = opaque;
	struct pci_msix *m = pd->msix;
	u64 table_len = (u64)m->nvec * PCI_MSIX_ENTRY_SIZE;
	const u8 *in = data;
	u64 touched = 0;

	pthread_mutex_lock(&m->lock);
	for (u32 i = 0; i < len; i++) {
		u64 o = off + i;
		u8 b = in[i];

		/* The PBA is read-only and the rest of the BAR reserved. */
		if (o >= table_len)
			continue;
		/* Vector control: only bit 0 (mask) exists. */
		if (o % PCI_MSIX_ENTRY_SIZE == PCI_MSIX_ENTRY_CTRL)
			b &= 1;
		else if (o % PCI_MSIX_ENTRY_SIZE > PCI_MSIX_ENTRY_CTRL)
			b = 0;
		m->table[o] = b;
		touched |= 1ULL << (o / PCI_MSIX_ENTRY_SIZE);
	}
	for (u16 v = 0; v < m->nvec; v++)
		if (touched & (1ULL << v))
			msix_update(m, v);
	pthread_mutex_unlock(&m->lock);
}

static const struct bus_ops msix_bar_ops = {
	.read = msix_bar_read,
	.write = msix_bar_write,
};

/* A device's interrupt: delivered now, or remembered in the PBA. */
int pci_msix_notify(struct pci_dev *pd, u16 vec)
{
	struct pci_msix *m = pd->msix;
	int ret = 0;

	if (!m)
		return -1;
	pthread_mutex_lock(&m->lock);
	if (!m->enabled)
		ret = -1;
	else if (vec < m->nvec && (msix_masked(m, vec) || m->vec[vec].route < 0))
		m->pending |= 1ULL << vec;
	else if (vec < m->nvec)
		efd_signal(m->vec[vec].efd);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* Transports choose between MSI-X and INTx by this. */
bool pci_msix_enabled(struct pci_dev *pd)
{
	bool on;

	if (!pd->msix)
		return false;
	pthread_mutex_lock(&pd->msix->lock);
	on = pd->msix->enabled;
	pthread_mutex_unlock(&pd->msix->lock);
	return on;
}

/* Fixed for the device's life, so no lock is needed to hand it out. */
int pci_msix_fd(struct pci_dev *pd, u16 vec)
{
	if (!pd->msix || vec >= pd->msix->nvec)
		return -1;
	return pd->msix->vec[vec].efd;
}

/* Routes first, then the eventfds they were bound to. */
static void msix_free(struct pci_msix *m)
{
	for (u16 v = 0; v < m->nvec; v++) {
		msix_unbind(&m->vec[v]);
		if (m->vec[v].efd >= 0)
			close(m->vec[v].efd);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- building a function ----------------------------------------------- */

void pci_dev_init(struct pci_dev *pd, const char *name, u16 vendor, u16 device,
		  u32 class, u8 revision, u16 subsys_vendor, u16 subsys_id)
{
	memset(pd, 0, sizeof(*pd));
	pd->name = name;
	cfg_put(pd, PCI_VENDOR_ID, vendor, 2);
	cfg_put(pd, PCI_DEVICE_ID, device, 2);
	cfg_put(pd, PCI_REVISION_ID, revision, 1);
	cfg_put(pd, PCI_CLASS_PROG, class, 3);
	cfg_put(pd, PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor, 2);
	cfg_put(pd, PCI_SUBSYSTEM_ID, subsys_id, 2);
	cfg_put(pd, PCI_INTERRUPT_PIN, 1, 1);	/* INTA */
	/* What a driver legitimately changes; everything else in the
	 * header is fixed by the device. */
	wmask_put(pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
		  PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
		  PCI_COMMAND_INTX_DISABLE, 2);
	wmask_put(pd, PCI_CACHE_LINE_SIZE, 0xff, 1);
	wmask_put(pd, PCI_LATENCY_TIMER, 0xff, 1);
	wmask_put(pd, PCI_INTERRUPT_LINE, 0xff, 1);
	pd->cap_end = PCI_CAP_START;
}

/* BAR sizes must be: the sizing protocol reads them back as a mask. */
static bool is_pow2(u64 x)
{
	return x && !(x & (x - 1));
}

/* Declare a BAR of either kind; it gets its address, and decodes, at
 * pci_add(). */
static int bar_declare(struct pci_dev *pd, int bar, u64 size, bool io,
		       const struct bus_ops *ops, void *opaque)
{
	u64 min = io ? 4 : 16, max = io ? PCI_IO_SLOT_WINDOW : PCI_SLOT_WINDOW;

	if (bar < 0 || bar >= PCI_NUM_BARS || pd->bar[bar].size)
		return fail("pci: %s: BAR %d is taken or does not exist", pd->name, bar);
	if (!is_pow2(size) || size < min || size > max)
		return fail("pci: %s: %s BAR %d size %#llx is not a power of 2 in %llu..%#llx",
			    pd->name, io ? "I/O" : "memory", bar, (unsigned long long)size,
			    (unsigned long long)min, (unsigned long long)max);
	pd->bar[bar] = (struct pci_bar){ .size = size, .io = io, .ops = ops, .opaque = opaque };
	return 0;
}

int pci_bar_add(struct pci_dev *pd, int bar, u64 size,
		const struct bus_ops *ops, void *opaque)
{
	if (bar_declare(pd, bar, size, false, ops, opaque) < 0)
		return -1;
	/* The low four bits say "32-bit memory, not prefetchable" and are
	 * fixed; the address bits below the size read back as zero.  That
	 * is all the sizing protocol needs: write ones, read the mask. */
	wmask_put(pd, PCI_BASE_ADDRESS_0 + 4 * bar, ~(u32)(size - 1) & ~0xfu, 4);
	return 0;
}

/* The same for port space: bit 0 set says "I/O", and is fixed. */
int pci_io_bar_add(struct pci_dev *pd, int bar, u32 size,
		   const struct bus_ops *ops, void *opaque)
{
	if (bar_declare(pd, bar, size, true, ops, opaque) < 0)
		return -1;
	cfg_put(pd, PCI_BASE_ADDRESS_0 + 4 * bar, PCI_BASE_ADDRESS_SPACE_IO, 4);
	wmask_put(pd, PCI_BASE_ADDRESS_0 + 4 * bar, ~(size - 1) & ~0x3u, 4);
	return 0;
}

/* Append to the list Linux walks from PCI_CAPABILITY_LIST. */
int pci_cap_add(struct pci_dev *pd, const void *cap, u8 len)
{
	u32 off = ALIGN_UP(pd->cap_end, 4);

	if (len < 2 || off + len > PCI_CFG_SIZE)
		return fail("pci: %s: no room for a %u-byte capability", pd->name, len);
	memcpy(&pd->cfg[off], cap, len);
	pd->cfg[off + 1] = 0;
	if (pd->last_cap)
		pd->cfg[pd->last_cap + 1] = off;
	else
		pd->cfg[PCI_CAPABILITY_LIST] = off;
	cfg_put(pd, PCI_STATUS, cfg_get(pd, PCI_STATUS, 2) | PCI_STATUS_CAP_LIST, 2);
	pd->last_cap = off;
	pd->cap_end = off + len;
	return off;
}

/* Capability fields a driver programs (virtio's PCI_CFG window). */
void pci_set_wmask(struct pci_dev *pd, u32 off, u32 len)
{
	if (off < PCI_CFG_SIZE && len <= PCI_CFG_SIZE - off)
		memset(&pd->wmask[off], 0xff, len);
}

/* MSI-X state at reset: every vector masked, one eventfd each. */
static struct pci_msix *msix_alloc(const char *name, u16 nvec)
{
	struct pci_msix *m = calloc(1, sizeof(*m));

	if (!m) {
		fail("pci: %s: out of memory", name);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->nvec = nvec;
	for (u16 v = 0; v < nvec; v++) {
		m->vec[v].route = -1;
		m->table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_CTRL] = 1;	/* masked at reset */
		m->vec[v].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (m->vec[v].efd < 0) {
			fail("pci: %s: cannot create an MSI-X eventfd", name);
			m->nvec = v;
			msix_free(m);
			return NULL;
		}
	}
	return m;
}

/* Checks first, so nothing is left half-built when a step fails. */
int pci_msix_init(struct pci_dev *pd, int bar, u16 nvec)
{
	u8 cap[PCI_MSIX_CAP_LEN] = { PCI_CAP_ID_MSIX };
	u32 cap_off = ALIGN_UP(pd->cap_end, 4);
	struct pci_msix *m;
	int off;

	if (pd->msix || nvec == 0 || nvec > PCI_MSIX_MAX_VECTORS)
		return fail("pci: %s: bad MSI-X vector count %u", pd->name, nvec);
	if (cap_off + PCI_MSIX_CAP_LEN > PCI_CFG_SIZE)
		return fail("pci: %s: no room for the MSI-X capability", pd->name);
	if (pci_bar_add(pd, bar, PCI_MSIX_BAR_SIZE, &msix_bar_ops, pd) < 0)
		return -1;
	m = msix_alloc(pd->name, nvec);
	if (!m) {
		pd->bar[bar] = (struct pci_bar){ 0 };
		wmask_put(pd, PCI_BASE_ADDRESS_0 + 4 * bar, 0, 4);
		return -1;
	}
	/* Message control: table size N-1; enable and function mask are
	 * the only writable bits, both in the high byte. */
	cap[PCI_MSIX_FLAGS] = (nvec - 1) & 0xff;
	cap[PCI_MSIX_FLAGS + 1] = (nvec - 1) >> 8;
	cap[PCI_MSIX_TABLE] = bar;				/* table at 0 */
	cap[PCI_MSIX_PBA] = bar;
	cap[PCI_MSIX_PBA + 1] = PCI_MSIX_PBA_OFFSET >> 8;	/* PBA at 0x800 */
	off = pci_cap_add(pd, cap, sizeof(cap));
	pd->wmask[off + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	pd->msix_cap = off;
	pd->msix = m;
	return 0;
}

/* ---- BARs ---------------------------------------------------------------- */

/* Which bus a BAR lives on. */
static enum bus_space bar_space(const struct pci_bar *b)
{
	return b->io ? BUS_PIO : BUS_MMIO;
}

/*
 * Where BAR i should decode now, if anywhere: its kind of decoding on,
 * and an address inside the hole (memory) or above the legacy ports (I/O).
 * A BAR over RAM would shadow guest memory for our own MMIO exits, one
 * over the IOAPIC or LAPIC would steal their accesses, one over the
 * config ports would cut the guest off its bus; such values are kept (the
 * guest reads back what it wrote, as on hardware) but not decoded.
 */
static bool bar_wanted(const struct pci_dev *pd, int i, u64 *addr)
{
	const struct pci_bar *b = &pd->bar[i];
	u64 a = cfg_get(pd, PCI_BASE_ADDRESS_0 + 4 * i, 4);
	u16 cmd = cfg_get(pd, PCI_COMMAND, 2);

	if (b->io) {
		*addr = a & ~0x3ULL;
		return (cmd & PCI_COMMAND_IO) && *addr >= PCI_IO_START &&
		       *addr + b->size <= PCI_IO_END;
	}
	*addr = a & ~0xfULL;
	return (cmd & PCI_COMMAND_MEMORY) && *addr >= PCI_HOLE_START &&
	       *addr + b->size <= PCI_MMIO_END;
}

/* Tell the device its BAR moved, so its ioeventfds can follow. */
static void bar_notify(struct pci_dev *pd, int i, bool on)
{
	if (pd->ops && pd->ops->bar_map)
		pd->ops->bar_map(pd, i, pd->bar[i].addr, on);
}

/* Make BAR i's bus registration match config space.  Bus lock held. */
static void bar_update(struct pci_dev *pd, int i)
{
	struct pci_bar *b = &pd->bar[i];
	u64 addr;
	bool want = bar_wanted(pd, i, &addr);

	if (b->mapped && want && addr == b->addr)
		return;
	if (b->mapped) {
		bar_notify(pd, i, false);
		if (want && bus_move(bar_space(b), b->addr, b->opaque, addr) == 0) {
			b->addr = addr;
			bar_notify(pd, i, true);
			return;
		}
		/* Switched off, or the new place is taken (bus_move left it
		 * where it was): either way it stops decoding. */
		bus_unregister(bar_space(b), b->addr, b->opaque);
		b->mapped = false;
		if (!want)
			return;
	}
	if (!want)
		return;
	if (bus_register(bar_space(b), addr, b->size, b->ops, b->opaque, pd->name) < 0) {
		verbose("pci: %s BAR %d at %#llx overlaps another device; not decoding",
			pd->name, i, (unsigned long long)addr);
		return;
	}
	b->addr = addr;
	b->mapped = true;
	bar_notify(pd, i, true);
}

/* After COMMAND or a BAR changed: every BAR to where it should be. */
static void bars_update(struct pci_dev *pd)
{
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (pd->bar[i].size)
			bar_update(pd, i);
}

/* Stop decoding everything, for unplugging. */
static void bars_unmap(struct pci_dev *pd)
{
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		if (pd->bar[i].mapped) {
			bar_notify(pd, i, false);
			bus_unregister(bar_space(&pd->bar[i]), pd->bar[i].addr, pd->bar[i].opaque);
			pd->bar[i].mapped = false;
		}
	}
}

/* Bounds-checked here, since the guest picks bar, offset and length. */
bool pci_bar_access(struct pci_dev *pd, int bar, u64 off, void *data, u32 len, bool is_write)
{
	const struct pci_bar *b;

	if (bar < 0 || bar >= PCI_NUM_BARS || len == 0 || len > 8)
		return false;
	b = &pd->bar[bar];
	if (!b->size || off >= b->size || len > b->size - off)
		return false;
	if (is_write)
		b->ops->write(b->opaque, off, data, len);
	else
		b->ops->read(b->opaque, off, data, len);
	return true;
}

/* ---- configuration cycles ------------------------------------------------ */

/* Bus lock held. */
static void cfg_read_locked(struct pci_dev *pd, u32 off, u8 *data, u32 len)
{
	memset(data, 0xff, len);
	if (off >= PCI_CFG_SIZE || len > PCI_CFG_SIZE - off)
		return;
	if (pd->ops && pd->ops->cfg_read)
		pd->ops->cfg_read(pd, off, len);
	memcpy(data, &pd->cfg[off], len);
	/* Interrupt status is the device's live INTA input, not a byte
	 * anyone stored. */
	if (touches(off, len, PCI_STATUS, 1) &&
	    __atomic_load_n(&pd->intx_level, __ATOMIC_RELAXED))
		data[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
}

/* Bus lock held. */
static void cfg_write_locked(struct pci_dev *pd, u32 off, const u8 *data, u32 len)
{
	if (off >= PCI_CFG_SIZE || len > PCI_CFG_SIZE - off)
		return;
	for (u32 i = 0; i < len; i++) {
		u8 w = pd->wmask[off + i];

		pd->cfg[off + i] = (pd->cfg[off + i] & ~w) | (data[i] & w);
	}
	if (touches(off, len, PCI_COMMAND, 2) ||
	    touches(off, len, PCI_BASE_ADDRESS_0, 4 * PCI_NUM_BARS))
		bars_update(pd);
	if (touches(off, len, PCI_COMMAND, 2))
		intx_refresh(pd);
	if (pd->msix && touches(off, len, pd->msix_cap + PCI_MSIX_FLAGS, 2))
		msix_control(pd);
	if (pd->ops && pd->ops->cfg_write)
		pd->ops->cfg_write(pd, off, len);
}

/* A config cycle from outside the port handlers (tests, the fuzzer). */
void pci_cfg_read(struct pci_dev *pd, u32 off, void *data, u32 len)
{
	if (len == 0 || len > 4) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&pci.lock);
	cfg_read_locked(pd, off, data, len);
	pthread_mutex_unlock(&pci.lock);
}

/* As pci_cfg_read(): widths a configuration cycle cannot have do nothing. */
void pci_cfg_write(struct pci_dev *pd, u32 off, const void *data, u32 len)
{
	if (len == 0 || len > 4)
		return;
	pthread_mutex_lock(&pci.lock);
	cfg_write_locked(pd, off, data, len);
	pthread_mutex_unlock(&pci.lock);
}

/*
 * Decode the 0xCF8 register: enable bit, bus, device, function, register.
 * Only function 0 of slots on bus 0 exists.  Bits 27:24 (the extended
 * register number some chipsets take) make the offset >= 256, which reads
 * as all-ones.  Bus lock held.
 */
static struct pci_dev *conf1_target(u32 addr, u32 *reg)
{
	if (!(addr & CONF1_ENABLE) || ((addr >> 16) & 0xff) || ((addr >> 8) & 7))
		return NULL;
	*reg = (addr & 0xfc) | ((addr >> 24) & 0xf) << 8;
	return pci.slot[(addr >> 11) & 0x1f];
}

/* Linux's probe reads the address register back to see it is there. */
static void conf1_addr_read(void *opaque, u64 off, void *data, u32 len)
{
	u32 v;

	pthread_mutex_lock(&pci.lock);
	v = pci.addr;
	pthread_mutex_unlock(&pci.lock);
	memset(data, 0, len);
	memcpy(data, &v, MIN(len, 4u));
}

/*
 * Only a dword write loads the address register.  Linux's probe writes a
 * byte to 0xCFB first (the old mechanism-selection dance) and expects the
 * dword it writes next to read back unchanged.
 */
static void conf1_addr_write(void *opaque, u64 off, const void *data, u32 len)
{
	if (len != 4)
		return;
	pthread_mutex_lock(&pci.lock);
	pci.addr = get_le(data, 4);
	pthread_mutex_unlock(&pci.lock);
}

/* Byte, word or dword at 0xCFC + off selects that byte of the register;
 * an access running past 0xCFF is no configuration cycle at all. */
static void conf1_data_read(void *opaque, u64 off, void *data, u32 len)
{
	struct pci_dev *pd;
	u32 reg;

	memset(data, 0xff, len);
	if (off + len > 4)
		return;
	pthread_mutex_lock(&pci.lock);
	pd = conf1_target(pci.addr, &reg);
	if (pd)
		cfg_read_locked(pd, reg + off, data, len);
	pthread_mutex_unlock(&pci.lock);
}

/* As the read: the register the address names, at the port's byte offset. */
static void conf1_data_write(void *opaque, u64 off, const void *data, u32 len)
{
	struct pci_dev *pd;
	u32 reg;

	if (off + len > 4)
		return;
	pthread_mutex_lock(&pci.lock);
	pd = conf1_target(pci.addr, &reg);
	if (pd)
		cfg_write_locked(pd, reg + off, data, len);
	pthread_mutex_unlock(&pci.lock);
}

static const struct bus_ops conf1_addr_ops = {
	.read = conf1_addr_read,
	.write = conf1_addr_write,
};

static const struct bus_ops conf1_data_ops = {
	.read = conf1_data_read,
	.write = conf1_data_write,
};

/* ---- the bus ------------------------------------------------------------- */

/*
 * Linux, without ACPI, finds the bus by probing mechanism #1 and then
 * looking for a host bridge (class 0x0600) or an Intel device: our
 * host bridge is both.  It has nothing to configure.
 */
static void host_bridge_init(struct pci_dev *pd)
{
	pci_dev_init(pd, "host bridge", HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE,
		     CLASS_HOST_BRIDGE, 0, 0, 0);
	cfg_put(pd, PCI_INTERRUPT_PIN, 0, 1);
	memset(pd->wmask, 0, sizeof(pd->wmask));
}

/* An empty bus with its host bridge, reachable through the conf1 ports. */
int pci_init(void)
{
	pthread_mutex_lock(&pci.lock);
	pthread_mutex_lock(&intx_lock);
	memset(pci.slot, 0, sizeof(pci.slot));
	memset(gsi_level, 0, sizeof(gsi_level));
	pci.addr = 0;
	host_bridge_init(&pci.host);
	pci.slot[0] = &pci.host;
	pthread_mutex_unlock(&intx_lock);
	pthread_mutex_unlock(&pci.lock);

	/*
	 * Only 0xCF8 itself: the address register is dword-only, and
	 * 0xCF9 is the chipset's reset control, which is not ours.  A
	 * dword at 0xCF8 still reaches us (the bus matches the start).
	 */
	if (bus_register(BUS_PIO, CONF1_ADDR_PORT, 1, &conf1_addr_ops, NULL, "pci-conf1-addr") < 0)
		return -1;
	if (bus_register(BUS_PIO, CONF1_DATA_PORT, 4, &conf1_data_ops, NULL, "pci-conf1-data") < 0) {
		bus_unregister(BUS_PIO, CONF1_ADDR_PORT, NULL);
		return -1;
	}
	return 0;
}

/*
 * Give each BAR of one kind an address in the slot's window for that
 * kind, aligned to its size as the sizing protocol requires, biggest
 * first so none wastes space.  Bus lock held.
 */
static int bars_place_kind(struct pci_dev *pd, bool io, u64 base, u64 window)
{
	u64 next = base;

	for (u64 size = window; size >= 4; size >>= 1) {
		for (int i = 0; i < PCI_NUM_BARS; i++) {
			if (pd->bar[i].size != size || pd->bar[i].io != io)
				continue;
			if (next + size > base + window)
				return fail("pci: %s: BARs exceed the slot's %#llx-byte %s window",
					    pd->name, (unsigned long long)window, io ? "I/O" : "memory");
			cfg_put(pd, PCI_BASE_ADDRESS_0 + 4 * i,
				next | (io ? PCI_BASE_ADDRESS_SPACE_IO : 0), 4);
			next += size;
		}
	}
	return 0;
}

/* Both kinds, and which kinds of decoding the device then needs. */
static int bars_place(struct pci_dev *pd, u8 slot, u16 *decode)
{
	*decode = 0;
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (pd->bar[i].size)
			*decode |= pd->bar[i].io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
	if (bars_place_kind(pd, false, PCI_BAR_BASE + slot * PCI_SLOT_WINDOW,
			    PCI_SLOT_WINDOW) < 0)
		return -1;
	return bars_place_kind(pd, true, PCI_IO_BAR_BASE + slot * PCI_IO_SLOT_WINDOW,
			       PCI_IO_SLOT_WINDOW);
}

/* Take the device off the bus, keeping what it owns.  Bus lock held. */
static void unplug_locked(struct pci_dev *pd)
{
	bars_unmap(pd);
	pthread_mutex_lock(&intx_lock);
	if (pd->slot && pci.slot[pd->slot] == pd) {
		pci.slot[pd->slot] = NULL;
		intx_line_update(pd->gsi);
	}
	pd->slot = 0;
	pthread_mutex_unlock(&intx_lock);
}

/* A free slot, 0 if the bus is full.  Bus lock held. */
static u8 free_slot(void)
{
	for (u8 s = 1; s < PCI_MAX_SLOTS; s++)
		if (!pci.slot[s])
			return s;
	return 0;
}

/* Make the device visible to the guest's bus scan, as firmware leaves it. */
int pci_add(struct pci_dev *pd)
{
	int ret = -1;
	u16 decode;
	u8 s;

	pthread_mutex_lock(&pci.lock);
	s = free_slot();
	if (!s) {
		fail("pci: no free slot for %s (at most %d devices)", pd->name, PCI_MAX_SLOTS - 1);
		goto out;
	}
	if (bars_place(pd, s, &decode) < 0)
		goto out;
	pd->gsi = PCI_GSI_BASE + (s - 1) % PCI_GSI_COUNT;
	cfg_put(pd, PCI_INTERRUPT_LINE, pd->gsi, 1);
	cfg_put(pd, PCI_COMMAND, decode, 2);

	pthread_mutex_lock(&intx_lock);
	pd->slot = s;
	pci.slot[s] = pd;
	pthread_mutex_unlock(&intx_lock);

	bars_update(pd);
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		if (pd->bar[i].size && !pd->bar[i].mapped) {
			fail("pci: %s: BAR %d at %#x overlaps another device", pd->name, i,
			     cfg_get(pd, PCI_BASE_ADDRESS_0 + 4 * i, 4));
			unplug_locked(pd);
			goto out;
		}
	}
	verbose("pci: 00:%02x.0 %s, IRQ %u", s, pd->name, pd->gsi);
	ret = 0;
out:
	pthread_mutex_unlock(&pci.lock);
	return ret;
}

/* Unplug, and free what pci_msix_init() allocated. */
void pci_remove(struct pci_dev *pd)
{
	pthread_mutex_lock(&pci.lock);
	unplug_locked(pd);
	if (pd->msix)
		msix_free(pd->msix);
	pd->msix = NULL;
	pthread_mutex_unlock(&pci.lock);
}

/* The MP table must describe exactly the lines pci_add() handed out. */
int pci_for_each_irq(void (*fn)(void *arg, u8 slot, u8 pin, u32 gsi), void *arg)
{
	int n = 0;

	pthread_mutex_lock(&pci.lock);
	for (u8 s = 1; s < PCI_MAX_SLOTS; s++) {
		struct pci_dev *pd = pci.slot[s];

		if (pd && pd->cfg[PCI_INTERRUPT_PIN]) {
			fn(arg, s, pd->cfg[PCI_INTERRUPT_PIN], pd->gsi);
			n++;
		}
	}
	pthread_mutex_unlock(&pci.lock);
	return n;
}
