# tests/e2e/cases/boot.sh: booting a stock kernel, every way lguest can.
#
# Sourced (bash) by tests/e2e/run-cases.sh, which sets TOP, LGUEST,
# BZIMAGE, VMLINUX, KVER, INITRD and CASE_TMP (see there).  Each case_*
# function returns 0 on success and prints its diagnostics.  BOOT_TIMEOUT:
# seconds one boot may take (default 300: nested KVM under TCG is slow,
# and the machine is shared).  The guest halves are tests/e2e/guest/
# hello.sh and stdin.sh.

# boot LOG [ENV=VALUE...] -- LGUEST-ARGS...: run lguest (1 vCPU, stdin
# from $BOOT_STDIN or /dev/null) with its stdout and stderr in
# $CASE_TMP/LOG; sets BOOT_ST to its exit status.
boot() {
	local log=$CASE_TMP/$1 envs=()
	shift
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" timeout -k 10 "${BOOT_TIMEOUT:-300}" "$LGUEST" "$@" \
		<"${BOOT_STDIN:-/dev/null}" >"$log" 2>&1 && BOOT_ST=0 || BOOT_ST=$?
}

# has LOG TEXT: a line of LOG contains TEXT (carriage returns ignored).
has() {
	tr -d '\r' <"$CASE_TMP/$1" | grep -qF -- "$2"
}

# fail LOG MSG: say what went wrong, with the end of LOG, and return 1.
fail() {
	echo "boot: $2"
	[ -f "$CASE_TMP/$1" ] && tr -d '\r' <"$CASE_TMP/$1" | tail -n 30 | sed "s/^/boot: $1 | /"
	return 1
}

# hello_ok LOG: the hello guest ran, on our kernel, and lguest exited 0.
hello_ok() {
	[ "$BOOT_ST" = 0 ] || fail "$1" "lguest exited $BOOT_ST" || return 1
	has "$1" "LGTEST hello $KVER" || fail "$1" "no 'LGTEST hello $KVER' line" || return 1
}

# (a) bzImage + initrd: the guest runs its test, sees the command line we
# gave (plus lguest's console=ttyS0), and its reboot -f makes lguest exit 0.
case_hello() {
	boot log -- --initrd="$INITRD" 256 "$BZIMAGE" lgtest=hello lgmark=42 || true
	hello_ok log || return 1
	has log "lgtest=hello lgmark=42" || fail log "our command line did not arrive" || return 1
	has log "console=ttyS0" || fail log "lguest did not add console=ttyS0" || return 1
	# The TSC-deadline timer (src/vm/vcpu.c): the guest ticks with it and
	# leaves the PIT off, not even a broadcast timer ("<NULL>").
	has log "LGTEST clockevents <NULL> lapic-deadline" ||
		fail log "the guest's timers are not '<NULL> lapic-deadline'" || return 1
}

# (b) A line piped into lguest's stdin reaches the guest's console.
case_stdin() {
	printf 'echo from the host 7\n' >"$CASE_TMP/in"
	BOOT_STDIN=$CASE_TMP/in boot log -- --initrd="$INITRD" 256 "$BZIMAGE" lgtest=stdin || true
	[ "$BOOT_ST" = 0 ] || fail log "lguest exited $BOOT_ST" || return 1
	has log "LGTEST got: echo from the host 7" || fail log "the guest did not get our line" || return 1
}

# (c) The ELF vmlinux (extracted from the bzImage by tests/e2e/kernel.sh).
case_elf() {
	boot log -- --verbose --initrd="$INITRD" 256 "$VMLINUX" lgtest=hello || true
	hello_ok log || return 1
	has log "ELF" || fail log "--verbose does not say it loaded an ELF" || return 1
}

# (d) The bzImage through its own decompressor, as LGUEST_NO_HOST_DECOMPRESS=1
# forces: --verbose names the bzImage path, and nothing was decompressed
# on the host.
case_bzimage_fallback() {
	boot log XDG_CACHE_HOME="$CASE_TMP/cache" LGUEST_NO_HOST_DECOMPRESS=1 -- \
		--verbose --initrd="$INITRD" 256 "$BZIMAGE" lgtest=hello || true
	hello_ok log || return 1
	has log "bzImage" || fail log "--verbose does not name the bzImage path" || return 1
	! tr -d '\r' <"$CASE_TMP/log" | grep -q "decompressed bzImage" ||
		fail log "it decompressed on the host anyway" || return 1
}

# (e) Warm boot: with a fresh cache, the first boot decompresses and caches
# the kernel, the second says "(cached)".
case_warm() {
	local cache=$CASE_TMP/cache
	boot cold XDG_CACHE_HOME="$cache" -- --verbose --initrd="$INITRD" 256 "$BZIMAGE" lgtest=hello ||
		true
	hello_ok cold || return 1
	! has cold "(cached)" || fail cold "the first boot with an empty cache said (cached)" || return 1
	boot warm XDG_CACHE_HOME="$cache" -- --verbose --initrd="$INITRD" 256 "$BZIMAGE" lgtest=hello ||
		true
	hello_ok warm || return 1
	has warm "(cached)" || fail warm "the second boot did not use the cache" || return 1
}
