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
timeout 300 node "$node_dir/gen_cases.js" "$count" 20261126 > "$work/cases.jsonl"
"$crosscheck" "$work/cases.jsonl" "$work/ours.jsonl"
results=$(timeout 300 node "$node_dir/verify_tokens.js" < "$work/ours.jsonl" || true)
ok=$(grep -c '^ok$' <<<"$results" || true)
bad=$(grep -vc '^ok$' <<<"$results" || true)
grep -v '^ok$' <<<"$results" | head -5 >&2 || true
echo "node verifies C tokens: $ok passed, $bad failed"
[ "$bad" -eq 0 ] && [ "$ok" -ge "$count" ]
