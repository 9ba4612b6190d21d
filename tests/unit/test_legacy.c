/*
 * test_legacy.c: the small PC devices (16550A UART, i8042, CMOS RTC)
 * driven through the port bus the way a guest's drivers drive them.
 *
 * The UART must pass Linux's 8250 probe (scratch register, divisor latch,
 * FIFO bits in IIR), send what the guest writes, hide typed input until
 * the driver opens the port, raise and drop its line as IER and IIR say,
 * and loop back in loopback mode.  The i8042 must answer the commands a
 * kernel's probe sends and pulse reset on 0xfe; the RTC must tell the
 * host's time in BCD and keep its NVRAM.
 */
#include "tap.h"
#include "stub_irq.h"
#include "bus/bus.h"
#include "dev/legacy.h"
#include "dev/serial.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COM1	0x3f8
#define GSI	4

static u8 inb(u16 port)
{
	u8 v = 0;

	bus_access(BUS_PIO, port, &v, 1, false);
	return v;
}

static void outb(u16 port, u8 v)
{
	bus_access(BUS_PIO, port, &v, 1, true);
}

/* Bytes the UART wrote to the host side so far (non-blocking pipe). */
static ssize_t drain(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = 0;
	return n;
}

static int room_calls;
static void on_room(void *arg)
{
	room_calls++;
}

static void test_uart_probe_and_output(int out)
{
	char buf[64];

	outb(COM1 + 7, 0x55);
	is_int(inb(COM1 + 7), 0x55, "scratch register keeps what was written");
	outb(COM1 + 3, 0x80);			/* DLAB */
	outb(COM1 + 0, 0x01);
	outb(COM1 + 1, 0x00);
	ok(inb(COM1 + 0) == 0x01 && inb(COM1 + 1) == 0x00, "divisor latch reads back");
	outb(COM1 + 3, 0x03);			/* 8N1, DLAB off */
	is_int(inb(COM1 + 3), 0x03, "LCR reads back");
	outb(COM1 + 2, 0x01);			/* FIFO on */
	is_int(inb(COM1 + 2), 0xc1, "IIR: 16550A FIFOs, no interrupt");
	ok((inb(COM1 + 5) & 0x60) == 0x60, "LSR: transmitter empty");

	outb(COM1, 'h');
	outb(COM1, 'i');
	ok(drain(out, buf, sizeof(buf)) == 2 && !strcmp(buf, "hi"), "THR writes reach the host: '%s'", buf);
}

/* (is_int evaluates its arguments twice: registers with side effects are
 * read into a variable first.) */
static void test_uart_interrupts(void)
{
	u8 iir;

	stub_irq_line_level[GSI] = 0;
	outb(COM1 + 1, 0x02);			/* IER: THR empty */
	is_int(stub_irq_line_level[GSI], 1, "enabling THRI while empty raises the line");
	iir = inb(COM1 + 2) & 0x0f;
	is_int(iir, 0x02, "IIR says THR empty");
	is_int(stub_irq_line_level[GSI], 0, "reading IIR acknowledges it");
	iir = inb(COM1 + 2) & 0x0f;
	is_int(iir, 0x01, "then IIR says no interrupt");
	outb(COM1 + 1, 0x00);
}

static void test_uart_input(struct serial *s)
{
	size_t n = serial_input(s, (const u8 *)"ab", 2);
	u8 v;

	is_int(n, 2, "input queued");
	ok(!(inb(COM1 + 5) & 0x01) && stub_irq_line_level[GSI] == 0,
	   "input waits unseen while the driver has the port closed");
	outb(COM1 + 1, 0x01);			/* IER: receive data */
	ok((inb(COM1 + 5) & 0x01) && stub_irq_line_level[GSI] == 1,
	   "opening the port shows it: LSR data ready, line high");
	v = inb(COM1 + 2) & 0x0f;
	is_int(v, 0x04, "IIR says receive data");
	ok(inb(COM1) == 'a' && inb(COM1) == 'b', "RX gives the bytes in order");
	ok(!(inb(COM1 + 5) & 0x01) && stub_irq_line_level[GSI] == 0, "drained: no data, line low");
	v = inb(COM1);
	is_int(v, 0, "RX with nothing waiting reads 0");

	/* A full buffer takes no more; the first byte read makes room. */
	static u8 lots[5000];

	memset(lots, 'x', sizeof(lots));
	serial_set_room_callback(s, on_room, NULL);
	n = serial_input(s, lots, sizeof(lots));
	ok(n < sizeof(lots) && serial_room(s) == 0, "a full buffer takes %zu of %zu bytes", n,
	   sizeof(lots));
	inb(COM1);
	ok(room_calls == 1 && serial_room(s) == 1, "reading from a full buffer calls back once");
	while (inb(COM1 + 5) & 0x01)
		inb(COM1);
	outb(COM1 + 1, 0x00);
}

