# The check helpers of the install and package tests, sourced by test_install.sh and
# test_deb.sh: "ok - ..." / "not ok - ..." lines, and the counts for the closing line. The caller
# sets $work (a scratch directory) before the first check.
passed=0
failed=0
ok() {
    passed=$((passed + 1))
    echo "ok - $*"
}
fail() {
    failed=$((failed + 1))
    echo "not ok - $*"
}
check() { # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
    local what=$1
    shift
    if "$@" >"$work/check.out" 2>&1; then
        ok "$what"
    else
        fail "$what"
        sed 's/^/#   /' "$work/check.out" | head -n 30
    fi
}
