/*
 * The web dashboard (ui.h): its files read from ui_dir into memory at start, and the handler of
 * GET /ui/{file} (a file, /ui/ being index.html, /ui a redirect to /ui/). Public
 * routes: the page holds no data, the API calls it makes carry the token. Every reply of a
 * dashboard route, its 404 included, carries the strict headers below; only names loaded from
 * the one directory can be served (no path is ever opened for a request).
 */
#include "ui.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "handlers.h"
#include "log.h"
#include "service.h"

struct ui_file {
    char name[UI_NAME_MAX + 1];
    const char *type; /* Content-Type */
    char *data;
    size_t len;
};

struct ui_assets {
    char dir[CONFIG_STRING_MAX];
    size_t n, bytes;
    struct ui_file files[UI_MAX_FILES];
};

static const struct {
    const char *ext, *type;
} TYPES[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".json", "application/json"},
};

/* On every reply of a dashboard route. The page has no inline script or style, so 'self' is
 * the whole policy; frames, <base> and foreign form targets are refused. */
static const struct {
    const char *name, *value;
} HEADERS[] = {
    {"Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"},
    {"Referrer-Policy", "no-referrer"},
    {"X-Frame-Options", "DENY"},
    {"Cache-Control", "no-cache"},
};

/* ---- loading ------------------------------------------------------------------------------ */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > UI_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* The Content-Type of an allowed extension, or NULL. */
static const char *type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        size_t e = strlen(TYPES[i].ext);
        if (n > e && strcmp(name + n - e, TYPES[i].ext) == 0)
            return TYPES[i].type;
    }
    return NULL;
}

static void files_free(struct ui_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i].data);
        files[i].data = NULL;
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct ui_file *)a)->name, ((const struct ui_file *)b)->name);
}

/* One file into f (name and type set): a regular file (no symlink) of at most UI_FILE_MAX. */
static int read_file(int dirfd, struct ui_file *f, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    int fd = openat(dirfd, f->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot read %s/%s: %s", dir, f->name, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s/%s is not a regular file", dir, f->name);
        goto fail;
    }
    if (st.st_size > UI_FILE_MAX) {
        snprintf(err, errlen, "%s/%s is %lld bytes; a dashboard file may have %d", dir, f->name,
                 (long long)st.st_size, UI_FILE_MAX);
        goto fail;
    }
    f->data = malloc((size_t)st.st_size + 1);
    if (f->data == NULL) {
        snprintf(err, errlen, "out of memory reading %s/%s", dir, f->name);
        goto fail;
    }
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, f->data + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(err, errlen, "cannot read %s/%s: %s", dir, f->name,
                     k < 0 ? strerror(errno) : "it got shorter while read");
            goto fail;
        }
        got += (size_t)k;
    }
    f->len = got;
    close(fd);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(f->data);
    f->data = NULL;
    return -1;
}

