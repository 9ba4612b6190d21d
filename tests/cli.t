#!/usr/bin/env bash
# cli.t: what a user sees when the command line or an input file is wrong,
# and a tiny guest run natively through the real KVM path.
#
# Every bad input must give one clear line on stderr naming the problem,
# exit status 2, and leave nothing behind.  TAP output, for prove.
set -u
cd "$(dirname "$0")/.."
LG=${LGUEST:-./lguest}
T=$(mktemp -d /tmp/lguest-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
n=0; failed=0

ok() {	# ok <0|1> <name> [diag]
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else
		echo "not ok $n - $2"; failed=$((failed + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/#   /'
	fi
}

# expect <status> <regex for stderr> <name> -- command...: and the error
# is one line (EXPECT_LINES=2 for usage errors: the message, then usage).
expect() {
	local want=$1 re=$2 name=$3; shift 4
	local err status lines
	err=$("$@" 2>&1 >/dev/null </dev/null); status=$?
	lines=$(printf '%s\n' "$err" | grep -c . || true)
	if [ "$status" = "$want" ] && printf '%s' "$err" | grep -Eq -- "$re" &&
	   [ "$lines" = "${EXPECT_LINES:-1}" ]; then
		ok 0 "$name"
	else
		ok 1 "$name" "status $status (want $want), stderr: $err"
	fi
}

# The tiny guest: an ELF "kernel" of a few instructions (tests/guest/tiny.S).
gcc -nostdlib -static -no-pie -Wl,-Ttext=0x1000000 -Wl,-e,_start \
	-Wl,--build-id=none -o "$T/tiny.elf" tests/guest/tiny.S
printf 'just some text\n' > "$T/text"
head -c 3000 /dev/urandom > "$T/random"
: > "$T/empty"
mkdir "$T/dir"
# An ELF for another machine: the tiny guest relabelled as AArch64 (183).
cp "$T/tiny.elf" "$T/arm.elf"
printf '\xb7\x00' | dd of="$T/arm.elf" bs=1 seek=18 conv=notrunc status=none
# A bzImage cut short: a boot sector and setup header, then nothing.
{ head -c 514 /dev/zero; printf 'HdrS'; head -c 1000 /dev/zero; } > "$T/short-bz"
printf '\x55\xaa' | dd of="$T/short-bz" bs=1 seek=510 conv=notrunc status=none
printf '\x04' | dd of="$T/short-bz" bs=1 seek=497 conv=notrunc status=none

EXPECT_LINES=2 expect 2 'Usage: lguest' "no arguments: usage, status 2" -- $LG
EXPECT_LINES=2 expect 2 "unknown option '--frobnicate'" "unknown long option" -- $LG --frobnicate 64 "$T/tiny.elf"
EXPECT_LINES=2 expect 2 "unknown option '-q'" "unknown short option" -- $LG -q 64 "$T/tiny.elf"
EXPECT_LINES=2 expect 2 'missing vmlinux' "memory but no kernel" -- $LG 64
expect 2 "'abc' is not a memory size" "memory not a number" -- $LG abc "$T/tiny.elf"
expect 2 "'64k' is not a memory size" "memory with a suffix" -- $LG 64k "$T/tiny.elf"
expect 2 'memory size 0' "memory of 0" -- $LG 0 "$T/tiny.elf"
expect 2 'more memory than this host has' "absurd memory size" -- $LG 999999999 "$T/tiny.elf"
expect 2 "$T/nonexistent.*No such file" "missing kernel" -- $LG 64 "$T/nonexistent"
expect 2 "$T/dir.*directory" "kernel is a directory" -- $LG 64 "$T/dir"
expect 2 "$T/text.*not a Linux kernel" "kernel is a text file" -- $LG 64 "$T/text"
expect 2 "$T/random.*not a Linux kernel" "kernel is random bytes" -- $LG 64 "$T/random"
expect 2 "$T/empty.*(empty|not a Linux kernel)" "kernel is empty" -- $LG 64 "$T/empty"
expect 2 "$T/arm.elf.*(machine|x86)" "ELF for another machine" -- $LG 64 "$T/arm.elf"
expect 2 "$T/short-bz.*(truncated|short|too old|protocol)" "truncated bzImage" -- $LG 64 "$T/short-bz"
expect 2 "$T/nope.img.*No such file" "missing initrd" -- $LG --initrd="$T/nope.img" 64 "$T/tiny.elf"
expect 2 "$T/dir.*(directory|not a regular file)" "initrd is a directory" -- $LG --initrd="$T/dir" 64 "$T/tiny.elf"
# Disks: refused before anything starts, and the file is left as it was.
head -c 1000 /dev/zero > "$T/odd.img"
expect 2 "$T/nodisk.img.*(does not exist|No such file)" "missing disk image" -- $LG --block="$T/nodisk.img" 64 "$T/tiny.elf"
expect 2 "$T/dir.*directory" "disk image is a directory" -- $LG --block="$T/dir" 64 "$T/tiny.elf"
expect 2 "$T/odd.img.*512" "disk size not a multiple of 512" -- $LG --block="$T/odd.img" 64 "$T/tiny.elf"
[ "$(stat -c %s "$T/odd.img")" = 1000 ] ; ok $? "the refused disk image keeps its size"
[ ! -e "$T/nodisk.img" ] ; ok $? "a missing disk image is not created"
# Network: a bridge that does not exist, and no tap left behind.
if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then
	before=$(ls /sys/class/net | grep -c '^lguest' || true)
	expect 2 "lgnosuchbr" "--tunnet to a missing bridge" -- $LG --tunnet=bridge:lgnosuchbr 64 "$T/tiny.elf"
	after=$(ls /sys/class/net | grep -c '^lguest' || true)
	[ "$before" = "$after" ] ; ok $? "no tap left behind after a refused --tunnet"
	expect 2 "not-an-ip" "--tunnet with a bad address" -- $LG --tunnet=not-an-ip 64 "$T/tiny.elf"
else
	for i in 1 2 3; do n=$((n + 1)); echo "ok $n # SKIP needs root and /dev/net/tun"; done
fi
expect 2 '--cpus=0' "zero vCPUs" -- $LG --cpus=0 64 "$T/tiny.elf"
expect 2 '--cpus=999' "too many vCPUs" -- $LG --cpus=999 64 "$T/tiny.elf"

big=$(ls tests/e2e/work/kernel/boot/vmlinuz-* 2>/dev/null | head -1)
if [ -n "$big" ]; then
	expect 2 "(needs|too large|too big|memory)" "stock kernel in 8 MiB of memory" -- $LG 8 "$big"
else
	n=$((n + 1)); echo "ok $n # SKIP stock kernel not unpacked yet"
fi

# The one accessor: only guest_mem.c turns guest addresses into host
# pointers.  vm.c and vhost_net.c name the mapping's base too, but only to
# describe whole RAM regions to KVM and vhost, never to translate.
stray=$(grep -rnE '(gm|mem)->host\b' src | grep -vE '^src/(guest_mem\.c|vm/vm\.c|virtio/vhost_net\.c):')
[ -z "$stray" ] ; ok $? "guest memory is reached only through guest_ptr()" "$stray"

# Help and version go to stdout with status 0.
out=$($LG --help 2>&1); s=$?
[ $s = 0 ] && printf '%s' "$out" | grep -q -- '--initrd' ; ok $? "--help prints the options, status 0"
out=$($LG --version 2>&1); s=$?
[ $s = 0 ] && printf '%s' "$out" | grep -Eq '^lguest [0-9]' ; ok $? "--version, status 0"

# /dev/kvm missing or forbidden: a private /dev without it, and an
# unprivileged user.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	expect 2 '/dev/kvm does not exist' "no /dev/kvm" -- \
		unshare -m sh -c "mount -t tmpfs none /dev && exec $LG 64 $T/tiny.elf"
	# The VM is made while the kernel loads; the kernel's error still
	# comes first, and alone.
	expect 2 "$T/nonexistent.*No such file" "no /dev/kvm and no kernel: the kernel is named" -- \
		unshare -m sh -c "mount -t tmpfs none /dev && exec $LG 64 $T/nonexistent"
	chmod 755 "$T"; chmod 644 "$T/tiny.elf"
	if [ -c /dev/kvm ] && [ "$(stat -c %a /dev/kvm)" = 600 ]; then
		expect 2 'no permission to open /dev/kvm' "no permission on /dev/kvm" -- \
			setpriv --reuid=nobody --regid=nogroup --clear-groups $LG 64 "$T/tiny.elf"
	else
		n=$((n + 1)); echo "ok $n # SKIP /dev/kvm is not root-only here"
	fi
	cp "$T/tiny.elf" "$T/secret.elf"; chmod 600 "$T/secret.elf"
	expect 2 "$T/secret.elf.*Permission denied" "unreadable kernel" -- \
		setpriv --reuid=nobody --regid=nogroup --clear-groups $LG 64 "$T/secret.elf"
else
	for i in 1 2 3 4; do n=$((n + 1)); echo "ok $n # SKIP needs root"; done
fi

# The tiny guest on the real KVM path: output, input and the reset exit.
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	out=$(printf 'ping\n' | timeout 60 $LG 64 "$T/tiny.elf" 2>"$T/err"); s=$?
	printf '%s' "$out" | grep -q 'tiny guest: hello' ; ok $? "tiny guest prints on the serial port" "$out $(cat $T/err)"
	printf '%s' "$out" | grep -q 'PING' ; ok $? "stdin reaches the guest" "$out"
	[ $s = 0 ] ; ok $? "guest reset through the i8042 ends lguest with 0 (got $s)" "$(cat $T/err)"
	# Input that arrives long before the guest reads must not be lost.
	out=$( (printf 'early\n'; sleep 1) | timeout 60 $LG 64 "$T/tiny.elf" 2>/dev/null)
	printf '%s' "$out" | grep -q 'EARLY' ; ok $? "input typed early is buffered" "$out"
	# --verbose says how long the guest ran by the host's clock (make
	# bench takes it from the wall time): here at least the second the
	# guest waits for its line.
	ran=$( (sleep 1; printf 'late\n') | timeout 60 $LG --verbose 64 "$T/tiny.elf" 2>&1 >/dev/null |
		sed -n 's/.*the guest ran \([0-9.]*\) s.*/\1/p')
	awk -v r="${ran:-0}" 'BEGIN { exit !(r >= 0.9 && r < 60) }' ; ok $? "--verbose: the guest ran ${ran:-?} s, its wait for input included"
	# stdin at end of file (or /dev/null): the guest just waits; stop it with a signal.
	timeout --preserve-status -s TERM 5 $LG 64 "$T/tiny.elf" </dev/null >/dev/null 2>&1; s=$?
	[ $s = 143 ] ; ok $? "SIGTERM stops a waiting guest (status $s)"
else
	for i in 1 2 3 4 5 6; do n=$((n + 1)); echo "ok $n # SKIP no usable /dev/kvm"; done
fi

echo "1..$n"
[ $failed = 0 ]
