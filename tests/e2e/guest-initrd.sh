#!/bin/bash
# tests/e2e/guest-initrd.sh: build the guest initramfs for the e2e tests and
# the benchmark, and print its path (tests/e2e/work/guest-initrd.cpio.gz).
#
# Contents: busybox-static (with a symlink per applet), the kernel's virtio
# modules and their dependencies (plain .ko, in load order), the /init
# below, every tests/e2e/guest/NAME.sh as /tests/NAME.sh, and every
# tests/e2e/guest/bin/NAME.c compiled (gcc -O2 -static -pthread) as /bin/NAME.
#
# The guest's /init mounts proc, sys and devtmpfs, inserts the modules, then
# runs /tests/NAME.sh for the kernel command-line parameter lgtest=NAME (a
# shell on the console without one) and finally reboots (`reboot -f`, which
# makes lguest exit 0).  To add a guest test, drop a NAME.sh into
# tests/e2e/guest/: it runs as root under busybox sh, prints lines starting
# with "LGTEST " for the host side to check, and may end with `reboot -f`.
# A guest script that needs more kernel modules says so in a comment line
#   # modules: NAME...
# (module names as modprobe knows them; dependencies come along).
#
# Rebuilt only when this script, a guest script or program, or the kernel
# changed.
set -eu
. "$(dirname "$0")/lib.sh"

# Modules the guest loads (dependencies are added from modules.dep; built-in
# ones, such as rng-core in Debian's kernel, are skipped).
GUEST_MODULES="virtio virtio_ring virtio_pci virtio_mmio virtio_blk
	virtio_net virtio_console virtio-rng pvpanic-mmio ${GUEST_MODULES_EXTRA:-}"
# ... and those the guest scripts ask for ("# modules: ..." lines).
GUEST_MODULES="$GUEST_MODULES $(sed -n 's/^# *modules: *//p' "$E2E"/guest/*.sh)"

OUT=$WORK/guest-initrd.cpio.gz
eval "$("$E2E/kernel.sh")"          # KVER, MODULES
BUSYBOX=$(command -v busybox) || die "busybox missing (apt-get install busybox-static)"
is_static "$BUSYBOX" ||
	die "$BUSYBOX is not static (apt-get install busybox-static)"

if newer_than "$OUT" "$0" "$E2E/lib.sh" "$E2E/guest" "$KDIR/.stamp" &&
	work_lock && newer_than "$OUT" "$0" "$E2E/lib.sh" "$E2E/guest" "$KDIR/.stamp"; then
	root=$WORK/guest-root
	rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,tmp,tests,lib/modules}

	cp "$BUSYBOX" "$root/bin/busybox"
	for applet in $("$BUSYBOX" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done

	# Modules, flat in /lib/modules, plus their load order.
	for ko in $(mod_closure $GUEST_MODULES); do
		name=${ko##*/}; name=${name%%.ko*}
		copy_module "$MODULES/$ko" "$root/lib/modules/$name.ko"
		echo "$name" >>"$root/lib/modules/load-order"
	done

	cp "$E2E"/guest/*.sh "$root/tests/"
	for c in "$E2E"/guest/bin/*.c; do
		[ -f "$c" ] || continue
		name=${c##*/}; name=${name%.c}
		rm -f "$root/bin/$name"
		gcc -O2 -static -pthread -o "$root/bin/$name" "$c" || die "cannot compile $c"
	done

	cat >"$root/init" <<'INIT'
#!/bin/sh
# /init of the lguest e2e guest (written by tests/e2e/guest-initrd.sh).
export PATH=/bin HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

failed=
while read -r m; do
	insmod "/lib/modules/$m.ko" 2>/dev/null || failed="$failed $m"
done </lib/modules/load-order
[ -z "$failed" ] || echo "init: insmod failed:$failed"

# lgtest=NAME on the kernel command line picks /tests/NAME.sh.
LGTEST=shell
for arg in $(cat /proc/cmdline); do
	case $arg in lgtest=*) LGTEST=${arg#lgtest=} ;; esac
done
export LGTEST
if [ -f "/tests/$LGTEST.sh" ]; then
	sh "/tests/$LGTEST.sh"
else
	echo "LGTEST error: no guest test named '$LGTEST'"
fi
reboot -f
INIT
	chmod +x "$root/init"

	make_cpio "$root" "$OUT"
	note "built $OUT ($(du -k "$OUT" | cut -f1) KiB)"
fi
echo "$OUT"
