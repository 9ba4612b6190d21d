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
