#!/bin/bash
# tests/e2e/nested.sh CMD [ARGS...]: run CMD inside a "nested test machine"
# that has real KVM, and return CMD's exit status, stdout and stderr.
#
# Why: where /dev/kvm is PVM (software virtualization, no vmx/svm), KVM
# cannot boot a stock kernel.  So we boot Debian's stock kernel in QEMU's
# TCG emulator with an AMD CPU that has SVM + NPT; inside it kvm-amd gives a
# real (nested) /dev/kvm on which lguest can boot its guests.
#
# The outer machine:
#   - has NO network (-nic none), 2 vCPUs and 3 GiB (NESTED_MEM, in MiB);
#   - sees the host's root filesystem read-only over 9p (tag hostroot) and
#     chroots into it, so CMD runs the host's binaries, in the same cwd;
#   - has fresh tmpfs on /tmp, /run and /var/tmp (a cwd below /tmp is bound
#     back in), its own /proc, /sys, /dev (with /dev/kvm, /dev/net/tun);
#   - shares one writable directory, $NESTED_OUT (same path inside and out;
#     a temporary dir under tests/e2e/work/ unless the caller sets it, and
#     then kept), for files CMD wants to hand back;
#   - has these modules loaded: kvm + kvm-amd, tun, tap, bridge, vhost_net,
#     virtio, 9p.  For others: modprobe -d tests/e2e/work/kernel NAME;
#   - holds one idle VM of its own (tests/e2e/kvm-hold.py: it keeps the
#     guests CMD starts from patching the outer kernel's text, which can
#     hang TCG).
# CMD's stdout and stderr stream out through two virtio-serial ports; the
# outer kernel's console goes to $NESTED_OUT/console.log (shown on failure).
# CMD's environment: our PATH and HOME, TERM=dumb, NESTED_OUT, NESTED=1, and the
# variables named in $NESTED_ENV (space-separated).  stdin is /dev/null.
#
# Exit status: CMD's; 124 if the whole run exceeded NESTED_TIMEOUT seconds
# (default 900); 125 if the outer machine failed to run CMD; 126 if it hung
# (no heartbeat for NESTED_STALL seconds, default 90: see watch_machine),
# its kernel panicked or it reset itself.
set -eu
. "$(dirname "$0")/lib.sh"

