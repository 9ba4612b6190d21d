/*
 * test_net.c: the virtio network card, driven by vqdriver.
 *
 * Three rigs, from the most controlled to the most real:
 *   - the header check alone (virtio_net_check_tx), table-driven;
 *   - the card on a SOCK_SEQPACKET socketpair, served synchronously: the
 *     other end of the pair is the "wire", so every frame the card writes
 *     can be read back byte for byte, and frames can be fed to it one at a
 *     time (chain tricks, merging, backpressure, malformed headers);
 *   - the card on a real tap with its own threads, talking to this host's
 *     network stack over link-local 169.254.N.0/24: ARP and UDP both
 *     ways, partial checksums, a TSO frame, backpressure, the tap's life
 *     (created, addressed or bridged, deleted), and vhost-net where
 *     /dev/vhost-net exists.  Skipped without CAP_NET_ADMIN.
 */
#include "tap.h"
#include "vqdriver.h"
#include "host/tap.h"
#include "virtio/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MEM		MiB(32)
#define RXBUF		2048
#define ALL		VQD_ALL_FEATURES
#define NO_MRG		(~(1ULL << VIRTIO_NET_F_MRG_RXBUF))
#define HDR		NET_HDR_LEN

static const u8 guest_mac[6] = { 0x02, 0x4c, 0x47, 0x00, 0x00, 0x02 };

/* is_int() evaluates its arguments twice: this takes values. */
static void is_n(long long got, long long want, const char *name)
{
	is_int(got, want, name);
}

/* ---------------------------------------------------------------------------
 * A rig: the card, the fake guest, and the wire's far end.
 */
struct rig {
	struct vqd d;
	struct virtio_dev *dev;
	struct vqd_queue *rx, *tx;
	int peer;			/* socketpair end, or -1 on a tap */
	u64 buf_gpa[NET_QUEUE_SIZE];	/* rx buffer of each posted head */
	u32 buf_len[NET_QUEUE_SIZE];
};

/* Card on fd, negotiated with features; threads unless sync. */
static bool rig_up(struct rig *r, int fd, bool is_tap, bool vhost, u64 features, bool sync)
{
	struct net_opts o = { .is_tap = is_tap, .vhost = vhost };

	memcpy(o.mac, guest_mac, 6);
	r->dev = virtio_net_new(fd, &o);
	if (!r->dev)
		return false;
	virtio_net_sync_mode(r->dev, sync);
	if (vqd_init(&r->d, r->dev, MEM, features, 0) < 0 || vqd_start(&r->d) < 0) {
		tap_diag("rig: %s", last_error());
		return false;
	}
	r->rx = &r->d.q[NET_RXQ];
	r->tx = &r->d.q[NET_TXQ];
	return true;
}

/* The card on one end of a socketpair; the test holds the other. */
static bool rig_socket(struct rig *r, u64 features, bool sync)
{
	int sv[2];

	memset(r, 0, sizeof(*r));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	r->peer = sv[1];
	return rig_up(r, sv[0], false, false, features, sync);
}

static void rig_down(struct rig *r)
{
	if (r->dev) {
		vqd_destroy(&r->d);
		virtio_net_free(r->dev);
	}
	if (r->peer > 0)
		close(r->peer);
	memset(r, 0, sizeof(*r));
}

/* Copy bytes into fresh guest memory; returns the GPA. */
static u64 guest_copy(struct rig *r, const void *p, u32 len)
{
	u64 gpa = vqd_alloc(&r->d, len, 16);

	if (gpa && len)
		memcpy(vqd_ptr(&r->d, gpa, len), p, len);
	return gpa;
}

/*
 * Send one tx chain: bytes (header + frame) cut into pieces of the given
 * lengths (the last piece takes the rest), through an indirect table if
 * asked.  Returns the head, or -1.
 */
static int tx_post_split(struct rig *r, const void *bytes, u32 len, const u32 *cuts,
			 int ncuts, bool indirect)
{
	u32 off = 0;
	int head;

	vqd_chain_begin(r->tx);
	if (indirect)
		vqd_chain_indirect(r->tx, ncuts + 1);
	for (int i = 0; i <= ncuts && off < len; i++) {
		u32 piece = i < ncuts ? MIN(cuts[i], len - off) : len - off;

		vqd_chain_add(r->tx, guest_copy(r, (const u8 *)bytes + off, piece), piece, false);
		off += piece;
	}
	head = vqd_chain_end(r->tx);
	if (head >= 0) {
		vqd_publish(r->tx, head);
		vqd_kick(r->tx);
	}
	return head;
}

static int tx_post(struct rig *r, const void *bytes, u32 len)
{
	return tx_post_split(r, bytes, len, NULL, 0, false);
}

/* Post one writable rx buffer of len bytes. */
static int rx_post(struct rig *r, u32 len)
{
	u64 gpa = vqd_alloc(&r->d, len, 16);
	int head;

	vqd_chain_begin(r->rx);
	vqd_chain_add(r->rx, gpa, len, true);
	head = vqd_chain_end(r->rx);
	if (head < 0)
		return -1;
	r->buf_gpa[head] = gpa;
	r->buf_len[head] = len;
	vqd_publish(r->rx, head);
	vqd_kick(r->rx);
	return head;
}

/* A frame with header: hdr, then an Ethernet frame of len bytes. */
static u32 make_frame(u8 *out, const struct virtio_net_hdr_v1 *h, u32 len, u8 seed)
{
	memcpy(out, h, HDR);
	for (u32 i = 0; i < len; i++)
		out[HDR + i] = (u8)(seed + i * 7);
	return HDR + len;
}

/* Read one message from the wire's far end (waits up to 1 s). */
static ssize_t peer_read(struct rig *r, void *buf, size_t len)
{
	struct pollfd p = { r->peer, POLLIN, 0 };

	if (poll(&p, 1, 1000) <= 0)
		return -1;
	return read(r->peer, buf, len);
}

/* ---------------------------------------------------------------------------
 * 1. The header check.
 */
