# tests/e2e/case-lib.sh: helpers every end-to-end case may use (bash).
# tests/e2e/run-cases.sh sources it into each case's shell before the
# case's own file; a case run by hand needs it sourced first too.

# guest_reset ERR: lguest's --verbose stderr (file ERR) says the guest
# reset itself with a triple fault.  In the nested test machine that
# happens now and then mid-run, to QEMU's guests as well as ours (see
# tests/e2e/cases/console.sh): the emulated SVM underneath, not lguest.
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
