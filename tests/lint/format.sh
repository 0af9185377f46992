#!/usr/bin/env bash
# The C sources follow the checked-in .clang-format (STYLE.md: applied before each commit): every
# .c and .h under admin-api/, server/ and tests/ as `clang-format --dry-run --Werror` sees it.
# Prints each file that differs and the command that fixes it.
# Usage: bash tests/lint/format.sh [FILE...]   (by default the tree's own; ctest runs it as "format")
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if ! command -v clang-format >/dev/null; then
    echo "format: clang-format is missing (Debian: apt-get install clang-format)" >&2
    exit 1
fi
if [ $# -eq 0 ]; then
    mapfile -t files < <(find admin-api server tests -name node_modules -prune -o -name '*.[ch]' -type f -print |
        LC_ALL=C sort)
else
    files=("$@")
fi
[ "${#files[@]}" -gt 0 ] || { echo "format: no files" >&2; exit 1; }
# check FILE: 0 when clang-format would leave it as it is.
check() { clang-format --style="file:$root/.clang-format" --dry-run --Werror "$1" >/dev/null 2>&1; }

# The check must be able to fail: a copy of one of the tree's files with its indentation doubled
# is reported (a .clang-format that does not load would pass every file).
model=$root/server/base/hex.c
probe=$(mktemp --suffix=.c)
trap 'rm -f "$probe"' EXIT
sed 's/^    /        /' "$model" >"$probe"
if cmp -s "$probe" "$model" || check "$probe"; then
    echo "FAIL: a copy of $model with its indentation doubled passes: the check checks nothing"
    exit 1
fi
bad=0
for f in "${files[@]}"; do
    if [ ! -f "$f" ]; then
        echo "FAIL: $f: no such file"
        bad=$((bad + 1))
    elif ! check "$f"; then
        echo "FAIL: $f is not as clang-format writes it"
        bad=$((bad + 1))
    fi
done
if [ "$bad" -gt 0 ]; then
    echo "format: $bad of ${#files[@]} files differ; fix with: clang-format -i FILE" >&2
    exit 1
fi
echo "format: ${#files[@]} files as clang-format ($(clang-format --version | grep -o '[0-9][0-9.]*' | head -1)) writes them"
