#!/usr/bin/env bash
# Benchmark: `usersig sign --batch` (zlib levels 0, 1, 6 and 9) against the official Node library
# tls-sig-api-v2 (bench/node_sign.js, genUserSig in a loop), one run each, on the same machine,
# one core each (taskset -c 0 when taskset exists), the same N distinct identifiers, both writing
# "identifier<TAB>token" lines to a file. Prints a Markdown table; fails if a run does not write N
# lines or a sample of its tokens does not verify with `usersig verify`.
#
# Usage: bench/sign.sh [N]            (N identifiers, default 1000000)
# Uses build/usersig when it exists, else configures and builds a Release build in build-bench/.
# Installs tests/node/node_modules (npm ci) when missing. Temp files go under $TMPDIR (or /tmp);
# each run's output is removed once checked (about 200 bytes a token).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-1000000}
if ! [[ $N =~ ^[1-9][0-9]{0,8}$ ]]; then
    echo "usage: $0 [N]   (N: number of identifiers, 1..999999999)" >&2
    exit 2
fi
SDKAPPID=1400000000
EXPIRE=15552000 # the official libraries' default, 180 days
SAMPLE=20

die() {
    echo "sign.sh: $*" >&2
    exit 1
}

# ---- the two signers ----------------------------------------------------------------------
USERSIG=$ROOT/build/usersig
BUILD_DIR=$ROOT/build
if [ ! -x "$USERSIG" ]; then
    BUILD_DIR=$ROOT/build-bench
    echo "sign.sh: $USERSIG is missing; building a Release build in $BUILD_DIR" >&2
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD_DIR" --target usersig -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
    USERSIG=$BUILD_DIR/usersig
    [ -x "$USERSIG" ] || die "the build did not produce $USERSIG"
fi
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
OPT_FLAGS=$(grep -ho -- ' -O[0-9sgz]*' "$BUILD_DIR/CMakeFiles/usersig.dir/flags.make" 2>/dev/null |
    tr -d ' ' | head -1 || true)
BUILD_DESC="${BUILD_TYPE:-project default} build${OPT_FLAGS:+, $OPT_FLAGS}"
if grep -q '^USERSIGD_SANITIZE:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
    echo "sign.sh: warning: $BUILD_DIR is a sanitizer build; its figures are not representative" >&2
fi

command -v node >/dev/null 2>&1 || die "node is not installed"
if [ ! -d "$ROOT/tests/node/node_modules/tls-sig-api-v2" ]; then
    echo "sign.sh: installing the official Node library (npm ci --prefix tests/node)" >&2
    npm ci --prefix "$ROOT/tests/node" --no-audit --no-fund >/dev/null
fi
NODE_VERSION=$(node --version)
LIB_VERSION=$(node -p "require('$ROOT/tests/node/node_modules/tls-sig-api-v2/package.json').version")

PIN=()
if command -v taskset >/dev/null 2>&1; then
    PIN=(taskset -c 0)
fi
TIME_BIN=
if [ -x /usr/bin/time ]; then
    TIME_BIN=/usr/bin/time
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/usersig-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
umask 077
# The secret of the official vectors; any 64-hex-character key costs the same.
printf '%s\n' 5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e >"$WORK/key"
awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++) printf "user_%08d\n", i }' >"$WORK/ids"
[ "$(wc -l <"$WORK/ids")" -eq "$N" ] || die "could not write $N identifiers"

# run NAME STDIN OUT CMD...: one timed run, pinned to core 0. Sets SECS and RSS_KB.
run() {
    local name=$1 in=$2 out=$3
    shift 3
    local timer=()
    if [ -n "$TIME_BIN" ]; then timer=("$TIME_BIN" -f %M -o "$WORK/$name.rss"); fi
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "${PIN[@]+"${PIN[@]}"}" "${timer[@]+"${timer[@]}"}" "$@" <"$in" >"$out" 2>"$WORK/$name.err" || rc=$?
    t1=$(date +%s.%N)
    if [ "$rc" -ne 0 ]; then
        cat "$WORK/$name.err" >&2
        die "$name exited with status $rc"
    fi
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    RSS_KB=
    if [ -n "$TIME_BIN" ]; then RSS_KB=$(tail -1 "$WORK/$name.rss"); fi
}

