/*
 * irq.c: interrupts and doorbells for devices, on KVM.
 *
 * Devices raise interrupts and receive notifications through eventfds
 * that KVM wires straight into the guest (irqfd, ioeventfd): a virtqueue
 * kick or completion never has to wake a vCPU thread in userspace.
 *
 * MSI routes live in KVM's GSI routing table, which is replaced whole on
 * every change; we keep our copy here.  The first 24 GSIs are the
 * interrupt controllers' pins and must stay in the table.
 */
#include "vm/vm_internal.h"
#include "vm/irq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define GSI_PINS	24	/* IOAPIC inputs; 0-15 are also PIC inputs */
#define GSI_MAX		256

static struct {
	pthread_mutex_t lock;
	struct kvm_irq_routing *table;
	bool msi_used[GSI_MAX];
} routing = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void route_pin(struct kvm_irq_routing_entry *e, u32 gsi, u32 chip, u32 pin)
{
	*e = (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
		.u.irqchip = { .irqchip = chip, .pin = pin },
	};
}

/* Recreate KVM's default pin routing, which our table must include. */
int irq_routing_init(void)
{
	struct kvm_irq_routing *t;
	u32 n = 0;

	t = calloc(1, sizeof(*t) + GSI_MAX * 2 * sizeof(t->entries[0]));
	if (!t)
		return fail("out of memory");
	for (u32 gsi = 0; gsi < GSI_PINS; gsi++) {
		if (gsi < 8)
			route_pin(&t->entries[n++], gsi, KVM_IRQCHIP_PIC_MASTER, gsi);
		else if (gsi < 16)
			route_pin(&t->entries[n++], gsi, KVM_IRQCHIP_PIC_SLAVE, gsi - 8);
		route_pin(&t->entries[n++], gsi, KVM_IRQCHIP_IOAPIC, gsi);
	}
	t->nr = n;
	routing.table = t;
	return 0;
}

static int routing_commit(void)
{
	if (ioctl(vm.vm_fd, KVM_SET_GSI_ROUTING, routing.table) < 0)
		return fail("KVM_SET_GSI_ROUTING: %s", strerror(errno));
	return 0;
}

static struct kvm_irq_routing_entry *routing_find(u32 gsi)
{
	for (u32 i = 0; i < routing.table->nr; i++)
		if (routing.table->entries[i].gsi == gsi)
			return &routing.table->entries[i];
	return NULL;
}

void irq_line(u32 gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	/* Only fails if the VM is gone; nothing useful to do then. */
	ioctl(vm.vm_fd, KVM_IRQ_LINE, &irq);
}

static int irqfd(int efd, u32 gsi, int resample_efd, bool deassign)
{
	struct kvm_irqfd req = { .fd = efd, .gsi = gsi };

	if (deassign)
		req.flags = KVM_IRQFD_FLAG_DEASSIGN;
	else if (resample_efd >= 0) {
		req.flags = KVM_IRQFD_FLAG_RESAMPLE;
		req.resamplefd = resample_efd;
	}
	return ioctl(vm.vm_fd, KVM_IRQFD, &req);
}

int irq_msi_bind(int efd, u64 addr, u32 data, int *route)
{
	struct kvm_irq_routing_entry *e;
	int ret = 0;

	pthread_mutex_lock(&routing.lock);
	if (*route < 0) {
		int gsi;

		for (gsi = GSI_PINS; gsi < GSI_MAX && routing.msi_used[gsi]; gsi++)
			;
		if (gsi == GSI_MAX) {
			ret = fail("out of MSI routes");
			goto out;
		}
		routing.msi_used[gsi] = true;
		e = &routing.table->entries[routing.table->nr++];
		*e = (struct kvm_irq_routing_entry){ .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI };
		*route = gsi;
		e->u.msi.address_lo = (u32)addr;
		e->u.msi.address_hi = addr >> 32;
		e->u.msi.data = data;
		ret = routing_commit();
		if (!ret && irqfd(efd, gsi, -1, false) < 0)
			ret = fail("KVM_IRQFD: %s", strerror(errno));
		goto out;
	}
	/* Retarget: the irqfd stays, only the message changes. */
	e = routing_find(*route);
	if (!e) {
		ret = fail("MSI route %d vanished", *route);
		goto out;
	}
	e->u.msi.address_lo = (u32)addr;
	e->u.msi.address_hi = addr >> 32;
	e->u.msi.data = data;
	ret = routing_commit();
out:
	pthread_mutex_unlock(&routing.lock);
	return ret;
}

void irq_msi_unbind(int efd, int *route)
{
	struct kvm_irq_routing_entry *e;

	if (*route < 0)
		return;
	pthread_mutex_lock(&routing.lock);
	irqfd(efd, *route, -1, true);
	e = routing_find(*route);
	if (e) {
		*e = routing.table->entries[--routing.table->nr];
		routing_commit();
	}
	routing.msi_used[*route] = false;
	*route = -1;
	pthread_mutex_unlock(&routing.lock);
}

int irq_line_bind(int efd, int resample_efd, u32 gsi)
{
	if (irqfd(efd, gsi, resample_efd, false) < 0)
		return fail("KVM_IRQFD for GSI %u: %s", gsi, strerror(errno));
	return 0;
}

void irq_line_unbind(int efd, u32 gsi)
{
	irqfd(efd, gsi, -1, true);
}

static int ioeventfd(int efd, u64 addr, u32 len, bool pio, bool deassign)
{
	struct kvm_ioeventfd req = { .addr = addr, .len = len, .fd = efd };

	if (pio)
		req.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (deassign)
		req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return ioctl(vm.vm_fd, KVM_IOEVENTFD, &req);
}

int ioevent_bind(int efd, u64 addr, u32 len, bool pio)
{
	if (ioeventfd(efd, addr, len, pio, false) < 0)
		return fail("KVM_IOEVENTFD at %#llx: %s", (unsigned long long)addr, strerror(errno));
	return 0;
}

void ioevent_unbind(int efd, u64 addr, u32 len, bool pio)
{
	ioeventfd(efd, addr, len, pio, true);
}
