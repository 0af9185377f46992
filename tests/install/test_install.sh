#!/usr/bin/env bash
# `cmake --install` into a throwaway prefix, then use only what was installed: build
# tests/install/example.c with pkg-config against the installed libusersig (shared, then static
# with --static), run it, check its token with the installed `usersig verify`, check the shared
# library exports exactly usersig.h's functions, the man pages render, and the installed
# usersigd applies the migrations installed beside it (on the "pg" fixture's server).
#   usage: test_install.sh BUILD_DIR        (ctest test "install"; USERSIGD_TEST_PG_URL_FILE set)
set -euo pipefail

[ $# -eq 1 ] || {
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
}
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
cc=${CC:-cc}

work=$(mktemp -d "${TMPDIR:-/tmp}/usersig-install.XXXXXX")
probe_db=""
admin_url=""
cleanup() {
    if [ -n "$probe_db" ]; then
        timeout 30 psql "$admin_url" -X -q -c "DROP DATABASE IF EXISTS $probe_db" \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/install/checks.sh
. "$here/checks.sh"

prefix=$work/prefix
if ! cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
    cat "$work/install.log" >&2
    echo "not ok - cmake --install failed" >&2
    exit 1
fi
ok "cmake --install $build --prefix $prefix"

# ---- what was installed, and where -----------------------------------------------------------
pc=$(find "$prefix" -path '*/pkgconfig/usersig.pc' | head -n 1)
[ -n "$pc" ] || {
    echo "not ok - no usersig.pc installed" >&2
    exit 1
}
export PKG_CONFIG_PATH=${pc%/usersig.pc}
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
libdir=$(pkg-config --variable=libdir usersig)
includedir=$(pkg-config --variable=includedir usersig)
check "usersig.pc is valid" pkg-config --validate usersig
check "usersig.pc's prefix is the install prefix" \
    test "$(pkg-config --variable=prefix usersig)" = "$prefix"
check "usersig.pc's version is the project's ($(sed -n 's/^Version: //p' "$pc"))" \
    test "$(pkg-config --modversion usersig)" = "$(grep -o 'project(usersigd VERSION [0-9.]*' \
        "$src/CMakeLists.txt" | awk '{print $3}')"
for f in "$prefix/bin/usersig" "$prefix/bin/usersigd"; do
    check "installed executable ${f#"$prefix"/}" test -x "$f"
done
for f in "$libdir/libusersig.so.0" "$libdir/libusersig.a" "$includedir/usersig.h" \
    "$prefix/share/man/man1/usersig.1.gz" "$prefix/share/man/man8/usersigd.8.gz" \
    "$prefix/share/usersigd/openapi.yaml" "$prefix/lib/systemd/system/usersigd.service"; do
    check "installed ${f#"$prefix"/}" test -s "$f"
done
check "libusersig.so points at libusersig.so.0" \
    test "$(readlink -f "$libdir/libusersig.so")" = "$(readlink -f "$libdir/libusersig.so.0")"
check "the shared library's soname is libusersig.so.0" \
    sh -c "readelf -d '$libdir/libusersig.so.0' | grep -q 'Library soname: \[libusersig.so.0\]'"
check "the installed usersig.h is the source's" cmp "$includedir/usersig.h" \
    "$src/server/codec/usersig.h"
check "the unit runs the installed usersigd" \
    grep -qx "ExecStart=$prefix/bin/usersigd serve" "$prefix/lib/systemd/system/usersigd.service"

# The migrations: every source migration, byte for byte, where usersigd looks beside itself
# (<bindir>/../share/usersigd/migrations).
migdir=$prefix/bin/../share/usersigd/migrations
same_migrations() {
    local f n=0
    for f in "$src"/migrations/[0-9][0-9][0-9][0-9]_*.sql; do
        cmp "$f" "$migdir/$(basename "$f")" || return 1
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] && [ "$(find "$migdir" -name '*.sql' | wc -l)" -eq "$n" ]
}
check "the migrations are installed in bin/../share/usersigd/migrations" same_migrations

