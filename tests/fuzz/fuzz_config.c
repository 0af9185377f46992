/*
 * The config file parser (config_load, server/base/config.c) on any file content, read from a
 * memory file. Loading either succeeds with every string setting NUL-terminated and within
 * bounds, or fails with one terminated line of error that never quotes database_url's value.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The environment would win over the file: none of it here. */
    extern char **environ;
    for (size_t i = 0; environ[i] != NULL;) {
        char name[256];
        const char *eq = strchr(environ[i], '=');
        size_t n = eq != NULL ? (size_t)(eq - environ[i]) : 0;
        if (n > 0 && n < sizeof name && strncmp(environ[i], "USERSIGD_", 9) == 0) {
            memcpy(name, environ[i], n);
            name[n] = '\0';
            unsetenv(name);
        } else {
            i++;
        }
    }
    fd = memfd_create("usersigd-fuzz-config", 0);
    if (fd < 0)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

static void terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    char err[CONFIG_ERR_BUF];

    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    memset(err, 'x', sizeof err);
    enum config_rc rc = config_load(path, &cfg, err, sizeof err);
    if (rc == CONFIG_OK) {
        terminated(cfg.listen, sizeof cfg.listen);
        terminated(cfg.listen_host, sizeof cfg.listen_host);
        terminated(cfg.database_url, sizeof cfg.database_url);
        terminated(cfg.master_key_file, sizeof cfg.master_key_file);
        terminated(cfg.data_dir, sizeof cfg.data_dir);
        terminated(cfg.migrations_dir, sizeof cfg.migrations_dir);
        if (cfg.db_connections < 1 || cfg.db_connections > 64 || cfg.workers < 0)
            abort();
        return 0;
    }
    if (rc != CONFIG_INVALID && rc != CONFIG_NO_MEMORY && rc != CONFIG_CANNOT_READ)
        abort();
    terminated(err, sizeof err);
    if (strchr(err, '\n') != NULL || strchr(err, '\r') != NULL)
        abort();
    /* No database_url value (a line "database_url = VALUE", lines ended as an editor shows
     * them, by LF or CR) comes back in the message, nor a raw CR (the finding kept as
     * corpus/config/cr-joined-lines-quote-password: a bare CR joined the next line into the
     * value quoted back; a value with a control character is now refused unquoted). */
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r')
            e++;
        const char *k = p;
        while (k < e && (*k == ' ' || *k == '\t'))
            k++;
        if (e - k > 12 && memcmp(k, "database_url", 12) == 0) {
            const char *v = k + 12;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            if (v < e && *v == '=') {
                v++;
                while (v < e && (*v == ' ' || *v == '\t'))
                    v++;
                const char *ve = e;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                size_t vn = (size_t)(ve - v);
                /* Unless another line holds the same text (it may be quoted as its own). */
                bool elsewhere = memmem(data, (size_t)(v - (const char *)data), v, vn) != NULL ||
                                 memmem(v + 1, (size_t)(end - v - 1), v, vn) != NULL;
                if (vn >= 8 && !elsewhere && memmem(err, strlen(err), v, vn) != NULL)
                    abort();
            }
        }
        p = e + 1;
    }
    return 0;
}
