/*
 * term.h: the launcher's own terminal: stdin to the guest's console.
 */
#ifndef HOST_TERM_H
#define HOST_TERM_H

#include "lguest.h"

/* Where typed bytes go; returns how many it took (0: stop reading for now). */
typedef size_t (*term_sink)(void *arg, const u8 *buf, size_t len);

/*
 * Put stdin in raw mode if it is a terminal (restored at exit by the
 * cleanup list) and start feeding it to sink from the main loop.
 * Ctrl-A x quits when stdin is a terminal; Ctrl-A Ctrl-A sends Ctrl-A.
 */
int term_init(term_sink sink, void *arg, void (*quit)(void));
/* The sink has room again: resume reading stdin. */
void term_resume(void);

#endif
