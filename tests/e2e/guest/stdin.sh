# Guest test "stdin": echo back one line read from the console (lguest's
# stdin on the host).
read -r line </dev/console
echo "LGTEST got: $line"
reboot -f
