# Guest test "netbench": TCP throughput over one virtio-net card, for
# bench/nested/net.sh (the host side, which does the timing).
#
# Run as  ... lgtest=netbench lgnet=<our ip>,<host ip> lgnbmib=<MiB> lgnbrounds=<n>
# The host listens on <host ip>: port 5001 takes what we send (guest to
# host), port 5002 sends us a fixed byte count and closes (host to guest).
# Each round is one upload of lgnbmib MiB, then one download of as much.
# The host measures both (wall time of a fixed byte count, from its side
# of the socket), since busybox has no sub-second clock; we only move the
# bytes and say whether each transfer completed, as
#   LGTEST netbench up <round> ok|failed
#   LGTEST netbench down <round> <bytes received>
# and finally "LGTEST netbench done".  The transfers are made by
# /bin/tcpstream (tests/e2e/guest/bin/tcpstream.c), which moves 128 KiB per
# system call as iperf3 does.

. /tests/net-lib.sh
MIB=64
ROUNDS=3
for arg in $(cat /proc/cmdline); do
	case $arg in
	lgnbmib=*) MIB=${arg#lgnbmib=} ;;
	lgnbrounds=*) ROUNDS=${arg#lgnbrounds=} ;;
	esac
done
net_up || { echo "LGTEST netbench done"; reboot -f; }

# The first packets wait for ARP; one ping settles it before timing starts.
ping -c 1 -w 30 "$PEER" >/dev/null 2>&1 || echo "LGTEST netbench ping failed"

# The CPU's busy and total jiffies so far (all but idle and iowait count).
cpu_jiffies() {
	awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}
cpu0=$(cpu_jiffies)
# Where the CPU went while receiving: user, system, irq, softirq, steal
# and idle jiffies, summed over the downloads (a guest that is "100%
# busy" may be stolen from, or spend it all in softirq).
cpu_split() {
	awk '$1 == "cpu" { print $2 + $3, $4, $7, $8, $9, $5 + $6; exit }' /proc/stat
}
down_split="0 0 0 0 0 0"

r=1
while [ $r -le "$ROUNDS" ]; do
	if tcpstream send "$PEER" 5001 $((MIB * 1048576)); then
		echo "LGTEST netbench up $r ok"
	else
		echo "LGTEST netbench up $r failed"
	fi
	before=$(cpu_split)
	echo "LGTEST netbench down $r $(tcpstream recv "$PEER" 5002)"
	down_split=$(echo "$down_split $before $(cpu_split)" |
		awk '{ for (i = 1; i <= 6; i++) printf "%d ", $i + $(i + 12) - $(i + 6) }')
	r=$((r + 1))
done
# What it took, for the bench's notes: packets each way and the card's
# interrupts (fewer and bigger packets, fewer interrupts: less work for
# a guest whose every exit is expensive).
s=/sys/class/net/eth0/statistics
dev=$(basename "$(readlink /sys/class/net/eth0/device)")
# irqs_of QUEUE: the card's interrupts for its queues named so.
irqs_of() {
	awk -v d="$dev-$1" 'index($0, d) {
		for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }' /proc/interrupts
}
rx_irqs=$(irqs_of input)
tx_irqs=$(irqs_of output)
irqs=$((rx_irqs + tx_irqs))
busy=$(echo "$cpu0 $(cpu_jiffies)" | awk '{ printf "%.0f", ($4 > $2) ? 100 * ($3 - $1) / ($4 - $2) : 0 }')
echo "LGTEST netbench stats tx_packets=$(cat $s/tx_packets) rx_packets=$(cat $s/rx_packets) interrupts=$irqs (rx $rx_irqs, tx $tx_irqs) busy=$busy%"
echo "$down_split" | awk '{ t = 0; for (i = 1; i <= 6; i++) t += $i; if (!t) t = 1
	printf "LGTEST netbench stats receiving: user %d%% sys %d%% irq %d%% softirq %d%% steal %d%% idle %d%%\n",
		100 * $1 / t, 100 * $2 / t, 100 * $3 / t, 100 * $4 / t, 100 * $5 / t, 100 * $6 / t }'

echo "LGTEST netbench done"
reboot -f