static void test_check_tx(void)
{
	const u64 f = 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_HOST_TSO4 |
		      1ULL << VIRTIO_NET_F_HOST_TSO6;
	static const struct {
		struct virtio_net_hdr_v1 h;
		u64 len, features;
		enum net_tx_verdict want;
		const char *name;
	} cases[] = {
		{ { 0 }, 60, 0, NET_TX_OK, "plain frame" },
		{ { 0 }, 13, 0, NET_TX_RUNT, "13-byte frame" },
		{ { 0 }, 14, 0, NET_TX_OK, "bare Ethernet header" },
		{ { 0 }, NET_MAX_FRAME, 0, NET_TX_OK, "longest frame" },
		{ { 0 }, NET_MAX_FRAME + 1, 0, NET_TX_OVERSIZE, "one byte too long" },
		{ { .flags = 1, .csum_start = 34, .csum_offset = 6 }, 60, 0,
		  NET_TX_BAD_CSUM, "NEEDS_CSUM without VIRTIO_NET_F_CSUM" },
		{ { .flags = 1, .csum_start = 34, .csum_offset = 6 }, 60, f, NET_TX_OK,
		  "partial UDP checksum" },
		{ { .flags = 1, .csum_start = 52, .csum_offset = 6 }, 60, f, NET_TX_OK,
		  "checksum field ends at the last byte" },
		{ { .flags = 1, .csum_start = 53, .csum_offset = 6 }, 60, f, NET_TX_BAD_CSUM,
		  "checksum field one past the end" },
		{ { .flags = 1, .csum_start = 0xffff, .csum_offset = 0xffff }, 60, f,
		  NET_TX_BAD_CSUM, "csum_start + csum_offset near 2^17" },
		{ { .hdr_len = 61 }, 60, f, NET_TX_BAD_HDR_LEN, "hdr_len past the frame" },
		{ { .flags = 1, .gso_type = 1, .hdr_len = 54, .gso_size = 1448, .csum_start = 34,
		    .csum_offset = 16 }, 3000, f, NET_TX_OK, "TSO4" },
		{ { .flags = 1, .gso_type = 4, .hdr_len = 74, .gso_size = 1428, .csum_start = 54,
		    .csum_offset = 16 }, 3000, f, NET_TX_OK, "TSO6" },
		{ { .flags = 1, .gso_type = 1, .hdr_len = 54, .gso_size = 1448, .csum_start = 34,
		    .csum_offset = 16 }, 3000, 1ULL << VIRTIO_NET_F_CSUM, NET_TX_BAD_GSO,
		  "TSO4 without HOST_TSO4" },
		{ { .flags = 1, .gso_type = 1, .hdr_len = 3001, .gso_size = 1448, .csum_start = 34,
		    .csum_offset = 16 }, 3000, f, NET_TX_BAD_HDR_LEN, "TSO4 with hdr_len past the frame" },
		{ { .flags = 1, .gso_type = 1, .hdr_len = 54, .gso_size = 1448, .csum_start = 2990,
		    .csum_offset = 16 }, 3000, f, NET_TX_BAD_CSUM, "TSO4 with csum_start past the frame" },
		{ { .flags = 1, .gso_type = 1, .hdr_len = 54, .gso_size = 0, .csum_start = 34,
		    .csum_offset = 16 }, 3000, f, NET_TX_BAD_GSO, "TSO4 with gso_size 0" },
		{ { .flags = 0, .gso_type = 1, .hdr_len = 54, .gso_size = 1448 }, 3000, f,
		  NET_TX_BAD_GSO, "TSO4 without NEEDS_CSUM" },
		{ { .flags = 1, .gso_type = 0x81, .hdr_len = 54, .gso_size = 1448, .csum_start = 34,
		    .csum_offset = 16 }, 3000, f, NET_TX_BAD_GSO, "TSO4 with ECN (not offered)" },
		{ { .flags = 1, .gso_type = 3, .hdr_len = 42, .gso_size = 1000, .csum_start = 34,
		    .csum_offset = 6 }, 3000, f, NET_TX_BAD_GSO, "UFO (not offered)" },
		{ { .gso_type = 0x80 }, 60, f, NET_TX_BAD_GSO, "ECN flag on a non-GSO frame" },
		{ { .gso_type = 2 }, 60, f, NET_TX_BAD_GSO, "unknown gso_type 2" },
		{ { .gso_type = 0x7f }, 60, f, NET_TX_BAD_GSO, "unknown gso_type 0x7f" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		is_n(virtio_net_check_tx(&cases[i].h, cases[i].len, cases[i].features),
		       cases[i].want, cases[i].name);
}

/* ---------------------------------------------------------------------------
 * 2. --tunnet parsing and the default MAC.
 */
static void test_spec(void)
{
	struct net_spec ns;
	static const char *const bad[] = {
		"", ",vhost=on", "169.254.1", "169.254.1.1/0", "169.254.1.1/33", "169.254.1.1/",
		"169.254.1.1/2x", "bridge:", "bridge:a/b", "bridge:0123456789abcdef",
		"169.254.1.1,mac=01:00:00:00:00:01", "169.254.1.1,mac=00:00:00:00:00:00",
		"169.254.1.1,mac=02:00:00:00:00", "169.254.1.1,mac=02:00:00:00:00:01:",
		"169.254.1.1,vhost=maybe", "169.254.1.1,speed=10G", "fe80::1",
	};

	unsetenv("LGUEST_NO_VHOST");
	ok(!net_spec_parse("169.254.1.1", &ns) && !ns.bridge && ns.prefix == 24 &&
	   ns.addr.s_addr == inet_addr("169.254.1.1") && ns.vhost && !ns.have_mac,
	   "spec: an address, /24 and vhost by default");
	ok(!net_spec_parse("169.254.9.1/16,vhost=off,mac=02:aa:bb:cc:dd:ee", &ns) &&
	   ns.prefix == 16 && !ns.vhost && ns.have_mac && ns.mac[0] == 2 && ns.mac[5] == 0xee,
	   "spec: prefix, vhost=off and mac=");
	ok(!net_spec_parse("bridge:br-lan,vhost=on", &ns) && ns.bridge &&
	   !strcmp(ns.bridge_name, "br-lan") && ns.vhost, "spec: bridge:NAME");
	setenv("LGUEST_NO_VHOST", "1", 1);
	ok(!net_spec_parse("169.254.1.1", &ns) && !ns.vhost, "spec: LGUEST_NO_VHOST=1 turns vhost off");
	ok(!net_spec_parse("169.254.1.1,vhost=on", &ns) && ns.vhost, "spec: vhost=on beats the environment");
	unsetenv("LGUEST_NO_VHOST");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int rc = net_spec_parse(bad[i], &ns);

		ok(rc == -1 && strstr(last_error(), "--tunnet"), "spec: '%s' refused: %s", bad[i],
		   last_error());
	}
}

static void test_default_mac(void)
{
	u8 a[6], b[6], c[6], d[6];

	net_default_mac("lguest0", 0, a);
	net_default_mac("lguest0", 0, b);
	net_default_mac("lguest1", 0, c);
	net_default_mac("lguest0", 1, d);
	ok(a[0] == 0x02, "default MAC: locally administered, unicast");
	ok(!memcmp(a, b, 6), "default MAC: stable");
	ok(memcmp(a, c, 6) && memcmp(a, d, 6), "default MAC: differs by tap and by index");
}

/* ---------------------------------------------------------------------------
 * 3. The card on a socketpair, served synchronously.
 */

/*
 * Coalescing's choice (net_hold): hold a wakeup that follows another
 * within NET_STREAM_NS, unless a batch already waits; an idle card's
 * first wakeup goes at once.  Times are given, not read.
 */
static void test_tx_hold_choice(void)
{
	u64 t = 5 * NET_STREAM_NS;

	ok(!net_should_hold(t, t - NET_STREAM_NS - 1, 0), "hold: an idle card's wakeup goes at once");
	ok(net_should_hold(t, t - 1000, 0), "hold: a stream's wakeup, nothing known queued: held");
	ok(net_should_hold(t, t - 1000, 1), "hold: a streaming guest's kick is held");
	ok(net_should_hold(t, t - 1000, NET_BATCH - 1), "hold: less than a batch waits: held");
	ok(!net_should_hold(t, t - 1000, NET_BATCH), "hold: a batch waits: sent at once");
	ok(!net_should_hold(t, t - 1000, 256), "hold: a full ring waits: sent at once");
}

/* Frames out: header and frame arrive intact, however the chain is cut. */
static void test_tx_basic(void)
{
	struct virtio_net_hdr_v1 h = { 0 };
	static u8 frame[HDR + 1600], got[HDR + 1700];
	static const u32 cuts[] = { 5, 7, 1, 13, 100 };
	struct rig r;
	u32 len;
	int head;

	if (!ok(rig_socket(&r, ALL, true), "tx: socket rig"))
		return;
	len = make_frame(frame, &h, 1514, 1);
	head = tx_post(&r, frame, len);
	is_n(virtio_net_tx_sync(r.dev), 1, "tx: one chain served");
	ok(vqd_expect_used(r.tx, head, 0), "tx: chain returned, length 0");
	ok(peer_read(&r, got, sizeof(got)) == len && !memcmp(got, frame, len),
	   "tx: header + 1514-byte frame on the wire, byte for byte");

	len = make_frame(frame, &h, 600, 2);
	head = tx_post_split(&r, frame, len, cuts, ARRAY_SIZE(cuts), false);
	virtio_net_tx_sync(r.dev);
	ok(vqd_expect_used(r.tx, head, 0) && peer_read(&r, got, sizeof(got)) == len &&
	   !memcmp(got, frame, len), "tx: header cut 5+7, frame in 4 pieces: intact");

	/* A big frame as Linux lays one out: header and linear part, then
	 * page fragments; sent from where it lies. */
	{
		static u8 big[HDR + 5000], bgot[HDR + 5100];
		static const u32 frags[] = { HDR + 66, 4096 };

		len = make_frame(big, &h, 5000, 5);
		head = tx_post_split(&r, big, len, frags, ARRAY_SIZE(frags), false);
		virtio_net_tx_sync(r.dev);
		ok(vqd_expect_used(r.tx, head, 0) && peer_read(&r, bgot, sizeof(bgot)) == len &&
		   !memcmp(bgot, big, len), "tx: 5000-byte frame in 3 pieces: intact");
	}

	len = make_frame(frame, &h, 60, 3);
	head = tx_post_split(&r, frame, len, cuts, ARRAY_SIZE(cuts), true);
	virtio_net_tx_sync(r.dev);
	ok(vqd_expect_used(r.tx, head, 0) && peer_read(&r, got, sizeof(got)) == len &&
	   !memcmp(got, frame, len), "tx: through an indirect table: intact");

	/* Ten frames, one kick, one interrupt (the driver asks for one at
	 * the next used entry, as Linux does when it waits). */
	vqd_set_used_event(r.tx, r.tx->last_used);
	for (int i = 0; i < 10; i++)
		tx_post(&r, frame, make_frame(frame, &h, 60 + i, i));
	{
		int before = vqd_signals(&r.d, NET_TXQ), n = 0;

		is_n(virtio_net_tx_sync(r.dev), 10, "tx: a batch of 10");
		is_n(vqd_signals(&r.d, NET_TXQ) - before, 1, "tx: one interrupt per batch");
		while (peer_read(&r, got, sizeof(got)) > 0)
			n++;
		is_n(n, 10, "tx: all 10 on the wire");
	}
	rig_down(&r);
}

/* The header the guest wrote may change after we checked it: we send our copy. */
static void test_tx_flags(void)
{
	struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_DATA_VALID | 0x40,
				       .num_buffers = 7 };
	static u8 frame[HDR + 100], got[HDR + 200];
	struct virtio_net_hdr_v1 out;
	struct rig r;
	u32 len;

	if (!ok(rig_socket(&r, ALL, true), "tx flags: socket rig"))
		return;
	len = make_frame(frame, &h, 60, 9);
	tx_post(&r, frame, len);
	virtio_net_tx_sync(r.dev);
	ok(peer_read(&r, got, sizeof(got)) == len, "tx flags: frame sent");
	memcpy(&out, got, HDR);
	ok(out.flags == 0 && out.num_buffers == 0,
	   "tx flags: unknown flags and num_buffers cleared (flags %#x)", out.flags);

	/* Clean flags but a num_buffers: not a header to send as it lies. */
	h = (struct virtio_net_hdr_v1){ .num_buffers = 7 };
	len = make_frame(frame, &h, 80, 9);
	tx_post(&r, frame, len);
	virtio_net_tx_sync(r.dev);
	ok(peer_read(&r, got, sizeof(got)) == len, "tx flags: second frame sent");
	memcpy(&out, got, HDR);
	ok(out.num_buffers == 0 && !memcmp(got + HDR, frame + HDR, len - HDR),
	   "tx flags: num_buffers cleared, frame intact (num_buffers %u)", out.num_buffers);
	rig_down(&r);
}

