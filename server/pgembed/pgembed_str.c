/*
 * pgembed: the string helpers its files share (paths joined, messages formatted into new
 * strings). The bottom of pgembed: pgembed.c and pgembed_dir.c call it; it calls only libc.
 */
#include "pgembed_int.h"

#include <stdarg.h>
#include <stdio.h>

char *pgembed_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

char *pgembed_join(const char *dir, const char *name)
{
    return pgembed_asprintf("%s/%s", dir, name);
}
