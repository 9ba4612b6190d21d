# tests/e2e/cases/rng.sh: the host side of the virtio-rng end-to-end test.
#
# Sourced (bash) by tests/e2e/run-cases.sh; case_* functions return 0 on
# success and print diagnostics on stderr.  Variables as in
# tests/e2e/cases/blk.sh, plus RNG_TIMEOUT (default 300 s).  The guest
# half is tests/e2e/guest/hwrng.sh.

rng_setup() {
	: "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
	: "${LGUEST:=$TOP/lguest}"
	: "${RNG_TIMEOUT:=300}"
	if [ -z "${BZIMAGE:-}" ]; then
		eval "$("$TOP/tests/e2e/kernel.sh")" || return 1
	fi
	: "${INITRD:=$("$TOP/tests/e2e/guest-initrd.sh")}"
	RNG_DIR=$(mktemp -d "${CASE_TMP:-${TMPDIR:-/tmp}}/lguest-rng.XXXXXX") || return 1
}

rng_fail() {
	fail_report rng "$RNG_DIR/log" "$@"
}

# rng_val NAME: the value the guest printed as "LGTEST hwrng NAME VALUE".
rng_val() {
	tr -d '\r' <"$RNG_DIR/log" | awk -v k="$1" '$1 == "LGTEST" && $2 == "hwrng" && $3 == k { print $4; exit }'
}

# /dev/hwrng is served by virtio-rng: two 256-byte samples, whole, not
# constant, and different from each other.
case_rng() {
	local st s1 s2
	rng_setup || return 1
	timeout -k 10 "$RNG_TIMEOUT" "$LGUEST" --initrd="$INITRD" 256 "$BZIMAGE" \
		lgtest=hwrng </dev/null >"$RNG_DIR/log" 2>&1 && st=0 || st=$?
	[ $st -eq 0 ] || rng_fail "lguest exited $st" || return 1
	case $(rng_val current) in
	virtio_rng*) ;;
	*) rng_fail "the guest's hwrng is '$(rng_val current)', not virtio_rng" || return 1 ;;
	esac
	s1=$(rng_val sample1)
	s2=$(rng_val sample2)
	[ ${#s1} -eq 512 ] && [ ${#s2} -eq 512 ] ||
		rng_fail "samples of ${#s1} and ${#s2} hex digits, not 512" || return 1
	[ "$s1" != "$s2" ] || rng_fail "two samples are equal" || return 1
	[ -n "$(printf '%s' "$s1" | tr -d '0')" ] || rng_fail "a sample is all zero" || return 1
	rm -rf "$RNG_DIR"
}
