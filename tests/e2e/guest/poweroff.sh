# Guest test "poweroff": ACPI soft-off, and what ACPI told us on the way.
#
# Run by tests/e2e/cases/acpi.sh with --cpus=2.  We report the CPUs and
# ACPI tables we found and whether the kernel saw an S5 state, then power
# off.  lguest must exit 0 at once; had the power-off failed, `poweroff -f`
# would return (the kernel halts only PID 1) and /init would reboot
# instead, which the host spots as "Restarting system" in the log.
echo "LGTEST poweroff cpus $(grep -c '^processor' /proc/cpuinfo)"
echo "LGTEST poweroff tables $(ls /sys/firmware/acpi/tables | tr '\n' ' ')"
if dmesg | grep -q 'supports.*S5'; then
	echo "LGTEST poweroff s5=yes"
else
	echo "LGTEST poweroff s5=no"
fi
poweroff -f
echo "LGTEST poweroff returned"
