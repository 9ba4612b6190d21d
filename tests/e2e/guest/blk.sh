# Guest test "blk": the virtio disks lguest gives us, seen from inside.
#
# Run by tests/e2e/cases/blk.sh as
#   lguest --block=a.img --block=b.img,ro ... lgtest=blk
# a.img is 8 MiB whose first MiB holds the host's pattern; b.img is 1 MiB.
# Every check prints one "LGTEST blk NAME VALUE" line; the host compares
# the values with what it knows, then looks at the files after we exit.
# Reads and writes use O_DIRECT, so they reach the device rather than
# the guest's page cache.

# The disks appear when virtio_blk probes them; give it a moment.
i=0
while [ ! -b /dev/vdb ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done

echo "LGTEST blk size-a $(blockdev --getsize64 /dev/vda)"
echo "LGTEST blk size-b $(blockdev --getsize64 /dev/vdb)"
echo "LGTEST blk ro-a $(blockdev --getro /dev/vda)"
echo "LGTEST blk ro-b $(blockdev --getro /dev/vdb)"
echo "LGTEST blk serial-a $(cat /sys/block/vda/serial 2>/dev/null)"

# The host's pattern, read through the device.
echo "LGTEST blk read-a $(dd if=/dev/vda bs=64k count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "LGTEST blk read-b $(dd if=/dev/vdb bs=64k count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"

# Our own pattern at 2 MiB, written through and flushed (conv=fsync makes
# the kernel send a FLUSH), then read back from the device.
if yes lguest-written | head -c 1048576 |
	dd of=/dev/vda bs=64k seek=32 oflag=direct conv=fsync,notrunc 2>/dev/null; then
	echo "LGTEST blk write-a ok"
else
	echo "LGTEST blk write-a failed"
fi
echo "LGTEST blk readback-a $(dd if=/dev/vda bs=64k skip=32 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"

# A write past the end fails (the capacity we were told is the truth).
if dd if=/dev/zero of=/dev/vda bs=512 seek=16384 count=1 oflag=direct conv=notrunc 2>/dev/null; then
	echo "LGTEST blk past-end written"
else
	echo "LGTEST blk past-end refused"
fi

# The read-only disk refuses writes.
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 oflag=direct conv=fsync,notrunc 2>/dev/null; then
	echo "LGTEST blk write-b written"
else
	echo "LGTEST blk write-b refused"
fi

# Discard 1 MiB at 4 MiB: the host then finds zeroes there.
if blkdiscard -o 4194304 -l 1048576 /dev/vda 2>/dev/null; then
	echo "LGTEST blk discard-a ok"
else
	echo "LGTEST blk discard-a failed"
fi
echo "LGTEST blk discard-read $(dd if=/dev/vda bs=64k skip=64 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"

sync

# Device reset, twice: unloading virtio_blk resets both disks through the
# transport, loading it again probes them afresh.  The data must still
# read back through the reset devices.
reloads=0
for round in 1 2; do
	rmmod virtio_blk 2>/dev/null && insmod /lib/modules/virtio_blk.ko 2>/dev/null &&
		reloads=$((reloads + 1))
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
done
echo "LGTEST blk reloads $reloads"
echo "LGTEST blk reload-read $(dd if=/dev/vda bs=64k skip=32 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "LGTEST blk done"
reboot -f
