/*
 * tcpstream.c: one TCP transfer as a throughput tool makes it, for
 * tests/e2e/guest/netbench.sh (busybox has no iperf).
 *
 *   tcpstream send HOST PORT BYTES    connect, send BYTES of zeros, close
 *   tcpstream recv HOST PORT          connect, read until the peer closes,
 *                                     print the byte count
 *
 * Both sides move data through one 128 KiB buffer per system call, as
 * iperf3 does by default.  busybox's nc relays through a buffer of about
 * a kilobyte and a pipe to head or wc, so the guest spent most of a
 * transfer in its own copying loop, the same under any launcher, and the
 * benchmark measured that rather than the network path.
 * Exit status 0 when the whole transfer went through, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (128 * 1024)

static char buf[CHUNK];

/* The connected socket, or -1 after saying why. */
static int dial(const char *host, const char *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd;

	sin.sin_port = htons((unsigned short)atoi(port));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "tcpstream: %s is not an IPv4 address\n", host);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		fprintf(stderr, "tcpstream: connect %s:%s: %s\n", host, port, strerror(errno));
		return -1;
	}
	return fd;
}

static int send_bytes(int fd, unsigned long long total)
{
	while (total) {
		size_t len = total < CHUNK ? (size_t)total : CHUNK;
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "tcpstream: send: %s\n", strerror(errno));
			return 1;
		}
		total -= (unsigned long long)n;
	}
	/* The peer counts bytes until our FIN: close only after every byte left. */
	return close(fd) ? 1 : 0;
}

static int recv_bytes(int fd)
{
	unsigned long long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "tcpstream: recv: %s\n", strerror(errno));
			printf("%llu\n", total);
			return 1;
		}
		total += (unsigned long long)n;
	}
	printf("%llu\n", total);
	return close(fd) ? 1 : 0;
}

int main(int argc, char **argv)
{
	int fd;

	if (argc == 5 && !strcmp(argv[1], "send")) {
		fd = dial(argv[2], argv[3]);
		return fd < 0 ? 1 : send_bytes(fd, strtoull(argv[4], NULL, 10));
	}
	if (argc == 4 && !strcmp(argv[1], "recv")) {
		fd = dial(argv[2], argv[3]);
		return fd < 0 ? 1 : recv_bytes(fd);
	}
	fprintf(stderr, "usage: tcpstream send HOST PORT BYTES | tcpstream recv HOST PORT\n");
	return 2;
}
