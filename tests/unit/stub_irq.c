/*
 * stub_irq.c: the VM's interrupt plumbing, for unit tests.
 *
 * Device tests run without KVM; these record what a device asked for so a
 * test can assert "the device raised its interrupt".
 */
#include "stub_irq.h"

int stub_irq_line_level[64];
int stub_irq_line_calls;
int stub_msi_binds;

void irq_line(u32 gsi, int level)
{
	if (gsi < 64)
		stub_irq_line_level[gsi] = level;
	stub_irq_line_calls++;
}

int irq_msi_bind(int efd, u64 addr, u32 data, int *route)
{
	stub_msi_binds++;
	*route = 1;
	return 0;
}

void irq_msi_unbind(int efd, int *route)
{
	*route = -1;
}

int irq_line_bind(int efd, int resample_efd, u32 gsi)
{
	return 0;
}

void irq_line_unbind(int efd, u32 gsi)
{
}

/* The doorbells bound now, so a test can see them follow a BAR. */
static struct {
	int efd;
	u64 addr;
	bool pio, live;
} ioevents[64];

int ioevent_bind(int efd, u64 addr, u32 len, bool pio)
{
	for (unsigned i = 0; i < ARRAY_SIZE(ioevents); i++) {
		if (!ioevents[i].live) {
			ioevents[i].efd = efd;
			ioevents[i].addr = addr;
			ioevents[i].pio = pio;
			ioevents[i].live = true;
			return 0;
		}
	}
	return fail("stub: too many ioeventfds");
}

void ioevent_unbind(int efd, u64 addr, u32 len, bool pio)
{
	for (unsigned i = 0; i < ARRAY_SIZE(ioevents); i++)
		if (ioevents[i].live && ioevents[i].efd == efd && ioevents[i].addr == addr &&
		    ioevents[i].pio == pio)
			ioevents[i].live = false;
}

int stub_ioevent_bound(u64 addr, bool pio)
{
	int n = 0;

	for (unsigned i = 0; i < ARRAY_SIZE(ioevents); i++)
		n += ioevents[i].live && ioevents[i].addr == addr && ioevents[i].pio == pio;
	return n;
}
