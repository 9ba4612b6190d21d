# tests/e2e/cases/acpi.sh: the host side of the ACPI end-to-end tests:
# soft-off through the PM1 control register, and pvpanic.
#
# Sourced (bash) by tests/e2e/run-cases.sh.  Each case_* function boots a
# guest, prints its diagnostics on stderr and returns 0 on success.  It
# uses LGUEST, BZIMAGE, INITRD and CASE_TMP as tests/e2e/cases/blk.sh
# describes, and ACPI_TIMEOUT (seconds a guest may take, default 300).
# The guest halves are tests/e2e/guest/poweroff.sh and panic.sh.

# acpi_setup: the variables above, and an empty scratch dir in $ACPI_DIR.
acpi_setup() {
	: "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
	: "${LGUEST:=$TOP/lguest}"
	: "${ACPI_TIMEOUT:=300}"
	if [ -z "${BZIMAGE:-}" ]; then
		eval "$("$TOP/tests/e2e/kernel.sh")" || return 1
	fi
	: "${INITRD:=$("$TOP/tests/e2e/guest-initrd.sh")}"
	ACPI_DIR=$(mktemp -d "${CASE_TMP:-${TMPDIR:-/tmp}}/lguest-acpi.XXXXXX") || return 1
}

# acpi_fail MSG: say what went wrong (with the end of the guest's log).
acpi_fail() {
	fail_report acpi "$ACPI_DIR/log" "$@"
}

# acpi_has TEXT: the guest's log has a line containing TEXT.
acpi_has() {
	tr -d '\r' <"$ACPI_DIR/log" | grep -qF -- "$1"
}

# acpi_poweroff N: boot with N vCPUs into `poweroff -f`; lguest must exit
# 0 and the guest must have seen N CPUs.  The log stays in $ACPI_DIR/log.
acpi_poweroff() {
	local st
	acpi_setup || return 1
	timeout -k 10 "$ACPI_TIMEOUT" "$LGUEST" --cpus="$1" --initrd="$INITRD" 256 "$BZIMAGE" \
		lgtest=poweroff </dev/null >"$ACPI_DIR/log" 2>&1 && st=0 || st=$?
	[ $st -eq 0 ] || acpi_fail "lguest exited $st" || return 1
	acpi_has "LGTEST poweroff cpus $1" || acpi_fail "the guest did not see $1 CPUs"
}

# `poweroff -f` in a 2-CPU guest: lguest exits 0 through ACPI S5, not
# through the reboot that /init falls back to.  On the way the guest must
# have found both CPUs (MADT) and the FADT, DSDT and MADT.
case_poweroff() {
	acpi_poweroff 2 || return 1
	for t in APIC DSDT FACP; do
		acpi_has "LGTEST poweroff tables" &&
			tr -d '\r' <"$ACPI_DIR/log" | grep "LGTEST poweroff tables" | grep -qw "$t" ||
			acpi_fail "the guest has no ACPI table $t" || return 1
	done
	acpi_has "LGTEST poweroff s5=yes" || acpi_fail "the kernel found no S5 state" || return 1
	! acpi_has "Restarting system" || acpi_fail "the guest rebooted instead of powering off" ||
		return 1
	! acpi_has "LGTEST poweroff returned" || acpi_fail "poweroff -f returned" || return 1
	rm -rf "$ACPI_DIR"
}

# Four vCPUs (the nested machine has two: they share) all come online,
# and a poweroff still ends lguest with 0.
case_smp4() {
	acpi_poweroff 4 || return 1
	rm -rf "$ACPI_DIR"
}

# A kernel panic (sysrq c) with the pvpanic driver bound: exit status 3.
case_panic() {
	local st
	acpi_setup || return 1
	timeout -k 10 "$ACPI_TIMEOUT" "$LGUEST" --initrd="$INITRD" 256 "$BZIMAGE" \
		lgtest=panic </dev/null >"$ACPI_DIR/log" 2>&1 && st=0 || st=$?
	acpi_has "LGTEST panic pvpanic=bound" ||
		acpi_fail "pvpanic-mmio did not bind to QEMU0001 (modules pvpanic, pvpanic_mmio in the initramfs?)" ||
		return 1
	acpi_has "LGTEST panic crashing" || acpi_fail "the guest never crashed itself" || return 1
	[ $st -eq 3 ] || acpi_fail "lguest exited $st, not 3" || return 1
	! acpi_has "LGTEST panic survived" || acpi_fail "the guest survived sysrq-c" || return 1
	rm -rf "$ACPI_DIR"
}
