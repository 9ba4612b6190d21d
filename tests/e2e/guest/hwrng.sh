# Guest test "hwrng": bytes from the virtio entropy device.
#
# Prints which hardware RNG the kernel chose and two 256-byte samples in
# hex; the host checks the device is virtio's, that the samples are whole,
# not constant, and differ.
i=0
while [ ! -c /dev/hwrng ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "LGTEST hwrng current $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
for n in 1 2; do
	echo "LGTEST hwrng sample$n $(head -c 256 /dev/hwrng | od -An -tx1 -v | tr -d ' \n')"
done
reboot -f
