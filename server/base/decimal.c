#include "decimal.h"

size_t decimal_span(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

int decimal_parse(const char *s, size_t n, uint64_t max, unsigned flags, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || decimal_span(s, n) != n || ((flags & DECIMAL_CANONICAL) && n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (d > max || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
