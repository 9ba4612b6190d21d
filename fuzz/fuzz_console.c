/*
 * fuzz_console.c: libFuzzer target for virtio-console's four queues.
 *
 * The input is what a hostile guest controls: every queue's descriptor
 * table and avail ring and the RAM their buffers point at, plus what the
 * user types.  The console serves synchronously on this thread (no device
 * thread): the control messages the driver sent (the MULTIPORT handshake
 * and anything else) and the replies they earn, then the guest's output,
 * which goes to /dev/null; then the typed bytes go into whatever receive
 * buffers the guest posted.  Every input starts from a freshly reset
 * console.  ASan and UBSan catch memory errors; the checks below catch a
 * console that answers with nonsense:
 *   - no queue gives back more chains than it took (the device's own
 *     counts: the guest may overwrite its used rings with control replies
 *     or typed bytes, which is its own business);
 *   - the transmit queue, the last one written before we look, names only
 *     heads that exist;
 *   - vcon_input() never claims more bytes than it was given.
 *
 * Input layout (QSIZE-entry queues):
 *   byte 0          bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 MULTIPORT
 *   byte 1          how many typed bytes follow (0-255), then those bytes
 *   per queue       16*QSIZE descriptor table, then 6+2*QSIZE avail ring,
 *                   for receiveq0, transmitq0, control receive, control
 *                   transmit, in that order
 *   the rest        guest RAM from the heap on (buffers, indirect tables)
 */
#include "vqdriver.h"
#include "virtio/console.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QSIZE		16
#define MEM		KiB(256)
#define F_MULTIPORT	1
#define NQ		4

static struct virtio_dev *dev;
static struct vcon *con;
static struct vqd d;
static u64 offer;

/* One console for the whole run, writing to /dev/null; each input resets it. */
static void setup(void)
{
	int out = open("/dev/null", O_WRONLY | O_CLOEXEC);

	dev = out < 0 ? NULL : vcon_create(out, &con);
	if (!dev)
		abort();
	vcon_sync_mode(dev, true);
	if (vqd_init(&d, dev, MEM, VQD_ALL_FEATURES, QSIZE) < 0) {
		fprintf(stderr, "fuzz_console: %s\n", last_error());
		abort();
	}
	offer = dev->features;
}

/* Features for this input, from byte 0. */
static u64 features_from(u8 b)
{
	u64 keep = 1ULL << VIRTIO_F_VERSION_1;

	if (b & 1)
		keep |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (b & 2)
		keep |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (b & 4)
		keep |= 1ULL << F_MULTIPORT;
	return offer & keep;
}

/* No queue gives back more than it took. */
static void check_counts(void)
{
	for (int i = 0; i < NQ; i++) {
		const struct virtqueue *vq = d.q[i].vq;

		if (vq->used_idx > vq->last_avail)
			abort();
	}
}

/* The transmit queue's used entries, all its own writes: real heads. */
static void check_tx_used(void)
{
	const struct virtqueue *vq = d.q[VCON_TXQ].vq;
	const u32 *used = vqd_ptr(&d, d.q[VCON_TXQ].used_gpa, 4 + 8 * QSIZE);

	for (u16 i = 0; i < vq->used_idx && i < QSIZE; i++)
		if (used[1 + 2 * i] >= QSIZE)
			abort();
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	const u8 *end = data + size, *typed;
	size_t ntyped;

	if (!dev)
		setup();
	if (size < 2 || (size_t)(size - 2) < data[1])
		return 0;
	vqd_stop(&d);
	dev->features = features_from(data[0]);
	if (vqd_start(&d) < 0)
		abort();
	ntyped = data[1];
	typed = data + 2;
	data = typed + ntyped;
	if ((size_t)(end - data) < NQ * vqd_ring_bytes(&d.q[0]))
		return 0;
	for (int i = 0; i < NQ; i++)
		data = vqd_load_ring(&d.q[i], data);
	vqd_load_heap(&d, data, end - data);

	if (vcon_serve_sync(dev) < 0)
		abort();
	check_counts();
	check_tx_used();
	if (vcon_input(con, typed, ntyped) > ntyped)
		abort();
	check_counts();
	d.n_needs_reset = 0;
	return 0;
}