static void test_uart_loopback(int out)
{
	char buf[16];

	u8 msr;

	outb(COM1 + 4, 0x10 | 0x08 | 0x03);	/* LOOP, OUT2, RTS, DTR */
	outb(COM1, 'z');
	ok((inb(COM1 + 5) & 0x01) && inb(COM1) == 'z', "loopback: a sent byte comes back");
	ok(drain(out, buf, sizeof(buf)) <= 0, "loopback: nothing reaches the host");
	msr = inb(COM1 + 6) & 0xf0;
	is_int(msr, 0xb0, "loopback: MSR shows OUT2, DTR, RTS as DCD, DSR, CTS");
	outb(COM1 + 4, 0x10 | 0x04);		/* LOOP, OUT1 */
	msr = inb(COM1 + 6) & 0xf0;
	is_int(msr, 0x40, "loopback: OUT1 shows as RI");
	outb(COM1 + 4, 0x08);
}

static void test_uart_odd_accesses(void)
{
	u8 wide[4] = { 0 };

	bus_access(BUS_PIO, COM1 + 5, wide, 4, false);
	ok((wide[0] & 0x60) == 0x60 && wide[1] == 0xff && wide[3] == 0xff,
	   "a 4-byte read: byte 0 is the register, the rest 0xff");
	bus_access(BUS_PIO, COM1 + 7, wide, 4, true);	/* runs past the UART's 8 ports */
	outb(COM1 + 2, 0xff);				/* FCR: only FIFO enable is kept */
	is_int(inb(COM1 + 2) & 0xc0, 0xc0, "FCR garbage leaves the FIFO bits sane");
}

static int resets;
static void on_reset(void)
{
	resets++;
}

static void test_i8042(void)
{
	u8 st = inb(0x64), v;

	ok((st & 0x14) == 0x14 && !(st & 0x01), "i8042 status: system flag, unlocked, nothing to read");
	outb(0x64, 0xaa);
	ok(inb(0x64) & 0x01, "self-test puts a reply in the output buffer");
	v = inb(0x60);
	is_int(v, 0x55, "self-test passes");
	ok(!(inb(0x64) & 0x01), "reading it empties the buffer");
	outb(0x64, 0x60);
	outb(0x60, 0x47);
	outb(0x64, 0x20);
	v = inb(0x60);
	is_int(v, 0x47, "the control register is written and read back");
	outb(0x64, 0xab);
	v = inb(0x60);
	is_int(v, 0xff, "keyboard interface test: no keyboard");
	outb(0x60, 0x12);			/* a byte for the absent keyboard */
	outb(0x64, 0x20);
	v = inb(0x60);
	is_int(v, 0x47, "bytes for the keyboard do not touch the control register");
	is_int(resets, 0, "no reset yet");
	outb(0x64, 0xfe);
	is_int(resets, 1, "0xfe pulses the reset line");
}

static bool is_bcd(u8 v, int max)
{
	return (v & 0x0f) <= 9 && (v >> 4) <= 9 && ((v >> 4) * 10 + (v & 0x0f)) <= max;
}

static u8 cmos(u8 reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static void test_rtc(void)
{
	time_t now = time(NULL);
	struct tm t;
	u8 year, century;

	gmtime_r(&now, &t);
	is_int(cmos(0x0d), 0x80, "register D: the battery is fine");
	ok(cmos(0x0b) & 0x02, "register B: 24-hour mode");
	ok(!(cmos(0x0a) & 0x80), "register A: no update in progress");
	ok(is_bcd(cmos(0x00), 59) && is_bcd(cmos(0x02), 59) && is_bcd(cmos(0x04), 23) &&
	   is_bcd(cmos(0x07), 31) && is_bcd(cmos(0x08), 12), "time registers are BCD in range");
	year = cmos(0x09);
	century = cmos(0x32);
	is_int(((century >> 4) * 10 + (century & 0x0f)) * 100 + (year >> 4) * 10 + (year & 0x0f),
	       t.tm_year + 1900, "year and century tell the host's year");
	outb(0x70, 0x00);
	outb(0x71, 0x99);
	ok(is_bcd(cmos(0x00), 59), "setting the clock is ignored");
	outb(0x70, 0xc0);			/* NMI-mask bit + index 0x40 */
	outb(0x71, 0x5a);
	is_int(cmos(0x40), 0x5a, "NVRAM keeps a byte; bit 7 of the index is not part of it");
	is_int(inb(0x70), 0x40, "the index port reads back the index");
	outb(0x70, 0x0b);
	outb(0x71, 0x7f);
	is_int(cmos(0x0b) & 0x72, 0x72, "register B keeps interrupt enables and 24-hour mode");
}

int main(void)
{
	int pipefd[2];
	struct serial *s;

	if (pipe2(pipefd, O_NONBLOCK) < 0)
		return 1;
	s = serial_create(COM1, GSI, pipefd[1]);
	if (!ok(s && i8042_create(on_reset) == 0 && rtc_create() == 0, "devices on the port bus"))
		return tap_done();
	test_uart_probe_and_output(pipefd[0]);
	test_uart_interrupts();
	test_uart_input(s);
	test_uart_loopback(pipefd[0]);
	test_uart_odd_accesses();
	test_i8042();
	test_rtc();
	serial_free(s);
	ok(!bus_access(BUS_PIO, COM1, (u8[1]){ 0 }, 1, false), "a freed UART is off the bus");
	return tap_done();
}