/* Malformed frames: dropped, counted by reason, the chain still returned. */
static void test_tx_malformed(void)
{
	static u8 frame[HDR + NET_MAX_FRAME + 16], got[HDR + 200];
	struct net_stats st;
	struct rig r;
	struct {
		struct virtio_net_hdr_v1 h;
		u32 len;
		enum net_tx_verdict why;
		const char *name;
	} bad[] = {
		{ { .flags = 1, .gso_type = 1, .hdr_len = 2000, .gso_size = 1448, .csum_start = 34,
		    .csum_offset = 16 }, 1000, NET_TX_BAD_HDR_LEN, "GSO with hdr_len past the frame" },
		{ { .flags = 1, .gso_type = 1, .hdr_len = 54, .gso_size = 1448, .csum_start = 990,
		    .csum_offset = 16 }, 1000, NET_TX_BAD_CSUM, "GSO with csum_start past the frame" },
		{ { .gso_type = 3 }, 1000, NET_TX_BAD_GSO, "UFO" },
		{ { 0 }, 10, NET_TX_RUNT, "runt" },
		{ { 0 }, NET_MAX_FRAME + 1, NET_TX_OVERSIZE, "oversize" },
	};
	int head;

	if (!ok(rig_socket(&r, ALL, true), "tx malformed: socket rig"))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		u32 len = make_frame(frame, &bad[i].h, bad[i].len, i);

		head = tx_post(&r, frame, len);
		virtio_net_tx_sync(r.dev);
		virtio_net_stats(r.dev, &st);
		ok(vqd_expect_used(r.tx, head, 0) && st.tx_verdicts[bad[i].why] == 1 &&
		   peer_read(&r, got, sizeof(got)) < 0,
		   "tx malformed: %s dropped, counted, chain returned", bad[i].name);
	}
	/* A chain shorter than a header: 11 bytes. */
	head = tx_post(&r, frame, 11);
	virtio_net_tx_sync(r.dev);
	virtio_net_stats(r.dev, &st);
	ok(vqd_expect_used(r.tx, head, 0) && st.tx_verdicts[NET_TX_SHORT] == 1,
	   "tx malformed: 11-byte chain dropped as short");
	is_n(st.tx_malformed, ARRAY_SIZE(bad) + 1, "tx malformed: all counted");
	is_n(st.tx_frames, 0, "tx malformed: none sent");

	/* A tx chain with only writable buffers carries no frame at all. */
	vqd_chain_begin(r.tx);
	vqd_chain_add(r.tx, vqd_alloc(&r.d, 64, 16), 64, true);
	head = vqd_chain_end(r.tx);
	vqd_publish(r.tx, head);
	virtio_net_tx_sync(r.dev);
	virtio_net_stats(r.dev, &st);
	ok(vqd_expect_used(r.tx, head, 0) && st.tx_verdicts[NET_TX_SHORT] == 2,
	   "tx malformed: a write-only chain is dropped as short");

	/* After all that, a good frame still goes through. */
	{
		struct virtio_net_hdr_v1 h = { 0 };
		u32 len = make_frame(frame, &h, 64, 5);

		head = tx_post(&r, frame, len);
		virtio_net_tx_sync(r.dev);
		ok(vqd_expect_used(r.tx, head, 0) && peer_read(&r, got, sizeof(got)) == len,
		   "tx malformed: the card still sends good frames");
	}
	rig_down(&r);
}

/*
 * 1024 pieces of frame (the most a chain may have) plus our header copy
 * is more than writev takes in one call: the frame goes via the bounce.
 */
static void test_tx_many_pieces(void)
{
	static u8 frame[HDR + 2000], got[HDR + 2100];
	static u32 cuts[1023];
	struct virtio_net_hdr_v1 h = { 0 };
	struct rig r;
	u32 len;
	int head;

	if (!ok(rig_socket(&r, ALL, true), "tx pieces: socket rig"))
		return;
	cuts[0] = HDR + 1;
	for (int i = 1; i < 1023; i++)
		cuts[i] = 1;
	len = make_frame(frame, &h, 1 + 1023, 4);
	head = tx_post_split(&r, frame, len, cuts, 1023, true);
	ok(head >= 0, "tx pieces: 1024-buffer indirect chain posted");
	virtio_net_tx_sync(r.dev);
	ok(vqd_expect_used(r.tx, head, 0) && peer_read(&r, got, sizeof(got)) == len &&
	   !memcmp(got, frame, len), "tx pieces: 1024 buffers arrive as one intact frame");
	rig_down(&r);
}

/* A corrupt tx ring: NEEDS_RESET, nothing else; a reset brings it back. */
static void test_tx_corrupt(void)
{
	static u8 frame[HDR + 100], got[HDR + 100];
	struct virtio_net_hdr_v1 h = { 0 };
	struct rig r;
	u32 len;

	if (!ok(rig_socket(&r, ALL, true), "tx corrupt: socket rig"))
		return;
	vqd_avail_put(r.tx, 0, 999);
	vqd_avail_set_idx(r.tx, 1);
	is_n(virtio_net_tx_sync(r.dev), -1, "tx corrupt: head out of range refused");
	is_n(vqd_needs_reset_count(&r.d), 1, "tx corrupt: NEEDS_RESET asked");
	ok(vqd_restart(&r.d) == 0, "tx corrupt: device reset and restarted");
	len = make_frame(frame, &h, 60, 1);
	tx_post(&r, frame, len);
	is_n(virtio_net_tx_sync(r.dev), 1, "tx corrupt: serves again after reset");
	ok(peer_read(&r, got, sizeof(got)) == len, "tx corrupt: frame on the wire");
	rig_down(&r);
}

