#!/bin/sh
# deps.sh: install what lguest needs to build, test and benchmark, from
# Debian's archive only.  Safe to run again; does nothing when all is there.
set -e
PKGS="make gcc libc6-dev pkg-config clang libclang-rt-14-dev
liburing-dev libseccomp-dev liblzma-dev libzstd-dev zlib1g-dev libxxhash-dev
qemu-system-x86 qemu-utils busybox-static cpio kmod xz-utils zstd iproute2 util-linux
perl procps python3"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "deps.sh: installing$missing" >&2
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
