# Guest "test" "shell": an interactive shell on the console, with job control;
# the guest reboots (and lguest exits) when it ends.
echo "LGTEST shell: type 'exit' or 'reboot -f' to leave"
setsid cttyhack sh -l