/* The next used rx entry, its buffer's bytes copied to out. */
static bool rx_take(struct rig *r, u8 *out, u32 *len, u16 *head)
{
	u16 h;
	u32 l;

	if (!vqd_wait_used(r->rx, 1000, &h, &l) || h >= NET_QUEUE_SIZE || l > r->buf_len[h])
		return false;
	memcpy(out, vqd_ptr(&r->d, r->buf_gpa[h], l), l);
	*len = l;
	if (head)
		*head = h;
	return true;
}

/* Frames in: straight into the posted buffer, num_buffers 1. */
static void test_rx_basic(void)
{
	struct virtio_net_hdr_v1 h = { 0 }, got_h;
	static u8 frame[HDR + 1600], got[RXBUF];
	struct net_stats st;
	struct rig r;
	u32 len, glen = 0;
	u16 head;
	int posted;

	if (!ok(rig_socket(&r, ALL, true), "rx: socket rig"))
		return;
	posted = rx_post(&r, RXBUF);
	len = make_frame(frame, &h, 1514, 11);
	ok(write(r.peer, frame, len) == len, "rx: frame written to the wire");
	is_n(virtio_net_rx_sync(r.dev), 1, "rx: one frame delivered");
	ok(rx_take(&r, got, &glen, &head) && head == posted && glen == len,
	   "rx: used entry names the buffer, length header + frame (%u)", glen);
	memcpy(&got_h, got, HDR);
	ok(!memcmp(got + HDR, frame + HDR, len - HDR), "rx: frame bytes intact");
	is_n(got_h.num_buffers, 1, "rx: num_buffers 1");
	virtio_net_stats(r.dev, &st);
	ok(st.rx_frames == 1 && st.rx_bytes == 1514, "rx: counted");

	/* A runt from the wire: dropped, the buffer kept for the next. */
	ok(write(r.peer, frame, 8) == 8, "rx: runt written");
	len = make_frame(frame, &h, 60, 12);
	ok(write(r.peer, frame, len) == len, "rx: then a good frame");
	posted = rx_post(&r, RXBUF);
	is_n(virtio_net_rx_sync(r.dev), 1, "rx: only the good frame delivered");
	ok(rx_take(&r, got, &glen, &head) && head == posted && glen == len,
	   "rx: into the buffer the runt did not use");
	virtio_net_stats(r.dev, &st);
	is_n(st.rx_dropped, 1, "rx: runt counted as dropped");
	rig_down(&r);
}

/* No buffers: frames wait on the wire, none lost; post buffers: all arrive. */
static void test_rx_backpressure(void)
{
	struct virtio_net_hdr_v1 h = { 0 };
	static u8 frame[HDR + 200], got[RXBUF];
	struct net_stats st;
	struct rig r;
	u32 glen = 0;
	bool order = true;

	if (!ok(rig_socket(&r, ALL, true), "backpressure: socket rig"))
		return;
	for (int i = 0; i < 5; i++)
		if (write(r.peer, frame, make_frame(frame, &h, 60 + i, i)) < 0)
			order = false;
	is_n(virtio_net_rx_sync(r.dev), 0, "backpressure: nothing delivered without buffers");
	is_n(vqd_used_pending(r.rx), 0, "backpressure: no used entries");
	virtio_net_stats(r.dev, &st);
	is_n(st.rx_dropped, 0, "backpressure: nothing dropped");
	for (int i = 0; i < 5; i++)
		rx_post(&r, RXBUF);
	is_n(virtio_net_rx_sync(r.dev), 5, "backpressure: all 5 delivered once buffers came");
	for (int i = 0; i < 5; i++)
		order &= rx_take(&r, got, &glen, NULL) && glen == HDR + 60 + (u32)i;
	ok(order, "backpressure: in order, each intact in length");
	rig_down(&r);
}

/*
 * Take a frame spread over n used buffers, which must name heads[i] with
 * lengths lens[i], in order; its bytes are gathered into out.  Returns
 * the frame's length, 0 if any entry was not the one expected.
 */
static u32 rx_take_frame(struct rig *r, const u16 *heads, const u32 *lens, int n, u8 *out)
{
	u32 glen, total = 0;
	u16 head;

	for (int i = 0; i < n; i++) {
		if (!rx_take(r, out + total, &glen, &head) || head != heads[i] || glen != lens[i])
			return 0;
		total += glen;
	}
	return total;
}

/* MRG_RXBUF: a frame over three buffers, published together. */
static void test_rx_merge(void)
{
	struct virtio_net_hdr_v1 h = { .flags = 0 }, got_h;
	static u8 frame[HDR + 4000], got[HDR + 4000];
	static const u32 lens[3] = { 1000, 1000, 512 };
	struct rig r;
	u32 len, total;
	u16 heads[3];

	if (!ok(rig_socket(&r, ALL, true), "merge: socket rig"))
		return;
	len = make_frame(frame, &h, 2500, 21);
	heads[0] = rx_post(&r, 1000);
	ok(write(r.peer, frame, len) == len, "merge: 2512 bytes written");
	is_n(virtio_net_rx_sync(r.dev), 0, "merge: one 1000-byte buffer is not enough");
	is_n(vqd_used_pending(r.rx), 0, "merge: nothing published for half a frame");
	heads[1] = rx_post(&r, 1000);
	heads[2] = rx_post(&r, 1000);
	is_n(virtio_net_rx_sync(r.dev), 1, "merge: delivered when more buffers came");
	is_n(vqd_used_pending(r.rx), 3, "merge: three used entries, all published at once");
	total = rx_take_frame(&r, heads, lens, 3, got);
	ok(total, "merge: buffers in order, 1000 + 1000 + 512");
	memcpy(&got_h, got, HDR);
	is_n(got_h.num_buffers, 3, "merge: num_buffers 3");
	ok(total == len && !memcmp(got + HDR, frame + HDR, len - HDR), "merge: frame intact");
	rig_down(&r);
}

/*
 * MRG_RXBUF with buffers posted ahead: after a big frame, the next is
 * read over as many chains as that one needed; a smaller frame leaves
 * those it does not reach posted, for the frame after it.
 */
static void test_rx_merge_ahead(void)
{
	struct virtio_net_hdr_v1 h = { .flags = 0 }, got_h;
	static u8 frame[HDR + 4000], got[HDR + 4000], part[HDR + 4000];
	static const u32 lens[3] = { 1000, 1000, 512 }, small = HDR + 60;
	struct rig r;
	u32 len, total;
	u16 heads[8];
	bool all;

	if (!ok(rig_socket(&r, ALL, true), "merge ahead: socket rig"))
		return;
	for (int i = 0; i < 8; i++)
		heads[i] = rx_post(&r, 1000);
	len = make_frame(frame, &h, 2500, 31);
	ok(write(r.peer, frame, len) == len, "merge ahead: 2512 bytes written");
	ok(write(r.peer, frame, len) == len, "merge ahead: and again");
	ok(write(r.peer, part, make_frame(part, &h, 60, 32)) == HDR + 60,
	   "merge ahead: then 60 more");
	is_n(virtio_net_rx_sync(r.dev), 3, "merge ahead: three frames delivered");
	is_n(vqd_used_pending(r.rx), 7, "merge ahead: seven buffers used, the eighth left posted");
	ok(rx_take_frame(&r, heads, lens, 3, part) == len,
	   "merge ahead: the first frame, 1000 + 1000 + 512");
	total = rx_take_frame(&r, heads + 3, lens, 3, got);
	all = total == len && rx_take_frame(&r, heads + 6, &small, 1, part) == small;
	ok(all, "merge ahead: the second as the first, then one buffer for the third");
	memcpy(&got_h, got, HDR);
	is_n(got_h.num_buffers, 3, "merge ahead: num_buffers 3");
	ok(total == len && !memcmp(got + HDR, frame + HDR, len - HDR), "merge ahead: frame intact");
	ok(write(r.peer, frame, len) == len, "merge ahead: another 2512 bytes");
	is_n(virtio_net_rx_sync(r.dev), 0, "merge ahead: one buffer left is not enough");
	is_n(vqd_used_pending(r.rx), 0, "merge ahead: nothing published for part of a frame");
	rig_down(&r);
}

