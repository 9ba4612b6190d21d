# Guest test "net": one virtio-net card, seen from inside.
#
# Run by tests/e2e/cases/net.sh as
#   lguest --tunnet=<host ip>/24 ... lgtest=net lgnet=<our ip>,<host ip>
# The host side listens on <host ip> (any address, really) at two ports:
# 5001 takes what we send and hashes it, 5002 sends us 2 MiB and closes.
# Every check prints one "LGTEST net NAME VALUE" line for the host.

. /tests/net-lib.sh
net_up || { echo "LGTEST net done"; reboot -f; }

if ping -c 3 -w 60 "$PEER" >/dev/null 2>&1; then
	echo "LGTEST net ping ok"
else
	echo "LGTEST net ping failed"
fi

# 2 MiB each way over TCP; with TSO and merged rx buffers negotiated, most
# of it travels as 64 KiB GSO frames.
yes lguest-net-up | head -c 2097152 | nc "$PEER" 5001 &&
	echo "LGTEST net upload ok" || echo "LGTEST net upload failed"
echo "LGTEST net download $(nc "$PEER" 5002 </dev/null | sha256sum | cut -d' ' -f1)"
echo "LGTEST net stats $(cat /sys/class/net/eth0/statistics/rx_packets) $(cat /sys/class/net/eth0/statistics/tx_packets)"
echo "LGTEST net done"
reboot -f
