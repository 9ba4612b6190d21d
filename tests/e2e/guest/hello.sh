# Guest test "hello": say who we are, what the command line was, and which
# timers keep our time (the per-CPU tick's device and the broadcast one).
echo "LGTEST hello $(uname -r)"
echo "LGTEST cmdline $(cat /proc/cmdline)"
echo "LGTEST clockevents $(awk '/^Clock Event Device:/ { printf "%s ", $4 }' /proc/timer_list)"
reboot -f