/* Without MRG_RXBUF a frame must fit one buffer; else it is dropped. */
static void test_rx_no_merge(void)
{
	struct virtio_net_hdr_v1 h = { 0 };
	static u8 frame[HDR + 3000], got[RXBUF];
	struct net_stats st;
	struct rig r;
	u32 glen = 0;
	u16 head;
	int posted;

	if (!ok(rig_socket(&r, ALL & NO_MRG, true), "no merge: socket rig"))
		return;
	posted = rx_post(&r, 1000);
	ok(write(r.peer, frame, make_frame(frame, &h, 2000, 1)) > 0, "no merge: big frame written");
	ok(write(r.peer, frame, make_frame(frame, &h, 100, 2)) > 0, "no merge: small frame written");
	is_n(virtio_net_rx_sync(r.dev), 1, "no merge: only the small one delivered");
	ok(rx_take(&r, got, &glen, &head) && head == posted && glen == HDR + 100,
	   "no merge: in the buffer the big one could not use");
	virtio_net_stats(r.dev, &st);
	is_n(st.rx_dropped, 1, "no merge: big frame counted as dropped");
	rig_down(&r);
}

/* Buffers no frame can use go back empty, and are counted. */
static void test_rx_bad_chains(void)
{
	struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_DATA_VALID };
	static u8 frame[HDR + 200], got[RXBUF];
	struct net_stats st;
	struct rig r;
	u32 glen = 0;
	u16 head;
	int tiny, ro, good;

	if (!ok(rig_socket(&r, ALL & ~(1ULL << VIRTIO_NET_F_GUEST_CSUM), true),
		"bad chains: socket rig"))
		return;
	tiny = rx_post(&r, 4);
	vqd_chain_begin(r.rx);
	vqd_chain_add(r.rx, vqd_alloc(&r.d, 64, 16), 64, false);
	ro = vqd_chain_end(r.rx);
	vqd_publish(r.rx, ro);
	good = rx_post(&r, RXBUF);
	ok(write(r.peer, frame, make_frame(frame, &h, 60, 3)) > 0, "bad chains: frame written");
	is_n(virtio_net_rx_sync(r.dev), 1, "bad chains: frame delivered");
	ok(vqd_expect_used(r.rx, tiny, 0), "bad chains: 4-byte buffer returned empty");
	ok(vqd_expect_used(r.rx, ro, 0), "bad chains: read-only buffer returned empty");
	ok(rx_take(&r, got, &glen, &head) && head == good, "bad chains: frame in the good buffer");
	ok(got[0] == 0, "bad chains: without GUEST_CSUM the header's flags are 0 (got %#x)", got[0]);
	virtio_net_stats(r.dev, &st);
	is_n(st.rx_bad_chain, 2, "bad chains: counted");
	rig_down(&r);
}

/* A frame that spreads over more chains than a queue holds: dropped. */
static void test_rx_merge_zero_chains(void)
{
	struct virtio_net_hdr_v1 h = { 0 };
	static u8 frame[HDR + 3000];
	struct net_stats st;
	struct rig r;
	int first, ro;
	bool refused = true;

	if (!ok(rig_socket(&r, ALL, true), "zero chains: socket rig"))
		return;
	first = rx_post(&r, 100);
	ok(write(r.peer, frame, make_frame(frame, &h, 2000, 1)) > 0, "zero chains: frame written");
	/* Read-only chains hold nothing: re-post the same one over and over. */
	vqd_chain_begin(r.rx);
	vqd_chain_add(r.rx, vqd_alloc(&r.d, 64, 16), 64, false);
	ro = vqd_chain_end(r.rx);
	/* 128 + 127 of them, and the frame holds a queue's worth (256). */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < NET_QUEUE_SIZE / 2 - round; i++)
			vqd_publish(r.rx, ro);
		refused &= virtio_net_rx_sync(r.dev) >= 0;
	}
	virtio_net_stats(r.dev, &st);
	ok(refused && st.rx_dropped == 1, "zero chains: frame dropped after a queue's worth");
	ok(vqd_expect_used(r.rx, first, 0), "zero chains: its first buffer returned empty");
	rig_down(&r);
}

/* ---------------------------------------------------------------------------
 * 4. The same card with its own threads, still on a socketpair.
 */
static void test_threads(void)
{
	struct virtio_net_hdr_v1 h = { 0 };
	static u8 frame[HDR + 200], got[RXBUF];
	struct rig r;
	u32 len, glen = 0;
	int head, n = 0;
	bool all = true;

	if (!ok(rig_socket(&r, ALL, false), "threads: socket rig"))
		return;
	is_n(strcmp(virtio_net_backend(r.dev), "userspace"), 0, "threads: userspace backend");
	len = make_frame(frame, &h, 100, 1);
	head = tx_post(&r, frame, len);
	ok(vqd_expect_used(r.tx, head, 0) && peer_read(&r, got, sizeof(got)) == len,
	   "threads: the tx thread sends on a kick");
	/* Backpressure with threads: nothing posted, frames must wait. */
	for (int i = 0; i < 8; i++)
		all &= write(r.peer, frame, make_frame(frame, &h, 60 + i, i)) > 0;
	usleep(100 * 1000);
	ok(all && vqd_used_pending(r.rx) == 0, "threads: no buffers, nothing delivered");
	for (int i = 0; i < 8; i++)
		rx_post(&r, RXBUF);
	for (int i = 0; i < 8; i++)
		n += rx_take(&r, got, &glen, NULL) && glen == HDR + 60 + (u32)i;
	is_n(n, 8, "threads: all 8 arrive, in order, after the rx kick");
	/* Stop and start again (a driver reset), then traffic once more. */
	ok(vqd_restart(&r.d) == 0, "threads: reset and restart");
	head = tx_post(&r, frame, len);
	ok(vqd_expect_used(r.tx, head, 0) && peer_read(&r, got, sizeof(got)) == len,
	   "threads: sends again after a reset");
	rx_post(&r, RXBUF);
	ok(write(r.peer, frame, len) == len && rx_take(&r, got, &glen, NULL) && glen == len,
	   "threads: receives again after a reset");
	rig_down(&r);
}

/* ---------------------------------------------------------------------------
 * 5. A real tap and this host's network stack.
 */

static char subnet[16];		/* "169.254.N" */

static in_addr_t ip_of(int host)
{
	char s[32];

	snprintf(s, sizeof(s), "%s.%d", subnet, host);
	return inet_addr(s);
}

/* RFC 1071 checksum pieces. */
static u32 csum_add(u32 sum, const void *p, size_t len)
{
	const u8 *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += b[i] << 8 | b[i + 1];
	if (len & 1)
		sum += b[len - 1] << 8;
	return sum;
}

static u16 csum_fold(u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* The pseudo-header sum of TCP/UDP over IPv4 (not folded). */
static u32 pseudo_sum(const u8 *ip, u8 proto, u16 l4len)
{
	u8 ph[4] = { 0, proto, l4len >> 8, l4len & 0xff };

	return csum_add(csum_add(0, ip + 12, 8), ph, 4);
}

/* Ethernet + IPv4 into f; returns the IP header's address. */
static u8 *eth_ip(u8 *f, const u8 *dst, const u8 *src, in_addr_t sip, in_addr_t dip,
		  u8 proto, u16 l4len)
{
	u8 *ip = f + 14;
	u16 tot = 20 + l4len, c;

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = tot >> 8;
	ip[3] = tot & 0xff;
	ip[6] = 0x40;		/* DF */
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, &sip, 4);
	memcpy(ip + 16, &dip, 4);
	c = ~csum_fold(csum_add(0, ip, 20));
	ip[10] = c >> 8;
	ip[11] = c & 0xff;
	return ip;
}

