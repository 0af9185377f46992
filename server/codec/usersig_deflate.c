/*
 * The signer's deflate encoder for zlib levels 1 to 9. A UserSig document is about 200 bytes;
 * for input that small zlib spends most of a call on set-up and Huffman tree building, and then
 * picks the fixed codes anyway. This encoder writes what zlib would: one block with the fixed
 * Huffman codes of RFC 1951, greedy LZ77 matches searched to a depth set by the level, inside a
 * standard zlib wrapper (RFC 1950). Any inflater reads it; the tests inflate with zlib and Node.
 */
#include "usersig_int.h"

#include <string.h>
#include <zlib.h>

#define HASH_BITS 10
#define HASH_SIZE (1 << HASH_BITS)
#define MIN_MATCH 3
#define MAX_MATCH 258

/* Fixed literal/length codes (RFC 1951 3.2.6), bit-reversed for LSB-first output. */
static const uint16_t fixed_lit_code[288] = {
    0x00c, 0x08c, 0x04c, 0x0cc, 0x02c, 0x0ac, 0x06c, 0x0ec, 0x01c, 0x09c, 0x05c, 0x0dc, 0x03c,
    0x0bc, 0x07c, 0x0fc, 0x002, 0x082, 0x042, 0x0c2, 0x022, 0x0a2, 0x062, 0x0e2, 0x012, 0x092,
    0x052, 0x0d2, 0x032, 0x0b2, 0x072, 0x0f2, 0x00a, 0x08a, 0x04a, 0x0ca, 0x02a, 0x0aa, 0x06a,
    0x0ea, 0x01a, 0x09a, 0x05a, 0x0da, 0x03a, 0x0ba, 0x07a, 0x0fa, 0x006, 0x086, 0x046, 0x0c6,
    0x026, 0x0a6, 0x066, 0x0e6, 0x016, 0x096, 0x056, 0x0d6, 0x036, 0x0b6, 0x076, 0x0f6, 0x00e,
    0x08e, 0x04e, 0x0ce, 0x02e, 0x0ae, 0x06e, 0x0ee, 0x01e, 0x09e, 0x05e, 0x0de, 0x03e, 0x0be,
    0x07e, 0x0fe, 0x001, 0x081, 0x041, 0x0c1, 0x021, 0x0a1, 0x061, 0x0e1, 0x011, 0x091, 0x051,
    0x0d1, 0x031, 0x0b1, 0x071, 0x0f1, 0x009, 0x089, 0x049, 0x0c9, 0x029, 0x0a9, 0x069, 0x0e9,
    0x019, 0x099, 0x059, 0x0d9, 0x039, 0x0b9, 0x079, 0x0f9, 0x005, 0x085, 0x045, 0x0c5, 0x025,
    0x0a5, 0x065, 0x0e5, 0x015, 0x095, 0x055, 0x0d5, 0x035, 0x0b5, 0x075, 0x0f5, 0x00d, 0x08d,
    0x04d, 0x0cd, 0x02d, 0x0ad, 0x06d, 0x0ed, 0x01d, 0x09d, 0x05d, 0x0dd, 0x03d, 0x0bd, 0x07d,
    0x0fd, 0x013, 0x113, 0x093, 0x193, 0x053, 0x153, 0x0d3, 0x1d3, 0x033, 0x133, 0x0b3, 0x1b3,
    0x073, 0x173, 0x0f3, 0x1f3, 0x00b, 0x10b, 0x08b, 0x18b, 0x04b, 0x14b, 0x0cb, 0x1cb, 0x02b,
    0x12b, 0x0ab, 0x1ab, 0x06b, 0x16b, 0x0eb, 0x1eb, 0x01b, 0x11b, 0x09b, 0x19b, 0x05b, 0x15b,
    0x0db, 0x1db, 0x03b, 0x13b, 0x0bb, 0x1bb, 0x07b, 0x17b, 0x0fb, 0x1fb, 0x007, 0x107, 0x087,
    0x187, 0x047, 0x147, 0x0c7, 0x1c7, 0x027, 0x127, 0x0a7, 0x1a7, 0x067, 0x167, 0x0e7, 0x1e7,
    0x017, 0x117, 0x097, 0x197, 0x057, 0x157, 0x0d7, 0x1d7, 0x037, 0x137, 0x0b7, 0x1b7, 0x077,
    0x177, 0x0f7, 0x1f7, 0x00f, 0x10f, 0x08f, 0x18f, 0x04f, 0x14f, 0x0cf, 0x1cf, 0x02f, 0x12f,
    0x0af, 0x1af, 0x06f, 0x16f, 0x0ef, 0x1ef, 0x01f, 0x11f, 0x09f, 0x19f, 0x05f, 0x15f, 0x0df,
    0x1df, 0x03f, 0x13f, 0x0bf, 0x1bf, 0x07f, 0x17f, 0x0ff, 0x1ff, 0x000, 0x040, 0x020, 0x060,
    0x010, 0x050, 0x030, 0x070, 0x008, 0x048, 0x028, 0x068, 0x018, 0x058, 0x038, 0x078, 0x004,
    0x044, 0x024, 0x064, 0x014, 0x054, 0x034, 0x074, 0x003, 0x083, 0x043, 0x0c3, 0x023, 0x0a3,
    0x063, 0x0e3,
};
static const uint8_t fixed_dist_code[30] = {
    0x00, 0x10, 0x08, 0x18, 0x04, 0x14, 0x0c, 0x1c, 0x02, 0x12, 0x0a, 0x1a, 0x06, 0x16, 0x0e,
    0x1e, 0x01, 0x11, 0x09, 0x19, 0x05, 0x15, 0x0d, 0x1d, 0x03, 0x13, 0x0b, 0x1b, 0x07, 0x17,
};

