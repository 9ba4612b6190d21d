#!/bin/bash
# tests/e2e/run-cases.sh [PATTERN...]: run the end-to-end cases and print TAP.
#
# Runs where KVM can boot a stock kernel: natively on a host with vmx/svm,
# or inside the nested test machine (tests/e2e/nested.sh).  tests/e2e.t
# picks which.
#
# A case is a bash function named case_NAME in a file tests/e2e/cases/
# GROUP.sh; every such file is a group, its cases run in the order written,
# each in a fresh bash (which sources case-lib.sh, then its own file) under a timeout
# (E2E_CASE_TIMEOUT seconds, default 600), with stdin /dev/null and the cwd
# a fresh scratch directory.  Return 0: pass; 77: skip (the last line the
# case printed is the reason); anything else: fail.  What a case prints
# (stdout and stderr) is shown, as TAP diagnostics, only when it fails;
# a passing case's lines that begin "note: " are shown as diagnostics too.
# The TAP name is GROUP/NAME; PATTERNs (shell globs on it; or E2E_CASES,
# space-separated) pick cases, e.g. run-cases.sh 'boot/*' blk/blk.
# E2E_FROM=K skips the picked cases before the K-th (the TAP keeps their
# numbers): tests/e2e.t resumes so after a nested machine hung.
#
# Cases get these variables (exported; set them to override):
#   TOP       the repository         LGUEST    the launcher ($TOP/lguest)
#   BZIMAGE   the stock kernel       VMLINUX   the same as an ELF vmlinux
#   KVER      its version            INITRD    the guest initramfs
#   CASE_TMP  the case's own scratch dir (removed after a pass)
set -u
. "$(dirname "$0")/lib.sh"

: "${LGUEST:=$TOP/lguest}"
: "${E2E_CASE_TIMEOUT:=600}"
: "${E2E_FROM:=1}"
if [ -z "${BZIMAGE:-}" ] || [ -z "${VMLINUX:-}" ] || [ -z "${KVER:-}" ]; then
	eval "$("$E2E/kernel.sh")" || die "no kernel"
fi
: "${INITRD:=$("$E2E/guest-initrd.sh")}"
export TOP LGUEST BZIMAGE VMLINUX KVER INITRD E2E_CASE_TIMEOUT
[ $# -gt 0 ] || set -- ${E2E_CASES:-}

# The cases: "GROUP/NAME FILE FUNCTION" lines, in order.
list_cases() {
	local f group fn
	for f in "$E2E"/cases/*.sh; do
		[ -f "$f" ] || continue
		group=${f##*/}; group=${group%.sh}
		grep -oE '^(function +)?case_[A-Za-z0-9_]+' "$f" | sed 's/^function *//' |
			awk '!seen[$0]++' | while read -r fn; do
			echo "$group/${fn#case_} $f $fn"
		done
	done
}

# wanted NAME: true if NAME matches a PATTERN (or there are none).
wanted() {
	local p
	[ $# -gt 1 ] || return 0
	for p in "${@:2}"; do
		# shellcheck disable=SC2053
		[[ $1 == $p ]] && return 0
	done
	return 1
}

tmp_root=${TMPDIR:-/tmp}
n=0
failed=0
while read -r name file fn; do
	wanted "$name" "$@" || continue
	n=$((n + 1))
	[ $n -ge "$E2E_FROM" ] || continue
	CASE_TMP=$(mktemp -d "$tmp_root/lguest-e2e.XXXXXX") || die "mktemp failed"
	export CASE_TMP
	log=$CASE_TMP/.case.log
	start=$(date +%s.%N)
	(cd "$CASE_TMP" &&
		timeout -k 10 "$E2E_CASE_TIMEOUT" bash -c '. "$1"; . "$2"; "$3"' case "$E2E/case-lib.sh" "$file" "$fn") \
		</dev/null >"$log" 2>&1
	st=$?
	secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	if [ $st = 0 ]; then
		echo "ok $n - $name"
		echo "# $name: ${secs} s"
		# What a passing case wants said (a retried boot, say).
		tr -d '\r' <"$log" | sed -n "s|^note: |# $name: |p"
		rm -rf "$CASE_TMP"
	elif [ $st = 77 ]; then
		echo "ok $n - $name # SKIP $(tr -d '\r' <"$log" | tail -n 1)"
		rm -rf "$CASE_TMP"
	else
		failed=$((failed + 1))
		echo "not ok $n - $name"
		[ $st = 124 ] && echo "# $name: timed out after ${E2E_CASE_TIMEOUT} s"
		echo "# $name: exit status $st after ${secs} s; the end of its output:"
		tr -d '\r' <"$log" | tail -n 40 | sed 's/^/#   /'
		# (in the nested machine, /tmp goes with it)
		[ -n "${NESTED:-}" ] || echo "#   (scratch dir kept: $CASE_TMP)"
	fi
done < <(list_cases)

if [ $n -gt 0 ]; then
	echo "1..$n"
else
	echo "1..0 # SKIP no case matched: $*"
fi
[ $failed = 0 ]
