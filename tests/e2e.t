#!/bin/bash
# tests/e2e.t: the end-to-end tests, as TAP for `make check` (prove).
#
# Boots Debian's stock kernel with ./lguest (built by make first) and runs
# tests/e2e/cases/*.sh through tests/e2e/run-cases.sh:
#   - natively where the CPU has vmx/svm and /dev/kvm is not PVM;
#   - otherwise inside one nested test machine (tests/e2e/nested.sh: QEMU
#     TCG with an SVM CPU, no network), one session for all the cases;
#   - and if neither can work, "1..0 # SKIP why".
# Needs no stdin; fetches the kernel with apt-get download the first time
# (cached in tests/e2e/work/).  E2E_CASES='boot/* blk/*' runs only some.
cd "$(dirname "$0")/.." || exit 1
. tests/e2e/lib.sh

skip() { echo "1..0 # SKIP $*"; exit 0; }
# bail MSG [LOG]: the setup failed: one failing test, with LOG's end.
bail() {
	echo "1..1"
	echo "not ok 1 - e2e setup: $1"
	[ -z "${2:-}" ] || tail -n 20 "$2" | sed 's/^/# /'
	exit 1
}

# Where can we run?
if has_hw_kvm; then
	how=native
elif command -v qemu-system-x86_64 >/dev/null; then
	how=nested
else
	skip "no hardware KVM here and no qemu-system-x86_64 for a nested machine"
fi
for t in busybox cpio xz depmod apt-get; do
	command -v $t >/dev/null || skip "$t is missing (see scripts/deps.sh)"
done
is_static "$(command -v busybox)" ||
	skip "busybox is not static (apt-get install busybox-static)"
[ -x ./lguest ] || bail "./lguest is not built (make lguest)"

# The kernel and the guest initramfs, built here (the nested machine sees
# this tree read-only).
mkdir -p "$WORK"
setup_log=$WORK/e2e-setup.log
{ kernel=$(tests/e2e/kernel.sh) && INITRD=$(tests/e2e/guest-initrd.sh); } 2>"$setup_log" ||
	bail "no kernel or guest initramfs" "$setup_log"
eval "$kernel"

# A private copy of ./lguest: the tree may be rebuilt while we run (and
# the nested machine caches the host's files).
LGUEST=$(mktemp "$WORK/e2e-lguest.XXXXXX") && cp ./lguest "$LGUEST" && chmod +x "$LGUEST" ||
	bail "cannot copy ./lguest into $WORK"
trap 'rm -f "$LGUEST"' EXIT
export BZIMAGE VMLINUX KVER INITRD LGUEST

# Time limits, so that a hung guest cannot hold up `make check` for long
# (a boot takes 10-40 s in the nested machine): per boot (the cases'
# *_TIMEOUT variables), per case, and for the whole nested session.
: "${E2E_BOOT_TIMEOUT:=150}"
for v in BOOT_TIMEOUT BLK_TIMEOUT NET_TIMEOUT CON_TIMEOUT RNG_TIMEOUT ACPI_TIMEOUT; do
	export "$v=${!v:-$E2E_BOOT_TIMEOUT}"
done
export E2E_CASE_TIMEOUT=${E2E_CASE_TIMEOUT:-400}
export NESTED_TIMEOUT=${NESTED_TIMEOUT:-1500}

echo "# e2e: running the cases $how"
if [ $how = native ]; then
	tests/e2e/run-cases.sh
	exit
fi
export NESTED_ENV="BZIMAGE VMLINUX KVER INITRD LGUEST E2E_CASES E2E_CASE_TIMEOUT E2E_FROM
	BOOT_TIMEOUT BLK_TIMEOUT NET_TIMEOUT CON_TIMEOUT RNG_TIMEOUT ACPI_TIMEOUT"
# The TAP comes back as a file in the shared results directory rather than
# through the machine's console streams: a file cannot interleave or drop
# lines.  The last run's TAP stays in tests/e2e/work/e2e-last.tap.
out=$WORK/e2e-out
last_tap=$WORK/e2e-last.tap

# One machine runs the cases.  If it hangs or crashes (nested.sh says 126:
# its kernel stopped, panicked or reset itself, which no user process
# should be able to cause; seen under TCG's nested SVM, on some days
# several times an hour), a fresh one resumes with the case
# that was running, up to E2E_RESUMES (2) times.  (nested.sh itself shows,
# on stderr, the console, CPUs and heartbeat of a machine that did not
# finish.)
export E2E_FROM=1
: >"$last_tap"
resumed=0
while :; do
	rm -rf "$out" && mkdir -p "$out"
	NESTED_OUT=$out tests/e2e/nested.sh bash -c 'tests/e2e/run-cases.sh >"$NESTED_OUT/tap" 2>&1'
	st=$?
	if [ -f "$out/tap" ]; then
		tee -a "$last_tap" <"$out/tap"
	else
		echo "# e2e: no TAP came back from the nested machine"
	fi
	[ $st = 126 ] && [ $resumed -lt "${E2E_RESUMES:-2}" ] || break
	done_n=$(grep -oE '^(not )?ok [0-9]+' "$out/tap" 2>/dev/null | awk 'END { print $NF }')
	E2E_FROM=$((${done_n:-$((E2E_FROM - 1))} + 1))
	echo "# e2e: the nested machine hung or crashed in case $E2E_FROM ($(cat "$out/hung" 2>/dev/null))"
	echo "# e2e: a fresh machine resumes from case $E2E_FROM"
	resumed=$((resumed + 1))
done
case $st in
124) echo "# e2e: the nested machine timed out (NESTED_TIMEOUT=$NESTED_TIMEOUT s)" ;;
125) echo "# e2e: the nested machine failed" ;;
126) echo "# e2e: the nested machine hung or crashed again ($(cat "$out/hung" 2>/dev/null))" ;;
esac
exit $st
