# Guest test "hello": say who we are and what the command line was.
echo "LGTEST hello $(uname -r)"
echo "LGTEST cmdline $(cat /proc/cmdline)"
reboot -f
