/*
 * rtc.c: the CMOS real-time clock at ports 0x70/0x71.
 *
 * Linux reads the date from here at boot (and rtc-cmos serves
 * /dev/rtc0).  We keep no clock of our own: every read of a time register
 * reports the host's current UTC time, in BCD, 24-hour mode, as a PC's
 * firmware leaves the chip.  The update-in-progress bit is never set, so
 * the guest never waits.
 */
#include "dev/legacy.h"
#include "bus/bus.h"

#include <pthread.h>
#include <time.h>

#define RTC_INDEX	0x70

#define REG_SECONDS	0x00
#define REG_MINUTES	0x02
#define REG_HOURS	0x04
#define REG_WEEKDAY	0x06
#define REG_DAY		0x07
#define REG_MONTH	0x08
#define REG_YEAR	0x09
#define REG_A		0x0a
#define REG_B		0x0b
#define REG_C		0x0c
#define REG_D		0x0d
#define REG_CENTURY	0x32

#define B_24H		0x02
#define D_VALID		0x80	/* "the battery is fine" */

static struct {
	pthread_mutex_t lock;
	u8 index;
	u8 ram[128];		/* other registers: plain storage */
} rtc = { .lock = PTHREAD_MUTEX_INITIALIZER };

static u8 bcd(int v)
{
	return (u8)(((v / 10) << 4) | (v % 10));
}

static u8 rtc_time_reg(u8 reg, const struct tm *t)
{
	switch (reg) {
	case REG_SECONDS:	return bcd(t->tm_sec);
	case REG_MINUTES:	return bcd(t->tm_min);
	case REG_HOURS:		return bcd(t->tm_hour);
	case REG_WEEKDAY:	return bcd(t->tm_wday + 1);
	case REG_DAY:		return bcd(t->tm_mday);
	case REG_MONTH:		return bcd(t->tm_mon + 1);
	case REG_YEAR:		return bcd(t->tm_year % 100);
	case REG_CENTURY:	return bcd(19 + t->tm_year / 100);
	}
	return 0;
}

static u8 rtc_reg(u8 reg)
{
	time_t now = time(NULL);
	struct tm t;

	switch (reg) {
	case REG_A:
		return 0x26;	/* 32.768 kHz base, 1024 Hz rate, not updating */
	case REG_B:
		return B_24H | (rtc.ram[REG_B] & 0x70);	/* keep interrupt enables */
	case REG_C:
		return 0;	/* no interrupt flags: we raise no RTC interrupts */
	case REG_D:
		return D_VALID;
	case REG_SECONDS: case REG_MINUTES: case REG_HOURS: case REG_WEEKDAY:
	case REG_DAY: case REG_MONTH: case REG_YEAR: case REG_CENTURY:
		gmtime_r(&now, &t);
		return rtc_time_reg(reg, &t);
	}
	return rtc.ram[reg];
}

static void rtc_read(void *opaque, u64 offset, void *data, u32 len)
{
	u8 v;

	pthread_mutex_lock(&rtc.lock);
	v = offset == 0 ? rtc.index : rtc_reg(rtc.index);
	pthread_mutex_unlock(&rtc.lock);
	for (u32 i = 0; i < len; i++)
		((u8 *)data)[i] = i ? 0xff : v;
}

static void rtc_write(void *opaque, u64 offset, const void *data, u32 len)
{
	u8 v = *(const u8 *)data;

	pthread_mutex_lock(&rtc.lock);
	if (offset == 0)
		rtc.index = v & 0x7f;	/* bit 7 is the NMI mask, not an index */
	else if (rtc.index > REG_D && rtc.index != REG_CENTURY)
		rtc.ram[rtc.index] = v;
	else if (rtc.index == REG_B)
		rtc.ram[REG_B] = v;
	/* Setting the clock is ignored: the host owns the time. */
	pthread_mutex_unlock(&rtc.lock);
}

static const struct bus_ops rtc_ops = { .read = rtc_read, .write = rtc_write };

int rtc_create(void)
{
	return bus_register(BUS_PIO, RTC_INDEX, 2, &rtc_ops, NULL, "rtc");
}
