/*
 * irq.h: how devices raise interrupts and receive doorbells, without
 * knowing KVM.
 *
 * The VM layer implements these with KVM_IRQ_LINE, GSI routing + irqfd and
 * ioeventfd.  Unit tests link a stub (tests/unit/stub_irq.c) that records
 * calls, so device code runs the same with and without a VM.
 */
#ifndef VM_IRQ_H
#define VM_IRQ_H

#include "lguest.h"

/* Drive a legacy interrupt pin (IOAPIC/PIC input gsi) high or low. */
void irq_line(u32 gsi, int level);

/*
 * MSI: make writing 1 to eventfd efd deliver the message (addr, data).
 * *route is an opaque handle (KVM GSI) owned by the caller, -1 when none;
 * call again with new addr/data to retarget, irq_msi_unbind to drop.
 */
int irq_msi_bind(int efd, u64 addr, u32 data, int *route);
void irq_msi_unbind(int efd, int *route);

/*
 * A legacy pin fed by an eventfd (INTx through irqfd) with a resample
 * eventfd that fires when the guest EOIs, so level semantics hold.
 */
int irq_line_bind(int efd, int resample_efd, u32 gsi);
void irq_line_unbind(int efd, u32 gsi);

/*
 * Doorbells: a guest write of len bytes to addr (MMIO or port) signals efd
 * without leaving the kernel.  len 0 matches any write length.
 */
int ioevent_bind(int efd, u64 addr, u32 len, bool pio);
void ioevent_unbind(int efd, u64 addr, u32 len, bool pio);

#endif
