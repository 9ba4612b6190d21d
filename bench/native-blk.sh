#!/bin/sh
# bench/native-blk.sh: build bench/blkbench.c and run it.
#
# blkbench drives virtio-blk through the host-side test driver (no guest,
# no KVM) and, in the same run on the same file, io_uring directly; it
# prints "name  lguest MB/s  raw MB/s  ratio  verdict  kicks/req  irqs/req"
# rows (verdict: the median ratio against the 0.95 target).  It is
# compiled here from the sources it needs, so it builds even while other
# parts of the tree are mid-change.
#
#   bench/native-blk.sh [FILE_MB [SECONDS [JOB]]]   (defaults: 512, 1, all)
set -eu
cd "$(dirname "$0")/.."
out=build/bench/blkbench
mkdir -p build/bench
${CC:-cc} -D_GNU_SOURCE -Isrc -Itests/unit -O2 -g \
	-Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes \
	-o "$out" bench/blkbench.c tests/unit/vqdriver.c \
	src/guest_mem.c src/util.c src/virtio/queue.c src/virtio/virtio.c \
	src/virtio/blk.c src/host/disk.c -luring -lpthread
exec "$out" "$@"
