# Guest test "blkbench" (used by bench/nested/blk.sh): virtio-blk
# throughput on /dev/vda with O_DIRECT, ~3 s per workload, one
# "LGTEST blkbench NAME MBPS" line each (see tests/e2e/guest/bin/blkbench.c).
# The disk's contents are overwritten.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
blkbench /dev/vda 3 || echo "LGTEST blkbench error"
echo "LGTEST blkbench done"
reboot -f
