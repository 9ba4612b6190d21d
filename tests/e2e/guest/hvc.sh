# Guest test "hvc": the virtio console as the system console.
#
# Booted with console=hvc0 by tests/e2e/cases/console.sh.  hvc0 only exists
# once /init loaded virtio_console, after the kernel opened /dev/console
# for /init, so we open it ourselves.  Then: a greeting, 20000 numbered
# lines as fast as we can (the host reads them slowly: nothing may be
# lost or reordered), and one line read from the console (the host's
# stdin) echoed back.
i=0
while [ ! -c /dev/hvc0 ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
exec </dev/hvc0 >/dev/hvc0 2>&1
# Neither the tty's echo of the host's line nor kernel messages may land
# inside our numbered lines.  Without output processing ("\n" to "\r\n")
# the tty hands hvc whole blocks rather than a line at a time, which keeps
# this test quick on a slow nested machine.
stty -echo -opost
dmesg -n 1
echo "LGTEST hvc hello, console is $(cat /sys/class/tty/console/active)"
seq 1 20000 | sed 's/^/LGTEST hvc line /'
echo "LGTEST hvc lines done"
if read -r -t 60 line; then
	echo "LGTEST hvc got: $line"
else
	echo "LGTEST hvc got nothing"
fi
reboot -f
