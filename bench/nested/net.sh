#!/bin/bash
# bench/nested/net.sh: network throughput rows of `make bench`, run by
# bench/run where KVM can boot a stock kernel (inside the nested test
# machine here, natively on a host with vmx/svm).
#
# One guest workload (tests/e2e/guest/netbench.sh: Debian's stock kernel,
# the e2e guest initramfs, 256 MiB, 1 vCPU), two launchers, each on a tap
# with a link-local /24 of its own:
#   lguest  --tunnet=<sub>.1/24          (vhost-net)
#   qemu    microvm,pcie=on + virtio-net-pci on tap qtap0, vhost=on
# and, the userspace backends, lguest ",vhost=off" against QEMU vhost=off.
# The guest sends NET_MIB MiB (default 128: about a second at the
# 100-200 MB/s of the nested machine, long past TCP's ramp) to the host
# over TCP with tcpstream (tests/e2e/guest/bin/tcpstream.c), then
# receives as much: one round per boot, NET_ROUNDS rounds per row (default
# BENCH_RUNS, or 3).  Boots alternate between lguest and QEMU, in pairs
# whose first alternates too (lguest, QEMU, QEMU, lguest, ...), so a nested
# machine that drifts slower or faster over the minutes a row takes weighs
# on both alike; a boot that ends
# early (see run) keeps what it finished and is followed by another.
# The host side (a python3 server here) times each transfer: from accept()
# to the end of the fixed byte count (guest to host), and from accept() to
# the guest closing after it has read every byte (host to guest).  Rows:
# the median of the rounds in MB/s (10^6 bytes per second), then
# lguest / QEMU against the target (>= 1.20).  It also counts the host
# CPU time each kind of thread used during each transfer (cpu_note): in
# this nested machine the guest's vCPU thread is busy ~90% of a transfer
# under either launcher, and the same kernel code (TCP, tap, vhost) does
# the rest, so those lines show where a difference between the two comes
# from, or that it is the machine's noise; and the guest's VM exits per
# transfer (exits_on), which is where the two differ: in one nested
# measurement (median of 5) lguest's guest made ~4960 exits sending 128
# MiB, QEMU's ~3710, 1760 against 395 of them EOI writes (QEMU offers PV
# EOI, which lguest hides: doc/pv-eoi.md); lguest's queue kicks are port
# writes, QEMU's memory writes that KVM must decode.
#
# Every address is 169.254.x.x on taps made here and gone at the end; the
# nested machine has no other network.
#
# For studies of the noise: NET_PER_BOOT rounds per boot (default 1; every
# round counts, so the last boot can bring a row past NET_ROUNDS), and
# NET_SHOW=1 lists each transfer (row, direction, round in its boot,
# bytes, seconds) after the rows.  In one such study (3 boots x 4 rounds
# per row) host->guest times stayed within ~15% of each other in a boot
# and across boots, while guest->host ones ranged 2-3x within a single
# boot, for QEMU as for lguest.
#
# Uses BZIMAGE, INITRD, LGUEST, QEMU_FW (set by bench/run; the defaults
# find them in the tree), NET_MIB, NET_ROUNDS, NET_PER_BOOT, NET_SHOW,
# BENCH_TIMEOUT.
set -u
cd "$(dirname "$0")/../.."
. bench/nested-lib.sh
: "${NET_MIB:=128}"
: "${NET_ROUNDS:=$BENCH_RUNS}"

if [ -z "$PYTHON3" ]; then
	echo "# SKIP: no python3 for the host side"
	exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lguest-netbench.XXXXXX")
