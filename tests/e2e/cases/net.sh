# tests/e2e/cases/net.sh: the host side of the virtio-net end-to-end tests.
#
# Sourced (bash) by tests/e2e/run-cases.sh, inside the nested test machine
# (which has tun, bridge and vhost_net, and no network of its own: every
# address here is link-local 169.254.x.x on taps and bridges we make and
# remove).  Each case_* function returns 0 on success and prints its
# diagnostics on stderr.  Variables as in tests/e2e/cases/blk.sh, plus
# NET_TIMEOUT (default 300 s).  The guest halves are
# tests/e2e/guest/net.sh, net-pair.sh and net-idle.sh.
#
#   case_net            ping + 2 MiB TCP each way, userspace backend
#   case_net_vhost      the same through vhost-net (needs /dev/vhost-net)
#   case_net_bridge     two guests on one bridge ping each other
#   case_net_errors     bad --tunnet arguments: exit 2, one line, no tap
#   case_net_signals    SIGTERM and SIGKILL leave no tap behind
#   case_net_unit       the unit tests (vhost part included) on this kernel

# Cases may run under "set -e": every status is caught with "&& st=0 || st=$?".
# Return 77 skips (tests/e2e/run-cases.sh), the last line printed saying why.

net_setup() {
	: "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
	: "${LGUEST:=$TOP/lguest}"
	: "${NET_TIMEOUT:=300}"
	if [ -z "${BZIMAGE:-}" ]; then
		eval "$("$TOP/tests/e2e/kernel.sh")" || return 1
	fi
	: "${INITRD:=$("$TOP/tests/e2e/guest-initrd.sh")}"
	NET_DIR=$(mktemp -d "${CASE_TMP:-${TMPDIR:-/tmp}}/lguest-net.XXXXXX") || return 1
	# A /24 of our own in 169.254.0.0/16 (the nested machine has no other).
	NET_SUB=169.254.$((60 + RANDOM % 100))
}

net_fail() {
	for f in "$NET_DIR"/*.log "$NET_DIR"/*.err; do
		[ -s "$f" ] || continue
		echo "net: --- ${f##*/}" >&2
		# Its test's reports, then its last words (kept short: the case's
		# end, 40 lines, is all that is shown of it).
		{ tr -d '\r' <"$f" | grep '^LGTEST' | tail -n 4; tr -d '\r' <"$f" | tail -n 4; } |
			sed 's/^/net: | /' >&2
	done
	echo "net: $*" >&2
	net_cleanup
	return 1
}

# Whatever a failed case left: servers, guests, bridges.
net_cleanup() {
	local p
	for p in ${NET_PIDS:-}; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	NET_PIDS=
	[ -n "${NET_BRIDGE:-}" ] && ip link del "$NET_BRIDGE" 2>/dev/null
	NET_BRIDGE=
	true
}

# net_taps: the lguest taps that exist now ("" if none).
net_taps() {
	ls /sys/class/net 2>/dev/null | grep '^lguest' | tr '\n' ' '
}

# net_val LOG TEST NAME: the value the guest printed as "LGTEST TEST NAME VALUE".
net_val() {
	tr -d '\r' <"$1" | awk -v t="$2" -v k="$3" '$1 == "LGTEST" && $2 == t && $3 == k { print $4; exit }'
}