static unsigned lit_len(unsigned sym)
{
    return sym <= 143 ? 8 : sym <= 255 ? 9 : sym <= 279 ? 7 : 8;
}

static const uint16_t len_base[29] = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                      15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {
    1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Candidates examined per position, by level (zlib's max_chain, scaled to tiny inputs). */
static const unsigned chain_depth[10] = {0, 4, 8, 16, 32, 64, 128, 256, 1024, 4096};

struct bits {
    uint8_t *out, *end;
    uint64_t acc;
    unsigned n;
    int overflow;
};

static void put_bits(struct bits *b, uint32_t v, unsigned n)
{
    b->acc |= (uint64_t)v << b->n;
    b->n += n;
    while (b->n >= 8) {
        if (b->out >= b->end) {
            b->overflow = 1;
            return;
        }
        *b->out++ = (uint8_t)b->acc;
        b->acc >>= 8;
        b->n -= 8;
    }
}

static void put_literal(struct bits *b, unsigned sym)
{
    put_bits(b, fixed_lit_code[sym], lit_len(sym));
}

static void put_match(struct bits *b, unsigned len, unsigned dist)
{
    int lc = 28, dc = 29;
    while (len_base[lc] > len)
        lc--;
    put_literal(b, 257 + (unsigned)lc);
    if (len_extra[lc] != 0)
        put_bits(b, len - len_base[lc], len_extra[lc]);
    while (dist_base[dc] > dist)
        dc--;
    put_bits(b, fixed_dist_code[dc], 5);
    if (dist_extra[dc] != 0)
        put_bits(b, dist - dist_base[dc], dist_extra[dc]);
}

static unsigned hash3(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

size_t usersig_deflate(const uint8_t *in, size_t n, int level, uint8_t *out, size_t cap)
{
    int16_t head[HASH_SIZE];
    int16_t prev[USERSIG_DEFLATE_MAX];
    struct bits b = {out, out + cap, 0, 0, 0};
    unsigned depth = chain_depth[level < 1 ? 1 : level > 9 ? 9 : level];

    if (n > USERSIG_DEFLATE_MAX || cap < 2)
        return 0;
    memset(head, 0xff, sizeof head);
    /* zlib header: deflate, 32 KiB window; FLEVEL as zlib sets it for this level. */
    unsigned flevel = level == 1 ? 0 : level < 6 ? 1 : level == 6 ? 2 : 3;
    unsigned cmf = 0x78, flg = flevel << 6;
    flg += 31 - (cmf * 256 + flg) % 31;
    *b.out++ = (uint8_t)cmf;
    *b.out++ = (uint8_t)flg;
    put_bits(&b, 1, 1); /* BFINAL */
    put_bits(&b, 1, 2); /* BTYPE 01: fixed codes */

    size_t i = 0;
    while (i < n) {
        unsigned best_len = 0, best_dist = 0;
        if (i + MIN_MATCH <= n) {
            unsigned h = hash3(in + i);
            int cand = head[h];
            size_t max = n - i < MAX_MATCH ? n - i : MAX_MATCH;
            for (unsigned c = 0; cand >= 0 && c < depth; c++, cand = prev[cand]) {
                const uint8_t *p = in + cand, *q = in + i;
                size_t l = 0;
                while (l < max && p[l] == q[l])
                    l++;
                if (l > best_len) {
                    best_len = (unsigned)l;
                    best_dist = (unsigned)(i - (size_t)cand);
                    if (l == max)
                        break;
                }
            }
        }
        size_t step = best_len >= MIN_MATCH ? best_len : 1;
        if (best_len >= MIN_MATCH)
            put_match(&b, best_len, best_dist);
        else
            put_literal(&b, in[i]);
        for (size_t k = 0; k < step; k++, i++) {
            if (i + MIN_MATCH <= n) {
                unsigned h = hash3(in + i);
                prev[i] = head[h];
                head[h] = (int16_t)i;
            }
        }
    }
    put_literal(&b, 256); /* end of block */
    if (b.n > 0)
        put_bits(&b, 0, 8 - b.n);
    uint32_t ad = (uint32_t)adler32(adler32(0L, Z_NULL, 0), in, (uInt)n);
    put_bits(&b, ad >> 24, 8);
    put_bits(&b, (ad >> 16) & 0xff, 8);
    put_bits(&b, (ad >> 8) & 0xff, 8);
    put_bits(&b, ad & 0xff, 8);
    return b.overflow ? 0 : (size_t)(b.out - out);
}
