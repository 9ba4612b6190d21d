#ifndef STUB_IRQ_H
#define STUB_IRQ_H
#include "vm/irq.h"
extern int stub_irq_line_level[64];
extern int stub_irq_line_calls;
extern int stub_msi_binds;
/* How many eventfds are bound as doorbells at addr, in port or memory space. */
int stub_ioevent_bound(u64 addr, bool pio);
#endif
