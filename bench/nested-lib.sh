# bench/nested-lib.sh: what every bench/nested/*.sh starts with, sourced
# from the top of the tree.  bench/run sets these for its scripts; run by
# hand, a script finds them here: ./lguest, Debian's kernel (bzImage and
# vmlinux) and the e2e guest initramfs, QEMU's firmware, 3 runs per row,
# 300 s before a run is given up.
. tests/e2e/lib.sh
: "${LGUEST:=$TOP/lguest}"
if [ -z "${BZIMAGE:-}" ] || [ -z "${VMLINUX:-}" ]; then eval "$(tests/e2e/kernel.sh)"; fi
: "${INITRD:=$(tests/e2e/guest-initrd.sh)}"
: "${QEMU_FW:=/usr/share/qemu}"
: "${BENCH_RUNS:=3}"
: "${BENCH_TIMEOUT:=300}"

# median [FMT]: the median of the numbers on stdin, one per line (the
# mean of the middle two for an even count), printed by FMT if given;
# nothing for no numbers.
median() {
	sort -n | awk -v fmt="${1:-}" '{ v[NR] = $1 } END {
		if (!NR) exit
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		if (fmt != "") printf fmt, m; else print m }'
}

# bench_timeout SECS CMD...: CMD under a time limit, status 124 if it ran
# out, like timeout(1); but first it prints where each of CMD's threads
# sleeps in the kernel.  A launcher that hangs (once seen inside
# KVM_CREATE_VM in the nested machine) then says where, in the run's log.
# A process that SIGKILL cannot end (a thread wedged inside KVM, as an
# lguest vCPU once was on KVM's PIT thread in the nested machine) is left
# behind after 10 s with a note, rather than waited for forever: a QEMU
# row once ran 10 minutes past its limit there.
bench_timeout() {
	local secs=$1 pid watch st done_pid
	shift
	"$@" &
	pid=$!
	(
		sleep "$secs"
		kill -0 $pid 2>/dev/null || exit 0
		# lguest prints where each queue stands on SIGUSR2.
		if [ "$1" = "${LGUEST:-}" ]; then
			kill -USR2 $pid
			sleep 1
		fi
		echo "# $1 still running after $secs s; its threads' kernel stacks:"
		for t in /proc/$pid/task/*; do
			echo "#   thread ${t##*/} ($(cat "$t/comm" 2>/dev/null)):"
			timeout 5 sed 's/^/#     /' "$t/stack" 2>/dev/null
		done
		kill -KILL $pid
		sleep 10
		echo "# $1 (pid $pid) outlived SIGKILL by 10 s: a thread stuck in the kernel; left behind"
	) &
	watch=$!
	# Whichever ends first: CMD (its status), or the watcher, which
	# ends only when CMD outlived its SIGKILL.
	wait -n -p done_pid $pid $watch
	st=$?
	if [ "$done_pid" = "$watch" ]; then
		return 124
	fi
	kill $watch 2>/dev/null
	wait $watch 2>/dev/null
	[ $st = 137 ] && st=124
	return $st
}

# run_log_tail LOG: the end of a failed run's output, for the table's
# notes: its last 40 lines; if bench_timeout fired, the 40 before its
# stacks (the guest's own last words: a stall report, say) and the stacks.
run_log_tail() {
	tr -d '\r' <"$1" | awk '
		/^# .* still running after/ && !s {
			for (i = n - 39; i <= n; i++) if (i > 0) print t[i % 40]
			s = 1
		}
		s { print; next }
		{ t[NR % 40] = $0; n = NR }
		END { if (!s) for (i = n - 39; i <= n; i++) if (i > 0) print t[i % 40] }' |
		sed 's/^/#   /'
}