# check NAME OUT: N lines, no error lines, and SAMPLE tokens spread over the file verify.
check() {
    local name=$1 out=$2 lines bad id token verdict
    lines=$(wc -l <"$out")
    [ "$lines" -eq "$N" ] || die "$name wrote $lines lines, not $N"
    bad=$(grep -c $'\t!error' "$out" || true)
    [ "$bad" -eq 0 ] || die "$name failed $bad identifiers"
    awk -v n="$N" -v k="$SAMPLE" 'BEGIN { step = int(n / k); if (step < 1) step = 1 }
        (NR - 1) % step == 0 && taken < k { print; taken++ }' "$out" >"$WORK/sample"
    local checked=0
    while IFS=$'\t' read -r id token; do
        verdict=$("$USERSIG" verify --sdkappid "$SDKAPPID" --key-file "$WORK/key" --identifier "$id" \
            "$token" 2>&1) || die "$name: token for '$id' does not verify: $verdict"
        [ "$verdict" == ok ] || die "$name: token for '$id' does not verify: $verdict"
        checked=$((checked + 1))
    done <"$WORK/sample"
    [ "$checked" -ge 1 ] || die "$name: no token was checked"
    # Mean token length, for the notes.
    TOKEN_BYTES=$(awk -F '\t' '{ s += length($2) } END { printf "%.1f", s / NR }' "$out")
}

ROWS=()
NODE_RATE=
add_row() { # SIGNER LEVEL
    local rate ratio rss=
    rate=$(awk -v n="$N" -v s="$SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    if [ -z "$NODE_RATE" ]; then NODE_RATE=$rate; fi
    ratio=$(awk -v a="$rate" -v b="$NODE_RATE" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')
    if [ -n "$TIME_BIN" ]; then
        rss=" $(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }') |"
    fi
    ROWS+=("| $1 | $2 | $N | $SECS | $rate | $ratio |$rss")
    NOTES+=("$1 level $2: mean token $TOKEN_BYTES bytes")
}
NOTES=()

echo "sign.sh: $N identifiers; ${PIN[*]:-no taskset}; usersig ($BUILD_DESC) $USERSIG;" \
    "node $NODE_VERSION, tls-sig-api-v2 $LIB_VERSION" >&2

run node /dev/null "$WORK/out.tsv" node "$ROOT/bench/node_sign.js" "$WORK/ids" "$SDKAPPID" \
    "$WORK/key" "$EXPIRE"
NODE_SELF=$(cat "$WORK/node.err")
check "node" "$WORK/out.tsv"
add_row "node tls-sig-api-v2 $LIB_VERSION" 6
rm -f "$WORK/out.tsv"

for level in 0 1 6 9; do
    run "usersig-$level" "$WORK/ids" "$WORK/out.tsv" "$USERSIG" sign --batch --sdkappid "$SDKAPPID" \
        --key-file "$WORK/key" --expire "$EXPIRE" --level "$level"
    check "usersig level $level" "$WORK/out.tsv"
    add_row "usersig sign --batch" "$level"
    rm -f "$WORK/out.tsv"
done

echo
if [ -n "$TIME_BIN" ]; then
    echo "| signer | level | tokens | seconds | tokens/s | vs Node | peak RSS (MiB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
else
    echo "| signer | level | tokens | seconds | tokens/s | vs Node |"
    echo "|---|---:|---:|---:|---:|---:|"
fi
printf '%s\n' "${ROWS[@]}"
echo
echo "Wall time of each whole process (start-up and reading the identifiers included), one run,"
echo "${PIN[*]:-unpinned}; $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')," \
    "$(nproc 2>/dev/null || echo '?') CPUs; usersig: $BUILD_DESC; node $NODE_VERSION."
echo "Node's own figure for its sign loop: ${NODE_SELF#node: }"
for n in "${NOTES[@]}"; do echo "- $n"; done
echo "Every run wrote $N lines; $SAMPLE tokens of each verified with usersig verify."
