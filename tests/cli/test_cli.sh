#!/usr/bin/env bash
# End-to-end tests of the `usersig` command-line tool: usage errors, key loading, signing against
# the official vectors, verification verdicts, batch mode, legacy v1 (ECDSA) keys made with the
# openssl tool, and a cross-check of our tokens by the Node verifier (tests/node/verify_tokens.js);
# the vectors and the cross-check are in test_cli_node.sh, sourced from here.
#
# Usage: bash tests/cli/test_cli.sh PATH/TO/usersig PATH/TO/vectors.jsonl
# Needs bash, coreutils, grep, sed, awk; node (vectors, cross-check) and openssl (v1 keys) when
# present. A part whose tool is missing is skipped with a visible "skip:" line, except that with
# $CI set a missing node or tests/node/node_modules counts as a failure. VERBOSE=1 lists passes.
# Ends with one line "cli: N passed, M failed"; exit status 1 if M > 0 or N == 0.
set -u

if [ $# -ne 2 ]; then
    echo "usage: bash $0 PATH/TO/usersig PATH/TO/vectors.jsonl" >&2
    exit 2
fi
U=$1
VECTORS=$2
HERE=$(cd "$(dirname "$0")" && pwd)
NODE_DIR=$HERE/../node

umask 077
TMP=$(mktemp -d "${TMPDIR:-/tmp}/usersig-cli.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT
unset USERSIG_KEY

PASS=0
FAIL=0
pass() {
    PASS=$((PASS + 1))
    if [ -n "${VERBOSE:-}" ]; then echo "ok: $1"; fi
    return 0
}
fail() {
    FAIL=$((FAIL + 1))
    echo "FAIL: $1"
    if [ $# -gt 1 ] && [ -n "$2" ]; then
        printf '      %s\n' "$(printf '%s' "$2" | tr '\n' ' ' | head -c 400)"
    fi
    return 0
}
skip() { # REASON: visible; a failure under CI
    if [ -n "${CI:-}" ]; then
        fail "skip not allowed in CI: $1"
    else
        echo "skip: $1"
    fi
}
check() { # NAME COMMAND...: the command's success is the assertion
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}

# run [ARGS...]: runs usersig; sets RC, OUT (stdout, trailing newlines stripped), ERR.
# run_in FILE [ARGS...]: the same with stdin from FILE.
run() {
    "$U" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    RC=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
}
run_in() {
    local in=$1
    shift
    "$U" "$@" >"$TMP/out" 2>"$TMP/err" <"$in"
    RC=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
}
expect_rc() { # NAME WANT
    if [ "$RC" -eq "$2" ]; then
        pass "$1: exit $2"
    else
        fail "$1: exit $RC, want $2" "stdout: ${OUT:0:200} | stderr: ${ERR:0:300}"
    fi
}
expect_line() { # NAME WANT: stdout is exactly one line WANT
    if [ "$OUT" == "$2" ] && [ "$(wc -l <"$TMP/out")" -eq 1 ]; then
        pass "$1: stdout '$2'"
    else
        fail "$1: stdout is not exactly '$2'" "stdout: ${OUT:0:300} | stderr: ${ERR:0:200}"
    fi
}
expect_prefix() { # NAME PREFIX: stdout is one line starting with PREFIX
    if [[ $OUT == "$2"* ]] && [ "$(wc -l <"$TMP/out")" -eq 1 ]; then
        pass "$1: stdout starts '$2'"
    else
        fail "$1: stdout does not start with '$2'" "stdout: ${OUT:0:300} | stderr: ${ERR:0:200}"
    fi
}
expect_err() { # NAME PHRASE: stderr contains PHRASE
    if grep -qF -- "$2" "$TMP/err"; then
        pass "$1: stderr has '$2'"
    else
        fail "$1: stderr lacks '$2'" "stderr: ${ERR:0:300}"
    fi
}
expect_err_empty() {
    if [ ! -s "$TMP/err" ]; then pass "$1: stderr empty"; else fail "$1: stderr not empty" "$ERR"; fi
}
expect_token() { # NAME: stdout is one line of token alphabet
    if [[ $OUT =~ ^[A-Za-z0-9*_-]+$ ]] && [ "$(wc -l <"$TMP/out")" -eq 1 ]; then
        pass "$1: one token line"
    else
        fail "$1: stdout is not one token" "stdout: ${OUT:0:300} | stderr: ${ERR:0:200}"
    fi
}
# usage_error NAME PHRASE ARGS...: exit 2, nothing on stdout, stderr names PHRASE
usage_error() {
    local name=$1 phrase=$2
    shift 2
    run "$@"
    expect_rc "$name" 2
    expect_err "$name" "$phrase"
    if [ ! -s "$TMP/out" ]; then pass "$name: stdout empty"; else fail "$name: stdout not empty" "$OUT"; fi
}

HAVE_NODE=0
if command -v node >/dev/null 2>&1; then HAVE_NODE=1; fi
HAVE_NODE_LIB=0
if [ "$HAVE_NODE" = 1 ] && [ -d "$NODE_DIR/node_modules/tls-sig-api-v2" ]; then HAVE_NODE_LIB=1; fi
HAVE_OPENSSL=0
if command -v openssl >/dev/null 2>&1; then HAVE_OPENSSL=1; fi

if [ ! -x "$U" ]; then
    fail "usersig binary $U is not executable"
    echo "cli: $PASS passed, $FAIL failed"
    exit 1
fi

APP=1400000000
KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
T0=1700000000
printf '%s' "$KEY" >"$TMP/key"
printf '%s\n' "$KEY" >"$TMP/key_nl"
printf '%s\r\n' "$KEY" >"$TMP/key_crlf"
printf '%s' "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" >"$TMP/otherkey"
: >"$TMP/emptykey"
chmod 600 "$TMP/key" "$TMP/key_nl" "$TMP/key_crlf" "$TMP/otherkey" "$TMP/emptykey"
SIGN=(sign --sdkappid "$APP" --key-file "$TMP/key")
VERIFY=(verify --sdkappid "$APP" --key-file "$TMP/key")

# ---- help and usage errors ----------------------------------------------------------------
for h in --help -h help; do
    run "$h"
    expect_rc "usersig $h" 0
    check "usersig $h prints usage" grep -q '^usage: usersig COMMAND' "$TMP/out"
done
for cmd in sign verify decode; do
    for h in --help -h; do
        run "$cmd" "$h"
        expect_rc "usersig $cmd $h" 0
        check "usersig $cmd $h prints usage" grep -q "^usage: usersig $cmd" "$TMP/out"
        expect_err_empty "usersig $cmd $h"
    done
done
run
expect_rc "usersig without a command" 2
expect_err "usersig without a command" "usage: usersig COMMAND"

usage_error "unknown command" "unknown command 'frobnicate'" frobnicate
usage_error "sign unknown option" "--frobnicate" sign --frobnicate --sdkappid 1
usage_error "verify unknown option" "--bogus" verify --bogus
usage_error "decode unknown option" "--bogus" decode --bogus
usage_error "sign option without its value" "--sdkappid" sign --identifier a --sdkappid
usage_error "verify option of another command" "--level" verify --level 3 --sdkappid 1
usage_error "decode option of another command" "--sdkappid" decode --sdkappid 1 x
usage_error "sign --now does not apply" "--now" sign --now 5 --sdkappid 1 --identifier a
usage_error "sign without --sdkappid" "--sdkappid is required" sign --key-file "$TMP/key" --identifier a
usage_error "sign without --identifier" "--identifier" sign --sdkappid 1 --key-file "$TMP/key"
usage_error "verify without --identifier" "--identifier" verify --sdkappid 1 --key-file "$TMP/key" x
usage_error "verify without --sdkappid" "--sdkappid" verify --identifier a --key-file "$TMP/key" x
for bad in 0 4294967296 -1 +5 12x abc "" " 5" "5 "; do
    usage_error "sign --sdkappid '$bad'" "--sdkappid" sign --sdkappid "$bad" --identifier a --key-file "$TMP/key"
done
usage_error "verify --sdkappid 0" "--sdkappid" verify --sdkappid 0 --identifier a --key-file "$TMP/key" x
for bad in 0 315360001 -5 1e3 " 60"; do
    usage_error "sign --expire '$bad'" "--expire" "${SIGN[@]}" --identifier a --expire "$bad"
done
for bad in 10 -1 x; do
    usage_error "sign --level '$bad'" "--level" "${SIGN[@]}" --identifier a --level "$bad"
done
usage_error "sign --privileges 256" "--privileges" "${SIGN[@]}" --identifier a --room-id 1 --privileges 256
usage_error "sign --privileges without a room" "--privileges" "${SIGN[@]}" --identifier a --privileges 3
usage_error "verify --privileges without a room" "--privileges" "${VERIFY[@]}" --identifier a --privileges 3 x
usage_error "sign --room-id 0" "--room-id" "${SIGN[@]}" --identifier a --room-id 0
usage_error "sign --room-id 2^32" "--room-id" "${SIGN[@]}" --identifier a --room-id 4294967296
ROOM65=$(printf 'r%.0s' $(seq 65))
ROOM64=${ROOM65:1}
usage_error "sign --room-str of 65 bytes" "--room-str" "${SIGN[@]}" --identifier a --room-str "$ROOM65"
usage_error "sign --room-str empty" "--room-str" "${SIGN[@]}" --identifier a --room-str ""
usage_error "sign --room-id and --room-str" "--room-id or --room-str" "${SIGN[@]}" --identifier a --room-id 5 --room-str r
usage_error "verify --room-id and --room-str" "--room-id or --room-str" "${VERIFY[@]}" --identifier a --room-id 5 --room-str r x
usage_error "sign --time -1" "--time" "${SIGN[@]}" --identifier a --time -1
usage_error "sign --time 2^32" "--time" "${SIGN[@]}" --identifier a --time 4294967296
usage_error "verify --now abc" "--now" "${VERIFY[@]}" --identifier a --now abc x
usage_error "sign --batch with --identifier" "--batch" "${SIGN[@]}" --batch --identifier a
usage_error "sign --batch with --room-id" "--batch" "${SIGN[@]}" --batch --room-id 5
usage_error "sign with a stray argument" "unexpected argument" "${SIGN[@]}" --identifier a extra
usage_error "verify with two tokens" "unexpected argument" "${VERIFY[@]}" --identifier a t1 t2
usage_error "verify with both key kinds" "--public-key-file" "${VERIFY[@]}" --public-key-file "$TMP/key" --identifier a x
# ---- options: exact names, one value each, no value ever repeated in an error (issue 7) --------
# getopt_long used to take "--key" as an abbreviation of --key-file and print the "file name"
# (the secret) in its error; a repeated option silently kept its last value.
SECRET=SECRETVALUE_5bd2850fff3e
no_secret() { # NAME: neither stream holds $SECRET
    if grep -qF -- "$SECRET" "$TMP/err" "$TMP/out"; then
        fail "$1: the value is echoed" "stderr: ${ERR:0:300}"
    else
        pass "$1: the value is not echoed"
    fi
}
# refused NAME PHRASE ARGS...: a usage error (exit 2, stdout empty) naming PHRASE, no $SECRET
refused() {
    local name=$1
    usage_error "$@"
    no_secret "$name"
}
for cmd in sign verify; do
    refused "$cmd --key SECRET" "unknown option --key" "$cmd" --sdkappid "$APP" --identifier a --key "$SECRET"
    refused "$cmd --key=SECRET" "unknown option --key" "$cmd" --sdkappid "$APP" --identifier a "--key=$SECRET"
    check "$cmd --key=SECRET: the '=' part is not shown" bash -c "! grep -qF -- '--key=' '$TMP/err'"
done
refused "batch --token SECRET" "unknown option --token" batch --server http://127.0.0.1:1 --sdkappid "$APP" --token "$SECRET"
refused "batch --token=SECRET" "unknown option --token" batch --server http://127.0.0.1:1 --sdkappid "$APP" "--token=$SECRET"
refused "decode -kSECRET" "unknown option -k" decode "-k$SECRET"
# Abbreviations of real options are refused, though each would have named one option only.
refused "sign --key-f (abbreviation)" "unknown option --key-f" sign --sdkappid "$APP" --identifier a --key-f "$TMP/key"
refused "sign --ident (abbreviation)" "unknown option --ident" "${SIGN[@]}" --ident a
refused "verify --pub (abbreviation)" "unknown option --pub" verify --sdkappid "$APP" --identifier a --pub "$TMP/key" x
refused "batch --serv (abbreviation)" "unknown option --serv" batch --serv http://127.0.0.1:1 --sdkappid "$APP"
refused "sign --he (abbreviation)" "unknown option --he" sign --he
# A flag takes no value; a value-taking option at the end has none.
refused "sign --strict=yes" "--strict takes no value" "${SIGN[@]}" --identifier a --strict=yes
refused "sign --key-file without its value" "--key-file needs a value" sign --sdkappid "$APP" --identifier a --key-file
# Values and operands stay out of errors: bad numbers, a key file that is not there, strays.
refused "sign --sdkappid SECRET" "--sdkappid must be" sign --sdkappid "$SECRET" --identifier a --key-file "$TMP/key"
refused "sign --expire SECRET" "--expire must be" "${SIGN[@]}" --identifier a --expire "$SECRET"
refused "verify --now SECRET" "--now must be" "${VERIFY[@]}" --identifier a --now "$SECRET" x
refused "sign with a stray SECRET" "unexpected argument" "${SIGN[@]}" --identifier a "$SECRET"
refused "verify with a second token SECRET" "unexpected argument" "${VERIFY[@]}" --identifier a x "$SECRET"
refused "decode with a second token SECRET" "unexpected argument" decode x "$SECRET"
refused "--identifier swallowing --key, then SECRET" "unexpected argument" "${SIGN[@]}" --identifier --key "$SECRET"
run sign --sdkappid "$APP" --identifier a --key-file "$SECRET"
expect_rc "sign --key-file SECRET (no such file)" 2
expect_err "sign --key-file SECRET (no such file)" "cannot open key file given with --key-file"
no_secret "sign --key-file SECRET (no such file)"
run verify --sdkappid "$APP" --identifier a --public-key-file "$SECRET" x
expect_rc "verify --public-key-file SECRET (no such file)" 2
no_secret "verify --public-key-file SECRET (no such file)"
refused "usersig --key=SECRET as the command" "unknown command '--key'" "--key=$SECRET" sign
refused "usersig SECRET as the command" "unknown command (not shown" "$SECRET" sign
# A value-taking option given twice is an error naming it, for every subcommand.
for dup in "--sdkappid $APP" "--identifier b" "--key-file $TMP/key" "--expire 60" "--time $T0" \
    "--level 1" "--room-id 5" "--room-str r" "--privileges 1"; do
    opt=${dup%% *}
    val=${dup#* }
    refused "sign $opt twice" "option $opt is given twice" "${SIGN[@]}" --identifier a "$opt" "$val" "$opt" "$val"
done
refused "sign --key-file twice (inline and not)" "option --key-file is given twice" \
    sign --sdkappid "$APP" --identifier a "--key-file=$TMP/otherkey" --key-file "$TMP/key"
for dup in "--sdkappid $APP" "--identifier b" "--key-file $TMP/key" "--public-key-file $TMP/key" \
    "--now $T0" "--room-id 5" "--room-str r" "--privileges 1"; do
    opt=${dup%% *}
    val=${dup#* }
    refused "verify $opt twice" "option $opt is given twice" verify --sdkappid "$APP" --identifier a "$opt" "$val" "$opt" "$val" x
done
refused "decode --sdkappid twice" "option --sdkappid is given twice" decode --sdkappid 1 --sdkappid 2 x
printf 'tok\n' >"$TMP/apitoken"
chmod 600 "$TMP/apitoken"
for dup in "--server http://127.0.0.1:1" "--sdkappid $APP" "--token-file $TMP/apitoken" "--expire 60" \
    "--level 1" "--format csv" "--max-request-bytes 1K"; do
    opt=${dup%% *}
    val=${dup#* }
    refused "batch $opt twice" "option $opt is given twice" batch --server http://127.0.0.1:1 \
        --sdkappid "$APP" --token-file "$TMP/apitoken" "$opt" "$val" "$opt" "$val"
done
# Still accepted: a flag twice, a value that starts with '-', "--" ending the options.
run "${SIGN[@]}" --identifier A-b --strict --strict --time "$T0"
expect_rc "sign --strict twice" 0
expect_token "sign --strict twice"
run "${SIGN[@]}" --identifier -dash --time "$T0"
expect_rc "sign --identifier -dash" 0
expect_token "sign --identifier -dash"
run "${VERIFY[@]}" --identifier -dash --now "$T0" -- "$OUT"
expect_line "verify --identifier -dash, token after --" ok

# ---- --version ------------------------------------------------------------------------------
WANT_VERSION=$(sed -n 's/^project([A-Za-z0-9_]* VERSION \([0-9][0-9.]*\).*/\1/p' "$HERE/../../CMakeLists.txt")
check "the top-level CMakeLists.txt names a version" [ -n "$WANT_VERSION" ]
for v in --version version; do
    run "$v"
    expect_rc "usersig $v" 0
    expect_err_empty "usersig $v"
    L1=$(sed -n 1p "$TMP/out")
    L2=$(sed -n 2p "$TMP/out")
    check "usersig $v: two lines" [ "$(wc -l <"$TMP/out")" -eq 2 ]
    if [[ $L1 =~ ^usersig\ ([0-9.]+)\ \(commit\ ([0-9a-f]{12}(-modified)?|unknown)\)$ ]] &&
        [ "${BASH_REMATCH[1]}" == "$WANT_VERSION" ]; then
        pass "usersig $v: release $WANT_VERSION and a commit"
    else
        fail "usersig $v: line 1 is not 'usersig $WANT_VERSION (commit <12 hex>|unknown)'" "$L1"
    fi
    if [[ $L2 =~ ^libusersig\ ([0-9.]+)\;\ formats:\ v2\ \(.+\),\ v1\ \(.+\)$ ]] &&
        [ "${BASH_REMATCH[1]}" == "$WANT_VERSION" ]; then
        pass "usersig $v: the codec's release and formats"
    else
        fail "usersig $v: line 2 is not 'libusersig $WANT_VERSION; formats: v2 (...), v1 (...)'" "$L2"
    fi
done
usage_error "usersig --version with an argument" "takes no arguments" --version x
run --help
check "usersig --help lists --version" grep -qF -- "--version" "$TMP/out"

# The limits themselves are accepted.
run "${SIGN[@]}" --identifier a --expire 315360000 --time "$T0"
expect_rc "sign --expire 315360000" 0
run "${SIGN[@]}" --identifier a --room-str "$ROOM64" --privileges 0 --time "$T0"
expect_rc "sign --room-str of 64 bytes, --privileges 0" 0
run "${SIGN[@]}" --identifier a --room-id 4294967295 --privileges 255 --time "$T0"
expect_rc "sign --room-id 4294967295" 0
run sign --sdkappid 4294967295 --key-file "$TMP/key" --identifier a --time "$T0"
expect_rc "sign --sdkappid 4294967295" 0

# Inputs the codec refuses: exit 1 with the code's name.
run "${SIGN[@]}" --identifier 012345678901234567890123456789012
expect_rc "sign a 33-byte identifier" 1
expect_err "sign a 33-byte identifier" "bad_identifier"
run "${SIGN[@]}" --identifier ""
expect_rc "sign an empty identifier" 1
expect_err "sign an empty identifier" "bad_identifier"
run "${SIGN[@]}" --identifier "$(printf 'caf\xc3\xa9')"
expect_rc "sign a non-ASCII identifier" 1
expect_err "sign a non-ASCII identifier" "bad_identifier"
run "${SIGN[@]}" --identifier a.b --strict
expect_rc "sign --strict a.b" 1
expect_err "sign --strict a.b" "bad_identifier"
run "${SIGN[@]}" --identifier A-b_9 --strict --time "$T0"
expect_rc "sign --strict A-b_9" 0
expect_token "sign --strict A-b_9"
run "${SIGN[@]}" --identifier a --room-id 1 --time 4294967000 --expire 1000
expect_rc "sign a PrivateMapKey whose expire_at passes 2^32" 1
expect_err "sign a PrivateMapKey whose expire_at passes 2^32" "bad_time"

# ---- keys -------------------------------------------------------------------------------------
run "${SIGN[@]}" --identifier alice --time "$T0" --expire 86400 --level 6
expect_rc "sign with --key-file" 0
expect_token "sign with --key-file"
expect_err_empty "sign with a 0600 key file"
TOK=$OUT
run sign --sdkappid "$APP" --key-file "$TMP/key_nl" --identifier alice --time "$T0" --expire 86400 --level 6
expect_rc "key file with a trailing newline" 0
check "key file with a trailing newline gives the same token" [ "$OUT" == "$TOK" ]
run sign --sdkappid "$APP" --key-file "$TMP/key_crlf" --identifier alice --time "$T0" --expire 86400 --level 6
check "key file with CRLF gives the same token" [ "$OUT" == "$TOK" ]
head -c 1025 /dev/zero | tr '\0' k >"$TMP/key1025"
chmod 600 "$TMP/key1025"
run sign --sdkappid "$APP" --key-file "$TMP/key1025" --identifier alice
expect_rc "a 1025-byte key" 2
check "a 1025-byte key: one line naming the file and the limit, once" \
    [ "$ERR" == "usersig: $TMP/key1025: the key is not usable: an HMAC secret must be 1 to 1024 bytes; an ECDSA key must be a PEM EC key on secp256k1 or P-256" ]
USERSIG_KEY=$KEY "$U" sign --sdkappid "$APP" --identifier alice --time "$T0" --expire 86400 --level 6 \
    >"$TMP/out" 2>"$TMP/err"
RC=$? OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
expect_rc "sign with USERSIG_KEY" 0
check "USERSIG_KEY gives the same token as the key file" [ "$OUT" == "$TOK" ]
USERSIG_KEY=$(cat "$TMP/otherkey") "$U" sign --sdkappid "$APP" --key-file "$TMP/key" --identifier alice \
    --time "$T0" --expire 86400 --level 6 >"$TMP/out" 2>"$TMP/err"
check "--key-file wins over USERSIG_KEY" [ "$(cat "$TMP/out")" == "$TOK" ]
run "${VERIFY[@]}" --identifier alice --now "$T0" "$TOK"
expect_line "verify the key-file token" ok
USERSIG_KEY=$KEY "$U" verify --sdkappid "$APP" --identifier alice --now "$T0" "$TOK" >"$TMP/out" 2>"$TMP/err"
RC=$? OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
expect_rc "verify with USERSIG_KEY" 0
expect_line "verify with USERSIG_KEY" ok

run sign --sdkappid "$APP" --identifier alice
expect_rc "sign without any key" 2
expect_err "sign without any key" "no key"
run verify --sdkappid "$APP" --identifier alice "$TOK"
expect_rc "verify without any key" 2
expect_err "verify without any key" "no key"
USERSIG_KEY='' "$U" sign --sdkappid "$APP" --identifier alice >"$TMP/out" 2>"$TMP/err"
RC=$? OUT=$(cat "$TMP/out")
expect_rc "sign with an empty USERSIG_KEY" 2
run sign --sdkappid "$APP" --key-file "$TMP/emptykey" --identifier alice
expect_rc "sign with an empty key file" 2
expect_err "sign with an empty key file" "empty"
run sign --sdkappid "$APP" --key-file "$TMP/no-such-file" --identifier alice
expect_rc "sign with a missing key file" 2
expect_err "sign with a missing key file" "cannot open key file"
cp "$TMP/key" "$TMP/key644"
chmod 644 "$TMP/key644"
run sign --sdkappid "$APP" --key-file "$TMP/key644" --identifier alice --time "$T0" --expire 86400 --level 6
expect_rc "sign with a 0644 key file" 0
expect_err "sign with a 0644 key file warns" "readable by other users"
check "a 0644 key file still gives the same token" [ "$OUT" == "$TOK" ]

# ---- verify verdicts on our own tokens -------------------------------------------------------
V_ALICE=(verify --sdkappid "$APP" --key-file "$TMP/key" --identifier alice)
run "${V_ALICE[@]}" --now "$T0" "$TOK"
expect_rc "verify ok" 0
expect_line "verify ok" ok
printf '%s\n' "$TOK" >"$TMP/tok"
run_in "$TMP/tok" "${V_ALICE[@]}" --now "$T0" -
expect_line "verify ok, token on stdin with -" ok
run_in "$TMP/tok" "${V_ALICE[@]}" --now "$T0"
expect_line "verify ok, token on stdin without an argument" ok
run "${V_ALICE[@]}" --now "$((T0 + 86400))" "$TOK"
expect_line "verify ok at the last second" ok
run "${V_ALICE[@]}" --now "$((T0 + 86401))" "$TOK"
expect_rc "verify expired" 1
expect_prefix "verify expired" "expired 70001: "
run verify --sdkappid "$APP" --key-file "$TMP/key" --identifier bob --now "$T0" "$TOK"
expect_rc "verify identifier mismatch" 1
expect_prefix "verify identifier mismatch" "identifier_mismatch 70013: "
run verify --sdkappid 1400000001 --key-file "$TMP/key" --identifier alice --now "$T0" "$TOK"
expect_rc "verify sdkappid mismatch" 1
expect_prefix "verify sdkappid mismatch" "sdkappid_mismatch 70014: "
run verify --sdkappid "$APP" --key-file "$TMP/otherkey" --identifier alice --now "$T0" "$TOK"
expect_rc "verify with another key" 1
expect_prefix "verify with another key" "signature_mismatch 70009: "
run "${V_ALICE[@]}" --now "$T0" "not-a-token"
expect_rc "verify garbage" 1
expect_prefix "verify garbage" "malformed 70003: "
run "${V_ALICE[@]}" --now "$T0" "${TOK:0:40}"
expect_rc "verify a truncated token" 1
expect_prefix "verify a truncated token" "malformed 70003: "
: >"$TMP/empty"
run_in "$TMP/empty" "${V_ALICE[@]}" --now "$T0" -
expect_rc "verify an empty stdin" 1
expect_prefix "verify an empty stdin" "empty 70002: "
run "${V_ALICE[@]}" --now "$T0" ""
expect_rc "verify an empty argument" 1
expect_prefix "verify an empty argument" "empty 70002: "
head -c 9000 /dev/zero | tr '\0' 'e' >"$TMP/huge"
run_in "$TMP/huge" "${V_ALICE[@]}" --now "$T0" -
expect_rc "verify a 9000-byte stdin" 1
expect_prefix "verify a 9000-byte stdin" "malformed 70003: "
run "${V_ALICE[@]}" --now "$T0" "$(cat "$TMP/huge")"
expect_prefix "verify a 9000-byte argument" "malformed 70003: "
# Line breaks inside a token are ignored.
printf '%s\n%s\n' "${TOK:0:50}" "${TOK:50}" >"$TMP/tok2"
run_in "$TMP/tok2" "${V_ALICE[@]}" --now "$T0" -
expect_line "verify a token broken over two lines" ok
run "${V_ALICE[@]}" --now "$T0" --room-id 1 "$TOK"
expect_rc "verify --room-id on a plain UserSig" 1
expect_prefix "verify --room-id on a plain UserSig" "room_mismatch "

# PrivateMapKeys: numeric room 10000 with bits 2|8|32, string room "room_abc".
run "${SIGN[@]}" --identifier alice --time "$T0" --expire 300 --room-id 10000 --privileges 42
expect_rc "sign a numeric-room PrivateMapKey" 0
PMK=$OUT
run "${V_ALICE[@]}" --now "$T0" "$PMK"
expect_line "verify a PrivateMapKey without room checks" ok
run "${V_ALICE[@]}" --now "$T0" --room-id 10000 "$PMK"
expect_line "verify PrivateMapKey --room-id 10000" ok
for p in 2 8 32 42 0; do
    run "${V_ALICE[@]}" --now "$T0" --room-id 10000 --privileges "$p" "$PMK"
    expect_line "verify PrivateMapKey --privileges $p" ok
done
run "${V_ALICE[@]}" --now "$T0" --room-id 10001 "$PMK"
expect_rc "verify PrivateMapKey for another room" 1
expect_prefix "verify PrivateMapKey for another room" "room_mismatch -: "
run "${V_ALICE[@]}" --now "$T0" --room-str 10000 "$PMK"
expect_prefix "verify numeric PrivateMapKey against a string room" "room_mismatch "
for p in 4 1 43 255; do
    run "${V_ALICE[@]}" --now "$T0" --room-id 10000 --privileges "$p" "$PMK"
    expect_rc "verify PrivateMapKey --privileges $p (missing)" 1
    expect_prefix "verify PrivateMapKey --privileges $p (missing)" "privilege_missing -: "
done
run "${V_ALICE[@]}" --now "$((T0 + 301))" --room-id 10000 "$PMK"
expect_prefix "verify an expired PrivateMapKey" "expired 70001: "
run "${SIGN[@]}" --identifier alice --time "$T0" --expire 300 --room-str room_abc
expect_rc "sign a string-room PrivateMapKey" 0
PMKS=$OUT
run "${V_ALICE[@]}" --now "$T0" --room-str room_abc --privileges 255 "$PMKS"
expect_line "verify string PrivateMapKey (default privileges 255)" ok
run "${V_ALICE[@]}" --now "$T0" --room-str room_abd "$PMKS"
expect_prefix "verify string PrivateMapKey for another room" "room_mismatch "
run "${V_ALICE[@]}" --now "$T0" --room-id 10000 "$PMKS"
expect_prefix "verify string PrivateMapKey against a numeric room" "room_mismatch "

# ---- decode -----------------------------------------------------------------------------------
run decode "$TOK"
expect_rc "decode a token" 0
check "decode prints one line for a plain UserSig" [ "$(wc -l <"$TMP/out")" -eq 1 ]
check "decode shows the identifier" grep -qF '"TLS.identifier":"alice"' "$TMP/out"
DEC=$OUT
run_in "$TMP/tok" decode -
check "decode from stdin (-) prints the same" [ "$OUT" == "$DEC" ]
run_in "$TMP/tok" decode
check "decode from stdin (no argument) prints the same" [ "$OUT" == "$DEC" ]
run decode "$PMK"
expect_rc "decode a PrivateMapKey" 0
check "decode a PrivateMapKey prints two lines" [ "$(wc -l <"$TMP/out")" -eq 2 ]
L2=$(sed -n 2p "$TMP/out")
check "decode PrivateMapKey userbuf line" [ "$L2" == \
    "{\"userbuf\":{\"version\":0,\"account\":\"alice\",\"sdkappid\":$APP,\"room_id\":10000,\"expire_at\":$((T0 + 300)),\"privilege_map\":42,\"account_type\":0}}" ]
run decode "$PMKS"
L2=$(sed -n 2p "$TMP/out")
check "decode string PrivateMapKey userbuf line" [ "$L2" == \
    "{\"userbuf\":{\"version\":1,\"account\":\"alice\",\"sdkappid\":$APP,\"room_id\":0,\"room_str\":\"room_abc\",\"expire_at\":$((T0 + 300)),\"privilege_map\":255,\"account_type\":0}}" ]
run decode "not-a-token"
expect_rc "decode garbage" 1
expect_prefix "decode garbage" "malformed 70003: "
run_in "$TMP/empty" decode -
expect_rc "decode an empty stdin" 1
expect_prefix "decode an empty stdin" "empty 70002: "

# Every zlib level decodes to the same document and verifies.
for l in 0 1 2 3 4 5 6 7 8 9; do
    run "${SIGN[@]}" --identifier alice --time "$T0" --expire 86400 --level "$l"
    expect_token "sign --level $l"
    LT=$OUT
    run decode "$LT"
    check "sign --level $l decodes to the same document" [ "$OUT" == "$DEC" ]
    run "${V_ALICE[@]}" --now "$T0" "$LT"
    expect_line "sign --level $l verifies" ok
done

# A failed write of the token is not success, nor a token that failed: exit 2.
if [ -w /dev/full ]; then
    "$U" "${SIGN[@]}" --identifier alice >/dev/full 2>"$TMP/err"
    RC=$? OUT='' ERR=$(cat "$TMP/err")
    expect_rc "sign to a full disk" 2
    printf 'alice\n' | "$U" "${SIGN[@]}" --batch >/dev/full 2>"$TMP/err"
    RC=$? ERR=$(cat "$TMP/err")
    expect_rc "sign --batch to a full disk" 2
    "$U" --help >/dev/full 2>"$TMP/err"
    RC=$? ERR=$(cat "$TMP/err")
    expect_rc "--help to a full disk" 2
else
    echo "skip: /dev/full is not writable"
fi

# A closed stdout is refused before anything is made (nothing else takes its descriptor).
"$U" "${SIGN[@]}" --identifier alice >&- 2>"$TMP/err"
RC=$? OUT='' ERR=$(cat "$TMP/err")
expect_rc "stdout closed" 2
expect_err "stdout closed" "standard output is closed"

# A closed stdin is refused where it would be read, not taken for an empty input.
"$U" "${SIGN[@]}" --batch <&- >"$TMP/out" 2>"$TMP/err"
RC=$? OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
expect_rc "sign --batch, stdin closed" 2
expect_err "sign --batch, stdin closed" "standard input is closed: give the identifiers on a pipe"
check "sign --batch, stdin closed: nothing written" [ -z "$OUT" ]
"$U" "${VERIFY[@]}" --identifier alice <&- >"$TMP/out" 2>"$TMP/err"
RC=$? OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
expect_rc "verify, stdin closed" 2
expect_err "verify, stdin closed" "give the token on a pipe"
"$U" decode - <&- >"$TMP/out" 2>"$TMP/err"
RC=$? OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
expect_rc "decode -, stdin closed" 2
"$U" decode "$TOK" <&- >"$TMP/out" 2>"$TMP/err"
RC=$? OUT=$(cat "$TMP/out") ERR=$(cat "$TMP/err")
expect_rc "decode TOKEN, stdin closed: stdin not needed" 0

# Interrupted, sign --batch stops after a whole line, says where to resume, exits 128 + 2.
rm -f "$TMP/fifo"
mkfifo "$TMP/fifo"
"$U" "${SIGN[@]}" --batch <"$TMP/fifo" >"$TMP/int.out" 2>"$TMP/err" &
PID=$!
exec 7>"$TMP/fifo"
seq 1 1000 | sed 's/^/u/' >&7
sleep 1
kill -INT "$PID"
wait "$PID"
RC=$? OUT='' ERR=$(cat "$TMP/err")
exec 7>&-
expect_rc "sign --batch interrupted" 130
expect_err "sign --batch interrupted" "resume from line 1001 (tail -n +1001)"
whole_lines() { # FILE N: N lines, each an identifier and a token, the last one ended
    [ "$(wc -l <"$1")" -eq "$2" ] && [ "$(grep -c $'^u[0-9]*\teJ' "$1")" -eq "$2" ] &&
        [ "$(tail -c 1 "$1" | od -An -tx1 | tr -d ' ')" == 0a ]
}
check "sign --batch interrupted: 1000 whole lines, each a token" whole_lines "$TMP/int.out" 1000
rm -f "$TMP/fifo"

# ---- batch ------------------------------------------------------------------------------------
ID33=012345678901234567890123456789012
ID32=0123456789abcdef0123456789abcdef
{
    printf 'alice\n\nbob\n%s\n' "$ID33"
    printf 'ta\tb\n'
    printf 'caf\xc3\xa9\n'
    printf 'u ser.with~printable!\n%s\n' "$ID32"
    printf 'quote"back\\slash\n'
    printf 'carol\r\n'
    printf 'last-without-newline'
} >"$TMP/batch_in"
BATCH_ID=(alice "" bob "$ID33" 'ta\x09b' 'caf\xc3\xa9' 'u ser.with~printable!' "$ID32"
    'quote"back\slash' carol last-without-newline)
BATCH_OK=(1 0 1 0 0 0 1 1 1 1 1)
run_in "$TMP/batch_in" "${SIGN[@]}" --batch --time "$T0" --expire 86400
expect_rc "batch with bad lines" 1
expect_err "batch with bad lines" "4 of 11 identifiers failed"
cp "$TMP/out" "$TMP/batch_out"
check "batch prints one line per input line" [ "$(wc -l <"$TMP/batch_out")" -eq ${#BATCH_ID[@]} ]
i=0
while IFS= read -r line; do
    id=${line%%$'\t'*}
    rest=${line#*$'\t'}
    want=${BATCH_ID[$i]-<none>}
    if [ "$id" == "$want" ] && [[ $line == *$'\t'* ]]; then
        pass "batch line $((i + 1)) is for '$want'"
    else
        fail "batch line $((i + 1)) is for '$id', want '$want'"
    fi
    if [ "${BATCH_OK[$i]:-0}" = 1 ]; then
        if [[ $rest =~ ^[A-Za-z0-9*_-]+$ ]]; then
            pass "batch line $((i + 1)) has a token"
            run verify --sdkappid "$APP" --key-file "$TMP/key" --identifier "$want" --now "$T0" "$rest"
            expect_line "batch token for '$want' verifies" ok
        else
            fail "batch line $((i + 1)) has no token" "$line"
        fi
    else
        if [[ $rest == '!error bad_identifier: '* ]]; then
            pass "batch line $((i + 1)) is an error"
        else
            fail "batch line $((i + 1)) is not '!error bad_identifier: ...'" "$line"
        fi
    fi
    i=$((i + 1))
done <"$TMP/batch_out"

printf 'alice\nbob\ncarol\n' >"$TMP/batch_good"
run_in "$TMP/batch_good" "${SIGN[@]}" --batch --time "$T0"
expect_rc "batch with only good lines" 0
expect_err_empty "batch with only good lines"
check "batch with only good lines prints 3 lines" [ "$(wc -l <"$TMP/out")" -eq 3 ]
run_in "$TMP/empty" "${SIGN[@]}" --batch
expect_rc "batch with empty input" 0
check "batch with empty input prints nothing" [ ! -s "$TMP/out" ]
printf 'a.b\nA-b_9\n' >"$TMP/batch_strict"
run_in "$TMP/batch_strict" "${SIGN[@]}" --batch --strict --time "$T0"
expect_rc "batch --strict with a.b" 1
check "batch --strict refuses a.b" grep -q $'^a\\.b\t!error bad_identifier: ' "$TMP/out"
check "batch --strict accepts A-b_9" grep -qE $'^A-b_9\t[A-Za-z0-9*_-]+$' "$TMP/out"
run_in "$TMP/batch_strict" "${SIGN[@]}" --batch --time "$T0"
expect_rc "batch without --strict accepts a.b" 0

# ---- legacy v1 (ECDSA) keys ------------------------------------------------------------------
# shellcheck disable=SC2317 # called through check
v1_document() { # FILE: a decoded v1 document (string TLS.sdk_appid, no TLS.ver)
    grep -qF '"TLS.sdk_appid":"1234"' "$1" && ! grep -qF '"TLS.ver"' "$1"
}
if [ "$HAVE_OPENSSL" = 1 ]; then
    openssl ecparam -name secp256k1 -genkey -noout -out "$TMP/k1.pem" 2>/dev/null
    openssl ec -in "$TMP/k1.pem" -pubout -out "$TMP/k1.pub" 2>/dev/null
    openssl ecparam -name secp256k1 -genkey -out "$TMP/k1p.pem" 2>/dev/null # with EC PARAMETERS
    openssl ec -in "$TMP/k1p.pem" -pubout -out "$TMP/k1p.pub" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/p256.pem" 2>/dev/null
    openssl pkey -in "$TMP/p256.pem" -pubout -out "$TMP/p256.pub" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$TMP/p384.pem" 2>/dev/null
    openssl pkey -in "$TMP/p384.pem" -pubout -out "$TMP/p384.pub" 2>/dev/null
    chmod 644 "$TMP"/*.pub # public keys are not secret: no warning expected
    check "openssl made a SEC1 secp256k1 key" grep -q 'BEGIN EC PRIVATE KEY' "$TMP/k1.pem"
    check "openssl made a PKCS#8 P-256 key" grep -q 'BEGIN PRIVATE KEY' "$TMP/p256.pem"
    check "openssl made public keys" grep -q 'BEGIN PUBLIC KEY' "$TMP/k1.pub" "$TMP/p256.pub"
    for k in k1 k1p p256; do
        run sign --sdkappid 1234 --key-file "$TMP/$k.pem" --identifier bob --time "$T0" --expire 86400
        expect_rc "v1 $k: sign" 0
        expect_token "v1 $k: sign"
        expect_err_empty "v1 $k: sign"
        V1=$OUT
        run decode "$V1"
        check "v1 $k: decode shows TLS.sdk_appid and no TLS.ver" v1_document "$TMP/out"
        run verify --sdkappid 1234 --public-key-file "$TMP/$k.pub" --identifier bob --now "$T0" "$V1"
        expect_rc "v1 $k: verify with the public key" 0
        expect_line "v1 $k: verify with the public key" ok
        expect_err_empty "v1 $k: a 0644 public key file gives no warning"
        run verify --sdkappid 1234 --key-file "$TMP/$k.pem" --identifier bob --now "$T0" "$V1"
        expect_line "v1 $k: verify with the private key" ok
        printf '%s\n' "$V1" >"$TMP/v1tok"
        run_in "$TMP/v1tok" verify --sdkappid 1234 --public-key-file "$TMP/$k.pub" --identifier bob --now "$T0" -
        expect_line "v1 $k: verify from stdin" ok
        run verify --sdkappid 1234 --public-key-file "$TMP/$k.pub" --identifier bob --now "$((T0 + 86401))" "$V1"
        expect_prefix "v1 $k: expired" "expired 70001: "
        run verify --sdkappid 1234 --public-key-file "$TMP/$k.pub" --identifier bobby --now "$T0" "$V1"
        expect_prefix "v1 $k: wrong identifier" "identifier_mismatch 70013: "
        run verify --sdkappid 1235 --public-key-file "$TMP/$k.pub" --identifier bob --now "$T0" "$V1"
        expect_prefix "v1 $k: wrong sdkappid" "sdkappid_mismatch 70014: "
        run verify --sdkappid 1234 --key-file "$TMP/key" --identifier bob --now "$T0" "$V1"
        expect_rc "v1 $k: verify with an HMAC key" 1
        expect_prefix "v1 $k: verify with an HMAC key" "kind_mismatch 70009: "
    done
    run sign --sdkappid 1234 --key-file "$TMP/k1.pem" --identifier bob --time "$T0" --expire 86400
    V1=$OUT
    run verify --sdkappid 1234 --public-key-file "$TMP/k1p.pub" --identifier bob --now "$T0" "$V1"
    expect_rc "v1: verify with another secp256k1 key" 1
    expect_prefix "v1: verify with another secp256k1 key" "signature_mismatch 70009: "
    run verify --sdkappid 1234 --public-key-file "$TMP/p256.pub" --identifier bob --now "$T0" "$V1"
    expect_rc "v1: verify a secp256k1 token with a P-256 key" 1
    expect_prefix "v1: verify a secp256k1 token with a P-256 key" "signature_mismatch 70009: "
    run sign --sdkappid 1234 --key-file "$TMP/k1.pem" --identifier bob --time "$T0" --room-id 7 --privileges 3
    expect_rc "v1: sign a PrivateMapKey" 0
    V1P=$OUT
    run verify --sdkappid 1234 --public-key-file "$TMP/k1.pub" --identifier bob --now "$T0" --room-id 7 --privileges 3 "$V1P"
    expect_line "v1: verify a PrivateMapKey" ok
    run verify --sdkappid 1234 --public-key-file "$TMP/k1.pub" --identifier bob --now "$T0" --room-id 8 "$V1P"
    expect_prefix "v1: PrivateMapKey for another room" "room_mismatch "
    run verify --sdkappid "$APP" --public-key-file "$TMP/k1.pub" --identifier alice --now "$T0" "$TOK"
    expect_rc "v2 token checked with an EC public key" 1
    expect_prefix "v2 token checked with an EC public key" "kind_mismatch 70009: "
    chmod 600 "$TMP/p384.pem"
    run sign --sdkappid 1234 --key-file "$TMP/p384.pem" --identifier bob
    expect_rc "v1: a P-384 key is refused" 2
    expect_err "v1: a P-384 key is refused" "not usable"
    run verify --sdkappid 1234 --public-key-file "$TMP/p384.pub" --identifier bob "$V1"
    expect_rc "v1: a P-384 public key is refused" 2
    run sign --sdkappid 1234 --key-file "$TMP/k1.pub" --identifier bob
    expect_rc "sign with a public key" 2
    expect_err "sign with a public key" "public key"
    run verify --sdkappid "$APP" --public-key-file "$TMP/key" --identifier alice "$TOK"
    expect_rc "--public-key-file holding an HMAC secret" 2
    expect_err "--public-key-file holding an HMAC secret" "not usable"
    cp "$TMP/k1.pem" "$TMP/k1_644.pem"
    chmod 644 "$TMP/k1_644.pem"
    run sign --sdkappid 1234 --key-file "$TMP/k1_644.pem" --identifier bob
    expect_err "a 0644 EC private key warns" "readable by other users"
else
    echo "skip: openssl is not installed: no v1 key tests"
fi

# ---- the official vectors and the Node cross-check ------------------------------------------
# shellcheck source=tests/cli/test_cli_node.sh
. "$HERE/test_cli_node.sh"

echo "cli: $PASS passed, $FAIL failed"
if [ "$FAIL" -gt 0 ] || [ "$PASS" -eq 0 ]; then exit 1; fi
exit 0
