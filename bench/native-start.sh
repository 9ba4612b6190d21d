#!/bin/bash
# native-start.sh: the launcher's own costs, on this host, with the tiny
# guest (tests/guest/tiny.S), which needs no hardware virtualization:
#   - start cost: CPU time from exec to the first KVM_RUN (lguest measures
#     it with the process CPU clock and prints it under --verbose);
#   - memory overhead: lguest's RSS minus the guest pages the guest touched
#     (also printed under --verbose, at exit).
# Median of RUNS (default 21) runs.  Targets: <= 2 ms, <= 2 MiB.
cd "$(dirname "$0")/.." || exit 1
runs=${RUNS:-21}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
gcc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,-e,_start \
	-Wl,--build-id=none -o "$tmp/tiny.elf" tests/guest/tiny.S || exit 1
if [ ! -w /dev/kvm ]; then
	echo "# SKIP start cost: no usable /dev/kvm"
	exit 0
fi
for i in $(seq "$runs"); do
	echo | ./lguest --verbose 64 "$tmp/tiny.elf" 2>&1 >/dev/null |
		sed -nE 's/.*start cost: ([0-9.]+) ms.*/start \1/p; s/.*launcher overhead (-?[0-9]+) KiB.*/mem \1/p'
done >"$tmp/samples"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
start=$(awk '$1 == "start" { print $2 }' "$tmp/samples" | median)
mem=$(awk '$1 == "mem" { print $2 }' "$tmp/samples" | median)
printf '%-44s %10s %10s %s\n' "row" "median" "target" "verdict"
printf '%-44s %8.3f ms %7s ms %s\n' "start cost: exec to first KVM_RUN (CPU)" "$start" "2" \
	"$(awk -v v="$start" 'BEGIN { print (v <= 2) ? "ok" : "over" }')"
printf '%-44s %7.0f KiB %6s KiB %s\n' "memory: RSS minus guest pages touched" "$mem" "2048" \
	"$(awk -v v="$mem" 'BEGIN { print (v <= 2048) ? "ok" : "over" }')"
