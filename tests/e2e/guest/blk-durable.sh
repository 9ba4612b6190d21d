# Guest test "blk-durable": write, fsync, say so, then wait to be killed.
#
# tests/e2e/cases/blk.sh SIGKILLs lguest as soon as it sees the "synced"
# line: whatever the guest was told is on disk must then be in the file,
# with no help from lguest's exit path.

i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done

if yes lguest-durable | head -c 1048576 |
	dd of=/dev/vda bs=64k seek=16 oflag=direct conv=fsync,notrunc 2>/dev/null; then
	echo "LGTEST blk-durable synced"
else
	echo "LGTEST blk-durable failed"
fi
# Wait for the host's SIGKILL; reboot only if it never comes.
sleep 600
reboot -f
