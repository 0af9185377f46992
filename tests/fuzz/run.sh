#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (-fsanitize=fuzzer,address,undefined)
# into a build directory of their own, then runs each for SECONDS (default 30) on a copy of its
# seed corpus, printing the executions of each. Any crash, leak or sanitizer report fails. The
# same build also runs the pipeline and conninfo unit tests under clang's UBSan, which reports
# more than gcc's (a NULL pointer plus an offset, for one).
# Usage: bash tests/fuzz/run.sh [SECONDS]      (from anywhere; USERSIGD_FUZZ_BUILD names the
#        build directory, default build-fuzz in the repository root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-30}
build=${USERSIGD_FUZZ_BUILD:-$root/build-fuzz}
cc=${CC:-clang}
case "$cc" in *clang*) ;; *) cc=clang ;; esac
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DUSERSIGD_FUZZ=ON \
    -DUSERSIGD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_all test_pipeline test_pipeline_cancel test_conninfo

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
"$build/tests/test_pipeline"
"$build/tests/test_pipeline_cancel"
"$build/tests/test_conninfo"

work=$(mktemp -d "${TMPDIR:-/tmp}/usersigd-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
summary=()
for exe in "$build"/tests/fuzz/fuzz_*; do
    [ -x "$exe" ] && [ -f "$exe" ] || continue
    t=${exe##*/fuzz_}
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    seeds=()
    [ -d "$here/corpus/$t" ] && seeds=("$here/corpus/$t")
    log="$work/$t/log"
    if (cd "$work/$t" && "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" corpus "${seeds[@]}" \
        >"$log" 2>&1); then
        result=ok
    else
        result=FAILED
        status=1
        tail -n 60 "$log" >&2
        for a in "$work/$t/artifacts"/*; do
            [ -f "$a" ] || continue
            keep="$root/tests/fuzz/findings/$t"
            mkdir -p "$keep"
            cp "$a" "$keep/"
            echo "fuzz: $t: input kept as $keep/${a##*/}" >&2
        done
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    summary+=("$(printf '%-14s %12s executions in %ss  %s' "$t" "${execs:-?}" "$secs" "$result")")
done
printf 'fuzz: %s\n' "${summary[@]}"
exit $status