# The host half of the TCP test: port 5001 hashes what it is sent, port
# 5002 sends 2 MiB and closes.  Any address: the machine has no network.
net_server() {
	cat >"$NET_DIR/server.py" <<'PY'
import hashlib, socket, sys
out, size = sys.argv[1], int(sys.argv[2])

def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.listen(1)
    s.settimeout(int(sys.argv[3]))
    return s

up, down = listen(5001), listen(5002)
open(out + ".ready", "w").close()   # the guest may connect from now on
c, _ = up.accept()
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(65536)
    if not b:
        break
    h.update(b)
    n += len(b)
c.close()
with open(out, "w") as f:
    f.write("%d %s\n" % (n, h.hexdigest()))
c, _ = down.accept()
c.sendall((b"lguest-net-down\n" * (size // 16 + 1))[:size])
c.close()
PY
	"$PYTHON3" "$NET_DIR/server.py" "$NET_DIR/upload" 2097152 "$NET_TIMEOUT" \
		>"$NET_DIR/server.log" 2>&1 &
	NET_PIDS="${NET_PIDS:-} $!"
	# Python starts slowly in the nested machine, and a guest boots in a
	# few seconds: start the guest only once the ports are listening.
	local i=0
	while [ ! -e "$NET_DIR/upload.ready" ] && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# net_guest OPTS: one boot of the "net" guest on --tunnet=<sub>.1/24OPTS.
net_guest() {
	timeout -k 10 "$NET_TIMEOUT" "$LGUEST" --verbose --tunnet="$NET_SUB.1/24$1" \
		--initrd="$INITRD" 256 "$BZIMAGE" lgtest=net lgnet="$NET_SUB.2,$NET_SUB.1" \
		</dev/null >"$NET_DIR/guest.log" 2>"$NET_DIR/lguest.err"
}

# net_transfer OPTS BACKEND: boot a guest on --tunnet=<sub>.1/24OPTS, ping,
# 2 MiB each way; the card must have been served by BACKEND.
#
# In the nested test machine a guest sometimes resets itself mid-transfer
# (a triple fault, no message), QEMU's guests as well as ours: see
# tests/e2e/cases/console.sh.  Such a boot is noted and the guest booted
# again, up to NET_BOOTS (5) times while another boot fits in the time.
net_transfer() {
	local opts=$1 backend=$2 st want_up want_down got boot t0
	net_setup || return 1
	[ -z "$(net_taps)" ] || net_fail "taps left from before: $(net_taps)" || return 1
	want_up=$(yes lguest-net-up | head -c 2097152 | sha256sum | cut -d' ' -f1)
	want_down=$(yes lguest-net-down | head -c 2097152 | sha256sum | cut -d' ' -f1)
	for ((boot = 1; ; boot++)); do
		net_server
		t0=$SECONDS
		net_guest "$opts" && st=0 || st=$?
		guest_reset "$NET_DIR/lguest.err" || break
		echo "note: boot $boot: the guest reset itself (triple fault) after:" \
			"$(tr -d '\r' <"$NET_DIR/guest.log" | grep '^LGTEST net' | tail -n 1)" >&2
		boot_again "$boot" "${NET_BOOTS:-5}" "$t0" || break
		net_cleanup
		rm -f "$NET_DIR/upload" "$NET_DIR/upload.ready"
	done
	guest_reset "$NET_DIR/lguest.err" &&
		{ net_fail "the guest reset itself in each of $boot boots"; return 1; }
	[ $st -eq 0 ] || net_fail "lguest exited $st$(status_why $st "$NET_TIMEOUT")" || return 1
	grep -q "LGTEST net done" "$NET_DIR/guest.log" || net_fail "the guest did not finish" || return 1
	grep -q "served by $backend" "$NET_DIR/lguest.err" ||
		net_fail "the card was not served by $backend" || return 1
	case $(net_val "$NET_DIR/guest.log" net mac) in
	02:*) ;;
	*) net_fail "guest MAC '$(net_val "$NET_DIR/guest.log" net mac)' is not locally administered" ||
		return 1 ;;
	esac
	[ "$(net_val "$NET_DIR/guest.log" net ping)" = ok ] || net_fail "guest could not ping the host" ||
		return 1
	[ "$(net_val "$NET_DIR/guest.log" net upload)" = ok ] || net_fail "the upload failed" || return 1
	got=$(cat "$NET_DIR/upload" 2>/dev/null)
	[ "$got" = "2097152 $want_up" ] || net_fail "host received '$got', want 2097152 $want_up" ||
		return 1
	[ "$(net_val "$NET_DIR/guest.log" net download)" = "$want_down" ] ||
		net_fail "the guest's download hashes to $(net_val "$NET_DIR/guest.log" net download)" ||
		return 1
	[ -z "$(net_taps)" ] || net_fail "taps left after exit: $(net_taps)" || return 1
	net_cleanup
	rm -rf "$NET_DIR"
}

case_net() {
	net_transfer ",vhost=off" userspace
}

case_net_vhost() {
	if [ ! -c /dev/vhost-net ]; then
		echo "no /dev/vhost-net here (modprobe vhost_net)"
		return 77
	fi
	net_transfer "" vhost-net
}

# net_pair_guest NAME ME PEER: start guest NAME (a or b) on the bridge, in
# the background; its pid in NET_PID.
net_pair_guest() {
	"$LGUEST" --verbose --tunnet="bridge:$NET_BRIDGE" --initrd="$INITRD" 128 "$BZIMAGE" \
		lgtest=net-pair lgnet="$NET_SUB.$2,$NET_SUB.$3" </dev/null >"$NET_DIR/$1.log" \
		2>"$NET_DIR/$1.err" &
	NET_PID=$!
}

# net_pair_boot: both guests, until both end; if one's guest resets itself
# (see net_transfer) the other, left pinging nobody, is stopped too.
# Their statuses in sta and stb.
net_pair_boot() {
	local a b i
	net_pair_guest a 2 3
	a=$NET_PID
	net_pair_guest b 3 2
	b=$NET_PID
	NET_PIDS="$a $b"
	for ((i = 0; i < NET_TIMEOUT * 10; i++)); do
		kill -0 "$a" 2>/dev/null || kill -0 "$b" 2>/dev/null || break
		if guest_reset "$NET_DIR/a.err" || guest_reset "$NET_DIR/b.err"; then
			kill -TERM "$a" "$b" 2>/dev/null
			break
		fi
		sleep 0.1
	done
	# Out of time already: net_wait is to kill at once, not wait again.
	[ $i -lt $((NET_TIMEOUT * 10)) ] || local NET_TIMEOUT=0
	net_wait "$a" && sta=0 || sta=$?
	net_wait "$b" && stb=0 || stb=$?
	NET_PIDS=
}

# Two guests, one bridge: each pings the other.
case_net_bridge() {
	local sta stb mac_a mac_b boot t0 g
	net_setup || return 1
	NET_BRIDGE=lgbr$((RANDOM % 1000))
	ip link add "$NET_BRIDGE" type bridge && ip link set "$NET_BRIDGE" up ||
		net_fail "cannot make bridge $NET_BRIDGE" || return 1
	for ((boot = 1; ; boot++)); do
		t0=$SECONDS
		net_pair_boot
		g=
		guest_reset "$NET_DIR/a.err" && g=a
		guest_reset "$NET_DIR/b.err" && g="$g${g:+ and }b"
		[ -n "$g" ] || break
		echo "note: boot $boot: guest $g reset itself (triple fault)" >&2
		boot_again "$boot" "${NET_BOOTS:-5}" "$t0" || break
	done
	[ -z "$g" ] || net_fail "a guest reset itself in each of $boot boots" || return 1
	[ $sta -eq 0 ] && [ $stb -eq 0 ] ||
		net_fail "lguest exited $sta and $stb (124: killed after NET_TIMEOUT, $NET_TIMEOUT s)" || return 1
	[ "$(net_val "$NET_DIR/a.log" net-pair ping)" = ok ] ||
		net_fail "guest a could not ping guest b" || return 1
	[ "$(net_val "$NET_DIR/b.log" net-pair ping)" = ok ] ||
		net_fail "guest b could not ping guest a" || return 1
	mac_a=$(net_val "$NET_DIR/a.log" net-pair mac)
	mac_b=$(net_val "$NET_DIR/b.log" net-pair mac)
	[ -n "$mac_a" ] && [ "$mac_a" != "$mac_b" ] ||
		net_fail "the two cards' MACs: '$mac_a' and '$mac_b'" || return 1
	[ -z "$(net_taps)" ] || net_fail "taps left after exit: $(net_taps)" || return 1
	net_cleanup
	rm -rf "$NET_DIR"
}

# net_wait PID: its exit status, or 124 after NET_TIMEOUT seconds (killed).
net_wait() {
	local i
	for ((i = 0; i < NET_TIMEOUT * 10; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null && { wait "$1" 2>/dev/null; return 124; }
	wait "$1"
}

# net_refused ARG WORDS: --tunnet=ARG exits 2 with one line containing WORDS.
net_refused() {
	local out st
	out=$("$LGUEST" --tunnet="$1" 64 "$BZIMAGE" 2>&1 </dev/null) && st=0 || st=$?
	[ $st -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
		printf '%s' "$out" | grep -q "$2" ||
		net_fail "--tunnet=$1: exit $st, '$out' (want 2 and '$2')"
}

case_net_errors() {
	local out st
	net_setup || return 1
	net_refused "bridge:lgnosuchbr" "no such interface" || return 1
	net_refused "bridge:lo" "not a bridge" || return 1
	net_refused "bridge:a/b" "not an interface name" || return 1
	net_refused "169.254.1" "not an IPv4 address" || return 1
	net_refused "169.254.1.1/40" "prefix" || return 1
	net_refused "169.254.1.1,mac=01:02:03:04:05:06" "multicast" || return 1
	net_refused "169.254.1.1,bogus" "unknown option" || return 1
	# The second card fails: the first one's tap must go too.
	out=$("$LGUEST" --tunnet="$NET_SUB.1" --tunnet=bridge:lgnosuchbr 64 "$BZIMAGE" 2>&1 </dev/null) &&
		st=0 || st=$?
	[ $st -eq 2 ] || net_fail "a bad second card: exit $st, '$out'" || return 1
	[ -z "$(net_taps)" ] || net_fail "taps left after a refused start: $(net_taps)" || return 1
	rm -rf "$NET_DIR"
}

# net_killed SIGNAL WANT: a running guest with a card; SIGNAL lguest; its
# status must be WANT and its tap gone.
net_killed() {
	local pid i st tap
	"$LGUEST" --tunnet="$NET_SUB.1/24,vhost=off" --initrd="$INITRD" 128 "$BZIMAGE" \
		lgtest=net-idle lgnet="$NET_SUB.2,$NET_SUB.1" </dev/null >"$NET_DIR/idle.log" 2>&1 &
	pid=$!
	NET_PIDS=$pid
	for ((i = 0; i < NET_TIMEOUT * 10; i++)); do
		grep -q "LGTEST net-idle up" "$NET_DIR/idle.log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	tap=$(net_taps)
	grep -q "LGTEST net-idle up" "$NET_DIR/idle.log" && [ -n "$tap" ] ||
		net_fail "the guest never came up on a tap (taps: '$tap')" || return 1
	kill -"$1" "$pid"
	# (bash would announce the killed job on stderr: not news here.)
	wait "$pid" 2>/dev/null && st=0 || st=$?
	NET_PIDS=
	[ $st -eq "$2" ] || net_fail "after SIG$1 lguest exited $st, want $2" || return 1
	[ -z "$(net_taps)" ] || net_fail "after SIG$1 taps are left: $(net_taps)" || return 1
}

case_net_signals() {
	net_setup || return 1
	net_killed TERM 143 || return 1
	net_killed KILL 137 || return 1
	rm -rf "$NET_DIR"
}

# The unit tests on this kernel: the tap parts and, here, vhost-net too.
case_net_unit() {
	local bin out
	: "${TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
	bin=$TOP/build/tests/test_net
	[ -x "$bin" ] || { echo "net: $bin not built (make unit)" >&2; return 1; }
	if [ ! -c /dev/vhost-net ]; then
		echo "no /dev/vhost-net here: the unit tests cover the rest natively"
		return 77
	fi
	out=$("$bin" 2>&1) || { printf '%s\n' "$out" | grep -v '^ok' >&2; return 1; }
	if printf '%s\n' "$out" | grep -q 'SKIP'; then
		printf '%s\n' "$out" | grep 'SKIP' >&2
		return 1
	fi
	printf '%s\n' "$out" | grep -q '^ok .* - vhost: served by vhost-net' ||
		{ echo "net: the vhost-net unit tests did not run" >&2; return 1; }
}
