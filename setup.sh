#!/usr/bin/env bash
# setup.sh: the main job in one command.  Installs what lguest needs (Debian
# packages), builds it, and boots Debian's stock kernel with a small busybox
# initramfs under lguest; the guest runs a command and powers off.
#
#   ./setup.sh                 guest prints its kernel version, then reboots
#   ./setup.sh shell           an interactive shell in the guest (Ctrl-A x quits)
#
# With hardware virtualization (vmx/svm) the guest boots right here.  On a
# host whose KVM is software-only, it boots inside a nested test machine
# (QEMU with SVM emulation), as the tests do.
set -e
cd "$(dirname "$0")"
scripts/deps.sh
[ "$(id -u)" = 0 ] && apt-get update -q >/dev/null || true
make -s lguest
what=${1:-hello}
tests/e2e/kernel.sh >/dev/null
tests/e2e/guest-initrd.sh >/dev/null
. tests/e2e/lib.sh
cmd="./lguest --initrd=$E2E_INITRD 256 $E2E_BZIMAGE lgtest=$what"
if e2e_native_kvm; then
	exec $cmd
fi
echo "setup.sh: no hardware virtualization here; booting inside the nested test machine" >&2
exec tests/e2e/nested.sh $cmd
