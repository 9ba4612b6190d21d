# tests/e2e/lib.sh: shared helpers for the end-to-end scripts (bash).  Source it:
#   . "$(dirname "$0")/lib.sh"
# It sets E2E (this directory), TOP (the repository), WORK (git-ignored cache
# dir tests/e2e/work), KDIR (the unpacked Debian kernel, see kernel.sh) and
# PYTHON3 (exported).

E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$E2E/../.." && pwd)
WORK=$E2E/work
KDIR=$WORK/kernel
# Host-side helpers run Debian's python3 where it is: a version manager's
# shim (pyenv's is a chain of shell scripts) costs seconds per start in
# the emulated machine, where the helpers start once per guest boot.
PYTHON3=$(command -v /usr/bin/python3 || command -v python3)
export PYTHON3

die() { echo "${0##*/}: $*" >&2; exit 1; }
note() { echo "${0##*/}: $*" >&2; }

# kver: the version of the unpacked kernel (the name of its modules dir).
kver() { ls "$KDIR/lib/modules" 2>/dev/null | head -n 1; }

# mod_closure MODULE...: print the .ko paths (relative to the modules dir) of
# the named modules and everything they depend on, in a safe load order
# (dependencies first, each once).  Reads modules.dep, whose lines are
# "path.ko: dep1.ko dep2.ko ..." with the deepest dependency last.  Built-in
# and unknown modules are skipped silently.
mod_closure() {
	awk -v want="$*" '
	function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
	function visit(path,   i, n, d) {
		if (path in done) return
		done[path] = 1
		n = split(deps[path], d, " ")
		for (i = n; i >= 1; i--) visit(d[i])   # deepest dependency first
		print path
	}
	{ p = $1; sub(/:$/, "", p); $1 = ""; deps[p] = $0; byname[base(p)] = p }
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) { m = w[i]; gsub(/-/, "_", m); if (m in byname) visit(byname[m]) }
	}' "$KDIR/lib/modules/$(kver)/modules.dep"
}

# copy_module SRC DST: copy one module, decompressing .ko.xz/.ko.zst/.ko.gz
# into a plain .ko (busybox insmod only reads plain ones).
copy_module() {
	case $1 in
	*.ko.xz)  xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*.ko.gz)  gzip -dc "$1" >"$2" ;;
	*)        cp "$1" "$2" ;;
	esac
}

# make_cpio DIR OUT: pack DIR as a gzip'd newc initramfs at OUT (replaced
# atomically: a reader sees the old file or the new one).
make_cpio() {
	(cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$2.tmp$$" &&
		mv "$2.tmp$$" "$2"
}

# work_lock: serialize the builders of tests/e2e/work (several engineers,
# or make -j, may run them at once); held until the script exits.
work_lock() {
	mkdir -p "$WORK" && exec 9>>"$WORK/.lock" && flock 9
}

# newer_than OUT FILE...: true if OUT is missing or any FILE is newer.
newer_than() {
	out=$1; shift
	[ -e "$out" ] || return 0
	[ -n "$(find "$@" -newer "$out" 2>/dev/null | head -n 1)" ]
}

# is_static FILE: FILE is a statically linked executable (ldd says so).
is_static() {
	! ldd "$1" >/dev/null 2>&1
}

# has_hw_kvm: true if this machine can run lguest's guests natively: the CPU
# has vmx or svm, /dev/kvm exists and it is not PVM (which cannot boot a
# stock kernel).
has_hw_kvm() {
	grep -qwE 'vmx|svm' /proc/cpuinfo && [ -c /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]
}