# The dashboard: every file it serves, byte for byte, where usersigd looks beside itself
# (<bindir>/../share/usersigd/ui, ui_dir's default), and nothing else (no screenshots).
uidir=$prefix/bin/../share/usersigd/ui
same_ui() {
    local f n=0
    for f in "$src"/admin-api/ui/*.html "$src"/admin-api/ui/*.css "$src"/admin-api/ui/*.js \
        "$src"/admin-api/ui/*.svg; do
        cmp "$f" "$uidir/$(basename "$f")" || return 1
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] && [ "$(find "$uidir" -mindepth 1 | wc -l)" -eq "$n" ] && [ -s "$uidir/index.html" ]
}
check "the dashboard is installed in bin/../share/usersigd/ui" same_ui
check "the installed usersigd serves the dashboard from bin/../share/usersigd/ui" \
    sh -c "env -u USERSIGD_UI_DIR '$prefix/bin/usersigd' --help-config |
           grep -qx '#ui_dir = $(cd "$uidir" && pwd -P)'"

# ---- the man pages: compressed, rendering without a warning -------------------------------------
render_clean() { # groff's own warnings, and what man prints on stderr
    local page=$1 out
    gzip -t "$page" || return 1
    out=$(gzip -dc "$page" | groff -t -man -Tutf8 -ww -z 2>&1) || return 1
    [ -z "$out" ] || {
        echo "$out"
        return 1
    }
    if command -v man >/dev/null; then
        out=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null) || return 1
        [ -z "$out" ] || {
            echo "$out"
            return 1
        }
        MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q '^EXIT STATUS'
    fi
}
check "man page usersig(1) renders cleanly" render_clean "$prefix/share/man/man1/usersig.1.gz"
check "man page usersigd(8) renders cleanly" render_clean "$prefix/share/man/man8/usersigd.8.gz"

# ---- the programs' --version ---------------------------------------------------------------------
version=$(pkg-config --modversion usersig)
for p in usersig usersigd; do
    if out=$("$prefix/bin/$p" --version 2>&1) && grep -qF "$version" <<<"$out"; then
        ok "$p --version says $version"
    else
        fail "$p --version (exit status and output containing $version)"
        printf '%s\n' "$out" | head -n 5 | sed 's/^/#   /'
    fi
done

# ---- the exports: exactly the functions of the installed usersig.h --------------------------
# Every declaration in usersig.h starts "USERSIG_API <type> name(" on one line.
grep -E '^USERSIG_API ' "$includedir/usersig.h" | grep -oE '[a-z_0-9]+\(' | tr -d '(' |
    sort -u >"$work/header.syms"
nm -D --defined-only "$libdir/libusersig.so.0" | awk '$2 != "A" {print $3}' | sed 's/@.*//' |
    sort -u >"$work/so.syms"
if [ -s "$work/header.syms" ] && cmp -s "$work/header.syms" "$work/so.syms"; then
    ok "libusersig.so.0 exports exactly usersig.h's $(wc -l <"$work/header.syms") functions"
else
    fail "libusersig.so.0's exports differ from usersig.h's functions (< header, > library)"
    diff "$work/header.syms" "$work/so.syms" | sed 's/^/#   /' || true
fi
check "every export is a function of version node USERSIG_0" \
    sh -c "nm -D --defined-only '$libdir/libusersig.so.0' |
           awk '\$2 != \"A\" && (\$2 != \"T\" || \$3 !~ /@@USERSIG_0\$/) {bad=1} END {exit bad}'"

# ---- the example, built against the installed copy only --------------------------------------
printf '%s\n' "install-test-secret-$$-$RANDOM" >"$work/app.key"
chmod 600 "$work/app.key"
sdkappid=1400000042
cflags=(-std=c11 -Wall -Wextra -Werror)

# Shared: the rpath names the prefix, so the loader takes the installed libusersig.so.0.
# shellcheck disable=SC2046 # pkg-config's output is a list of words
if "$cc" "${cflags[@]}" -o "$work/example" "$here/example.c" \
    $(pkg-config --cflags --libs usersig) -Wl,-rpath,"$libdir" >"$work/cc.log" 2>&1; then
    ok "example builds with pkg-config --cflags --libs usersig"
else
    fail "example builds with pkg-config --cflags --libs usersig"
    sed 's/^/#   /' "$work/cc.log"
fi
resolved=$(ldd "$work/example" 2>/dev/null | awk '$1 == "libusersig.so.0" {print $3}')
check "the example loads libusersig.so.0 from the prefix ($resolved)" \
    test "$(readlink -f "$resolved")" = "$(readlink -f "$libdir/libusersig.so.0")"

# Static: every library libusersig.a needs must come from usersig.pc (Requires.private), or
# this link fails.
# shellcheck disable=SC2046
if "$cc" "${cflags[@]}" -static -o "$work/example_static" "$here/example.c" \
    $(pkg-config --static --cflags --libs usersig) >"$work/cc_static.log" 2>&1; then
    ok "example builds with -static and pkg-config --static --cflags --libs usersig"
else
    fail "example builds with -static and pkg-config --static --cflags --libs usersig"
    sed 's/^/#   /' "$work/cc_static.log"
fi
check "the static example needs no shared library" \
    sh -c "! readelf -d '$work/example_static' | grep -q NEEDED"

for ex in example example_static; do
    if "$work/$ex" "$work/app.key" $sdkappid alice >"$work/$ex.out" 2>"$work/$ex.err"; then
        ok "$ex signs and verifies a token"
    else
        fail "$ex signs and verifies a token"
        sed 's/^/#   /' "$work/$ex.out" "$work/$ex.err"
        continue
    fi
    check "$ex reports verdict ok 0" grep -qx 'verdict ok 0' "$work/$ex.out"
    check "$ex runs the installed library's release" grep -qx "libusersig $version" "$work/$ex.out"
    token=$(sed -n 's/^token //p' "$work/$ex.out")
    if out=$("$prefix/bin/usersig" verify --sdkappid $sdkappid --key-file "$work/app.key" \
        --identifier alice "$token" 2>&1) && [ "$out" = ok ]; then
        ok "the installed usersig verify accepts $ex's token"
    else
        fail "the installed usersig verify accepts $ex's token: $out"
    fi
    # ... and checks it: another UserID is refused with Tencent's code.
    set +e
    out=$("$prefix/bin/usersig" verify --sdkappid $sdkappid --key-file "$work/app.key" \
        --identifier bob "$token" 2>&1)
    rc=$?
    set -e
    if [ $rc -eq 1 ] && grep -q '^identifier_mismatch 70013' <<<"$out"; then
        ok "the installed usersig verify refuses $ex's token for another UserID"
    else
        fail "the installed usersig verify refuses $ex's token for another UserID: $rc $out"
    fi
done

# ---- the installed usersigd applies the migrations installed beside it ----------------------
# A probe migration added to the installed folder only: applied, it proves usersigd read that
# folder (not the source tree's) with no USERSIGD_MIGRATIONS_DIR.
url_file=${USERSIGD_TEST_PG_URL_FILE:-}
if [ -n "$url_file" ] && [ -s "$url_file" ]; then
    admin_url=$(cat "$url_file")
    probe_db=install_probe_$$
    db_url=${admin_url%/*}/$probe_db
    printf '%s\n' 'CREATE TABLE install_probe (id int);' >"$migdir/9999_install_probe.sql"
    if timeout 60 psql "$admin_url" -X -q -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE $probe_db TEMPLATE template0" >/dev/null 2>"$work/psql.err" &&
        (cd "$work" && env -u USERSIGD_MIGRATIONS_DIR USERSIGD_DATABASE_URL="$db_url" \
            USERSIGD_DATA_DIR="$work/data" timeout 120 "$prefix/bin/usersigd" migrate) \
            >"$work/migrate.log" 2>&1 &&
        [ "$(timeout 60 psql "$db_url" -X -qAt \
            -c "SELECT to_regclass('public.install_probe') IS NOT NULL")" = t ]; then
        ok "the installed usersigd migrate applies bin/../share/usersigd/migrations"
    else
        fail "the installed usersigd migrate applies bin/../share/usersigd/migrations"
        sed 's/^/#   /' "$work/psql.err" "$work/migrate.log" | tail -n 20
    fi
else
    fail "usersigd migrate: no database (USERSIGD_TEST_PG_URL_FILE, the pg fixture)"
fi

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
