#!/usr/bin/env bash
# Cross-check with the official Node library (tls-sig-api-v2, pinned in tests/node): Node signs
# 1,500 random cases with its clock fixed per case; the C codec verifies them and signs the same
# inputs; Node then checks every C token. Usage: run.sh TEST_CROSSCHECK USERSIG WORKDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node_dir="$here/../node"
crosscheck=$1
work=$3
mkdir -p "$work"
if [ ! -d "$node_dir/node_modules/tls-sig-api-v2" ]; then
    npm ci --prefix "$node_dir" --no-audit --no-fund >/dev/null
fi
count=${CROSSCHECK_CASES:-1500}

# Node 20's V8 has been seen to deadlock here between a concurrent compiler thread and the
# garbage collector (the process sleeps forever). --single-threaded keeps V8 off background
# threads; a run still stuck after 120 s is tried once more.
run_node() {
    local rc=0
    timeout 120 node --single-threaded "$@" || rc=$?
    if [ "$rc" -eq 124 ]; then
        echo "node $1 did not finish in 120 s: trying once more" >&2
        rc=0
        timeout 120 node --single-threaded "$@" || rc=$?
    fi
    return "$rc"
}

run_node "$node_dir/gen_cases.js" "$count" 20261126 > "$work/cases.jsonl"
"$crosscheck" "$work/cases.jsonl" "$work/ours.jsonl"
results=$(run_node "$node_dir/verify_tokens.js" < "$work/ours.jsonl" || true)
ok=$(grep -c '^ok$' <<<"$results" || true)
bad=$(grep -vc '^ok$' <<<"$results" || true)
grep -v '^ok$' <<<"$results" | head -5 >&2 || true
echo "node verifies C tokens: $ok passed, $bad failed"
[ "$bad" -eq 0 ] && [ "$ok" -ge "$count" ]
