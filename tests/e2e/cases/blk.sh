# tests/e2e/cases/blk.sh: the host side of the virtio-blk end-to-end tests.
#
# Sourced (bash) by tests/e2e/run-cases.sh.  Each case_* function boots a
# real guest (or, for the error cases, only starts lguest), prints its
# diagnostics on stderr and returns 0 on success.  It uses:
#   LGUEST    the launcher (default: $TOP/lguest)
#   BZIMAGE   the guest kernel (default: from tests/e2e/kernel.sh)
#   INITRD    the guest initramfs (default: from tests/e2e/guest-initrd.sh)
#   CASE_TMP  a writable scratch directory (default: a fresh mktemp -d;
#             inside the nested test machine /tmp is a writable tmpfs)
#   BLK_TIMEOUT  seconds a guest may take (default 300: nested KVM under
#             TCG is slow)
# The guest halves are tests/e2e/guest/blk.sh and blk-durable.sh.

# Cases may run under "set -e": every status is caught with "&& st=0 || st=$?".

# blk_setup: the variables above, and an empty scratch dir in $BLK_DIR.
blk_setup() {
	: "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
	: "${LGUEST:=$TOP/lguest}"
	: "${BLK_TIMEOUT:=300}"
	if [ -z "${BZIMAGE:-}" ]; then
		eval "$("$TOP/tests/e2e/kernel.sh")" || return 1
	fi
	: "${INITRD:=$("$TOP/tests/e2e/guest-initrd.sh")}"
	BLK_DIR=$(mktemp -d "${CASE_TMP:-${TMPDIR:-/tmp}}/lguest-blk.XXXXXX") || return 1
}

# blk_fail MSG: say what went wrong (with the guest's log) and fail.
blk_fail() {
	fail_report blk "$BLK_DIR/log" "$@"
}

# blk_val NAME: the value the guest printed as "LGTEST blk NAME VALUE".
blk_val() {
	tr -d '\r' <"$BLK_DIR/log" | awk -v k="$1" '$1 == "LGTEST" && $2 == "blk" && $3 == k { print $4; exit }'
}

# sha_of FILE OFFSET_MIB: sha256 of the MiB at OFFSET_MIB in FILE.
sha_of() {
	dd if="$1" bs=1M skip="$2" count=1 2>/dev/null | sha256sum | cut -d' ' -f1
}

# blk_images: a.img (8 MiB, first MiB a known pattern, rest zero) and
# b.img (1 MiB of another pattern).
blk_images() {
	yes "lguest host pattern a" | head -c 1048576 >"$BLK_DIR/a.img" &&
		truncate -s 8M "$BLK_DIR/a.img" &&
		yes "lguest host pattern b" | head -c 1048576 >"$BLK_DIR/b.img"
}

# The main case: read, write, flush, discard, past-end, read-only; then the
# files after lguest exits.
case_blk() {
	local a b want_a want_b want_w st
	blk_setup || return 1
	blk_images || return 1
	a=$BLK_DIR/a.img
	b=$BLK_DIR/b.img
	want_a=$(sha_of "$a" 0)
	want_b=$(sha_of "$b" 0)
	want_w=$(yes lguest-written | head -c 1048576 | sha256sum | cut -d' ' -f1)

	timeout -k 10 "$BLK_TIMEOUT" "$LGUEST" --block="$a" --block="$b,ro" --initrd="$INITRD" \
		256 "$BZIMAGE" lgtest=blk </dev/null >"$BLK_DIR/log" 2>&1 && st=0 || st=$?
	[ $st -eq 0 ] || blk_fail "lguest exited $st" || return 1
	grep -q "LGTEST blk done" "$BLK_DIR/log" || blk_fail "the guest did not finish" || return 1

	# What the guest saw.
	[ "$(blk_val size-a)" = 8388608 ] || blk_fail "vda size $(blk_val size-a)" || return 1
	[ "$(blk_val size-b)" = 1048576 ] || blk_fail "vdb size $(blk_val size-b)" || return 1
	[ "$(blk_val ro-a)" = 0 ] && [ "$(blk_val ro-b)" = 1 ] ||
		blk_fail "read-only flags: vda $(blk_val ro-a) vdb $(blk_val ro-b)" || return 1
	case $(blk_val serial-a) in
	lg-*) ;;
	*) blk_fail "vda serial '$(blk_val serial-a)'" || return 1 ;;
	esac
	[ "$(blk_val read-a)" = "$want_a" ] || blk_fail "vda read the wrong data" || return 1
	[ "$(blk_val read-b)" = "$want_b" ] || blk_fail "vdb read the wrong data" || return 1
	[ "$(blk_val write-a)" = ok ] || blk_fail "the write to vda failed" || return 1
	[ "$(blk_val readback-a)" = "$want_w" ] || blk_fail "vda read back the wrong data" || return 1
	[ "$(blk_val past-end)" = refused ] || blk_fail "a write past the end of vda worked" || return 1
	[ "$(blk_val write-b)" = refused ] || blk_fail "a write to read-only vdb worked" || return 1
	[ "$(blk_val discard-a)" = ok ] || blk_fail "discard on vda failed" || return 1
	[ "$(blk_val reloads)" = 2 ] || blk_fail "virtio_blk reloaded $(blk_val reloads) of 2 times" ||
		return 1
	[ "$(blk_val reload-read)" = "$want_w" ] ||
		blk_fail "vda read the wrong data after the device was reset" || return 1

	# What the files hold now.
	[ "$(stat -c %s "$a")" = 8388608 ] || blk_fail "a.img changed size" || return 1
	[ "$(stat -c %s "$b")" = 1048576 ] || blk_fail "b.img changed size" || return 1
	[ "$(sha_of "$a" 0)" = "$want_a" ] || blk_fail "a.img's first MiB changed" || return 1
	[ "$(sha_of "$a" 2)" = "$want_w" ] || blk_fail "a.img lacks the guest's write" || return 1
	[ "$(sha_of "$a" 4)" = "$(head -c 1048576 /dev/zero | sha256sum | cut -d' ' -f1)" ] ||
		blk_fail "a.img: the discarded MiB is not zero" || return 1
	[ "$(sha_of "$b" 0)" = "$want_b" ] || blk_fail "b.img changed" || return 1
	rm -rf "$BLK_DIR"
}

