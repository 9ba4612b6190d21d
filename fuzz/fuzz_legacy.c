/*
 * fuzz_legacy.c: libFuzzer target for the small PC devices a guest can
 * reach with port I/O: the 16550A UART (0x3f8-0x3ff), the i8042 (0x60,
 * 0x64) and the CMOS RTC (0x70, 0x71).
 *
 * Each input is a hostile guest's port traffic, any width, interleaved
 * with host input typed at the UART.  Every input starts with a fresh
 * UART; the i8042 and the RTC keep their (tiny) state across inputs, as
 * they do across a guest's reboots.  ASan and UBSan catch memory errors;
 * the checks below catch registers that stop meaning what a driver reads
 * them for.
 *
 * Input: 3-byte records
 *   byte 0   operation (see enum below, modulo OP_COUNT)
 *   byte 1   port (index into ports[]), or the byte typed
 *   byte 2   value written, access width, or how many bytes are typed
 */
#include "stub_irq.h"
#include "bus/bus.h"
#include "dev/legacy.h"
#include "dev/serial.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REC_SIZE	3
#define COM1		0x3f8
#define GSI		4
#define RX_MAX		4096	/* the UART's input buffer */

static const u16 ports[] = {
	COM1, COM1 + 1, COM1 + 2, COM1 + 3, COM1 + 4, COM1 + 5, COM1 + 6, COM1 + 7,
	0x60, 0x64, 0x70, 0x71,
};
#define NPORTS	(sizeof(ports) / sizeof(ports[0]))

enum { OP_OUT, OP_IN, OP_WIDE_OUT, OP_WIDE_IN, OP_TYPE, OP_COUNT };

static int devnull = -1;
static unsigned int resets;
static u8 rtc_index;

static void on_reset(void)
{
	resets++;
}

static void check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_legacy: %s\n", what);
		abort();
	}
}

static bool bcd_ok(u8 v)
{
	return (v & 0x0f) <= 9 && (v >> 4) <= 9;
}

/* Seconds, minutes, hours, weekday, day, month, year, century (the odd
 * registers below 6 are alarms: plain storage). */
static bool rtc_is_time(u8 index)
{
	switch (index) {
	case 0x00: case 0x02: case 0x04: case 0x06: case 0x07: case 0x08: case 0x09: case 0x32:
		return true;
	}
	return false;
}

/* What a byte read from port means, whatever came before. */
static void check_read(u16 port, u8 v)
{
	switch (port) {
	case COM1 + 2:		/* IIR: one cause or none, FIFO bits all or nothing */
		check((v & 0x0f) == 0x01 || (v & 0x0f) == 0x02 || (v & 0x0f) == 0x04,
		      "IIR names no known cause");
		check((v & 0xf0) == 0 || (v & 0xf0) == 0xc0, "IIR FIFO bits half set");
		break;
	case COM1 + 5:		/* LSR: the transmitter is always ready */
		check((v & 0x60) == 0x60 && !(v & ~0x61), "LSR claims errors or a busy transmitter");
		break;
	case 0x64:		/* i8042 status: self-test passed, not locked */
		check((v & 0x14) == 0x14, "i8042 status lost its system or unlocked flag");
		break;
	case 0x71:
		if (rtc_index == 0x0d)
			check(v == 0x80, "RTC register D says the battery is dead");
		if (rtc_is_time(rtc_index))
			check(bcd_ok(v), "RTC time register is not BCD");
		break;
	}
}

/* One port access of the guest's, checked where a read has a meaning. */
static void port_access(const u8 *rec)
{
	u16 port = ports[rec[1] % NPORTS];
	u8 buf[8];
	u32 len;

	switch (rec[0] % OP_COUNT) {
	case OP_OUT:
		bus_access(BUS_PIO, port, (u8 *)&rec[2], 1, true);
		if (port == 0x70)
			rtc_index = rec[2] & 0x7f;
		break;
	case OP_IN:
		bus_access(BUS_PIO, port, buf, 1, false);
		check_read(port, buf[0]);
		break;
	case OP_WIDE_OUT:
		len = 1u << (rec[2] & 3);
		memset(buf, rec[2], sizeof(buf));
		bus_access(BUS_PIO, port, buf, len, true);
		if (port == 0x70)
			rtc_index = rec[2] & 0x7f;
		break;
	case OP_WIDE_IN:
		len = 1u << (rec[2] & 3);
		memset(buf, 0xa5, sizeof(buf));
		bus_access(BUS_PIO, port, buf, len, false);
		check_read(port, buf[0]);
		for (u32 i = 1; i < len; i++)
			check(buf[i] == 0xff, "a wide read's upper bytes are not 0xff");
		break;
	}
}

/* Host input typed at the UART: it takes what fits, never more. */
static void type_input(struct serial *s, const u8 *rec)
{
	u8 typed[64];
	size_t n = rec[2] % sizeof(typed) + 1, room = serial_room(s);

	memset(typed, rec[1], n);
	check(serial_input(s, typed, n) == (n < room ? n : room),
	      "serial_input took more or less than it had room for");
	check(serial_room(s) <= RX_MAX, "more room than the buffer has");
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct serial *s;

	if (devnull < 0)
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	bus_reset_all();
	s = serial_create(COM1, GSI, devnull);
	if (!s || i8042_create(on_reset) || rtc_create())
		abort();
	for (size_t off = 0; off + REC_SIZE <= size; off += REC_SIZE) {
		const u8 *rec = data + off;

		if (rec[0] % OP_COUNT == OP_TYPE)
			type_input(s, rec);
		else
			port_access(rec);
		check(stub_irq_line_level[GSI] == 0 || stub_irq_line_level[GSI] == 1,
		      "the UART's line is neither high nor low");
	}
	serial_free(s);
	return 0;
}
