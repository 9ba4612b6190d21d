#!/usr/bin/env bash
# setup.sh: the main job in one command.  Installs what lguest needs (Debian
# packages), builds it, and boots Debian's stock kernel with a small busybox
# initramfs under lguest; the guest runs a command and reboots, which ends
# lguest with status 0.
#
#   ./setup.sh            the guest prints its kernel version and command line
#   ./setup.sh shell      an interactive shell in the guest (Ctrl-A x quits;
#                         only where the guest can boot natively, see below)
#
# With hardware virtualization (vmx/svm) the guest boots right here.  On a
# host whose KVM is software-only (e.g. PVM), it boots inside the nested test
# machine (QEMU emulating an AMD CPU with SVM, no network), as the tests do.
set -e
cd "$(dirname "$0")"
scripts/deps.sh
# `apt-get download` of the kernel needs package lists.
[ "$(id -u)" = 0 ] && apt-get update -q >/dev/null
make -s lguest
what=${1:-hello}
eval "$(tests/e2e/kernel.sh)"
INITRD=$(tests/e2e/guest-initrd.sh)
. tests/e2e/lib.sh
cmd=(./lguest --initrd="$INITRD" 256 "$BZIMAGE" "lgtest=$what")
echo "setup.sh: ${cmd[*]}" >&2
if has_hw_kvm; then
	exec "${cmd[@]}"
fi
echo "setup.sh: no hardware virtualization here: booting inside the nested test machine" >&2
exec tests/e2e/nested.sh "${cmd[@]}"
