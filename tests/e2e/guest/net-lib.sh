# Shared by the guest "net*" tests (sourced, not a test itself): read
# lgnet=<our ip>,<peer ip> from the kernel command line, wait for eth0,
# give it our address (/24) and bring it up.  Sets ME and PEER; prints
# "LGTEST <test> mac <our MAC>".

ME=
PEER=
for arg in $(cat /proc/cmdline); do
	case $arg in
	lgnet=*) v=${arg#lgnet=}; ME=${v%%,*}; PEER=${v#*,} ;;
	esac
done

net_up() {
	local i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -e /sys/class/net/eth0 ]; then
		echo "LGTEST $LGTEST error: no eth0"
		return 1
	fi
	echo "LGTEST $LGTEST mac $(cat /sys/class/net/eth0/address)"
	ip link set lo up
	ip link set eth0 up && ip addr add "$ME/24" dev eth0
}