/* The files of dir into files (sorted by name), their count and bytes; -1 with err. */
static int load_dir(const char *dir, struct ui_file *files, size_t *n_out, size_t *bytes_out,
                    char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0, bytes = 0;
    bool index = false;

    if (d == NULL) {
        snprintf(err, errlen, "cannot open the dashboard folder %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        const char *type;
        if (!name_ok(e->d_name) || (type = type_of(e->d_name)) == NULL)
            continue;
        if (e->d_type == DT_UNKNOWN) { /* some file systems do not say: ask */
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
                continue;
        } else if (e->d_type != DT_REG) {
            continue; /* folders (screenshots/), links: not served */
        }
        if (n == UI_MAX_FILES) {
            snprintf(err, errlen, "the dashboard folder %s has more than %d files to serve", dir,
                     UI_MAX_FILES);
            goto fail;
        }
        memset(&files[n], 0, sizeof files[n]);
        memcpy(files[n].name, e->d_name, strlen(e->d_name) + 1); /* name_ok: it fits */
        files[n].type = type;
        if (read_file(dirfd(d), &files[n], dir, err, errlen) != 0)
            goto fail;
        bytes += files[n].len;
        index = index || strcmp(files[n].name, "index.html") == 0;
        n++;
        if (bytes > UI_TOTAL_MAX) {
            snprintf(err, errlen, "the dashboard files of %s are over %d bytes in all", dir,
                     UI_TOTAL_MAX);
            goto fail;
        }
    }
    if (!index) {
        snprintf(err, errlen, "the dashboard folder %s has no index.html", dir);
        goto fail;
    }
    closedir(d);
    qsort(files, n, sizeof files[0], by_name);
    *n_out = n;
    *bytes_out = bytes;
    return 0;
fail:
    closedir(d);
    files_free(files, n);
    return -1;
}

int ui_assets_load(const char *dir, struct ui_assets **out, char *err, size_t errlen)
{
    struct ui_assets *a;

    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return 0;
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(a->dir, sizeof a->dir, "%s", dir);
    if (load_dir(a->dir, a->files, &a->n, &a->bytes, err, errlen) != 0) {
        free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int ui_assets_reload(struct ui_assets *a, char *err, size_t errlen)
{
    struct ui_file *fresh = calloc(UI_MAX_FILES, sizeof *fresh);
    size_t n, bytes;

    if (fresh == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_dir(a->dir, fresh, &n, &bytes, err, errlen) != 0) {
        free(fresh);
        return -1;
    }
    files_free(a->files, a->n);
    memcpy(a->files, fresh, n * sizeof *fresh);
    a->n = n;
    a->bytes = bytes;
    free(fresh);
    return 0;
}

size_t ui_assets_count(const struct ui_assets *a)
{
    return a != NULL ? a->n : 0;
}

size_t ui_assets_bytes(const struct ui_assets *a)
{
    return a != NULL ? a->bytes : 0;
}

void ui_assets_free(struct ui_assets *a)
{
    if (a == NULL)
        return;
    files_free(a->files, a->n);
    free(a);
}

/* ---- handlers ----------------------------------------------------------------------------- */

static const struct ui_file *find(const struct ui_assets *a, const char *name)
{
    for (size_t i = 0; a != NULL && i < a->n; i++)
        if (strcmp(a->files[i].name, name) == 0)
            return &a->files[i];
    return NULL;
}

/* The strict headers; -1 (a 500 sent) when out of memory. */
static int strict_headers(struct api_request *r)
{
    for (size_t i = 0; i < sizeof HEADERS / sizeof HEADERS[0]; i++) {
        if (api_reply_header(r, HEADERS[i].name, HEADERS[i].value) != 0) {
            api_reply_error(r, API_ERR_INTERNAL, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* GET /ui/{file}: a file loaded at start, "" meaning index.html; /ui itself (no {file}) a 301 to
 * /ui/, against which the page's relative URLs (app.js, app.css) resolve. The name is compared
 * with the loaded ones as it came (not percent-decoded): "..", "%2e%2e", "a/b" can only miss. */
void handle_ui_file(struct api_request *r)
{
    const struct service *svc = r->ctx;
    const char *slash = strrchr(r->path, '/');
    const char *name = slash != NULL ? slash + 1 : "";
    const struct ui_file *f;

    if (strict_headers(r) != 0)
        return;
    if (svc->ui == NULL) {
        api_reply_error(r, API_ERR_NOT_FOUND, "the dashboard is off (ui_dir is empty)");
        return;
    }
    if (slash == r->path) { /* "/ui": the route's {file} absent */
        if (api_reply_header(r, "Location", "/ui/") != 0) {
            api_reply_error(r, API_ERR_INTERNAL, "out of memory");
            return;
        }
        api_reply_text(r, 301, "text/plain; charset=utf-8", "/ui/\n", 5);
        return;
    }
    f = find(svc->ui, name[0] != '\0' ? name : "index.html");
    if (f == NULL) {
        /* The name is not echoed: it is the client's and may be anything. */
        api_reply_error(r, API_ERR_NOT_FOUND, "no such dashboard file");
        return;
    }
    api_reply_text(r, 200, f->type, f->data, f->len);
}
