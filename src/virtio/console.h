/*
 * console.h: the virtio console (virtio 1.2, 5.3): hvc0 on our stdin and
 * stdout.
 *
 * One port: receiveq0 carries what the user types to the guest,
 * transmitq0 what the guest prints to us.  MULTIPORT is offered only for
 * its control queues, through which the driver says when the console
 * port is open: input sent before that would be thrown away by Linux.
 *
 * Output is written by the device's own thread, and a transmit buffer is
 * given back to the guest only once all of its bytes are written: when
 * stdout is slow the guest waits, and no output is ever dropped.
 *
 * Input is pushed in by the terminal code (host/term.c) with vcon_input(),
 * straight into the buffers the guest posted.  When there are none it
 * takes nothing and the terminal stops reading; when the guest posts more,
 * the room callback tells the terminal to resume.
 */
#ifndef VIRTIO_CONSOLE_H
#define VIRTIO_CONSOLE_H

#include "virtio/virtio.h"

#define VCON_QUEUE_SIZE	128

/* Queue indices (5.3.2). */
#define VCON_RXQ	0	/* receiveq0: host to guest */
#define VCON_TXQ	1	/* transmitq0: guest to host */
#define VCON_CTL_RXQ	2	/* control receiveq: device to driver (MULTIPORT) */
#define VCON_CTL_TXQ	3	/* control transmitq: driver to device (MULTIPORT) */

struct vcon;

/*
 * A console writing the guest's output to out_fd.  If out_fd is a terminal
 * its size is offered to the guest (VIRTIO_CONSOLE_F_SIZE).  *out is the
 * handle for the calls below.  NULL with last_error() set.  The caller
 * sets dev->gm and hands the device to a transport.
 */
struct virtio_dev *vcon_create(int out_fd, struct vcon **out);
/* Stop the device (as reset does) and free it; out_fd is not closed. */
void vcon_free(struct virtio_dev *dev);

/*
 * Give typed bytes to the guest: as many as fit in the receive buffers it
 * has posted, each buffer returned at once.  Returns how many were taken;
 * 0 when the guest has no buffer posted, has not opened the port yet
 * (MULTIPORT), or the device is not running.
 * Thread-safe against the device's own thread and reset.
 */
size_t vcon_input(struct vcon *c, const u8 *buf, size_t len);

/*
 * fn(arg) runs when the guest posts receive buffers, opens the port, or
 * the device starts: vcon_input() may take more now.  It runs on the device thread
 * and must only signal, e.g. term_resume().  Set it before activation.
 */
void vcon_set_room_callback(struct vcon *c, void (*fn)(void *), void *arg);

/*
 * The terminal's size (SIGWINCH): offered as F_SIZE from now on, and
 * announced to a running driver with a configuration-change interrupt.
 * (Linux reads it only when it did not take MULTIPORT.)
 */
void vcon_set_size(struct vcon *c, u16 cols, u16 rows);

/*
 * For tests and the fuzzer: with sync mode on, the next activation starts
 * no thread, and vcon_serve_sync() serves on the caller's thread what the
 * thread would for a kick on every queue (control messages and their
 * replies, then output).  -1: not running in sync mode, or a reset
 * interrupted a write.
 */
void vcon_sync_mode(struct virtio_dev *dev, bool on);
int vcon_serve_sync(struct virtio_dev *dev);
#endif
