#!/usr/bin/env bash
# tests/lint/run.sh must fail on one warning as on one error, from either linter, and on a
# compose file whose Dockerfile is missing. Each case is a copy of the tree's own file with one
# fault put in, checked beside clean copies of the other.
# Usage: bash tests/lint/selftest.sh WORKDIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: selftest.sh WORKDIR}
rm -rf "$work"
mkdir -p "$work/good"
cp "$root/admin-api/openapi.yaml" "$work/good/openapi.yaml"
cp "$root/docker-compose.yml" "$work/good/docker-compose.yml"
cp "$root/Dockerfile" "$work/good/Dockerfile"
passed=0
failed=0

# case_ NAME SPEC COMPOSE WANT: run.sh on SPEC and COMPOSE; WANT is "pass", or a line its output
# must hold after it fails.
case_() {
    local name=$1 spec=$2 compose=$3 want=$4 out rc=0
    out=$(bash "$root/tests/lint/run.sh" "$spec" "$compose" 2>&1) || rc=$?
    if [ "$want" = pass ] && [ "$rc" = 0 ]; then
        echo "ok: $name"
        passed=$((passed + 1))
    elif [ "$want" != pass ] && [ "$rc" != 0 ] && grep -qF -- "$want" <<<"$out"; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAIL: $name (exit $rc, want ${want})"
        printf '%s\n' "$out" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

# A variant of a good file: FILE with sed script SCRIPT applied, which must change it.
variant() {
    local src=$1 dst=$2 script=$3
    mkdir -p "$(dirname "$dst")"
    sed -e "$script" "$src" >"$dst"
    if cmp -s "$src" "$dst"; then
        echo "selftest: sed '$script' left $(basename "$src") unchanged" >&2
        exit 1
    fi
}

good_spec=$work/good/openapi.yaml
good_compose=$work/good/docker-compose.yml
case_ "the tree's files, copied elsewhere, pass" "$good_spec" "$good_compose" pass

# info-license-strict: a warning only.
variant "$good_spec" "$work/spec-warn/openapi.yaml" '/^    url: https:\/\/www.apache.org/d'
case_ "one OpenAPI warning fails" "$work/spec-warn/openapi.yaml" "$good_compose" \
    "0 errors, 1 warnings"

# nullable-type-sibling: an error.
variant "$good_spec" "$work/spec-error/openapi.yaml" \
    '/^    KeyRotation:/,/^    KeyStateChange:/{/^          type: object$/d}'
case_ "one OpenAPI error fails" "$work/spec-error/openapi.yaml" "$good_compose" \
    "1 errors, 0 warnings"

# require-quotes-in-ports: a warning only.
variant "$good_compose" "$work/compose-warn/docker-compose.yml" \
    "s/- '127.0.0.1:8080:8080'/- \"127.0.0.1:8080:8080\"/"
cp "$root/Dockerfile" "$work/compose-warn/Dockerfile"
case_ "one compose warning fails" "$good_spec" "$work/compose-warn/docker-compose.yml" \
    "require-quotes-in-ports"

# no-build-and-image and service-image-require-explicit-tag: errors.
variant "$good_compose" "$work/compose-error/docker-compose.yml" \
    's/^    build:$/    image: usersigd:latest\n    build:/'
cp "$root/Dockerfile" "$work/compose-error/Dockerfile"
case_ "build beside an unpinned image fails" "$good_spec" \
    "$work/compose-error/docker-compose.yml" "no-build-and-image"

# The Dockerfile the compose file builds from is missing.
mkdir -p "$work/compose-nodockerfile"
cp "$good_compose" "$work/compose-nodockerfile/docker-compose.yml"
case_ "a missing Dockerfile fails" "$good_spec" \
    "$work/compose-nodockerfile/docker-compose.yml" "builds from what is not there"

echo "lint_selftest: $passed passed, $failed failed"
[ "$failed" = 0 ]
