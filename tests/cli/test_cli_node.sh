# Part of tests/cli/test_cli.sh, which sources it (its helpers, $U, $TMP, $VECTORS, $NODE_DIR,
# $HAVE_NODE and $HAVE_NODE_LIB, and its counters): the official vectors, and the cross-check of
# our tokens by the Node verifier. Not run on its own.
# shellcheck shell=bash

# ---- the official vectors (parsed by node) ---------------------------------------------------
# Each vector becomes a directory of one file per field, so no shell quoting is involved.
cat >"$TMP/split.js" <<'EOF'
'use strict';
const fs = require('fs'), path = require('path');
const [src, dir] = process.argv.slice(2);
let n = 0;
for (const line of fs.readFileSync(src, 'utf8').split('\n')) {
  if (line.trim() === '') continue;
  const v = JSON.parse(line);
  const d = path.join(dir, String(n++).padStart(3, '0'));
  fs.mkdirSync(d, { recursive: true });
  if (v.usersig !== undefined && v.token === undefined) v.token = v.usersig;
  for (const [k, val] of Object.entries(v)) {
    if (k === 'usersig') continue;
    const text = typeof val === 'object' ? JSON.stringify(val) : String(val);
    fs.writeFileSync(path.join(d, k), text, { mode: 0o600 });
  }
}
process.stdout.write(String(n) + '\n');
EOF
# For each sign vector: "decoded" (our token) and "decoded_official" must match expect_json and,
# for a PrivateMapKey, carry the right userbuf line.
cat >"$TMP/compare.js" <<'EOF'
'use strict';
const fs = require('fs'), path = require('path'), util = require('util');
const dir = process.argv[2];
const rd = (d, f) => { try { return fs.readFileSync(path.join(d, f), 'utf8'); } catch (e) { return undefined; } };
for (const e of fs.readdirSync(dir).sort()) {
  const d = path.join(dir, e);
  if (rd(d, 'op') !== 'sign') continue;
  const name = rd(d, 'name');
  const want = JSON.parse(rd(d, 'expect_json'));
  for (const which of ['decoded', 'decoded_official']) {
    const text = rd(d, which);
    const say = (ok, why) => console.log((ok ? 'ok ' : 'FAIL ') + which + ' ' + name + (ok ? '' : ': ' + why));
    if (text === undefined) { say(false, 'no decode output'); continue; }
    const lines = text.split('\n').filter((l) => l !== '');
    let doc, ub;
    try { doc = JSON.parse(lines[0]); } catch (err) { say(false, 'line 1 is not JSON: ' + lines[0]); continue; }
    if (!util.isDeepStrictEqual(doc, want)) { say(false, 'JSON differs: ' + lines[0] + ' vs ' + JSON.stringify(want)); continue; }
    const room = rd(d, 'room_id') !== undefined || rd(d, 'room_str') !== undefined;
    if (!room) { say(lines.length === 1, 'expected one line, got ' + lines.length); continue; }
    if (lines.length !== 2) { say(false, 'expected a userbuf line'); continue; }
    try { ub = JSON.parse(lines[1]).userbuf; } catch (err) { say(false, 'line 2 is not JSON: ' + lines[1]); continue; }
    const roomStr = rd(d, 'room_str');
    const exp = {
      version: roomStr !== undefined ? 1 : 0,
      account: rd(d, 'identifier'),
      sdkappid: Number(rd(d, 'sdkappid')),
      room_id: roomStr !== undefined ? 0 : Number(rd(d, 'room_id')),
      expire_at: Number(rd(d, 'time')) + Number(rd(d, 'expire')),
      privilege_map: Number(rd(d, 'privilege_map')),
      account_type: 0,
    };
    if (roomStr !== undefined) exp.room_str = roomStr;
    say(util.isDeepStrictEqual(ub, exp), 'userbuf ' + JSON.stringify(ub) + ' vs ' + JSON.stringify(exp));
  }
}
EOF

