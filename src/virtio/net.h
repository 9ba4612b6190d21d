/*
 * net.h: the virtio network device (virtio 1.2, 5.1) on a tap.
 *
 * Two queues: the guest posts empty buffers on rx (0) for frames coming
 * to it, and frames it sends on tx (1).  Every frame, both ways, starts
 * with a virtio_net_hdr, which the tap (IFF_VNET_HDR) speaks too: the
 * header travels through unchanged, so checksum offload and TSO work end
 * to end without our ever touching a payload byte.
 *
 * Two ways to serve the queues:
 *   - vhost-net (where /dev/vhost-net exists and the transport gives each
 *     queue an interrupt eventfd): the host kernel moves frames between
 *     the rings and the tap; we only describe guest memory and the rings.
 *   - userspace: one rx and one tx thread per card, woken by the queue's
 *     kick eventfd and by the tap becoming readable.
 * `--tunnet=...,vhost=off` or LGUEST_NO_VHOST=1 forces the second.
 */
#ifndef VIRTIO_NET_H
#define VIRTIO_NET_H

#include "virtio/virtio.h"

#include <net/if.h>
#include <netinet/in.h>

#define NET_QUEUE_SIZE	256
#define NET_RXQ		0
#define NET_TXQ		1

/*
 * Coalescing, both ways.  While a stream flows (wakeups come less than
 * NET_STREAM_NS apart), whoever moves frames waits NET_HOLD_NS after a
 * wakeup before it does: meanwhile the sender queues more, its TCP merges
 * small writes into bigger frames (autocorking: it holds data back while
 * earlier frames are still queued), and both sides make fewer kicks and
 * interrupts.  A card that was idle (a ping, an ARP) is served at once.
 * Measured in the nested machine, 16 MiB over TCP each way:
 *   tx (the guest's kick): half the frames, a third of the interrupts,
 *   2.6x the throughput; with vhost-net, whose worker sends as soon as
 *   it is kicked, we hold the kick on its way to the worker (vhost_net.c);
 *   rx (the tap readable, our own rx thread, and only while data streams
 *   in, not ACKs): host->guest 0.86-1.16x QEMU against 0.89-1.05x
 *   without, guest->host 0.94-1.04x against 0.83-0.98x (nested A/B passes;
 *   the machine's noise is of the same size), fewer receive interrupts.
 * Neither side holds the ACKs of a stream going the other way (a trickle
 * of under NET_RX_BULK bytes in, or the guest's sends while over that
 * much came in): the sender's TCP waits for them, and a held ACK slows
 * it more than merged frames gain.
 */
#define NET_STREAM_NS		1000000
#define NET_HOLD_NS		100000
/* Bytes received since the last look that make a stream, not ACKs. */
#define NET_RX_BULK		4096
/* Frames per batch: one interrupt, and one look at the stop request, per batch. */
#define NET_BATCH		64
/* A wakeup now: *last_wake is the one before.  waiting: frames already
 * queued, if known (0 if not); a batch's worth (NET_BATCH) goes at once,
 * as holding would only delay it. */
void net_hold(u64 *last_wake, unsigned int waiting);
/* net_hold()'s choice, for a wakeup at now after one at last_wake. */
bool net_should_hold(u64 now, u64 last_wake, unsigned int waiting);
/* A transmit kick's net_hold(), skipped while the guest receives a stream
 * (over NET_RX_BULK bytes into the rx ring since the used index *rx_seen,
 * which moves on): its sends are then ACKs. */
void net_tx_hold(const struct virtio_dev *vdev, u64 *last_kick, u16 *rx_seen,
		 unsigned int waiting);

/* Feature bits (virtio 1.2, 5.1.3). */
#define VIRTIO_NET_F_CSUM	0	/* we take frames with partial checksums */
#define VIRTIO_NET_F_GUEST_CSUM	1	/* the guest takes them */
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_GUEST_TSO4	7
#define VIRTIO_NET_F_GUEST_TSO6	8
#define VIRTIO_NET_F_GUEST_ECN	9
#define VIRTIO_NET_F_HOST_TSO4	11
#define VIRTIO_NET_F_HOST_TSO6	12
#define VIRTIO_NET_F_HOST_ECN	13
#define VIRTIO_NET_F_MRG_RXBUF	15
#define VIRTIO_NET_F_STATUS	16

#define VIRTIO_NET_S_LINK_UP	1

/* The header in front of every frame (5.1.6), little-endian. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM	1
#define VIRTIO_NET_HDR_F_DATA_VALID	2
#define VIRTIO_NET_HDR_GSO_NONE		0
#define VIRTIO_NET_HDR_GSO_TCPV4	1
#define VIRTIO_NET_HDR_GSO_UDP		3
#define VIRTIO_NET_HDR_GSO_TCPV6	4
#define VIRTIO_NET_HDR_GSO_ECN		0x80

struct virtio_net_hdr_v1 {
	u8 flags;
	u8 gso_type;
	u16 hdr_len;		/* Ethernet + IP + TCP headers, for GSO */
	u16 gso_size;		/* payload bytes per segment, for GSO */
	u16 csum_start;		/* checksum from here to the end ... */
	u16 csum_offset;	/* ... goes here, past csum_start */
	u16 num_buffers;	/* rx: chains this frame spans (MRG_RXBUF) */
};

struct virtio_net_config {
	u8 mac[6];
	u16 status;
	u16 max_virtqueue_pairs;
} __attribute__((packed));

/* Bytes of header: 12 with VERSION_1 or MRG_RXBUF, else the legacy 10. */
#define NET_HDR_LEN		12
#define NET_HDR_LEN_LEGACY	10
#define NET_ETH_HLEN		14
/*
 * The longest frame, header not included: a 64 KiB GSO packet plus its
 * Ethernet header (with room for a VLAN tag), as Linux and other VMMs
 * size it.
 */
