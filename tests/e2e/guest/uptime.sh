# Guest test "uptime" (used by bench/run): how long the guest has been up,
# in seconds, when its userspace is ready.
read -r up idle </proc/uptime
echo "LGTEST uptime $up"
reboot -f
