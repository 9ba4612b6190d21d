#!/bin/sh
# fuzz.t: a short libFuzzer run of every build-fuzz/fuzz_* target, as TAP.
#
# Each target fuzzes for a bounded time, starting from its seed corpus in
# fuzz/corpus/NAME/ (fuzz_NAME -> NAME).  New inputs go to a scratch
# directory, never into the repository's corpus.  A crash, a sanitizer
# report or a leak makes libFuzzer exit non-zero: "not ok", with the tail
# of its log as diagnostics.
#
#   FUZZ_RUNS=N FUZZ_SECONDS=S  override the bounds (20000 runs, 60 s)

cd "$(dirname "$0")/.." || exit 1
runs=${FUZZ_RUNS:-20000}
secs=${FUZZ_SECONDS:-60}

targets=
for f in build-fuzz/fuzz_*; do
	[ -f "$f" ] && [ -x "$f" ] && targets="$targets $f"
done
if [ -z "$targets" ]; then
	echo "1..0 # SKIP no fuzz targets built (make fuzz)"
	exit 0
fi

set -- $targets
echo "1..$#"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lguest-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
n=0
for bin; do
	n=$((n + 1))
	name=${bin##*/fuzz_}
	corpus=fuzz/corpus/$name
	mkdir -p "$scratch/$name"
	seeds=
	[ -d "$corpus" ] && seeds=$corpus
	if "$bin" -runs="$runs" -max_total_time="$secs" -artifact_prefix="$scratch/" \
		"$scratch/$name" $seeds >"$scratch/$name.log" 2>&1; then
		echo "ok $n - fuzz_$name: $(grep -Eo 'Done [0-9]+ runs' "$scratch/$name.log" | tail -1)"
	else
		echo "not ok $n - fuzz_$name (exit $?)"
		tail -n 30 "$scratch/$name.log" | sed 's/^/# /'
	fi
done
