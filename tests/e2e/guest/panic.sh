# Guest test "panic": crash the kernel; the pvpanic device must tell lguest,
# which then exits 3 (before panic=-1 reboots us, which would exit 0).
#
# The pvpanic-mmio driver (and its pvpanic core) binds to the ACPI device
# QEMU0001 (port 0x505) that lguest's DSDT describes.
# modules: pvpanic-mmio
dev=/sys/bus/platform/drivers/pvpanic-mmio/QEMU0001:00
i=0
while [ ! -e "$dev" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -e "$dev" ]; then
	echo "LGTEST panic pvpanic=bound"
else
	echo "LGTEST panic pvpanic=unbound"
fi
echo "LGTEST panic crashing"
echo c >/proc/sysrq-trigger
echo "LGTEST panic survived"
