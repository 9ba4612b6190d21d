/*
 * serial.h: the 16550A UART at 0x3f8, the guest's first console.
 */
#ifndef DEV_SERIAL_H
#define DEV_SERIAL_H

#include "lguest.h"

struct serial;

/*
 * A UART at port base raising gsi, writing the guest's output to out_fd.
 * Input arrives via serial_input() from whoever reads the host side.
 */
struct serial *serial_create(u16 base, u32 gsi, int out_fd);
/* Take it off the bus and free it (tests: the launcher's lives as long). */
void serial_free(struct serial *s);
/* Queue host input for the guest; returns bytes taken (may be < len when
 * the buffer is full: the caller stops reading until serial_room()). */
size_t serial_input(struct serial *s, const u8 *buf, size_t len);
size_t serial_room(struct serial *s);
/* The registers and the interrupt line, as one line on stderr (SIGUSR2). */
void serial_dump(struct serial *s);
/* Called (from a vCPU thread) when buffer room appears after being full. */
void serial_set_room_callback(struct serial *s, void (*fn)(void *), void *arg);

#endif
