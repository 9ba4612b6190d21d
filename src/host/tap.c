/*
 * tap.c: making and configuring taps, with plain ioctls.
 *
 * rtnetlink could do all of this too, but each step here is one ioctl on a
 * throwaway socket, which reads in a few lines and needs no message
 * building.  The one thing the ioctls cannot tell us, whether a name is a
 * bridge, sysfs answers (/sys/class/net/NAME/bridge exists only for one).
 */
#include "host/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Why TUNSETIFF failed, in words a user can act on. */
static int tap_create_error(int err)
{
	if (err == EPERM || err == EACCES)
		return fail("not allowed to create a tap device for --tunnet: "
			    "run lguest as root (or give it CAP_NET_ADMIN)");
	return fail("cannot create a tap device: TUNSETIFF: %s", strerror(err));
}

/*
 * The tap is not persistent: the kernel deletes it when the last
 * descriptor closes, so a crashed or killed lguest leaves nothing behind.
 * TUNSETPERSIST 0 says so explicitly (it is the default for a new tap).
 */
int tap_create(char *name)
{
	struct ifreq ifr = { 0 };
	int fd, err;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT || err == ENODEV || err == ENXIO)
			return fail("no /dev/net/tun for --tunnet: load the tun module "
				    "(modprobe tun)");
		if (err == EPERM || err == EACCES)
			return tap_create_error(err);
		return fail("cannot open /dev/net/tun: %s", strerror(err));
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, IFNAMSIZ, "lguest%%d");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = errno;
		close(fd);
		return tap_create_error(err);
	}
	if (ioctl(fd, TUNSETPERSIST, 0) < 0) {
		err = errno;
		close(fd);
		return fail("tap %s: TUNSETPERSIST: %s", ifr.ifr_name, strerror(err));
	}
	memcpy(name, ifr.ifr_name, IFNAMSIZ);
	name[IFNAMSIZ - 1] = '\0';
	return fd;
}

/* A socket for SIOC* interface ioctls; any family will do. */
static int ctl_socket(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		fail("socket for interface ioctls: %s", strerror(errno));
	return s;
}

/* One SIOC* ioctl on a throwaway socket, with a line if it fails. */
static int if_ioctl(unsigned long req, const char *what, struct ifreq *ifr)
{
	int s = ctl_socket(), ret = 0;

	if (s < 0)
		return -1;
	if (ioctl(s, req, ifr) < 0)
		ret = fail("%s %s: %s", what, ifr->ifr_name, strerror(errno));
	close(s);
	return ret;
}

/* A zeroed request naming the interface (names are at most 15 bytes). */
static void ifr_for(struct ifreq *ifr, const char *ifname)
{
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, IFNAMSIZ, "%s", ifname);
}

/* Read-modify-write: other flags (multicast, ...) stay as the kernel set them. */
int tap_set_up(const char *ifname)
{
	struct ifreq ifr;

	ifr_for(&ifr, ifname);
	if (if_ioctl(SIOCGIFFLAGS, "cannot read the flags of", &ifr))
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return if_ioctl(SIOCSIFFLAGS, "cannot bring up", &ifr);
}

/* An IPv4 address into the ifreq's sockaddr slot. */
static void ifr_inet(struct ifreq *ifr, struct in_addr a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };

	memcpy(&ifr->ifr_addr, &sin, sizeof(sin));
}

/* The host's end of the link, so the guest has someone to talk to. */
int tap_set_ipv4(const char *ifname, struct in_addr addr, int prefix)
{
	struct in_addr mask;
	struct ifreq ifr;

	/* A /0 or /33 mask is a typo, not a network. */
	if (prefix < 1 || prefix > 32)
		return fail("--tunnet: prefix /%d is not 1..32", prefix);
	mask.s_addr = htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix));
	ifr_for(&ifr, ifname);
	ifr_inet(&ifr, addr);
	if (if_ioctl(SIOCSIFADDR, "cannot set the address of", &ifr))
		return -1;
	ifr_for(&ifr, ifname);
	ifr_inet(&ifr, mask);
	if (if_ioctl(SIOCSIFNETMASK, "cannot set the netmask of", &ifr))
		return -1;
	return tap_set_up(ifname);
}

/* Names reach sysfs paths and ioctls: refuse anything the kernel would. */
bool tap_name_ok(const char *name)
{
	size_t n = strlen(name);

	/* The name becomes a sysfs path below: a '/' or ".." would walk
	 * out of /sys/class/net. */
	if (n == 0 || n >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || name[i] == ':' || name[i] <= ' ' || name[i] == 0x7f)
			return false;
	return true;
}

/* Before a tap exists: a typo in the bridge name costs nothing to undo. */
int tap_check_bridge(const char *bridge)
{
	char path[64];
	struct stat st;

	if (!tap_name_ok(bridge))
		return fail("--tunnet=bridge:%s: not an interface name (1-%d characters, "
			    "no '/', ':' or spaces)", bridge, IFNAMSIZ - 1);
	snprintf(path, sizeof(path), "/sys/class/net/%s", bridge);
	if (stat(path, &st) < 0)
		return fail("--tunnet=bridge:%s: no such interface: create the bridge first "
			    "(ip link add %s type bridge)", bridge, bridge);
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", bridge);
	if (stat(path, &st) < 0)
		return fail("--tunnet=bridge:%s: %s is not a bridge", bridge, bridge);
	return 0;
}

/* Membership goes with the tap: deleting it leaves the bridge too. */
int tap_join_bridge(const char *ifname, const char *bridge)
{
	struct ifreq ifr;
	int index = if_nametoindex(ifname);

	if (!index)
		return fail("tap %s vanished: %s", ifname, strerror(errno));
	ifr_for(&ifr, bridge);
	ifr.ifr_ifindex = index;
	return if_ioctl(SIOCBRADDIF, "cannot add the tap to bridge", &ifr);
}

/* 12 bytes once VERSION_1 is in: the header always has num_buffers. */
int tap_set_vnet_hdr_size(int fd, int size)
{
	if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0)
		return fail("tap: TUNSETVNETHDRSZ %d: %s", size, strerror(errno));
	return 0;
}

/* Never more than the guest said it can take, or it gets frames it cannot parse. */
int tap_set_offload(int fd, unsigned int tun_flags)
{
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)tun_flags) < 0)
		return fail("tap: TUNSETOFFLOAD %#x: %s", tun_flags, strerror(errno));
	return 0;
}

/* A name that resolves to an index is a live interface. */
bool tap_exists(const char *ifname)
{
	return if_nametoindex(ifname) != 0;
}