[ $# -gt 0 ] || die "usage: $0 CMD [ARGS...]"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
NESTED_TIMEOUT=${NESTED_TIMEOUT:-900}
NESTED_MEM=${NESTED_MEM:-3072}
NESTED_STALL=${NESTED_STALL:-90}

# Modules of the outer machine, dependencies added from modules.dep.
OUTER_MODULES="virtio_pci 9pnet_virtio 9p virtio_console
	kvm_amd tun tap bridge vhost_net vhost_iotlb"

eval "$("$E2E/kernel.sh")"          # KVER, BZIMAGE, MODULES

# --- the outer initramfs (cached) --------------------------------------------
OUTER_INITRD=$WORK/outer-initrd.cpio.gz
if newer_than "$OUTER_INITRD" "$0" "$E2E/lib.sh" "$KDIR/.stamp" &&
	work_lock && newer_than "$OUTER_INITRD" "$0" "$E2E/lib.sh" "$KDIR/.stamp"; then
	BUSYBOX=$(command -v busybox) || die "busybox missing (apt-get install busybox-static)"
	root=$WORK/outer-root
	rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,host,hosttmp,results,lib/modules}
	cp "$BUSYBOX" "$root/bin/busybox"
	for applet in $("$BUSYBOX" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	for ko in $(mod_closure $OUTER_MODULES); do
		name=${ko##*/}; name=${name%%.ko*}
		copy_module "$MODULES/$ko" "$root/lib/modules/$name.ko"
		echo "$name" >>"$root/lib/modules/load-order"
	done
	cat >"$root/init" <<'INIT'
#!/bin/sh
# /init of the nested test machine (written by tests/e2e/nested.sh).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
	insmod "/lib/modules/$m.ko" 2>/dev/null || echo "init: insmod $m failed"
done </lib/modules/load-order

fail() { echo "init: $*"; poweroff -f; }
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$o,ro,cache=loose" hostroot /host || fail "cannot mount the host root"
mount -t 9p -o "$o" results /results || fail "cannot mount the results share"
. /results/job          # sets CWD and OUT, writes nothing

# The machine's own /proc, /sys, /dev and scratch dirs, inside the host root;
# a cwd below one of the scratch dirs is bound back in from the host.
mount --bind /host/tmp /hosttmp
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
ln -s /proc/self/fd /host/dev/fd        # what udev would add
ln -s fd/0 /host/dev/stdin; ln -s fd/1 /host/dev/stdout; ln -s fd/2 /host/dev/stderr
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
for d in /tmp /run /var/tmp; do
	[ -d "/host$d" ] && mount -t tmpfs -o mode=1777 tmpfs "/host$d"
done
case $CWD in /tmp/*)
	mkdir -p "/host$CWD" && mount --bind "/hosttmp/${CWD#/tmp/}" "/host$CWD" ;;
esac
mkdir -p "/host$OUT" 2>/dev/null
mount --bind /results "/host$OUT"

# CMD's stdout and stderr are the virtio-serial ports named so (devtmpfs
# makes their nodes asynchronously: wait up to 5 s for them).
for p in /sys/class/virtio-ports/*; do
	ln -s "/dev/${p##*/}" "/dev/nested-$(cat "$p/name")"
done
for i in $(seq 50); do
	[ -c /dev/nested-stdout ] && [ -c /dev/nested-stderr ] && break
	sleep 0.1
done

# The kernel's symbols, once per kernel (nested.sh keeps them in $KDIR, for
# cpu_snapshot: Debian's System.map is a placeholder).
[ -f /results/want-kallsyms ] && grep -E ' [tT] ' /proc/kallsyms | sort >/results/kallsyms
# A heartbeat in the results share: if the machine hangs or thrashes, the
# last entries say what it was doing (nested.sh shows them on a time-out).
while :; do
	{ date +%T; cat /proc/loadavg; grep -E '^(MemAvailable|Shmem):' /proc/meminfo
	  top -b -n 1 | sed -n '4,12p' | cut -c 1-150; } >>/results/heartbeat 2>&1
	sleep 20
done &
chroot /host /bin/bash "$OUT/job.run" </dev/null >/dev/nested-stdout 2>/dev/nested-stderr
echo $? >/results/rc
sync
poweroff -f
INIT
	chmod +x "$root/init"
	make_cpio "$root" "$OUTER_INITRD"
	note "built $OUTER_INITRD"
	exec 9>&-       # the lock: not held while the machine runs
fi

# --- the job ----------------------------------------------------------------
# $NESTED_OUT: given by the caller (and kept), or a temporary one.
if [ -n "${NESTED_OUT:-}" ]; then
	mkdir -p "$NESTED_OUT" && NESTED_OUT=$(cd "$NESTED_OUT" && pwd -P)
	rm -f "$NESTED_OUT"/{rc,heartbeat,cpus,hung,kallsyms}
else
	mkdir -p "$WORK"
	NESTED_OUT=$(mktemp -d "$WORK/nested.XXXXXX")
	trap 'rm -rf "$NESTED_OUT"' EXIT
fi
CWD=$(pwd -P)
KSYMS=$KDIR/kallsyms
[ -s "$KSYMS" ] || touch "$NESTED_OUT/want-kallsyms"
# job: read by /init (busybox sh) before the chroot; job.run: run in it.
{
	printf 'CWD=%q\nOUT=%q\n' "$CWD" "$NESTED_OUT"
} >"$NESTED_OUT/job"
{
	echo "# CMD, run by the nested machine's /init inside the host root."
	printf 'cd %q || exit 125\n' "$CWD"
	# An idle VM held for the whole run (kvm-hold.py says why), ready
	# (its vCPU made) before CMD's first guest: up to 10 s.
	printf 'python3 %q 2>/dev/null &\n' "$E2E/kvm-hold.py"
	echo 'for i in $(seq 100); do ls -l /proc/$!/fd 2>/dev/null | grep -q kvm-vcpu && break; sleep 0.1; done'
	printf 'exec env -i PATH=%q HOME=%q TERM=dumb NESTED=1 NESTED_OUT=%q' \
		"$PATH" "${HOME:-/root}" "$NESTED_OUT"
	for v in ${NESTED_ENV:-}; do
		[ -n "${!v+set}" ] && printf ' %q' "$v=${!v}"
	done
	printf ' %q' "$@"
	echo
} >"$NESTED_OUT/job.run"

# cpu_snapshot: each vCPU's instruction pointer, three times 0.3 s apart,
# as the outer kernel's symbols (it boots with nokaslr; an address outside
# its text is the nested guest's), asked of QEMU's monitor.  For a machine
# that hangs: which code it is stuck in.
cpu_snapshot() {
	local map=$KSYMS i
	for i in 1 2 3; do
		python3 - "$NESTED_OUT/monitor.sock" <<'PY' 2>&1
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(2)
s.sendall(b"info registers -a\n")
time.sleep(1)
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b: break
        out += b
except socket.timeout:
    pass
print(out.decode(errors="replace"))
PY
		sleep 0.3
	done | grep -oE '^CPU#[0-9]+|RIP=[0-9a-f]+' | paste -d' ' - - |
		awk -v map="$map" '
		BEGIN { while (map != "" && (getline l < map) > 0) { split(l, f, " ");
			a[n] = f[1]; s[n++] = f[3] } }
		{ rip = substr($2, 5); best = "(not the outer kernel)"
		  if (n > 0 && a[0] <= rip && rip < a[n - 1])
			for (i = 0; i < n && a[i] <= rip; i++) best = s[i]
		  print $1, rip, best }'
}

# watch_machine: in the background while QEMU runs.  A machine whose
# heartbeat stops for NESTED_STALL seconds has hung (its kernel, not CMD:
# seen once in a few dozen SIGKILLs of a nested guest, an emulator or
# nested-SVM fault, never natively): its CPUs are recorded, "hung" is
# written and QEMU is stopped, so the caller learns it in a minute or two
# rather than at NESTED_TIMEOUT.  Just before the time-out the CPUs are
# recorded too.
watch_machine() {
	local hb=$NESTED_OUT/heartbeat t=0 age boot=60
	while sleep 5; do
		t=$((t + 5))
		if [ $t -ge $((NESTED_TIMEOUT - 10)) ]; then
			cpu_snapshot >"$NESTED_OUT/cpus"
			return
		fi
		# (the first beat comes once it has booted: give it a minute)
		if [ -f "$hb" ]; then
			age=$(($(date +%s) - $(stat -c %Y "$hb")))
		else
			age=$((t - boot))
		fi
		if [ $age -ge "$NESTED_STALL" ]; then
			cpu_snapshot >"$NESTED_OUT/cpus"
			echo "no heartbeat for $age s" >"$NESTED_OUT/hung"
			kill -TERM $qpid 2>/dev/null
			return
		fi
	done
}

# --- boot -------------------------------------------------------------------
# Host -> guest: the host root read-only, the job dir writable.  Guest ->
# host: the console to a log file; CMD's stdout/stderr through FIFOs (QEMU's
# "pipe" chardev, PATH.in + PATH.out) that cat copies to ours.  (A QEMU
# "file" chardev on /dev/stdout would write through its own file offset and
# clobber a redirected output file.)
#
# The CPU: EPYC with SVM and nested paging, less the features TCG lacks
# (which it would drop anyway, with a warning for each).
CPU=EPYC,+svm,+npt,-rdseed,-sha-ni,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw,-topoext,-nrip-save,-xsavec
for f in stdout stderr; do
	rm -f "$NESTED_OUT/$f".* && mkfifo "$NESTED_OUT/$f.in" "$NESTED_OUT/$f.out"
done
cat "$NESTED_OUT/stdout.out" & cat_out=$!
cat "$NESTED_OUT/stderr.out" >&2 & cat_err=$!

start=$(date +%s.%N)
set +e
# In the background, so that a signal to us (^C, or a harness's timeout)
# reaches QEMU through `timeout` rather than leaving it running.
timeout --kill-after=10 "$NESTED_TIMEOUT" qemu-system-x86_64 \
	-accel tcg,thread=multi -cpu "$CPU" -smp 2 -m "$NESTED_MEM" \
	-nic none -nodefaults -no-user-config -display none -no-reboot \
	-kernel "$BZIMAGE" -initrd "$OUTER_INITRD" \
	-append "console=ttyS0 panic=-1 quiet mitigations=off nokaslr rdinit=/init" \
	-serial "file:$NESTED_OUT/console.log" \
	-monitor "unix:$NESTED_OUT/monitor.sock,server=on,wait=off" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$NESTED_OUT,mount_tag=results,security_model=none" \
	-device virtio-serial-pci \
	-chardev "pipe,id=out,path=$NESTED_OUT/stdout" \
	-device virtserialport,chardev=out,name=stdout \
	-chardev "pipe,id=err,path=$NESTED_OUT/stderr" \
	-device virtserialport,chardev=err,name=stderr \
	</dev/null &
qpid=$!
watch_machine &
watcher=$!
trap 'kill -TERM $qpid 2>/dev/null' INT TERM HUP
wait $qpid
qrc=$?
while kill -0 $qpid 2>/dev/null; do wait $qpid; qrc=$?; done    # after a signal
trap - INT TERM HUP
kill $watcher 2>/dev/null
set -e
end=$(date +%s.%N)
# Let the cats finish: opening a FIFO read-write (and closing it) releases
# a cat still waiting in open() because QEMU never got that far.
for f in stdout stderr; do exec 3<>"$NESTED_OUT/$f.out"; exec 3>&-; done
wait $cat_out $cat_err

if [ -s "$NESTED_OUT/kallsyms" ]; then
	mv "$NESTED_OUT/kallsyms" "$KSYMS.tmp" && mv "$KSYMS.tmp" "$KSYMS"
fi
rm -f "$NESTED_OUT/want-kallsyms"
if [ -s "$NESTED_OUT/rc" ]; then
	rc=$(cat "$NESTED_OUT/rc")
else
	# Its own kernel crashing (seen: "stack guard page was hit" in a
	# vCPU thread of lguest, under TCG's nested SVM) counts as a hang.
	if [ ! -f "$NESTED_OUT/hung" ] && grep -q "Kernel panic" "$NESTED_OUT/console.log"; then
		grep -m 1 -E "BUG:|Kernel panic" "$NESTED_OUT/console.log" |
			sed 's/^\[[ 0-9.]*\] /its kernel crashed: /' >"$NESTED_OUT/hung"
	fi
	# With -no-reboot, a machine that resets itself (a triple fault of
	# its own: no message; seen under TCG's nested SVM, mid-run) makes
	# QEMU exit 0 before CMD is done: a crash too.
	if [ ! -f "$NESTED_OUT/hung" ] && [ $qrc = 0 ]; then
		echo "it reset itself (QEMU exited 0 before CMD finished)" >"$NESTED_OUT/hung"
	fi
	if [ -f "$NESTED_OUT/hung" ]; then
		rc=126
		note "the nested machine stopped: $(cat "$NESTED_OUT/hung")"
	elif [ $qrc = 124 ]; then
		rc=124
	else
		rc=125
	fi
	note "the nested machine did not finish CMD (qemu status $qrc); its console:"
	tail -n 30 "$NESTED_OUT/console.log" | sed 's/^/  | /' >&2
	note "its CPUs at the end, then its last heartbeat:"
	cat "$NESTED_OUT/cpus" 2>/dev/null | sed 's/^/  | /' >&2
	tail -n 14 "$NESTED_OUT/heartbeat" 2>/dev/null | sed 's/^/  | /' >&2
fi
[ -z "${NESTED_VERBOSE:-}" ] ||
	note "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f s in the nested machine", e - s }')"
exit "$rc"