# Durability: once the guest's fsync returned, SIGKILL lguest; the data the
# guest was told is safe must be in the file.
case_blk_durable() {
	local a pid i want
	blk_setup || return 1
	blk_images || return 1
	a=$BLK_DIR/a.img
	want=$(yes lguest-durable | head -c 1048576 | sha256sum | cut -d' ' -f1)

	"$LGUEST" --block="$a" --initrd="$INITRD" 256 "$BZIMAGE" \
		lgtest=blk-durable </dev/null >"$BLK_DIR/log" 2>&1 &
	pid=$!
	for ((i = 0; i < BLK_TIMEOUT * 10; i++)); do
		grep -q "LGTEST blk-durable" "$BLK_DIR/log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	grep -q "LGTEST blk-durable synced" "$BLK_DIR/log" ||
		blk_fail "the guest never reported its fsync" || return 1
	[ "$(sha_of "$a" 1)" = "$want" ] || blk_fail "fsync'd data is not in a.img after SIGKILL" || return 1
	[ "$(stat -c %s "$a")" = 8388608 ] || blk_fail "a.img changed size" || return 1
	rm -rf "$BLK_DIR"
}

# A soak: 20 s of 4 KiB random reads at queue depth 1, the workload that
# lost a guest task while lguest offered KVM's PV EOI (src/vm/vcpu.c): in
# ~half of such runs one read never returned.  Passes when the guest's
# blkbench finishes and reports its rate; its own watchdog prints where a
# stalled thread sleeps.
case_blk_qd1_soak() {
	local st
	blk_setup || return 1
	truncate -s 64M "$BLK_DIR/soak.img" || return 1
	timeout -k 10 150 "$LGUEST" --block="$BLK_DIR/soak.img" --initrd="$INITRD" 256 "$BZIMAGE" \
		lgtest=blkbench lgblkonly=randread-4k-qd1 lgblksecs=20 lgblkstats=0 \
		</dev/null >"$BLK_DIR/log" 2>&1 && st=0 || st=$?
	tr -d '\r' <"$BLK_DIR/log" | grep -q "LGTEST blkbench randread-4k-qd1 [0-9]" ||
		blk_fail "20 s of queue-depth-1 reads did not finish (exit $st)" || return 1
	[ "$(stat -c %s "$BLK_DIR/soak.img")" = 67108864 ] || blk_fail "soak.img changed size" || return 1
	rm -rf "$BLK_DIR"
}

# Bad --block arguments: exit 2 and one line naming the file.  These fail
# before any guest runs.
case_blk_errors() {
	local out st lockpid
	blk_setup || return 1
	blk_images || return 1

	out=$("$LGUEST" --block="$BLK_DIR/missing.img" 64 "$BZIMAGE" 2>&1 </dev/null) && st=0 || st=$?
	[ $st -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
		printf '%s' "$out" | grep -q "missing.img" ||
		blk_fail "missing image: exit $st, '$out'" || return 1

	out=$("$LGUEST" --block="$BLK_DIR" 64 "$BZIMAGE" 2>&1 </dev/null) && st=0 || st=$?
	[ $st -eq 2 ] && printf '%s' "$out" | grep -q "directory" ||
		blk_fail "directory: exit $st, '$out'" || return 1

	head -c 1000 /dev/zero >"$BLK_DIR/odd.img"
	out=$("$LGUEST" --block="$BLK_DIR/odd.img" 64 "$BZIMAGE" 2>&1 </dev/null) && st=0 || st=$?
	[ $st -eq 2 ] && printf '%s' "$out" | grep -q "multiple of 512" ||
		blk_fail "odd size: exit $st, '$out'" || return 1

	out=$("$LGUEST" --block="$BLK_DIR/a.img,bogus" 64 "$BZIMAGE" 2>&1 </dev/null) && st=0 || st=$?
	[ $st -eq 2 ] && printf '%s' "$out" | grep -q "bogus" ||
		blk_fail "unknown option: exit $st, '$out'" || return 1

	# Another holder of the lock (as a second lguest would be).
	flock -x "$BLK_DIR/a.img" sleep 60 &
	lockpid=$!
	sleep 0.5
	out=$("$LGUEST" --block="$BLK_DIR/a.img" 64 "$BZIMAGE" 2>&1 </dev/null) && st=0 || st=$?
	kill "$lockpid" 2>/dev/null || true
	wait "$lockpid" 2>/dev/null || true
	[ $st -eq 2 ] && printf '%s' "$out" | grep -q "in use by another lguest" ||
		blk_fail "locked image: exit $st, '$out'" || return 1
	rm -rf "$BLK_DIR"
}
