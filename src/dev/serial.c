/*
 * serial.c: a 16550A UART.
 *
 * The guest's earliest words come out here, before any virtio driver
 * loads, so this is the console that must never fail.  We emulate the
 * registers Linux's 8250 driver probes (scratch, loopback, FIFO
 * identification) and transmit instantly: the transmitter is always empty,
 * and each byte goes straight to our stdout.
 *
 * Input typed before the guest is ready is kept in a buffer and handed
 * over once the guest's driver opens the port (serial_rx_visible); when
 * that buffer fills, we stop reading our stdin (backpressure) rather than
 * drop keystrokes.
 */
#include "dev/serial.h"
#include "bus/bus.h"
#include "vm/irq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Register offsets and the bits we use. */
#define UART_RX		0	/* DLAB=0 read */
#define UART_TX		0	/* DLAB=0 write */
#define UART_DLL	0	/* DLAB=1 */
#define UART_IER	1
#define UART_DLM	1	/* DLAB=1 */
#define UART_IIR	2	/* read */
#define UART_FCR	2	/* write */
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_MSR	6
#define UART_SCR	7

#define IER_RDI		0x01	/* receive data interrupt */
#define IER_THRI	0x02	/* transmitter empty interrupt */
#define IIR_NO_INT	0x01
#define IIR_THRI	0x02
#define IIR_RDI		0x04
#define IIR_FIFO	0xc0	/* "16550A with working FIFOs" */
#define FCR_FIFO_ENABLE	0x01
#define LCR_DLAB	0x80
#define MCR_OUT2	0x08
#define MCR_LOOP	0x10
#define LSR_DR		0x01
#define LSR_THRE	0x20
#define LSR_TEMT	0x40
#define MSR_CTS		0x10
#define MSR_DSR		0x20
#define MSR_DCD		0x80

#define RX_BUF		4096

struct serial {
	pthread_mutex_t lock;
	u16 base;
	u32 gsi;
	int out_fd;
	u8 ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thr_int;		/* THR-empty interrupt pending until IIR read */
	int irq_level;
	u8 rx[RX_BUF];
	u32 rx_head, rx_count;
	void (*room_fn)(void *);
	void *room_arg;
};

/* Recompute the interrupt line from the state; the caller holds the lock. */
static void serial_update_irq(struct serial *s)
{
	int level = 0;

	if ((s->ier & IER_RDI) && s->rx_count)
		level = 1;	/* RDI enabled: the data is visible */
	if ((s->ier & IER_THRI) && s->thr_int)
		level = 1;
	if (level != s->irq_level) {
		s->irq_level = level;
		irq_line(s->gsi, level);
	}
}

/*
 * Typed input is shown to the guest only while its driver listens: the
 * receive interrupt is enabled (the port is open) or the port is in
 * loopback.  Linux's 8250 driver drains and resets the FIFOs when it
 * opens the port; input typed before that would be lost on real
 * hardware.  Here it waits in our buffer instead.
 */
static bool serial_rx_visible(const struct serial *s)
{
	return s->rx_count && ((s->ier & IER_RDI) || (s->mcr & MCR_LOOP));
}

static u8 serial_iir(struct serial *s)
{
	u8 fifo = (s->fcr & FCR_FIFO_ENABLE) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_count)
		return fifo | IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_int)
		return fifo | IIR_THRI;
	return fifo | IIR_NO_INT;
}

static void serial_transmit(struct serial *s, u8 c)
{
	if (s->mcr & MCR_LOOP) {
		/* Loopback: what we send comes back as input. */
		if (s->rx_count < RX_BUF)
			s->rx[(s->rx_head + s->rx_count++) % RX_BUF] = c;
		return;
	}
	/* Blocking write: a slow stdout slows the guest, never loses text. */
	while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static u8 serial_receive(struct serial *s)
{
	u8 c;
	bool was_full = s->rx_count == RX_BUF;

	if (!s->rx_count)
		return 0;
	c = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % RX_BUF;
	s->rx_count--;
	if (was_full && s->room_fn)
		s->room_fn(s->room_arg);
	return c;
}

static u8 serial_read_reg(struct serial *s, u64 reg)
{
	switch (reg) {
	case UART_RX:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		return serial_rx_visible(s) ? serial_receive(s) : 0;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR: {
		u8 iir = serial_iir(s);

		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((iir & 0x0f) == IIR_THRI)
			s->thr_int = false;
		return iir;
	}
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return LSR_THRE | LSR_TEMT | (serial_rx_visible(s) ? LSR_DR : 0);
	case UART_MSR:
		if (s->mcr & MCR_LOOP)	/* outputs wired back to inputs */
			return ((s->mcr & 0x0c) << 4) | ((s->mcr & 0x01) << 5) |
			       ((s->mcr & 0x02) << 3);
		return MSR_DCD | MSR_DSR | MSR_CTS;
	case UART_SCR:
		return s->scr;
	}
	return 0xff;
}

static void serial_write_reg(struct serial *s, u64 reg, u8 v)
{
	switch (reg) {
	case UART_TX:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		serial_transmit(s, v);
		/* Sent at once: the holding register is empty again. */
		s->thr_int = true;
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		/* Enabling the THR-empty interrupt while empty fires it. */
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thr_int = true;
		s->ier = v & 0x0f;
		break;
	case UART_FCR:
		s->fcr = v & FCR_FIFO_ENABLE;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	}
}

static void serial_bus_read(void *opaque, u64 offset, void *data, u32 len)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	*(u8 *)data = serial_read_reg(s, offset);
	for (u32 i = 1; i < len; i++)	/* wider accesses: only byte 0 means anything */
		((u8 *)data)[i] = 0xff;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_bus_write(void *opaque, u64 offset, const void *data, u32 len)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	serial_write_reg(s, offset, *(const u8 *)data);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops serial_ops = {
	.read = serial_bus_read,
	.write = serial_bus_write,
};

struct serial *serial_create(u16 base, u32 gsi, int out_fd)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s) {
		fail("out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->base = base;
	s->gsi = gsi;
	s->out_fd = out_fd;
	s->mcr = MCR_OUT2;
	if (bus_register(BUS_PIO, base, 8, &serial_ops, s, "serial")) {
		free(s);
		return NULL;
	}
	return s;
}

void serial_free(struct serial *s)
{
	bus_unregister(BUS_PIO, s->base, s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

size_t serial_input(struct serial *s, const u8 *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && s->rx_count < RX_BUF) {
		s->rx[(s->rx_head + s->rx_count) % RX_BUF] = buf[n++];
		s->rx_count++;
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_room(struct serial *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = RX_BUF - s->rx_count;
	pthread_mutex_unlock(&s->lock);
	return room;
}

void serial_dump(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	fprintf(stderr, "lguest: serial: IER %#x LCR %#x MCR %#x, THR-empty interrupt %s, "
		"line %s, %u bytes of input waiting\n", s->ier, s->lcr, s->mcr,
		s->thr_int ? "pending" : "clear", s->irq_level ? "high" : "low", s->rx_count);
	pthread_mutex_unlock(&s->lock);
}

void serial_set_room_callback(struct serial *s, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->room_fn = fn;
	s->room_arg = arg;
	pthread_mutex_unlock(&s->lock);
}
