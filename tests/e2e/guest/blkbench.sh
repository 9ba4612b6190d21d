# Guest test "blkbench" (used by bench/nested/blk.sh): virtio-blk
# throughput on /dev/vda with O_DIRECT, ~3 s per workload, one
# "LGTEST blkbench NAME MBPS" line each (see tests/e2e/guest/bin/blkbench.c).
# The disk's contents are overwritten.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
# Knobs on the kernel command line: lgblksched=NAME picks vda's I/O
# scheduler (the default for one queue is mq-deadline); lgblkstats=0 skips
# the cost readings; lgblkonly=JOB runs one workload, for lgblksecs=N
# seconds (default 3).
stats=
secs=3
jobs=5
for arg in $(cat /proc/cmdline); do
	case $arg in
	lgblksched=*) echo "${arg#lgblksched=}" >/sys/block/vda/queue/scheduler ;;
	lgblkstats=0) stats=nostats ;;
	lgblkonly=*) export BLKBENCH_ONLY="${arg#lgblkonly=}"; jobs=1 ;;
	lgblksecs=*) secs=${arg#lgblksecs=} ;;
	esac
done
# The workloads take jobs x secs.  If they are not done 40 s later, say so and show
# where blkbench's threads sleep and what blk-mq holds for vda (debugfs):
# a stalled run then shows what the guest waits for, not just silence.
stalled() {
	echo "LGTEST blkbench stalled: its threads' kernel stacks, then blk-mq's state"
	for t in /proc/[0-9]*/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = blkbench ] || continue
		echo "thread ${t##*/}: state $(cut -d' ' -f3 "$t/stat" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
		cat "$t/stack" 2>/dev/null
	done
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
	for f in /sys/kernel/debug/block/vda/state /sys/kernel/debug/block/vda/hctx0/* \
		/sys/kernel/debug/block/vda/sched/*; do
		[ -f "$f" ] && [ -r "$f" ] || continue
		echo "$f: $(head -c 600 "$f" 2>/dev/null | tr '\n' ' ')"
	done
	echo "scheduler: $(cat /sys/block/vda/queue/scheduler)"
	# A thread in state R that is not on the run queue was woken without
	# being queued: the CPU's counts and the run queue say whether it is.
	grep -E 'nr_running|nr_uninterruptible|MIN_vruntime|min_vruntime| blkbench ' \
		/sys/kernel/debug/sched/debug 2>/dev/null | sed 's/^/sched: /'
}
( sleep $((secs * jobs + 40)); stalled ) &
watchdog=$!
blkbench /dev/vda $secs $stats || echo "LGTEST blkbench error"
kill $watchdog 2>/dev/null
echo "LGTEST blkbench done"
reboot -f
