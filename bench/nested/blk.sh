#!/bin/bash
# bench/nested/blk.sh: virtio-blk throughput rows of `make bench`, run by
# bench/run where KVM can boot a stock kernel (inside the nested test
# machine here, natively on a host with vmx/svm).
#
# One 512 MiB disk file (written out, not sparse, so reads hit real data),
# given to the guest as /dev/vda by lguest (--block) and by Debian's QEMU
# (virtio-blk-pci on microvm's PCIe; q35 where that fails, and the output
# says so).  The guest (lgtest=blkbench, tests/e2e/guest/bin/blkbench.c)
# runs five ~3 s workloads with O_DIRECT: 4 KiB random read and write at
# queue depth 32, 1 MiB sequential read and write at queue depth 4, and
# prints MB/s for each.  256 MiB, 1 vCPU, the same kernel and initramfs.
# The fifth, 4 KiB random read at queue depth 1, is a latency guard (target:
# no slower than QEMU): lguest holds interrupts back while a busy guest
# keeps submitting, and must not make a guest that waits on each request
# wait longer.
#
# Cache modes: lguest does buffered I/O on the file (reads through
# io_uring, writes by its I/O thread), so QEMU gets the matching
# cache=writeback,aio=io_uring (host page cache, io_uring submission;
# cache=none would be O_DIRECT, which is neither what lguest does nor
# possible on the tmpfs this runs on when nested).
#
# Each row is the median of BENCH_RUNS runs per launcher (default 3; a run
# is ~15 s of guest benchmark plus a boot), interleaved, after one
# unmeasured warm-up run; every run's value follows the table, since
# nested numbers are noisy.
#
# Uses BZIMAGE, INITRD, LGUEST, QEMU_FW, BENCH_RUNS (set by bench/run; the
# defaults find them in the tree).  BLK_MACHINE=q35 skips microvm.
set -u
cd "$(dirname "$0")/../.."
. bench/nested-lib.sh
: "${BLK_MACHINE:=microvm,pcie=on}"
DISK_MB=512
CACHE=writeback
AIO=io_uring

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lguest-bench-blk.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
DISK=$TMP/disk.img
if ! dd if=/dev/zero of="$DISK" bs=1M count=$DISK_MB conv=fsync status=none; then
	echo "# cannot write a $DISK_MB MiB disk file in ${TMPDIR:-/tmp}"
	exit 1
fi

WORKLOADS="randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd32 seqread-1m-qd4 seqwrite-1m-qd4"
APPEND="console=ttyS0 quiet reboot=t panic=-1 tsc=reliable no_timer_check"
APPEND="$APPEND i8042.noaux i8042.nomux i8042.nopnp 8250.nr_uarts=1 cryptomgr.notests lgtest=blkbench"
qemu_cmd() { # qemu_cmd MACHINE: the QEMU command line, in array QEMU
	QEMU=(qemu-system-x86_64 -M "$1" -enable-kvm -cpu host -m 256 -smp 1
		-nodefaults -no-user-config -nographic -serial stdio -L "$QEMU_FW" -L /usr/share/qemu
		-kernel "$BZIMAGE" -initrd "$INITRD" -append "$APPEND" -no-reboot
		-drive "file=$DISK,if=none,id=d0,format=raw,cache=$CACHE,aio=$AIO"
		-device virtio-blk-pci,drive=d0)
}

