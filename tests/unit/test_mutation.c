/*
 * Mutation test: many thousands of corrupted tokens (flipped bytes and bits, truncations,
 * insertions, huge inputs, zlib bombs, corrupted documents re-wrapped validly) go to the
 * verifier; each must give a verdict from the enum, never crash, and a mutation of a valid token
 * must never verify unless it decodes to the same values.
 */
#include "testlib.h"
#include "usersig.h"
#include "usersig_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char SECRET[] = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
static const char ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_+/= \n\"{}";

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static long verified_mutants;

static void check_one(const char *tok, size_t n, const struct usersig_key *k,
                      const struct usersig_decoded *orig)
{
    static struct usersig_decoded d;
    struct usersig_expect e = {.identifier = orig->identifier,
                               .identifier_len = orig->identifier_len,
                               .sdkappid = orig->sdkappid};
    enum usersig_verdict v = usersig_verify(tok, n, &e, k, orig->time, &d);
    CHECK((unsigned)v < USERSIG_VERDICT_COUNT, "verdict out of range");
    if (v == USERSIG_VALID) {
        /* Only a mutation that leaves the signed values as they were may verify (e.g. whitespace
         * or an equivalent zlib stream). */
        verified_mutants++;
        CHECK(d.sdkappid == orig->sdkappid && d.time == orig->time && d.expire == orig->expire &&
                  d.identifier_len == orig->identifier_len &&
                  memcmp(d.identifier, orig->identifier, d.identifier_len) == 0 &&
                  d.userbuf_b64_len == orig->userbuf_b64_len,
              "a mutant verified with other values");
    }
}

static void wrap(const char *doc, size_t n, int level, char *out, size_t *out_len)
{
    uint8_t z[20000];
    uLongf zn = sizeof z;
    if (compress2(z, &zn, (const Bytef *)doc, n, level) != Z_OK) {
        *out_len = 0;
        return;
    }
    size_t m = usersig_b64_encode(z, zn, out);
    for (size_t i = 0; i < m; i++)
        out[i] = out[i] == '+' ? '*' : out[i] == '/' ? '-' : out[i] == '=' ? '_' : out[i];
    *out_len = m;
}

int main(void)
{
    struct usersig_key *k = NULL;
    struct usersig_signer *s = NULL;
    char tok[USERSIG_TOKEN_BUF], mut[USERSIG_TOKEN_BUF * 2];
    static char big[40000];
    size_t n;
    long count = 0;

    if (usersig_key_new_hmac(SECRET, strlen(SECRET), &k) != USERSIG_OK ||
        usersig_signer_new(k, 1400000000, 6, USERSIG_ID_PRINTABLE, &s) != USERSIG_OK)
        return 2;

    for (int base = 0; base < 8; base++) {
        struct usersig_params p = {
            .identifier = "mutant_user", .identifier_len = 11, .expire = 86400, .time = 1700000000};
        if (base % 3 == 1) {
            p.room.kind = USERSIG_ROOM_NUMERIC;
            p.room.room_id = 99;
            p.room.privilege_map = 255;
        } else if (base % 3 == 2) {
            p.room.kind = USERSIG_ROOM_STRING;
            p.room.room_str = "room";
            p.room.room_str_len = 4;
        }
        struct usersig_signer *sl = NULL;
        if (usersig_signer_new(k, 1400000000, base, USERSIG_ID_PRINTABLE, &sl) != USERSIG_OK)
            return 2;
        CHECK(usersig_sign(sl, &p, tok, sizeof tok, &n) == USERSIG_OK, "base sign");
        usersig_signer_free(sl);
        struct usersig_decoded orig;
        CHECK(usersig_decode(tok, n, &orig) == USERSIG_VALID, "base decodes");

        /* Token-level mutations. */
        for (int i = 0; i < 4000; i++) {
            size_t m = n;
            memcpy(mut, tok, n);
            int kind = (int)(next() % 5);
            size_t at = next() % n;
            switch (kind) {
            case 0: /* replace a character */
                mut[at] = ALPHABET[next() % (sizeof ALPHABET - 1)];
                break;
            case 1: /* flip a bit */
                mut[at] = (char)(mut[at] ^ (1 << (next() % 8)));
                break;
            case 2: /* truncate */
                m = at;
                break;
            case 3: { /* delete a run */
                size_t run = 1 + next() % (n - at);
                memmove(mut + at, tok + at + run, n - at - run);
                m = n - run;
                break;
            }
            default: /* insert a character */
                memmove(mut + at + 1, tok + at, n - at);
                mut[at] = ALPHABET[next() % (sizeof ALPHABET - 1)];
                m = n + 1;
                break;
            }
            check_one(mut, m, k, &orig);
            count++;
        }

        /* Document-level mutations, re-wrapped in valid zlib and base64, so they reach the
         * JSON parser and the checks. */
        for (int i = 0; i < 3000; i++) {
            char doc[USERSIG_MAX_DOCUMENT + 64];
            size_t dn = orig.document_len;
            memcpy(doc, orig.document, dn);
            int edits = 1 + (int)(next() % 3);
            for (int e = 0; e < edits && dn > 0; e++) {
                size_t at = next() % dn;
                switch (next() % 4) {
                case 0:
                    doc[at] = (char)(next() % 256);
                    break;
                case 1:
                    doc[at] = "{}[]\",:\\0123456789.-eEtrufalsn "[next() % 31];
                    break;
                case 2:
                    dn = at;
                    break;
                default:
                    memmove(doc + at + 1, doc + at, dn - at);
                    doc[at] = "{}[]\",:\\0 "[next() % 10];
                    dn++;
                    break;
                }
            }
            size_t m;
            wrap(doc, dn, (int)(next() % 10), mut, &m);
            check_one(mut, m, k, &orig);
            count++;
        }
    }

    /* Huge and hostile inputs. */
    struct usersig_decoded orig;
    CHECK(usersig_sign(s,
                       &(struct usersig_params){
                           .identifier = "u", .identifier_len = 1, .expire = 10, .time = 1},
                       tok, sizeof tok, &n) == USERSIG_OK,
          "sign");
    CHECK(usersig_decode(tok, n, &orig) == USERSIG_VALID, "decode");
    for (int i = 0; i < 200; i++) {
        size_t m = next() % sizeof big;
        for (size_t j = 0; j < m; j++)
            big[j] = ALPHABET[next() % (sizeof ALPHABET - 1)];
        check_one(big, m, k, &orig);
        count++;
    }
    /* Zlib bombs: a small token whose document inflates far past the bound. */
    static char bomb[1000000];
    memset(bomb, '{', sizeof bomb);
    size_t bn;
    static char wrapped[40000];
    wrap(bomb, sizeof bomb, 9, wrapped, &bn);
    CHECK(bn > 0 && bn < USERSIG_MAX_TOKEN_INPUT, "bomb fits the input bound (%zu)", bn);
    struct usersig_decoded d;
    CHECK(usersig_decode(wrapped, bn, &d) == USERSIG_MALFORMED, "bomb is malformed");
    count++;

    printf("mutation: %ld mutants, %ld still verified (equivalent encodings)\n", count,
           verified_mutants);
    CHECK(count >= 50000, "enough mutants");
    usersig_signer_free(s);
    usersig_key_free(k);
    return test_done("mutation");
}