SERVER=
QTAP=qtap0
cleanup() {
	[ -n "$SERVER" ] && { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
	ip link del "$QTAP" 2>/dev/null
	exits_off
	rm -rf "$TMP"
}
trap cleanup EXIT

# The guest's VM exits, counted by KVM's tracepoints (histogram triggers,
# so no event is logged, only counted): every exit, and the two MSR
# writes a busy Linux guest makes most, the x2APIC's EOI (0x80b: one per
# interrupt, unless PV EOI spares it) and the TSC-deadline timer (0x6e0),
# and the interrupts KVM injected.  One VM runs at a time here, so the
# counts are that guest's.  In the nested machine an exit is dear (the
# outer machine emulates both worlds' switch), so the counts per transfer
# say much of why one launcher's guest moves bytes faster than another's.
# Where tracefs or its histograms are missing, the notes just lack them.
KVM_EV=/sys/kernel/tracing/events/kvm
EXIT_TRIGGERS="kvm_exit:hist:keys=exit_reason kvm_msr:hist:keys=ecx,write kvm_inj_virq:hist:keys=vector"
exits_on() {
	local t
	[ -d /sys/kernel/tracing/events ] ||
		mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
	for t in $EXIT_TRIGGERS; do
		echo "${t#*:}" >"$KVM_EV/${t%%:*}/trigger" 2>/dev/null || { exits_off; return; }
	done
}
exits_off() {
	local t
	for t in $EXIT_TRIGGERS; do
		echo "!${t#*:}" >"$KVM_EV/${t%%:*}/trigger" 2>/dev/null
	done
}

cat >"$TMP/server.py" <<'PY'
# The host half: ROUNDS x (port 5001 receives SIZE bytes, port 5002 sends
# SIZE bytes), each timed; one "up|down ROUND BYTES SECONDS" line per
# transfer, then a "cpu up|down ROUND ..." line: the host CPU seconds each
# kind of thread used meanwhile (see cpu_split()).
import os, socket, sys, time
out, size, rounds, tmo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
KINDS = ("vcpu", "launcher", "vhost", "sender", "rest")
EXIT_KINDS = ("exits", "eoi", "timer", "irqs")

def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.listen(1)
    s.settimeout(tmo)
    return s

def kind(pid, comm, main):
    if pid == os.getpid():
        return "sender"
    if comm.startswith("vhost-"):
        return "vhost"
    if main in ("lguest", "qemu-system-x86"):
        # lguest names its vCPU threads lg-vcpuN, QEMU (debug-threads) "CPU N/KVM".
        return "vcpu" if "vcpu" in comm or comm.endswith("/KVM") else "launcher"
    return "rest"

def cpu_split():
    """Clock ticks used so far by each kind of thread, and the machine's busy/all ticks."""
    used = dict.fromkeys(KINDS, 0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            main = open("/proc/%s/comm" % pid).read().strip()
            for tid in os.listdir("/proc/%s/task" % pid):
                st = open("/proc/%s/task/%s/stat" % (pid, tid)).read()
                comm, rest = st[st.index("(") + 1:st.rindex(")")], st[st.rindex(")") + 2:].split()
                used[kind(int(pid), comm, main)] += int(rest[11]) + int(rest[12])
        except (OSError, ValueError):
            pass        # a thread that ended meanwhile
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return used, sum(f) - f[3] - f[4], sum(f)

def exit_counts():
    """Exits, EOI and timer MSR writes, injected interrupts so far (see exits_on)."""
    n = dict.fromkeys(EXIT_KINDS, 0)
    for ev in ("kvm_exit", "kvm_msr", "kvm_inj_virq"):
        try:
            lines = open("/sys/kernel/tracing/events/kvm/%s/hist" % ev).read().splitlines()
        except OSError:
            return None
        if not any(l.startswith("# trigger info: hist") for l in lines):
            return None     # no histogram here (exits_on could not set it)
        for l in lines:
            if not l.startswith("{") or "hitcount:" not in l:
                continue
            key, hits = l.split("hitcount:")
            hits = int(hits.split()[0])
            if ev == "kvm_exit":
                n["exits"] += hits
            elif ev == "kvm_inj_virq":
                n["irqs"] += hits
            else:
                fields = {k.strip(): int(v) for k, v in
                          (kv.split(":") for kv in key.strip("{} ").split(","))}
                if fields["write"] == 1:
                    msr = fields["ecx"]
                    if msr == 0x80b:
                        n["eoi"] += hits
                    elif msr == 0x6e0:
                        n["timer"] += hits
    return n

def exits_line(d, r, a, b):
    if a is None or b is None:
        return ""
    return "exits %s %d %s\n" % (d, r, " ".join("%s=%d" % (k, b[k] - a[k]) for k in EXIT_KINDS))

def cpu_line(d, r, a, b):
    hz = os.sysconf("SC_CLK_TCK")
    return "cpu %s %d %s busy=%.2f all=%.2f\n" % (d, r, " ".join(
        "%s=%.2f" % (k, (b[0][k] - a[0][k]) / hz) for k in KINDS),
        (b[1] - a[1]) / hz, (b[2] - a[2]) / hz)

up, down = listen(5001), listen(5002)
open(out + ".ready", "w").close()
buf = bytearray(1 << 20)
data = bytes(size)
with open(out, "w", buffering=1) as f:
    for r in range(1, rounds + 1):
        c, _ = up.accept()
        c.settimeout(tmo)
        # The guest sends from the moment we accept: the clock starts
        # first, the /proc walk after it (it takes a while when nested).
        t, e, a, n = time.monotonic(), exit_counts(), cpu_split(), 0
        while True:
            k = c.recv_into(buf)
            if not k:
                break
            n += k
        f.write("up %d %d %.6f\n" % (r, n, time.monotonic() - t))
        f.write(exits_line("up", r, e, exit_counts()))
        f.write(cpu_line("up", r, a, cpu_split()))
        c.close()
        c, _ = down.accept()
        c.settimeout(tmo)
        a, e, t = cpu_split(), exit_counts(), time.monotonic()
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        while c.recv_into(buf):     # until the guest has read it all and closed
            pass
        f.write("down %d %d %.6f\n" % (r, size, time.monotonic() - t))
        f.write(exits_line("down", r, e, exit_counts()))
        f.write(cpu_line("down", r, a, cpu_split()))
        c.close()
PY

APPEND="console=ttyS0 quiet reboot=t panic=-1 tsc=reliable no_timer_check"
APPEND="$APPEND i8042.noaux i8042.nomux i8042.nopnp 8250.nr_uarts=1 cryptomgr.notests"
SIZE=$((NET_MIB * 1048576))
ROUNDS=${NET_PER_BOOT:-1}	# per boot; boots take turns (see pair)
declare -A mbps resets boots

# run ROW CMD...: one boot: start the server for $ROUNDS rounds, run CMD
# (a guest asked for as many), and append each transfer that completed to
# $TMP/ROW.res.  A guest that ends early (in the nested machine, guests of
# QEMU and of lguest alike sometimes reset mid-transfer, with no message:
# see README, "Benchmarks") keeps the rounds it finished; its output's end
# goes to the notes.
run() {
	local row=$1 st i
	shift
	rm -f "$TMP/res" "$TMP/res.ready"
	"$PYTHON3" "$TMP/server.py" "$TMP/res" "$SIZE" "$ROUNDS" "$BENCH_TIMEOUT" \
		>"$TMP/server.log" 2>&1 &
	SERVER=$!
	for ((i = 0; i < 300; i++)); do
		[ -e "$TMP/res.ready" ] || ! kill -0 $SERVER 2>/dev/null && break
		sleep 0.1
	done
	bench_timeout "$BENCH_TIMEOUT" "$@" </dev/null >"$TMP/log" 2>&1 && st=0 || st=$?
	kill "$SERVER" 2>/dev/null
	wait "$SERVER" 2>/dev/null
	SERVER=
	# A download counts once the guest, too, says it got every byte.
	{
		awk -v n="$SIZE" '$1 == "up" && $3 == n' "$TMP/res"
		tr -d '\r' <"$TMP/log" |
			awk -v n="$SIZE" '$1 == "LGTEST" && $3 == "down" && $5 == n { print $4 }' |
			while read -r r; do
				awk -v r="$r" -v n="$SIZE" '$1 == "down" && $2 == r && $3 == n' "$TMP/res"
			done
	} 2>/dev/null >"$TMP/ok"
	cat "$TMP/ok" >>"$TMP/$row.res"
	# The host CPU those transfers used, and the guest's exits.
	awk 'NR == FNR { ok[$1 " " $2] = 1; next } ($1 == "cpu" || $1 == "exits") && ok[$2 " " $3]' \
		"$TMP/ok" "$TMP/res" >>"$TMP/$row.cpu" 2>/dev/null
	if [ $st != 0 ] || ! grep -q "LGTEST netbench done" "$TMP/log"; then
		echo "# $row: boot ${boots[$row]} ended early (exit $st); the end of its output:"
		run_log_tail "$TMP/log"
		cat "$TMP/server.log" "$TMP/res" 2>/dev/null | tail -n 4 | sed 's/^/#   host: /'
		resets[$row]=$((${resets[$row]:-0} + 1))
		return
	fi
	# What the guest's last complete boot cost it (see the notes).
	tr -d '\r' <"$TMP/log" | sed -n "s/^LGTEST netbench stats /# $row guest: /p" >"$TMP/$row.stats"
}

# missing ROW: the rounds ROW still lacks (the fewer direction counts).
missing() {
	local up down
	up=$(grep -c '^up ' "$TMP/$1.res")
	down=$(grep -c '^down ' "$TMP/$1.res")
	echo $((NET_ROUNDS - (up < down ? up : down)))
}

# wants ROW: ROW still lacks a round and has boots left (2 x NET_ROUNDS
# + 2: in the nested machine, guests of both launchers reset mid-transfer
# now and then).
wants() {
	[ "$(missing "$1")" -gt 0 ] && [ "${boots[$1]:-0}" -lt $((2 * NET_ROUNDS + 2)) ]
}

# boot_row ROW LAUNCHER ARGS...: one more boot of ROW by "LAUNCHER
# ARGS..." (lguest_run or qemu_run), asked for one round, if ROW wants it.
boot_row() {
	wants "$1" || return 0
	boots[$1]=$((${boots[$1]:-0} + 1))
	"${@:2}"
}

# cpu_note ROW DIR: a note line with the medians, over ROW's DIR
# transfers, of the host CPU seconds each kind of thread used during one:
# the launcher's vCPU thread, its other threads, the vhost-net worker, the
# sender/receiver on the host (the server), everything else (kworkers,
# softirq threads), and the machine's busy and total CPU time (2 CPUs);
# then one with the medians of the guest's exits per transfer (exits_on),
# when they were counted.  Both come from ROW.cpu (run).
cpu_note() {
	local line
	line=$(medians "$1" cpu "$2" %.2f vcpu launcher vhost sender rest busy all)
	[ -z "$line" ] || echo "# $1 $2: host CPU s per transfer (medians):$line"
	line=$(medians "$1" exits "$2" %d exits eoi timer irqs)
	[ -z "$line" ] || echo "# $1 $2: guest exits per transfer (medians):$line"
}

# medians ROW TYPE DIR FORMAT KEY...: " KEY=median" for each KEY, over
# ROW's "TYPE DIR ROUND KEY=VALUE..." lines.
medians() {
	local row=$1 type=$2 dir=$3 fmt=$4 k med
	shift 4
	for k in "$@"; do
		med=$(awk -v t="$type" -v d="$dir" -v k="$k" '$1 == t && $2 == d {
			for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' \
			"$TMP/$row.cpu" 2>/dev/null | median "$fmt")
		[ -n "$med" ] && printf ' %s=%s' "$k" "$med"
	done
}

# pair LROW LSUB LOPTS QROW QSUB QVHOST: boot_row lguest (lguest_run LROW
# LSUB LOPTS) and QEMU (qemu_run QROW QSUB QVHOST) in turn until neither
# wants more; then each row's median MB/s per direction in mbps[ROW,up]
# and mbps[ROW,down].
pair() {
	local row dir med turn=0
	: >"$TMP/$1.res"
	: >"$TMP/$4.res"
	: >"$TMP/$1.cpu"
	: >"$TMP/$4.cpu"
	while wants "$1" || wants "$4"; do
		if ((turn++ % 2)); then
			boot_row "$4" qemu_run "$4" "$5" "$6"
			boot_row "$1" lguest_run "$1" "$2" "$3"
		else
			boot_row "$1" lguest_run "$1" "$2" "$3"
			boot_row "$4" qemu_run "$4" "$5" "$6"
		fi
	done
	for row in "$1" "$4"; do
		cat "$TMP/$row.stats" >>"$TMP/notes" 2>/dev/null
		cpu_note "$row" up >>"$TMP/notes"
		cpu_note "$row" down >>"$TMP/notes"
		[ -z "${resets[$row]:-}" ] ||
			echo "# $row: ${resets[$row]} of ${boots[$row]} boots ended early; the rows use the transfers that completed" >>"$TMP/notes"
		for dir in up down; do
			[ "$(grep -c "^$dir " "$TMP/$row.res")" -ge "$NET_ROUNDS" ] || continue
			med=$(awk -v d=$dir '$1 == d { print $3 / $4 / 1e6 }' "$TMP/$row.res" | median %.1f)
			mbps[$row,$dir]=$med
		done
	done
}

# guest_args SUB: the guest's part of the command line, for $ROUNDS rounds.
guest_args() {
	echo "lgtest=netbench lgnbmib=$NET_MIB lgnbrounds=$ROUNDS lgnet=$1.2,$1.1"
}

# qemu_run ROW SUB VHOST: QEMU on a tap of our own with <SUB>.1/24.
qemu_run() {
	local row=$1 sub=$2 vhost=$3
	ip link del "$QTAP" 2>/dev/null
	if ! ip tuntap add "$QTAP" mode tap || ! ip addr add "$sub.1/24" dev "$QTAP" ||
		! ip link set "$QTAP" up; then
		echo "# $row: cannot make tap $QTAP"
		return
	fi
	run "$row" qemu-system-x86_64 -M microvm,pcie=on -enable-kvm -cpu host -m 256 -smp 1 \
		-name lgbench,debug-threads=on -nodefaults -no-user-config -nographic -serial stdio -L "$QEMU_FW" \
		-kernel "$BZIMAGE" -initrd "$INITRD" -no-reboot \
		-append "$APPEND $(guest_args "$sub")" \
		-netdev tap,id=n0,ifname=$QTAP,script=no,downscript=no,vhost=$vhost \
		-device virtio-net-pci,netdev=n0
	ip link del "$QTAP" 2>/dev/null
}

# lguest_run ROW SUB OPTS
lguest_run() {
	run "$1" "$LGUEST" --tunnet="$2.1/24$3" --initrd="$INITRD" 256 "$BZIMAGE" \
		$(guest_args "$2")
}

exits_on
pair lguest-vhost 169.254.171 "" qemu-vhost 169.254.172 on
pair lguest-user 169.254.173 ",vhost=off" qemu-user 169.254.174 off

where=native
[ -n "${NESTED:-}" ] && where="nested KVM (TCG + SVM outer machine)"
echo "net: TCP, $NET_MIB MiB per transfer, 256 MiB, 1 vCPU, $where; median of $NET_ROUNDS; MB/s"
echo "     (qemu: microvm,pcie=on + virtio-net-pci on a tap)"
printf '%-34s %9s %9s\n' row lguest qemu
# ratio NAME LROW QROW DIR
row() {
	local l=${mbps[$2,$4]:-} q=${mbps[$3,$4]:-}
	printf '%-34s %9s %9s' "$1" "${l:-failed}" "${q:-failed}"
	if [ -z "$l" ] || [ -z "$q" ]; then
		printf '   ratio n/a\n'
		return
	fi
	awk -v l="$l" -v q="$q" 'BEGIN { r = (q > 0) ? l / q : 99
		printf "   ratio %.2f  target >= 1.20  %s\n", r, (r >= 1.2) ? "met" : "MISSED" }'
}
row "guest->host, vhost-net" lguest-vhost qemu-vhost up
row "host->guest, vhost-net" lguest-vhost qemu-vhost down
row "guest->host, userspace" lguest-user qemu-user up
row "host->guest, userspace" lguest-user qemu-user down
cat "$TMP/notes" 2>/dev/null
if [ -n "${NET_SHOW:-}" ]; then
	for f in "$TMP"/*.res; do
		sed "s|^|# $(basename "$f" .res) |" "$f"
	done
fi
