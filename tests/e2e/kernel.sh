#!/bin/bash
# tests/e2e/kernel.sh: make sure Debian's current stock kernel is unpacked
# under tests/e2e/work/kernel, and print where its parts are:
#
#   KVER=6.1.0-NN-amd64
#   BZIMAGE=.../work/kernel/bzImage      the stock compressed kernel
#   VMLINUX=.../work/kernel/vmlinux      the ELF kernel, extracted from it
#   MODULES=.../work/kernel/lib/modules/$KVER   (with modules.dep)
#
# The output can be eval'd:  eval "$(tests/e2e/kernel.sh)".
# "Current" is the package that linux-image-amd64 depends on in apt's lists;
# an already unpacked kernel is reused when it is that one (or when apt's
# lists cannot tell, e.g. offline).
set -eu
. "$(dirname "$0")/lib.sh"

# Which package is current?  Needs apt's lists; fetch them once if missing.
want_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}
# Asking apt takes a second or two: skip it when its lists have not changed
# since we last did ($KDIR/.checked).
if [ -f "$KDIR/.stamp" ] && [ "$KDIR/.checked" -nt /var/lib/apt/lists ]; then
	pkg=
else
	pkg=$(want_pkg)
	if [ -z "$pkg" ] && [ ! -f "$KDIR/.stamp" ]; then
		note "apt knows no linux-image-amd64; running apt-get update"
		apt-get update -qq >&2 || true
		pkg=$(want_pkg)
	fi
fi
if [ -n "$pkg" ]; then
	ver=$(apt-cache show --no-all-versions "$pkg" | awk '$1 == "Version:" { print $2; exit }')
	want="$pkg $ver"
else
	want=$(cat "$KDIR/.stamp")      # up to date, or offline: keep what we have
fi

if [ "$(cat "$KDIR/.stamp" 2>/dev/null)" != "$want" ] &&
	work_lock && [ "$(cat "$KDIR/.stamp" 2>/dev/null)" != "$want" ]; then
	[ -n "$pkg" ] || die "cannot find Debian's linux-image-amd64 (apt-get update?)"
	note "unpacking $want into $KDIR"
	rm -rf "$KDIR" "$KDIR.new" && mkdir -p "$KDIR.new"
	# apt-get download writes into the cwd; _apt cannot write there as
	# root-owned, which only costs a warning.
	(cd "$KDIR.new" && apt-get download -q "$pkg" >&2 2>/dev/null ||
		apt-get download "$pkg" >&2)
	dpkg -x "$KDIR.new"/*.deb "$KDIR.new"
	rm -f "$KDIR.new"/*.deb
	v=$(ls "$KDIR.new/lib/modules")
	# Debian's package ships no modules.dep: depmod makes it at install.
	depmod -b "$KDIR.new" "$v"
	ln -s "boot/vmlinuz-$v" "$KDIR.new/bzImage"
	echo "$want" >"$KDIR.new/.stamp"
	mv "$KDIR.new" "$KDIR"
fi
[ -z "$pkg" ] || touch "$KDIR/.checked" 2>/dev/null || true
v=$(kver)

# The ELF vmlinux, decompressed from the bzImage the way the kernel's own
# scripts/extract-vmlinux does: the payload is an xz stream (CONFIG_KERNEL_XZ)
# starting at the xz magic; what comes out is vmlinux.bin (a stripped ELF)
# followed by the relocation table, which we cut off at the ELF's end.
#
# le FILE OFFSET BYTES: a little-endian unsigned number from FILE.
le() { od -An -t u$3 -j "$2" -N "$3" --endian=little "$1" | tr -d ' '; }
if [ ! -s "$KDIR/vmlinux" ] || [ "$KDIR/bzImage" -nt "$KDIR/vmlinux" ]; then
	work_lock
	bz=$KDIR/bzImage
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n 1 | cut -d: -f1)
	[ -n "$off" ] || die "no xz payload in $bz (not CONFIG_KERNEL_XZ?)"
	tail -c +$((off + 1)) "$bz" | xz -dc --single-stream >"$KDIR/vmlinux.tmp"
	[ "$(head -c 4 "$KDIR/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] ||
		die "payload of $bz is not an ELF"
	# End of a stripped ELF = end of its section header table.
	shoff=$(le "$KDIR/vmlinux.tmp" 40 8)
	shentsize=$(le "$KDIR/vmlinux.tmp" 58 2)
	shnum=$(le "$KDIR/vmlinux.tmp" 60 2)
	truncate -s $((shoff + shentsize * shnum)) "$KDIR/vmlinux.tmp"
	mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
fi

echo "KVER=$v"
echo "BZIMAGE=$KDIR/bzImage"
echo "VMLINUX=$KDIR/vmlinux"
echo "MODULES=$KDIR/lib/modules/$v"
