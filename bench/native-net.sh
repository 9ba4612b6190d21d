#!/bin/sh
# bench/native-net.sh: build bench/netbench.c and run it.
#
# netbench drives virtio-net's userspace backend through the host-side test
# driver (no guest, no KVM) on a real tap and, in the same run on the same
# tap, a plain read()/write() loop on the tap; it prints
# "name  lguest kfps  raw kfps  ratio  verdict  kicks/frm  irqs/frm" rows, one per direction
# and frame size.  It needs CAP_NET_ADMIN (to make the tap); without it, it
# prints one "# SKIP" line.  Frames carry an experimental EtherType and
# never leave the tap.  It is compiled here from the sources it needs, so
# it builds even while other parts of the tree are mid-change.
#
#   bench/native-net.sh [SECONDS [JOB]]     (defaults: 1 s per run, every job)
set -eu
cd "$(dirname "$0")/.."
out=build/bench/netbench
mkdir -p build/bench
${CC:-cc} -D_GNU_SOURCE -Isrc -Itests/unit -O2 -g \
	-Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes \
	-o "$out" bench/netbench.c tests/unit/vqdriver.c \
	src/guest_mem.c src/util.c src/virtio/queue.c src/virtio/virtio.c \
	src/virtio/net.c src/virtio/vhost_net.c src/host/tap.c -luring -lpthread
exec "$out" "$@"