#define NET_MAX_FRAME		65550

/* What --tunnet=SPEC says. */
struct net_spec {
	bool bridge;			/* bridge:NAME, else an address */
	char bridge_name[IFNAMSIZ];
	struct in_addr addr;		/* host side of the link */
	int prefix;			/* default 24 */
	bool have_mac;			/* mac=xx:xx:xx:xx:xx:xx given */
	u8 mac[6];
	bool vhost;			/* vhost=on|off, default on unless LGUEST_NO_VHOST=1 */
};

/*
 * Parse "<ipaddr>[/prefix][,mac=..][,vhost=on|off]" or
 * "bridge:<name>[,mac=..][,vhost=..]".  -1 with a line naming the bad part.
 */
int net_spec_parse(const char *spec, struct net_spec *ns);

/*
 * The MAC a card gets unless mac= says otherwise: locally administered
 * unicast (first byte 0x02), the rest a hash of this host's name, the tap's
 * name and the card's index: stable from run to run, different for every
 * card on the host at one time (tap names are unique while they exist).
 */
void net_default_mac(const char *ifname, int index, u8 mac[6]);

/* How virtio_net_new() should treat its descriptor. */
struct net_opts {
	u8 mac[6];
	bool is_tap;		/* a tap: set header size and offloads on it */
	bool vhost;		/* try vhost-net at activation */
};

/*
 * A network card whose wire is fd, which it now owns.  fd is a tap, or
 * (tests, fuzzing, benchmarks) any descriptor that keeps frame boundaries,
 * such as a SOCK_SEQPACKET socket: one frame, virtio_net_hdr first, per
 * read or write.  It must be non-blocking.  NULL with last_error() set.
 * The caller sets dev->gm and hands the device to a transport.
 */
struct virtio_dev *virtio_net_new(int fd, const struct net_opts *o);
/* Stop the card (as reset does), close its descriptors, free it. */
void virtio_net_free(struct virtio_dev *dev);

/*
 * For main(): create the tap --tunnet=spec describes (card number index,
 * from 0), configure the host side, and build the card on it.  Registers
 * an at_cleanup() step that stops the card and deletes the tap.  -1 with
 * a line for the user in last_error().  The caller sets (*out)->gm before
 * the transport activates it.
 */
int net_device_create(const char *spec, int index, struct virtio_dev **out);
/* The tap's name ("lguest0"), or "" for a card made by virtio_net_new(). */
const char *virtio_net_ifname(const struct virtio_dev *dev);

/* "vhost-net" or "userspace": how the running activation serves. */
const char *virtio_net_backend(const struct virtio_dev *dev);

/* Why a transmitted frame was dropped (virtio_net_check_tx). */
enum net_tx_verdict {
	NET_TX_OK = 0,
	NET_TX_SHORT,		/* chain shorter than the header */
	NET_TX_RUNT,		/* frame shorter than an Ethernet header */
	NET_TX_OVERSIZE,	/* frame longer than NET_MAX_FRAME */
	NET_TX_BAD_CSUM,	/* NEEDS_CSUM unnegotiated or pointing past the frame */
	NET_TX_BAD_GSO,		/* unknown or unnegotiated gso_type, gso_size 0 */
	NET_TX_BAD_HDR_LEN,	/* hdr_len past the end of the frame */
	NET_TX_NR
};

/*
 * Is this header, in front of a frame of frame_len bytes, one we pass to
 * the tap?  Pure: the tx path, the unit tests and the fuzzer share it.
 */
enum net_tx_verdict virtio_net_check_tx(const struct virtio_net_hdr_v1 *h, u64 frame_len,
					 u64 features);

struct net_stats {
	u64 tx_frames, tx_bytes;	/* handed to the tap */
	u64 tx_malformed;		/* dropped by virtio_net_check_tx() */
	u64 tx_errors;			/* the tap refused them */
	u64 rx_frames, rx_bytes;	/* delivered to the guest */
	u64 rx_dropped;			/* too big for the buffers posted */
	u64 rx_bad_chain;		/* rx chains with no room for a header */
	u64 tx_verdicts[NET_TX_NR];	/* tx_malformed, by reason */
};

/* A snapshot of the card's counters (userspace path; vhost counts none). */
void virtio_net_stats(const struct virtio_dev *dev, struct net_stats *st);

/*
 * Serve the queues on the calling thread, without blocking: for unit
 * tests, the fuzzer and the benchmark, which drive the rings themselves.
 * Only while the device is activated with no threads (virtio_net_new()
 * with vhost off, then net_sync_mode()).
 *   tx: send every available frame; returns how many chains it took.
 *   rx: deliver frames while both a frame and buffers are there; returns
 *       how many frames it delivered.
 * Both return -1 if the ring is corrupt (virtio_needs_reset() was called).
 */
int virtio_net_tx_sync(struct virtio_dev *dev);
int virtio_net_rx_sync(struct virtio_dev *dev);
/* Let the next activate start no threads (the _sync calls serve instead). */
void virtio_net_sync_mode(struct virtio_dev *dev, bool on);

/* vhost-net, in vhost_net.c: NULL/-1 with last_error() when unusable. */
struct vhost_net;
struct vhost_net *vhost_net_open(void);
int vhost_net_start(struct vhost_net *vh, struct virtio_dev *dev, int tap_fd);
void vhost_net_stop(struct vhost_net *vh, struct virtio_dev *dev);
void vhost_net_close(struct vhost_net *vh);

#endif