/*
 * A UDP datagram from the guest, header first.  partial: leave the UDP
 * checksum to the host (NEEDS_CSUM), as Linux guests do.
 */
static u32 guest_udp(u8 *out, const u8 *dst_mac, u16 sport, u16 dport, const void *payload,
		     u16 plen, bool partial)
{
	struct virtio_net_hdr_v1 h = { 0 };
	u8 *f = out + HDR, *udp;
	u16 ulen = 8 + plen, c;

	udp = eth_ip(f, dst_mac, guest_mac, ip_of(2), ip_of(1), 17, ulen) + 20;
	udp[0] = sport >> 8;
	udp[1] = sport & 0xff;
	udp[2] = dport >> 8;
	udp[3] = dport & 0xff;
	udp[4] = ulen >> 8;
	udp[5] = ulen & 0xff;
	udp[6] = udp[7] = 0;
	memcpy(udp + 8, payload, plen);
	if (partial) {
		/* The pseudo-header sum, not complemented: the host adds the
		 * rest and complements (what CHECKSUM_PARTIAL means). */
		c = csum_fold(pseudo_sum(f + 14, 17, ulen));
		h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h.csum_start = 34;
		h.csum_offset = 6;
	} else {
		c = ~csum_fold(csum_add(pseudo_sum(f + 14, 17, ulen), udp, ulen));
	}
	udp[6] = c >> 8;
	udp[7] = c & 0xff;
	memcpy(out, &h, HDR);
	return HDR + 34 + ulen;
}

struct tap_rig {
	struct rig r;
	char ifname[IFNAMSIZ];
	u8 host_mac[6];
	int udp;			/* host socket bound to .1 */
	u16 port;
};

/* Turn off IPv6 on the tap before it goes up: no autoconfiguration chatter. */
static void no_ipv6(const char *ifname)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			tap_diag("disable_ipv6: %s", strerror(errno));
		close(fd);
	}
}

static bool host_mac_of(const char *ifname, u8 mac[6])
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	bool okay;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	okay = s >= 0 && ioctl(s, SIOCGIFHWADDR, &ifr) == 0;
	if (okay)
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	if (s >= 0)
		close(s);
	return okay;
}

/* A tap at .1/24, the card on it (threads), a UDP socket on .1. */
static bool tap_rig_up(struct tap_rig *t, bool vhost, u64 features)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct in_addr host;
	int fd;

	memset(t, 0, sizeof(*t));
	t->udp = -1;
	fd = tap_create(t->ifname);
	if (fd < 0)
		return false;
	no_ipv6(t->ifname);
	host.s_addr = ip_of(1);
	if (tap_set_vnet_hdr_size(fd, HDR) || tap_set_ipv4(t->ifname, host, 24) ||
	    !host_mac_of(t->ifname, t->host_mac)) {
		close(fd);
		return false;
	}
	t->r.peer = -1;
	if (!rig_up(&t->r, fd, true, vhost, features, false))
		return false;
	t->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = ip_of(1);
	if (t->udp < 0 || bind(t->udp, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(t->udp, (struct sockaddr *)&a, &alen) < 0)
		return false;
	t->port = ntohs(a.sin_port);
	for (int i = 0; i < 32; i++)
		rx_post(&t->r, RXBUF);
	return true;
}

static void tap_rig_down(struct tap_rig *t)
{
	if (t->udp >= 0)
		close(t->udp);
	rig_down(&t->r);
}

/* Post a tx frame with an empty header (threads send it). */
static int guest_send(struct tap_rig *t, const u8 *frame, u32 len)
{
	static u8 buf[HDR + 2048];
	struct virtio_net_hdr_v1 h = { 0 };

	u16 head;
	u32 used;

	/* Take back what the card sent, so descriptors never run out. */
	while (vqd_used_pending(t->r.tx))
		vqd_wait_used(t->r.tx, 0, &head, &used);
	memcpy(buf, &h, HDR);
	memcpy(buf + HDR, frame, len);
	return tx_post(&t->r, buf, HDR + len);
}

/* Be a host on the link: answer "who has .2?" with our MAC. */
static void guest_arp_reply(struct tap_rig *t, const u8 *req)
{
	const u8 *arp = req + 14;
	in_addr_t me = ip_of(2);
	u8 f[60] = { 0 };

	/* Ethernet/IPv4 request (op 1) for our address only. */
	if (arp[6] != 0 || arp[7] != 1 || memcmp(arp + 24, &me, 4))
		return;
	memcpy(f, req + 6, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	f[13] = 0x06;
	memcpy(f + 14, arp, 6);			/* htype, ptype, hlen, plen */
	f[20] = 0;
	f[21] = 2;				/* reply */
	memcpy(f + 22, guest_mac, 6);
	memcpy(f + 28, &me, 4);
	memcpy(f + 32, arp + 8, 10);		/* the asker's MAC and IP */
	guest_send(t, f, sizeof(f));
}

/*
 * Receive frames (as the guest) until one satisfies want(), answering
 * ARP requests for our address on the way, reposting every buffer.
 * Returns its length (header included) in buf, or 0 after timeout_ms.
 */
static u32 guest_recv(struct tap_rig *t, u8 *buf, u32 max, bool (*want)(const u8 *f, u32 len),
		      int timeout_ms)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		u32 len, total, nbufs;
		u16 head;
		struct virtio_net_hdr_v1 h;
		int ms;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms >= timeout_ms || !vqd_wait_used(t->r.rx, timeout_ms - ms, &head, &len) ||
		    head >= NET_QUEUE_SIZE || len > t->r.buf_len[head] || len < HDR)
			return 0;
		total = MIN(len, max);
		memcpy(buf, vqd_ptr(&t->r.d, t->r.buf_gpa[head], total), total);
		rx_post(&t->r, RXBUF);
		memcpy(&h, buf, HDR);
		/* The rest of a merged frame follows at once. */
		for (nbufs = h.num_buffers; nbufs > 1; nbufs--) {
			if (!vqd_wait_used(t->r.rx, 1000, &head, &len) || head >= NET_QUEUE_SIZE)
				return 0;
			if (total + len <= max)
				memcpy(buf + total, vqd_ptr(&t->r.d, t->r.buf_gpa[head], len), len);
			total += len;
			rx_post(&t->r, RXBUF);
		}
		if (total > max)
			continue;
		if (total >= HDR + 42 && buf[HDR + 12] == 0x08 && buf[HDR + 13] == 0x06)
			guest_arp_reply(t, buf + HDR);
		if (want(buf + HDR, total - HDR))
			return total;
	}
}

/* A UDP datagram for .2 carrying the payload the test sent. */
static const char *want_payload;

static bool is_udp_for_guest(const u8 *f, u32 len)
{
	in_addr_t me = ip_of(2);
	size_t plen = strlen(want_payload);

	return len >= 42 + plen && f[12] == 0x08 && f[13] == 0x00 && f[23] == 17 &&
	       !memcmp(f + 30, &me, 4) && !memcmp(f + 42, want_payload, plen);
}

/* Does the UDP checksum of this frame verify? */
static bool udp_csum_ok(const u8 *f)
{
	u16 ulen = f[38] << 8 | f[39];

	return csum_fold(csum_add(pseudo_sum(f + 14, 17, ulen), f + 34, ulen)) == 0xffff;
}

/* Host -> guest: the host ARPs, the guest answers, the datagram arrives. */
static void tap_host_to_guest(struct tap_rig *t, const char *tag, bool guest_csum)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(7777),
				  .sin_addr.s_addr = ip_of(2) };
	static u8 buf[HDR + 65536];
	struct virtio_net_hdr_v1 h;
	char msg[64];
	u32 len;

	snprintf(msg, sizeof(msg), "hello guest, %s", tag);
	want_payload = msg;
	ok(sendto(t->udp, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof(to)) > 0,
	   "%s: host sends UDP to the guest", tag);
	len = guest_recv(t, buf, sizeof(buf), is_udp_for_guest, 3000);
	if (!ok(len, "%s: guest got it (after answering the host's ARP)", tag))
		return;
	memcpy(&h, buf, HDR);
	if (guest_csum)
		ok(h.flags == VIRTIO_NET_HDR_F_NEEDS_CSUM ? h.csum_start == 34 && h.csum_offset == 6
							 : udp_csum_ok(buf + HDR),
		   "%s: checksum partial at the UDP field, or complete (flags %#x)", tag, h.flags);
	else
		ok(h.flags == 0 && udp_csum_ok(buf + HDR),
		   "%s: without GUEST_CSUM: flags 0 and a valid UDP checksum", tag);
}