# measure ROW CMD...: one run; appends "NAME MBPS" lines to $TMP/ROW.
# Fails (status 1) if the guest printed no result.
measure() {
	local row=$1 st
	shift
	bench_timeout "$BENCH_TIMEOUT" "$@" </dev/null >"$TMP/log" 2>&1 && st=0 || st=$?
	tr -d '\r' <"$TMP/log" |
		sed -n 's/.*\(LGTEST blkbench \)/\1/p' | # a console line may come first
		awk '$4 ~ /^[0-9.]+$/ { print $3, $4 }' >"$TMP/one"
	if [ $st != 0 ] || [ ! -s "$TMP/one" ]; then
		echo "# $row: failed (exit $st); the end of its output:"
		run_log_tail "$TMP/log"
		return 1
	fi
	if tr -d '\r' <"$TMP/log" | grep -qE 'LGTEST blkbench (.* failed|error)'; then
		echo "# $row: a workload failed; the guest said:"
		tr -d '\r' <"$TMP/log" | grep -E 'LGTEST|blkbench' | sed 's/^/#   /'
	fi
	cat "$TMP/one" >>"$TMP/$row"
	tr -d '\r' <"$TMP/log" | sed -n "s/.*LGTEST blkbench stats /#   $row: /p" >>"$TMP/notes"
}

machine=$BLK_MACHINE
note=
run_lguest() {
	measure "${1:-lguest}" "$LGUEST" --block="$DISK" --initrd="$INITRD" 256 "$BZIMAGE" lgtest=blkbench
}
run_qemu() {
	qemu_cmd $machine
	if ! measure qemu "${QEMU[@]}" && [ $machine != q35 ]; then
		machine=q35
		note="# microvm,pcie=on gave no result with this kernel: QEMU rows use -M q35"
		echo "$note"
		qemu_cmd $machine
		measure qemu "${QEMU[@]}"
	fi
}
# The first guest in a fresh nested machine runs slow from start to end
# (one formal run: every workload of lguest's first boot 30-70% below its
# later boots, whichever launcher goes first pays it), so one unmeasured
# run warms the machine; then the runs alternate which launcher goes
# first, so a machine drifting faster or slower weighs on both.
run_lguest warmup >/dev/null || true
for ((i = 1; i <= BENCH_RUNS; i++)); do
	if ((i % 2)); then
		run_lguest
		run_qemu
	else
		run_qemu
		run_lguest
	fi
done

# row_median ROW NAME: the median MB/s of workload NAME in ROW (empty if none).
row_median() {
	[ -s "$TMP/$1" ] || return 0
	awk -v n="$2" '$1 == n { print $2 }' "$TMP/$1" | median
}

where=native
[ -n "${NESTED:-}" ] && where="nested KVM (TCG + SVM outer machine)"
echo "virtio-blk: guest O_DIRECT on /dev/vda, $DISK_MB MiB file on $(df -PT "$TMP" | awk 'NR == 2 { print $2 }'), 256 MiB, 1 vCPU, $where; median of $BENCH_RUNS; MB/s"
echo "QEMU: -M $machine, virtio-blk-pci, cache=$CACHE,aio=$AIO (lguest: buffered I/O, reads via io_uring)"
[ -z "$note" ] || echo "$note"
printf '%-20s %9s %9s %8s\n' workload lguest qemu ratio
for w in $WORKLOADS; do
	l=$(row_median lguest $w)
	q=$(row_median qemu $w)
	awk -v n="$w" -v l="${l:-}" -v q="${q:-}" 'BEGIN {
		if (l == "" || q == "") { printf "%-20s %9s %9s %8s\n", n, l == "" ? "failed" : l, q == "" ? "failed" : q, "n/a"; exit }
		r = (q > 0) ? l / q : 99
		t = (n ~ /-qd1$/) ? 1.0 : 1.2
		printf "%-20s %9.1f %9.1f %8.2f   target >= %.2f  %s\n", n, l, q, r, t, (r >= t) ? "met" : "MISSED" }'
done
echo "# every run, lguest | qemu:"
for w in $WORKLOADS; do
	printf '#   %-20s %s | %s\n' "$w" \
		"$(awk -v n="$w" '$1 == n { printf "%s ", $2 }' "$TMP/lguest" 2>/dev/null)" \
		"$(awk -v n="$w" '$1 == n { printf "%s ", $2 }' "$TMP/qemu" 2>/dev/null)"
done
echo "# what each run cost the guest (CPU busy share, virtio interrupts per request):"
cat "$TMP/notes" 2>/dev/null
