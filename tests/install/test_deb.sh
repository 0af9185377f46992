#!/usr/bin/env bash
# The .deb: a Release build in BUILD_DIR packaged with `cpack -G DEB`, its control data and
# contents checked, installed with dpkg -i, used (the programs, the example built with pkg-config
# against the installed libusersig, the usersigd system user, the unit), then purged.
# It changes the machine: run it as root on a throwaway machine (.ci/run does), not from
# tests/run.sh. A usersigd package already installed is purged first.
#   usage: test_deb.sh BUILD_DIR
set -euo pipefail

[ $# -eq 1 ] || {
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
}
if [ "$(id -u)" -ne 0 ]; then
    echo "test_deb: installs a package: run as root (on a throwaway machine)" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
mkdir -p "$1"
build=$(cd "$1" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
export DEBIAN_FRONTEND=noninteractive

work=$(mktemp -d "${TMPDIR:-/tmp}/usersig-deb.XXXXXX")
installed=0
# shellcheck disable=SC2317 # run by the trap
cleanup() {
    if [ "$installed" -eq 1 ]; then
        dpkg --purge usersigd >/dev/null 2>&1 || echo "test_deb: dpkg --purge usersigd failed" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/install/checks.sh
. "$here/checks.sh"
finish() {
    echo "deb: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# ---- build and package --------------------------------------------------------------------------
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DUSERSIGD_TESTS=OFF -DUSERSIGD_SANITIZE=OFF >"$work/configure.log"
cmake --build "$build" -j"$jobs" >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    echo "not ok - the Release build failed" >&2
    exit 1
}
rm -f "$build"/usersigd_*.deb
if (cd "$build" && cpack -G DEB) >"$work/cpack.log" 2>&1; then
    ok "cpack -G DEB"
else
    fail "cpack -G DEB"
    tail -n 30 "$work/cpack.log" | sed 's/^/#   /'
    find "$build/_CPack_Packages" -name '*.log' -exec tail -n 20 {} \; 2>/dev/null | sed 's/^/#   /'
    finish
fi
debs=("$build"/usersigd_*.deb)
deb=${debs[0]}
version=$(grep -o 'project(usersigd VERSION [0-9.]*' "$src/CMakeLists.txt" | awk '{print $3}')
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
check "one package, named usersigd_${version}_$arch.deb" \
    test "${#debs[@]}" -eq 1 -a "$(basename "$deb")" = "usersigd_${version}_$arch.deb"

# ---- control data ----------------------------------------------------------------------------
dpkg-deb --info "$deb" >"$work/info"
field() { dpkg-deb --field "$deb" "$1"; }
check "Package: usersigd" test "$(field Package)" = usersigd
check "Version: $version" test "$(field Version)" = "$version"
check "Architecture: $arch" test "$(field Architecture)" = "$arch"
depends=$(field Depends)
for d in adduser libc6 libssl3 zlib1g libpq5 libjansson4 libevent-2.1-7; do
    check "Depends names $d" grep -qE "(^|, )$d( |,|$)" <<<"$depends"
done
check "Recommends postgresql-15" grep -q postgresql-15 <<<"$(field Recommends)"
for f in postinst postrm triggers shlibs md5sums; do
    check "control member $f" grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? +$f( |$)" "$work/info"
done
mkdir "$work/control"
dpkg-deb --control "$deb" "$work/control"
check "shlibs names libusersig 0" grep -qx "libusersig 0 usersigd (= $version)" \
    "$work/control/shlibs"
check "the ldconfig trigger" grep -qx 'activate-noawait ldconfig' "$work/control/triggers"
check "postinst and postrm are executable" test -x "$work/control/postinst" -a \
    -x "$work/control/postrm"

# ---- contents --------------------------------------------------------------------------------
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$work/contents"
want=(/usr/bin/usersig /usr/bin/usersigd
    "/usr/lib/$multiarch/libusersig.so.0" "/usr/lib/$multiarch/libusersig.so.$version"
    "/usr/lib/$multiarch/libusersig.so" "/usr/lib/$multiarch/libusersig.a"
    "/usr/lib/$multiarch/pkgconfig/usersig.pc" /usr/include/usersig.h
    /usr/share/man/man1/usersig.1.gz /usr/share/man/man8/usersigd.8.gz
    /usr/lib/systemd/system/usersigd.service /usr/share/usersigd/openapi.yaml)
for f in "$src"/migrations/[0-9][0-9][0-9][0-9]_*.sql; do
    want+=("/usr/share/usersigd/migrations/$(basename "$f")")
done
# The dashboard's files (ui_dir's default for /usr/bin/usersigd).
for f in "$src"/admin-api/ui/*.html "$src"/admin-api/ui/*.css "$src"/admin-api/ui/*.js \
    "$src"/admin-api/ui/*.svg; do
    want+=("/usr/share/usersigd/ui/$(basename "$f")")
done
check "the package holds no screenshots" sh -c "! grep -q '/usr/share/usersigd/ui/screenshots' '$work/contents'"
for f in "${want[@]}"; do
    check "the package holds $f" grep -qxF "$f" "$work/contents"
done
check "nothing outside /usr" sh -c "! grep -v '^/usr\(/\|$\)' '$work/contents' | grep -q ."
if command -v lintian >/dev/null; then # an extra, when installed: its findings are shown only
    lintian --tag-display-limit 0 "$deb" 2>&1 | sed 's/^/# lintian: /' | head -n 40 || true
fi

# ---- install ---------------------------------------------------------------------------------
if dpkg -s usersigd >/dev/null 2>&1; then
    echo "# a usersigd package is installed already: purging it first"
    dpkg --purge usersigd >/dev/null
fi
installed=1
if dpkg -i "$deb" >"$work/dpkg.log" 2>&1; then
    ok "dpkg -i $(basename "$deb")"
else
    fail "dpkg -i $(basename "$deb")"
    sed 's/^/#   /' "$work/dpkg.log"
    finish
fi
check "dpkg says usersigd $version is installed" \
    test "$(dpkg-query -W -f '${Status} ${Version}' usersigd)" = "install ok installed $version"

for p in usersig usersigd; do
    if out=$("/usr/bin/$p" --version 2>&1) && grep -qF "$version" <<<"$out"; then
        ok "/usr/bin/$p --version says $version"
    else
        fail "/usr/bin/$p --version (exit status and output containing $version)"
        printf '%s\n' "$out" | head -n 5 | sed 's/^/#   /'
    fi
done

check "/usr/bin/usersigd serves the dashboard from /usr/share/usersigd/ui" \
    sh -c "env -u USERSIGD_UI_DIR /usr/bin/usersigd --help-config | grep -qx '#ui_dir = /usr/share/usersigd/ui'"

# The system user and its data directory (postinst).
check "system user usersigd, home /var/lib/usersigd, no login shell" \
    sh -c "getent passwd usersigd | awk -F: '\$3 < 1000 && \$6 == \"/var/lib/usersigd\" &&
           \$7 ~ /nologin\$/ {found=1} END {exit !found}'"
check "group usersigd" getent group usersigd
check "/var/lib/usersigd is usersigd's, mode 0700" \
    test "$(stat -c '%U:%G %a' /var/lib/usersigd 2>/dev/null)" = "usersigd:usersigd 700"

# The loader finds libusersig.so.0 with no rpath nor LD_LIBRARY_PATH (the ldconfig trigger).
check "ldconfig's cache has libusersig.so.0" sh -c "ldconfig -p | grep -q 'libusersig.so.0 '"
check "the man pages are found" sh -c "man -w usersig >/dev/null && man -w 8 usersigd >/dev/null"

# The example, against the installed package through pkg-config.
printf '%s\n' "deb-test-secret-$$-$RANDOM" >"$work/app.key"
chmod 600 "$work/app.key"
sdkappid=1400000043
cflags=(-std=c11 -Wall -Wextra -Werror)
unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR LD_LIBRARY_PATH
check "pkg-config finds usersig $version" test "$(pkg-config --modversion usersig)" = "$version"
# shellcheck disable=SC2046 # pkg-config's output is a list of words
check "example builds with pkg-config --cflags --libs usersig" \
    cc "${cflags[@]}" -o "$work/example" "$here/example.c" $(pkg-config --cflags --libs usersig)
resolved=$(ldd "$work/example" 2>/dev/null | awk '$1 == "libusersig.so.0" {print $3}')
check "the example loads the package's libusersig.so.0 ($resolved)" \
    test "$(readlink -f "$resolved")" = "$(readlink -f "/usr/lib/$multiarch/libusersig.so.0")"
# shellcheck disable=SC2046
check "example builds with -static and pkg-config --static" \
    cc "${cflags[@]}" -static -o "$work/example_static" "$here/example.c" \
    $(pkg-config --static --cflags --libs usersig)
for ex in example example_static; do
    [ -x "$work/$ex" ] || continue
    if "$work/$ex" "$work/app.key" $sdkappid alice >"$work/$ex.out" 2>&1 &&
        grep -qx 'verdict ok 0' "$work/$ex.out"; then
        ok "$ex signs and verifies a token"
    else
        fail "$ex signs and verifies a token"
        sed 's/^/#   /' "$work/$ex.out"
        continue
    fi
    token=$(sed -n 's/^token //p' "$work/$ex.out")
    if out=$(/usr/bin/usersig verify --sdkappid $sdkappid --key-file "$work/app.key" \
        --identifier alice "$token" 2>&1) && [ "$out" = ok ]; then
        ok "/usr/bin/usersig verify accepts $ex's token"
    else
        fail "/usr/bin/usersig verify accepts $ex's token: $out"
    fi
done

# The unit, as installed (ExecStart, the user and the man page it names now exist).
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify usersigd.service" \
        systemd-analyze verify /usr/lib/systemd/system/usersigd.service
    check "systemd-analyze security: exposure 2.0 or less" \
        systemd-analyze security --offline=yes --threshold=20 \
        /usr/lib/systemd/system/usersigd.service
else
    fail "systemd-analyze is not installed (package systemd)"
fi

# ---- purge: nothing left -------------------------------------------------------------------------
installed=0
if dpkg --purge usersigd >"$work/purge.log" 2>&1; then
    ok "dpkg --purge usersigd"
else
    fail "dpkg --purge usersigd"
    sed 's/^/#   /' "$work/purge.log"
fi
check "the package is gone" sh -c "! dpkg -s usersigd >/dev/null 2>&1"
check "its files are gone" sh -c "! test -e /usr/bin/usersigd && ! test -e /usr/include/usersig.h"
check "the user and group usersigd are gone" \
    sh -c "! getent passwd usersigd >/dev/null && ! getent group usersigd >/dev/null"
check "/var/lib/usersigd is gone" test ! -e /var/lib/usersigd
check "ldconfig's cache no longer has libusersig.so.0" \
    sh -c "! ldconfig -p | grep -q 'libusersig.so.0 '"
finish
