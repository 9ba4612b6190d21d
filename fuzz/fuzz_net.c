/*
 * fuzz_net.c: libFuzzer target for virtio-net's two queues.
 *
 * The input is what a hostile guest controls, both queues' descriptor
 * tables and avail rings and the RAM their buffers point at, plus what the
 * wire delivers: up to three frames of any length and content.  The card
 * sits on a SOCK_SEQPACKET socketpair (the "wire") and serves
 * synchronously on this thread: tx first (the header check, chain tricks,
 * the bounce for many-piece chains), then rx (direct reads, merging,
 * backpressure with half-delivered frames).  Every input starts from a
 * freshly reset card.  ASan and UBSan catch memory errors; the checks
 * below catch a card that answers with nonsense:
 *   - tx: a used entry naming a head that does not exist, or more used
 *     entries than the driver made available (checked before rx runs:
 *     rx writes frames wherever the guest's buffers point, rings
 *     included, which is the guest's own business);
 *   - rx: more chains given back than were taken;
 *   - anything on the wire whose header virtio_net_check_tx() refuses
 *     (the card must never pass on a frame it should have dropped).
 *
 * Input layout (QSIZE-entry queues):
 *   byte 0          bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 MRG_RXBUF,
 *                   bit 3 CSUM + HOST_TSO4/6, bit 4 GUEST_CSUM
 *   byte 1          frames the wire delivers (0-3), then for each a
 *                   2-byte little-endian length and that many bytes
 *   tx: 16*QSIZE    descriptor table, then 6+2*QSIZE avail ring
 *   rx: the same
 *   the rest        guest RAM from the heap on (buffers, indirect tables)
 */
#include "vqdriver.h"
#include "virtio/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QSIZE	16
#define MEM	KiB(512)

static struct virtio_dev *dev;
static struct vqd d;
static int wire, card_end;	/* our end; a dup of the card's, to drain it */
static u64 offer;
static u8 frame[NET_HDR_LEN + NET_MAX_FRAME + 64];

/* One card for the whole run; each input resets it. */
static void setup(void)
{
	struct net_opts o = { .mac = { 2, 0, 0, 0, 0, 1 } };
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	wire = sv[1];
	card_end = dup(sv[0]);
	dev = virtio_net_new(sv[0], &o);
	if (!dev || card_end < 0)
		abort();
	virtio_net_sync_mode(dev, true);
	if (vqd_init(&d, dev, MEM, VQD_ALL_FEATURES, QSIZE) < 0) {
		fprintf(stderr, "fuzz_net: %s\n", last_error());
		abort();
	}
	offer = dev->features;
}

/* Features for this input, from byte 0. */
static u64 features_from(u8 b)
{
	u64 keep = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_NET_F_MAC |
		   1ULL << VIRTIO_NET_F_STATUS;

	if (b & 1)
		keep |= 1ULL << VIRTIO_F_EVENT_IDX;
	if (b & 2)
		keep |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	if (b & 4)
		keep |= 1ULL << VIRTIO_NET_F_MRG_RXBUF;
	if (b & 8)
		keep |= 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_HOST_TSO4 |
			1ULL << VIRTIO_NET_F_HOST_TSO6;
	if (b & 16)
		keep |= 1ULL << VIRTIO_NET_F_GUEST_CSUM | 1ULL << VIRTIO_NET_F_GUEST_TSO4 |
			1ULL << VIRTIO_NET_F_GUEST_TSO6;
	return offer & keep;
}

/* Empty a socket's receive queue; returns the messages, each checked. */
static void drain(int fd, bool check)
{
	struct virtio_net_hdr_v1 h;
	ssize_t n;

	while ((n = read(fd, frame, sizeof(frame))) >= 0) {
		if (!check)
			continue;
		/* What the card put on the wire passed its own check. */
		if (n < NET_HDR_LEN)
			abort();
		memcpy(&h, frame, sizeof(h));
		if (virtio_net_check_tx(&h, n - NET_HDR_LEN, dev->features) != NET_TX_OK)
			abort();
	}
}

/* Used entries must name real heads, no more of them than were offered. */
static void check_used(struct vqd_queue *q, u16 avail)
{
	u16 n = vqd_used_pending(q), head;
	u32 len;

	if (n > avail)
		abort();
	q->manual_events = true;
	for (u16 i = 0; i < n; i++)
		if (!vqd_wait_used(q, 0, &head, &len) || head >= QSIZE)
			abort();
}

/* The wire's frames for this input; returns where the input continues. */
static const u8 *send_frames(const u8 *data, const u8 *end, unsigned n)
{
	for (unsigned i = 0; i < n && end - data >= 2; i++) {
		size_t len = data[0] | data[1] << 8;

		data += 2;
		len = MIN(len, (size_t)(end - data));
		if (send(wire, data, len, MSG_DONTWAIT) < 0)
			break;
		data += len;
	}
	return data;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	const u8 *end = data + size;
	struct vqd_queue *tx, *rx;
	u16 tx_avail;

	if (!dev)
		setup();
	if (size < 2)
		return 0;
	vqd_stop(&d);
	dev->features = features_from(data[0]);
	if (vqd_start(&d) < 0)
		abort();
	drain(card_end, false);
	drain(wire, false);
	data = send_frames(data + 2, end, data[1] & 3);
	tx = &d.q[NET_TXQ];
	rx = &d.q[NET_RXQ];
	if ((size_t)(end - data) < vqd_ring_bytes(tx) + vqd_ring_bytes(rx))
		return 0;
	data = vqd_load_ring(tx, data);
	data = vqd_load_ring(rx, data);
	vqd_load_heap(&d, data, end - data);

	tx_avail = *(u16 *)vqd_ptr(&d, tx->avail_gpa + 2, 2);
	virtio_net_tx_sync(dev);
	check_used(tx, tx_avail);
	virtio_net_rx_sync(dev);
	/* The device's own counts (both start at 0, and three frames
	 * cannot take 2^16 chains): every used entry is a chain it popped. */
	if (rx->vq->used_idx > rx->vq->last_avail)
		abort();
	drain(wire, true);
	d.n_needs_reset = 0;
	return 0;
}
