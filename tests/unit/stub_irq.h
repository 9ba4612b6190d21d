#ifndef STUB_IRQ_H
#define STUB_IRQ_H
#include "vm/irq.h"
extern int stub_irq_line_level[64];
extern int stub_irq_line_calls;
extern int stub_msi_binds;
#endif