SIGN_TOKENS=$TMP/sign_tokens.tsv # identifier, sdkappid, key, token, now: for the Node check
: >"$SIGN_TOKENS"
if [ "$HAVE_NODE" = 1 ]; then
    if ! NVEC=$(node --single-threaded "$TMP/split.js" "$VECTORS" "$TMP/vec") || [ -z "$NVEC" ] || [ "$NVEC" -lt 1 ]; then
        fail "cannot read the vectors in $VECTORS"
        NVEC=0
    fi
    nsign=0
    nverify=0
    for d in "$TMP"/vec/*/; do
        [ -f "$d/op" ] || continue
        op=$(cat "$d/op")
        name=$(cat "$d/name")
        if [ "$op" == sign ]; then
            nsign=$((nsign + 1))
            vapp=$(cat "$d/sdkappid")
            vid=$(cat "$d/identifier")
            vtime=$(cat "$d/time")
            vexp=$(cat "$d/expire")
            args=(sign --sdkappid "$vapp" --key-file "$d/key" --identifier "$vid" --expire "$vexp" --time "$vtime")
            rooms=()
            if [ -f "$d/room_id" ]; then rooms+=(--room-id "$(cat "$d/room_id")"); fi
            if [ -f "$d/room_str" ]; then rooms+=(--room-str "$(cat "$d/room_str")"); fi
            if [ -f "$d/privilege_map" ]; then rooms+=(--privileges "$(cat "$d/privilege_map")"); fi
            run "${args[@]}" ${rooms[@]+"${rooms[@]}"}
            expect_rc "vector '$name': sign" 0
            expect_token "vector '$name': sign"
            ours=$OUT
            run decode "$ours"
            expect_rc "vector '$name': decode ours" 0
            cp "$TMP/out" "$d/decoded"
            run decode "$(cat "$d/official_usersig")"
            expect_rc "vector '$name': decode the official token" 0
            cp "$TMP/out" "$d/decoded_official"
            run verify --sdkappid "$vapp" --key-file "$d/key" --identifier "$vid" --now "$((vtime + vexp))" \
                ${rooms[@]+"${rooms[@]}"} "$ours"
            expect_line "vector '$name': our token verifies (room and privileges too)" ok
            run verify --sdkappid "$vapp" --key-file "$d/key" --identifier "$vid" --now "$((vtime + vexp + 1))" "$ours"
            expect_prefix "vector '$name': our token expires" "expired 70001: "
            printf '%s\t%s\t%s\t%s\t%s\n' "$vid" "$vapp" "$(cat "$d/key")" "$ours" "$vtime" >>"$SIGN_TOKENS"
        elif [ "$op" == verify ]; then
            nverify=$((nverify + 1))
            vapp=$(cat "$d/sdkappid")
            vid=$(cat "$d/identifier")
            vnow=$(cat "$d/now")
            vexpect=$(cat "$d/expect")
            vcode=$(cat "$d/tencent_code")
            cp "$d/token" "$TMP/vtok"
            vtoken=$(cat "$d/token")
            keysets=()
            if [ -f "$d/public_key" ]; then
                keysets+=("--public-key-file $d/public_key")
                if [ -f "$d/private_key" ]; then keysets+=("--key-file $d/private_key"); fi
            else
                keysets+=("--key-file $d/key")
            fi
            for ks in "${keysets[@]}"; do
                kopt=${ks%% *}
                kfile=${ks#* }
                kname="vector '$name' (${kopt#--})"
                base=(verify --sdkappid "$vapp" "$kopt" "$kfile" --identifier "$vid" --now "$vnow")
                for how in argument stdin; do
                    if [ "$how" == argument ]; then
                        run "${base[@]}" "$vtoken"
                    else
                        run_in "$TMP/vtok" "${base[@]}" -
                    fi
                    if [ "$vexpect" == ok ]; then
                        expect_rc "$kname, token as $how" 0
                        expect_line "$kname, token as $how" ok
                    else
                        expect_rc "$kname, token as $how" 1
                        expect_prefix "$kname, token as $how" "$vexpect $vcode: "
                    fi
                done
            done
            # The legacy private key of the vectors signs tokens its public key accepts.
            if [ -f "$d/private_key" ] && [ "$vexpect" == ok ]; then
                run sign --sdkappid "$vapp" --key-file "$d/private_key" --identifier "$vid" --time "$T0"
                expect_rc "vector '$name': sign with its private key" 0
                run verify --sdkappid "$vapp" --public-key-file "$d/public_key" --identifier "$vid" --now "$T0" "$OUT"
                expect_line "vector '$name': our v1 token verifies with its public key" ok
            fi
        else
            fail "vector '$name': unknown op '$op'"
        fi
    done
    if [ "$nsign" -gt 0 ] && [ "$nverify" -gt 0 ] && [ $((nsign + nverify)) -eq "$NVEC" ]; then
        pass "vectors: $nsign sign and $nverify verify vectors read"
    else
        fail "vectors: read $nsign sign and $nverify verify vectors of $NVEC"
    fi
    node --single-threaded "$TMP/compare.js" "$TMP/vec" >"$TMP/compare.out" 2>&1
    while IFS= read -r line; do
        case $line in
            "ok "*) pass "${line#ok }: JSON equals expect_json" ;;
            *) fail "$line" ;;
        esac
    done <"$TMP/compare.out"
    check "vectors: node compared every sign vector twice" \
        [ "$(grep -c '^ok ' "$TMP/compare.out")" -eq $((2 * nsign)) ]
else
    skip "node is not installed: the official vectors are not checked"
fi

# ---- cross-check by the Node side (tests/node/verify_tokens.js) ------------------------------
# An awk function: s as a JSON string (only the identifiers' and keys' characters: printable
# ASCII, so a backslash and a quote are all there is to escape).
JSTR_AWK='
    function jstr(s,   out, i, c) {
        out = ""
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (c == "\\" || c == "\"") out = out "\\"
            out = out c
        }
        return "\"" out "\""
    }'
if [ "$HAVE_NODE_LIB" = 1 ]; then
    {
        for i in $(seq 1 42); do printf 'user_%04d\n' "$i"; done
        printf '%s\n' administrator x "$ID32" 'u ser.with~printable!' 'quote"back\slash' \
            '~!@#$%^&*()_+{}|:<>?' "A-b_c-9" "12345"
    } >"$TMP/ids50"
    NIDS=$(wc -l <"$TMP/ids50")
    : >"$TMP/node_in"
    total=0
    for l in 0 1 6 9; do
        run_in "$TMP/ids50" "${SIGN[@]}" --batch --time "$T0" --level "$l"
        expect_rc "node cross-check: batch at level $l" 0
        check "node cross-check: batch at level $l has $NIDS lines" [ "$(wc -l <"$TMP/out")" -eq "$NIDS" ]
        # identifier<TAB>token -> one JSON request; the identifier is JSON-escaped by hand.
        awk -F '\t' -v app="$APP" -v key="$KEY" -v now="$((T0 + 60))" "$JSTR_AWK"'
            { printf "{\"sdkappid\":%s,\"key\":%s,\"identifier\":%s,\"token\":%s,\"now\":%s}\n",
                     app, jstr(key), jstr($1), jstr($2), now }' "$TMP/out" >>"$TMP/node_in"
        total=$((total + NIDS))
    done
    # The tokens signed from the vectors above (PrivateMapKeys included).
    awk -F '\t' "$JSTR_AWK"'
        { printf "{\"sdkappid\":%s,\"key\":%s,\"identifier\":%s,\"token\":%s,\"now\":%s}\n",
                 $2, jstr($3), jstr($1), jstr($4), $5 }' "$SIGN_TOKENS" >>"$TMP/node_in"
    total=$((total + $(wc -l <"$SIGN_TOKENS")))
    node --single-threaded "$NODE_DIR/verify_tokens.js" <"$TMP/node_in" >"$TMP/node_out" 2>"$TMP/node_err"
    nrc=$?
    nok=$(grep -c '^ok$' "$TMP/node_out")
    if [ "$nrc" -eq 0 ] && [ "$nok" -eq "$total" ] && [ "$(wc -l <"$TMP/node_out")" -eq "$total" ]; then
        pass "node verify_tokens.js accepts all $total tokens"
    else
        fail "node verify_tokens.js: $nok of $total ok (exit $nrc)" \
            "$(grep -vn '^ok$' "$TMP/node_out" | head -5) $(head -c 300 "$TMP/node_err")"
    fi
    # And it is not a rubber stamp: a token for another identifier fails.
    printf '%s\n' "$(head -1 "$TMP/node_in" | sed 's/"identifier":"user_0001"/"identifier":"user_9999"/')" >"$TMP/node_bad"
    node "$NODE_DIR/verify_tokens.js" <"$TMP/node_bad" >"$TMP/node_out" 2>/dev/null
    check "node verify_tokens.js refuses a token for another identifier" \
        grep -qx 'fail identifier_mismatch' "$TMP/node_out"
elif [ "$HAVE_NODE" = 0 ]; then
    skip "node is not installed: no cross-check by the official Node library"
else
    skip "$NODE_DIR/node_modules is missing (npm ci --prefix tests/node): no Node cross-check"
fi
