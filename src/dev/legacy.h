/*
 * legacy.h: the small PC devices a stock kernel pokes at during boot.
 */
#ifndef DEV_LEGACY_H
#define DEV_LEGACY_H

#include "lguest.h"

/* The keyboard controller at 0x60/0x64: enough for Linux to probe it and
 * for its reset line (command 0xfe), which ends the launcher. */
int i8042_create(void (*reset)(void));
/* The CMOS real-time clock at 0x70/0x71, telling the host's time (UTC). */
int rtc_create(void);

#endif
