# tests/e2e/case-lib.sh: helpers every end-to-end case may use (bash).
# tests/e2e/run-cases.sh sources it into each case's shell before the
# case's own file; a case run by hand needs it sourced first too.

# guest_reset ERR: lguest's --verbose stderr (file ERR) says the guest
# reset itself with a triple fault.  In the nested test machine that
# happens now and then mid-run, to QEMU's guests as well as ours (see
# tests/e2e/cases/console.sh): the emulated SVM underneath, not lguest.
# KVM's trace in the nested machine shows it: the fault comes on the first
# instruction after a VMRUN, often right after a nested page fault taken
# while walking the guest's own page tables, as a page fault on fetching
# kernel text the guest has mapped (exit_int_info 0x80000b0e, error 0x10),
# then a double fault, then the shutdown; or while an interrupt KVM
# injected is being delivered.  It came in about 1 of 5 boots that each
# moved 4 x 16 MiB each way, and as often with transparent huge pages off
# and no page migrated in the nested machine, so it is not memory moving
# under the guest.  The cases that boot for long therefore boot again
# after a reset (boot_again); a case that sees resets only still fails.
guest_reset() {
	grep -q "triple fault, the guest reset" "$1"
}

# boot_again BOOT MAX T0: boot number BOOT, started at $SECONDS = T0, ended
# in a guest reset; true if another may follow: fewer than MAX boots so
# far, and one as long as the longest yet (BOOT_LONGEST) still ends well
# inside the case's time limit (E2E_CASE_TIMEOUT; $SECONDS counts from
# the case's start).  A case that boots again after a reset asks first,
# so that it fails with its own message rather than being cut off.
boot_again() {
	local took=$((SECONDS - $3))
	BOOT_LONGEST=$((took > ${BOOT_LONGEST:-0} ? took : BOOT_LONGEST))
	[ "$1" -lt "$2" ] && [ $((SECONDS + BOOT_LONGEST + 20)) -lt "${E2E_CASE_TIMEOUT:-600}" ]
}

# status_why ST LIMIT: what a launcher's exit status ST under
# "timeout -k 10 LIMIT" means, when it means more than itself.
status_why() {
	case $1 in
	124) echo " (still running after $2 s; SIGTERM stopped it)" ;;
	137) echo " (killed: it had not stopped 10 s after SIGTERM)" ;;
	esac
}

# fail_report TAG LOG MSG...: a failed case's report, on stderr: the end of
# the guest's log LOG (if any), then "TAG: MSG" last, since run-cases.sh
# shows only a failed case's last 40 lines.  Returns 1.
fail_report() {
	local tag=$1 log=$2
	shift 2
	[ -f "$log" ] && tr -d '\r' <"$log" | tail -n 35 | sed "s/^/$tag: | /" >&2
	echo "$tag: $*" >&2
	return 1
}
