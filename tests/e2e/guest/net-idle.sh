# Guest test "net-idle": bring the card up, say so, and wait to be killed
# (tests/e2e/cases/net.sh checks that no tap outlives lguest).

. /tests/net-lib.sh
net_up && ping -c 1 -w 60 "$PEER" >/dev/null 2>&1 && echo "LGTEST net-idle up"
sleep 3600
reboot -f
