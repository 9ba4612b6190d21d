# Guest test "net-pair": two guests on one host bridge find each other.
#
# Run (twice, at once) by tests/e2e/cases/net.sh as
#   lguest --tunnet=bridge:<br> ... lgtest=net-pair lgnet=<our ip>,<other guest's ip>
# Each pings the other until it answers (the other may still be booting),
# then stays up until the other's pings have reached it too (or 120 s
# pass), so that neither leaves while its peer still needs it.

. /tests/net-lib.sh
net_up || { echo "LGTEST net-pair done"; reboot -f; }

# in_echos: echo requests this guest has received (and so answered).
in_echos() {
	awk '$1 == "Icmp:" && !k { for (i = 2; i <= NF; i++) c[$i] = i; k = 1; next }
	     $1 == "Icmp:" { print $c["InEchos"]; exit }' /proc/net/snmp
}

i=0
while ! ping -c 1 -w 2 "$PEER" >/dev/null 2>&1 && [ $i -lt 120 ]; do
	i=$((i + 1))
done
if ping -c 3 -w 30 "$PEER" >/dev/null 2>&1; then
	echo "LGTEST net-pair ping ok"
else
	echo "LGTEST net-pair ping failed"
	# What the case's failure report shows of this guest's side.
	echo "LGTEST net-pair tries $i; neighbours: $(ip neigh show dev eth0 2>&1 | tr '\n' ';')"
	echo "LGTEST net-pair eth0: $(cd /sys/class/net/eth0/statistics &&
		for f in rx_packets tx_packets rx_dropped tx_dropped; do echo "$f=$(cat $f)"; done | tr '\n' ' ')"
fi
# The peer's successful round is one answered ping, then three more
# (busybox's ping -c 3 -w fails short of three): stay until we have
# answered four, and a moment more for the last answer to leave.
i=0
while [ "$(in_echos)" -lt 4 ] && [ $i -lt 240 ]; do
	sleep 0.5
	i=$((i + 1))
done
sleep 2
echo "LGTEST net-pair echoes-answered $(in_echos)"
echo "LGTEST net-pair done"
reboot -f
