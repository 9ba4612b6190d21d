/*
 * tap.h: the host end of a guest's network card.
 *
 * A tap is a network interface whose "wire" is a file descriptor: what the
 * host's stack sends out of it we read as Ethernet frames, and frames we
 * write appear on it as received.  Every tap lguest makes has a
 * virtio_net_hdr in front of each frame (IFF_VNET_HDR), so checksum and
 * segmentation offloads pass through untouched, and is not persistent:
 * closing the last descriptor deletes the interface, whatever way lguest
 * ends (even SIGKILL).
 *
 * Everything here is host configuration through ioctls: no guest input
 * reaches these functions.  Errors are one line in last_error().
 */
#ifndef HOST_TAP_H
#define HOST_TAP_H

#include "lguest.h"

#include <net/if.h>
#include <netinet/in.h>

/*
 * Create a tap named by the kernel ("lguest%d": lguest0, lguest1, ...)
 * with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR.  Returns the descriptor
 * (non-blocking, close-on-exec) and the name in name[IFNAMSIZ], or -1.
 */
int tap_create(char *name);

/* Give the host side addr/prefix (prefix 1..32) and bring the link up. */
int tap_set_ipv4(const char *ifname, struct in_addr addr, int prefix);
/* Bring the link up (the bridge case: no address of its own). */
int tap_set_up(const char *ifname);

/* Is bridge an existing bridge?  -1 with a line saying which it is not. */
int tap_check_bridge(const char *bridge);
/* Enslave ifname to bridge (which tap_check_bridge() accepted). */
int tap_join_bridge(const char *ifname, const char *bridge);

/* Bytes of virtio_net_hdr in front of every frame, both ways (10 or 12). */
int tap_set_vnet_hdr_size(int fd, int size);
/* Which offloads (TUN_F_*) the tap may hand us in frames it delivers. */
int tap_set_offload(int fd, unsigned int tun_flags);

/* Is there an interface called ifname right now?  (Tests: no leftovers.) */
bool tap_exists(const char *ifname);
/* A usable interface name: 1..15 characters, none of them '/' or space. */
bool tap_name_ok(const char *name);

#endif