/* Guest -> host: both a full and a partial checksum reach the socket. */
static void tap_guest_to_host(struct tap_rig *t, const char *tag)
{
	static u8 frame[HDR + 2048];
	struct pollfd p = { t->udp, POLLIN, 0 };
	char msg[64], got[128];
	ssize_t n;
	u32 len;

	for (int partial = 0; partial < 2; partial++) {
		snprintf(msg, sizeof(msg), "hello host, %s, %s checksum", tag,
			 partial ? "partial" : "full");
		len = guest_udp(frame, t->host_mac, 5555, t->port, msg, strlen(msg), partial);
		guest_send(t, frame + HDR, len - HDR);
		/* guest_send wrote a zero header: put ours back. */
		n = -1;
		if (partial) {
			struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
						       .csum_start = 34, .csum_offset = 6 };

			memcpy(frame, &h, HDR);
			tx_post(&t->r, frame, len);
		}
		while (poll(&p, 1, 2000) > 0 && (n = recv(t->udp, got, sizeof(got) - 1, 0)) > 0) {
			got[n] = '\0';
			if (!strcmp(got, msg))
				break;
			n = -1;
		}
		ok(n > 0, "%s: host socket got the guest's datagram (%s checksum)", tag,
		   partial ? "partial" : "full");
	}
}

/* A TCP segment of 3000 bytes with TSO, seen whole by a packet socket. */
static void tap_tso(struct tap_rig *t, const char *tag)
{
	static u8 frame[HDR + 4000], seen[65536];
	struct virtio_net_hdr_v1 h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				       .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .hdr_len = 54,
				       .gso_size = 1000, .csum_start = 34, .csum_offset = 16 };
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
				  .sll_ifindex = if_nametoindex(t->ifname) };
	struct pollfd p = { -1, POLLIN, 0 };
	u8 *f = frame + HDR, *tcp;
	u32 bytes = 0;
	u16 c;

	p.fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_IP));
	if (!ok(p.fd >= 0 && bind(p.fd, (struct sockaddr *)&ll, sizeof(ll)) == 0,
		"%s: packet socket on the tap", tag))
		return;
	tcp = eth_ip(f, t->host_mac, guest_mac, ip_of(2), ip_of(1), 6, 20 + 3000) + 20;
	memset(tcp, 0, 20);
	tcp[0] = 0x9c;		/* port 40000 */
	tcp[1] = 0x40;
	tcp[3] = 9;		/* port 9 (discard): nobody listens, fine */
	tcp[12] = 5 << 4;
	tcp[13] = 0x18;		/* PSH, ACK */
	tcp[14] = 0xff;
	for (int i = 0; i < 3000; i++)
		tcp[20 + i] = i;
	c = csum_fold(pseudo_sum(f + 14, 6, 20 + 3000));
	tcp[16] = c >> 8;
	tcp[17] = c & 0xff;
	memcpy(frame, &h, HDR);
	tx_post(&t->r, frame, HDR + 54 + 3000);
	/* Whole or already segmented, the payload bytes all pass the tap. */
	while (bytes < 3000 && poll(&p, 1, 2000) > 0) {
		ssize_t n = recv(p.fd, seen, sizeof(seen), 0);

		if (n > 54 && seen[23] == 6 && seen[36] == 0 && seen[37] == 9)
			bytes += n - 54;
	}
	close(p.fd);
	is_n(bytes, 3000, "TSO: 3000 payload bytes from one GSO frame");
}

/* Traffic both ways on a tap, through whichever backend serves. */
static void test_tap_traffic(bool vhost)
{
	const char *tag = vhost ? "vhost" : "tap";
	struct net_stats st;
	struct tap_rig t;

	if (!ok(tap_rig_up(&t, vhost, ALL), "%s: tap %s and card up", tag, t.ifname)) {
		tap_diag("%s", last_error());
		tap_rig_down(&t);
		return;
	}
	ok(!strcmp(virtio_net_backend(t.r.dev), vhost ? "vhost-net" : "userspace"),
	   "%s: served by %s", tag, virtio_net_backend(t.r.dev));
	tap_host_to_guest(&t, tag, true);
	tap_guest_to_host(&t, tag);
	tap_tso(&t, tag);
	if (!vhost) {
		static u8 frame[HDR + 200];
		struct virtio_net_hdr_v1 h = { .flags = 1, .gso_type = 1, .hdr_len = 150,
					       .gso_size = 1000, .csum_start = 34,
					       .csum_offset = 16 };
		int head = tx_post(&t.r, frame, make_frame(frame, &h, 100, 0));
		u16 hd = 0xffff;
		u32 l;

		/* Its chain comes back after those the card sent before it. */
		while (hd != head && vqd_wait_used(t.r.tx, 1000, &hd, &l))
			;
		virtio_net_stats(t.r.dev, &st);
		ok(st.tx_verdicts[NET_TX_BAD_HDR_LEN] == 1 && st.tx_errors == 0 &&
		   st.tx_frames >= 4 && st.rx_frames >= 2,
		   "tap: bad GSO header dropped and counted, the rest passed (tx %llu, rx %llu)",
		   (unsigned long long)st.tx_frames, (unsigned long long)st.rx_frames);
	}
	tap_rig_down(&t);
	ok(!tap_exists(t.ifname), "%s: tap %s gone with the card", tag, t.ifname);
}

/* Without GUEST_CSUM the host must hand over finished checksums. */
static void test_tap_no_guest_csum(void)
{
	struct tap_rig t;

	if (!ok(tap_rig_up(&t, false, ALL & ~(1ULL << VIRTIO_NET_F_GUEST_CSUM |
					      1ULL << VIRTIO_NET_F_GUEST_TSO4 |
					      1ULL << VIRTIO_NET_F_GUEST_TSO6)),
		"no GUEST_CSUM: tap and card up"))
		return tap_rig_down(&t);
	tap_host_to_guest(&t, "no GUEST_CSUM", false);
	tap_rig_down(&t);
}

/* Pin .2's MAC on the host, so datagrams need no ARP from our side. */
static bool static_arp(const char *ifname)
{
	struct arpreq req = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&req.arp_pa;
	int s = socket(AF_INET, SOCK_DGRAM, 0), r;

	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = ip_of(2);
	req.arp_ha.sa_family = ARPHRD_ETHER;
	memcpy(req.arp_ha.sa_data, guest_mac, 6);
	req.arp_flags = ATF_COM | ATF_PERM;
	snprintf(req.arp_dev, sizeof(req.arp_dev), "%s", ifname);
	r = s >= 0 ? ioctl(s, SIOCSARP, &req) : -1;
	if (s >= 0)
		close(s);
	return r == 0;
}

