#!/usr/bin/env bash
# Contracts a linter checks: admin-api/openapi.yaml with Redocly CLI (recommended rules) and
# docker-compose.yml with dclint (its default rules). Any error or warning fails. Both tools are
# the versions pinned in tests/node (npm ci --prefix tests/node) and run offline: no telemetry,
# no update check.
# Usage: bash tests/lint/run.sh [openapi.yaml [docker-compose.yml]]
#        (by default the tree's own; ctest runs it as the test "lint")
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
spec=$(realpath "${1:-$root/admin-api/openapi.yaml}")
compose=$(realpath "${2:-$root/docker-compose.yml}")
bin=$root/tests/node/node_modules/.bin
here=$root/tests/lint

for tool in redocly dclint; do
    if [ ! -x "$bin/$tool" ]; then
        echo "lint: $bin/$tool is missing: run npm ci --prefix tests/node" >&2
        exit 1
    fi
done
# Both tools need Node.js 20.19 or later (their package.json engines).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
              process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "lint: Node.js $(node --version) is too old for Redocly CLI and dclint (want >= 20.19)" >&2
    exit 1
fi

# Redocly CLI sends usage reports and checks for a newer release unless told not to.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
cd "$root"
passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
not_ok() { echo "FAIL: $*"; failed=$((failed + 1)); }

# redocly exits non-zero on errors only: the JSON report's totals count the warnings too.
report=$(mktemp)
trap 'rm -f "$report"' EXIT
"$bin/redocly" lint --config "$here/redocly.yaml" --lint-config error --format json \
    "$spec" >"$report" 2>/dev/null || true
totals=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
                  const t = r.totals || {};
                  if (typeof t.errors !== "number" || typeof t.warnings !== "number")
                      throw new Error("no totals in the report");
                  console.log(t.errors + " " + t.warnings);' "$report" 2>/dev/null) ||
    totals="unknown unknown"
read -r errors warnings <<<"$totals"
if [ "$errors" = 0 ] && [ "$warnings" = 0 ]; then
    ok "redocly lint $spec: 0 errors, 0 warnings"
else
    # Again, readable this time.
    "$bin/redocly" lint --config "$here/redocly.yaml" --lint-config error \
        "$spec" 2>&1 || true
    not_ok "redocly lint $spec: $errors errors, $warnings warnings"
fi

if "$bin/dclint" --no-color --max-warnings 0 "$compose"; then
    ok "dclint $compose: 0 errors, 0 warnings"
else
    not_ok "dclint $compose"
fi

# What the compose file builds from must be in the tree: each build context and its Dockerfile.
if missing=$(NODE_PATH=$root/tests/node/node_modules node -e '
        const fs = require("fs"), path = require("path");
        const compose = process.argv[1], dir = path.dirname(compose);
        const doc = require("yaml").parse(fs.readFileSync(compose, "utf8"));
        const out = [];
        for (const [name, svc] of Object.entries(doc.services || {})) {
            if (svc.build === undefined) continue;
            const b = typeof svc.build === "string" ? { context: svc.build } : svc.build;
            const file = path.join(dir, b.context || ".", b.dockerfile || "Dockerfile");
            if (!fs.existsSync(file)) out.push(name + ": " + file);
        }
        console.log(out.join(", "));' "$compose"); then
    if [ -z "$missing" ]; then
        ok "$compose: every build context has its Dockerfile"
    else
        not_ok "$compose builds from what is not there: $missing"
    fi
else
    not_ok "$compose: cannot read its build sections"
fi

echo "lint: $passed passed, $failed failed"
[ "$failed" = 0 ]
