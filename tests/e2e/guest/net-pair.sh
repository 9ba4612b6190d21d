# Guest test "net-pair": two guests on one host bridge find each other.
#
# Run (twice, at once) by tests/e2e/cases/net.sh as
#   lguest --tunnet=bridge:<br> ... lgtest=net-pair lgnet=<our ip>,<other guest's ip>
# Each pings the other until it answers (the other may still be booting),
# then stays up a while so the other's pings find it too.

. /tests/net-lib.sh
net_up || { echo "LGTEST net-pair done"; reboot -f; }

i=0
while ! ping -c 1 -w 2 "$PEER" >/dev/null 2>&1 && [ $i -lt 120 ]; do
	i=$((i + 1))
done
if ping -c 3 -w 30 "$PEER" >/dev/null 2>&1; then
	echo "LGTEST net-pair ping ok"
else
	echo "LGTEST net-pair ping failed"
fi
sleep 30
echo "LGTEST net-pair done"
reboot -f