/* No rx buffers: datagrams wait in the tap; buffers posted: all arrive. */
static void test_tap_backpressure(void)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(7777),
				  .sin_addr.s_addr = ip_of(2) };
	static u8 buf[HDR + 65536];
	char msgs[6][32];
	struct tap_rig t;
	int got = 0;

	if (!ok(tap_rig_up(&t, false, ALL), "tap backpressure: tap and card up"))
		return tap_rig_down(&t);
	ok(static_arp(t.ifname), "tap backpressure: static ARP entry for the guest");
	/* A fresh rig has 32 buffers: fill them with host datagrams first. */
	for (int i = 0; i < 32; i++)
		if (sendto(t.udp, "filler", 6, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
			break;
	for (int i = 0; i < 100 && vqd_used_pending(t.r.rx) < 32; i++)
		usleep(10 * 1000);
	is_n(vqd_used_pending(t.r.rx), 32, "tap backpressure: all 32 buffers used");
	for (int i = 0; i < 6; i++) {
		snprintf(msgs[i], sizeof(msgs[i]), "waiting frame %d", i);
		sendto(t.udp, msgs[i], strlen(msgs[i]), 0, (struct sockaddr *)&to, sizeof(to));
	}
	usleep(200 * 1000);
	is_n(vqd_used_pending(t.r.rx), 32, "tap backpressure: no buffers, nothing more delivered");
	/* Read the 32 fillers (guest_recv reposts each buffer as it goes). */
	want_payload = "filler";
	for (int i = 0; i < 32; i++)
		guest_recv(&t, buf, sizeof(buf), is_udp_for_guest, 1000);
	for (int i = 0; i < 6; i++) {
		want_payload = msgs[i];
		got += guest_recv(&t, buf, sizeof(buf), is_udp_for_guest, 2000) > 0;
	}
	is_n(got, 6, "tap backpressure: all 6 waiting datagrams arrive, in order");
	tap_rig_down(&t);
}

/* ---------------------------------------------------------------------------
 * 6. net_device_create(): the tap's life.
 */

static bool tap_has_ipv4(const char *ifname, in_addr_t want)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	bool yes;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	yes = s >= 0 && ioctl(s, SIOCGIFADDR, &ifr) == 0 &&
	      ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr == want;
	if (s >= 0)
		close(s);
	return yes;
}

static int bridge_ioctl(unsigned long req, const char *name)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0), r;

	r = s >= 0 ? ioctl(s, req, name) : -1;
	if (s >= 0)
		close(s);
	return r;
}

/* The bridge a tap is a port of ("" if none). */
static void master_of(const char *ifname, char *out, size_t len)
{
	char path[96], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/class/net/%s/master", ifname);
	n = readlink(path, link, sizeof(link) - 1);
	const char *base;

	link[n > 0 ? n : 0] = '\0';
	base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	out[0] = '\0';
	if (strlen(base) < len)
		memcpy(out, base, strlen(base) + 1);
}

static void test_create(void)
{
	struct virtio_dev *dev = NULL, *dev2 = NULL;
	char spec[64], br[IFNAMSIZ], name[IFNAMSIZ], m1[IFNAMSIZ], m2[IFNAMSIZ];
	u8 mac1[6], mac2[6];
	int rc;

	snprintf(spec, sizeof(spec), "%s.1/24,vhost=off,mac=02:11:22:33:44:55", subnet);
	if (ok(net_device_create(spec, 0, &dev) == 0, "create: %s", spec)) {
		snprintf(name, sizeof(name), "%s", virtio_net_ifname(dev));
		ok(tap_exists(name) && tap_has_ipv4(name, ip_of(1)),
		   "create: tap %s has the host address", name);
		dev->ops->config_read(dev, 0, mac1, 6);
		ok(!memcmp(mac1, "\x02\x11\x22\x33\x44\x55", 6), "create: mac= in config space");
		virtio_net_free(dev);
		ok(!tap_exists(name), "create: tap deleted when the card is freed");
	}

	rc = net_device_create("bridge:lgnobr0", 0, &dev);
	ok(rc == -1 && strstr(last_error(), "no such interface"), "create: missing bridge: %s",
	   last_error());
	rc = net_device_create("bridge:lo", 0, &dev);
	ok(rc == -1 && strstr(last_error(), "not a bridge"), "create: not a bridge: %s",
	   last_error());

	snprintf(br, sizeof(br), "lgtbr%d", getpid() % 100000);
	if (!ok(bridge_ioctl(SIOCBRADDBR, br) == 0, "create: bridge %s made for the test", br))
		return;
	snprintf(spec, sizeof(spec), "bridge:%s,vhost=off", br);
	if (ok(net_device_create(spec, 0, &dev) == 0 && net_device_create(spec, 1, &dev2) == 0,
	       "create: two cards on %s", br)) {
		master_of(virtio_net_ifname(dev), m1, sizeof(m1));
		master_of(virtio_net_ifname(dev2), m2, sizeof(m2));
		ok(!strcmp(m1, br) && !strcmp(m2, br), "create: both taps are ports of %s", br);
		dev->ops->config_read(dev, 0, mac1, 6);
		dev2->ops->config_read(dev2, 0, mac2, 6);
		ok(mac1[0] == 2 && mac2[0] == 2 && memcmp(mac1, mac2, 6),
		   "create: default MACs local and different");
		snprintf(name, sizeof(name), "%s", virtio_net_ifname(dev));
		virtio_net_free(dev);
		ok(!tap_exists(name), "create: bridged tap deleted (and so left the bridge)");
		virtio_net_free(dev2);
	}
	ok(bridge_ioctl(SIOCBRDELBR, br) == 0, "create: test bridge removed");
}

/* Without CAP_NET_ADMIN: one clear line. */
static void test_eperm(void)
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		struct __user_cap_header_struct hd = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct cd[2];
		struct virtio_dev *dev;
		char spec[64];

		if (syscall(SYS_capget, &hd, cd) < 0)
			_exit(3);
		cd[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
		if (syscall(SYS_capset, &hd, cd) < 0)
			_exit(3);
		snprintf(spec, sizeof(spec), "%s.1", subnet);
		if (net_device_create(spec, 0, &dev) == 0)
			_exit(1);
		_exit(strstr(last_error(), "not allowed to create a tap") ? 0 : 2);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "no CAP_NET_ADMIN: refused with one clear line (child status %d)", status);
}

/* Killed without a chance to clean up: the kernel deletes the tap. */
static void test_killed(void)
{
	char name[IFNAMSIZ] = "";
	int p[2], status;
	pid_t pid;

	if (pipe(p) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		struct virtio_dev *dev;
		char spec[64];

		close(p[0]);
		snprintf(spec, sizeof(spec), "%s.1,vhost=off", subnet);
		if (net_device_create(spec, 0, &dev) == 0 &&
		    write(p[1], virtio_net_ifname(dev), IFNAMSIZ) == IFNAMSIZ)
			pause();
		_exit(1);
	}
	close(p[1]);
	ok(read(p[0], name, IFNAMSIZ) == IFNAMSIZ && tap_exists(name),
	   "SIGKILL: child made tap %s", name);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(p[0]);
	for (int i = 0; i < 100 && tap_exists(name); i++)
		usleep(10 * 1000);
	ok(name[0] && !tap_exists(name), "SIGKILL: tap %s gone with the process", name);
}

/* Can this process make taps at all? */
static bool can_make_taps(void)
{
	char name[IFNAMSIZ];
	int fd = tap_create(name);

	if (fd < 0) {
		tap_diag("%s", last_error());
		return false;
	}
	close(fd);
	return true;
}

int main(void)
{
	snprintf(subnet, sizeof(subnet), "169.254.%d", 100 + getpid() % 100);
	test_check_tx();
	test_spec();
	test_default_mac();
	test_tx_hold_choice();
	test_tx_basic();
	/* The same without io_uring: one write per frame. */
	setenv("LGUEST_NO_IO_URING", "1", 1);
	tap_diag("without io_uring:");
	test_tx_basic();
	test_tx_many_pieces();
	unsetenv("LGUEST_NO_IO_URING");
	test_tx_flags();
	test_tx_malformed();
	test_tx_many_pieces();
	test_tx_corrupt();
	test_rx_basic();
	test_rx_backpressure();
	test_rx_merge();
	test_rx_merge_ahead();
	test_rx_no_merge();
	test_rx_bad_chains();
	test_rx_merge_zero_chains();
	test_threads();
	if (!can_make_taps()) {
		ok(1, "# SKIP cannot create taps here (needs CAP_NET_ADMIN and /dev/net/tun)");
		return tap_done();
	}
	tap_diag("real taps on %s.0/24", subnet);
	test_tap_traffic(false);
	test_tap_no_guest_csum();
	test_tap_backpressure();
	test_create();
	test_eperm();
	test_killed();
	if (access("/dev/vhost-net", R_OK | W_OK) == 0)
		test_tap_traffic(true);
	else
		ok(1, "# SKIP no /dev/vhost-net on this host (the nested test machine has one)");
	return tap_done();
}
