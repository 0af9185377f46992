/*
 * The dashboard's loader (admin-api/ui.c): which files of a folder it takes (names, extensions,
 * regular files only), its bounds (file count, file size, total), index.html required, "" as
 * off, a reload that keeps the old files when the folder went bad, and the tree's own
 * admin-api/ui within every bound. No server: the handlers are driven by tests/e2e/ui.test.js.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"
#include "ui.h"

static char root[256];

static void put(const char *name, size_t size)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", root, name);
    f = fopen(path, "w");
    if (f == NULL) {
        CHECK(0, "cannot write %s", path);
        return;
    }
    for (size_t i = 0; i < size; i++)
        fputc('x', f);
    fclose(f);
}

static void rm(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    unlink(path);
}

static void test_folder(void)
{
    struct ui_assets *a = (struct ui_assets *)1;
    char err[512] = "", path[512];

    CHECK(ui_assets_load("", &a, err, sizeof err) == 0 && a == NULL, "\"\" is off");
    CHECK(ui_assets_load(root, &a, err, sizeof err) == -1 && a == NULL &&
              strstr(err, "no index.html") != NULL,
          "an empty folder: %s", err);

    put("index.html", 10);
    put("app.js", 20);
    put("app.css", 30);
    put("README.md", 5);  /* extension not allowed: left alone */
    put(".hidden.js", 5); /* dot file: left alone */
    put("a b.js", 5);     /* a space: left alone */
    put("noext", 5);      /* no extension */
    snprintf(path, sizeof path, "%s/screenshots", root);
    mkdir(path, 0700); /* a folder: not served */
    snprintf(path, sizeof path, "%s/link.js", root);
    CHECK(symlink("/etc/passwd", path) == 0, "symlink");
    CHECK(ui_assets_load(root, &a, err, sizeof err) == 0 && a != NULL, "loads: %s", err);
    CHECK(ui_assets_count(a) == 3 && ui_assets_bytes(a) == 60, "3 files, 60 bytes: %zu, %zu",
          ui_assets_count(a), ui_assets_bytes(a));

    /* A reload sees a new file; a folder gone bad keeps the files as they were. */
    put("page.js", 40);
    CHECK(ui_assets_reload(a, err, sizeof err) == 0 && ui_assets_count(a) == 4 &&
              ui_assets_bytes(a) == 100,
          "reload: %s", err);
    rm("index.html");
    CHECK(ui_assets_reload(a, err, sizeof err) == -1 && strstr(err, "no index.html") != NULL &&
              ui_assets_count(a) == 4 && ui_assets_bytes(a) == 100,
          "failed reload keeps the old files: %s", err);
    put("index.html", 10);

    /* One file over 1 MiB. */
    put("big.js", UI_FILE_MAX + 1);
    CHECK(ui_assets_reload(a, err, sizeof err) == -1 && strstr(err, "big.js") != NULL,
          "a file over the bound: %s", err);
    rm("big.js");
    ui_assets_free(a);

    /* More than UI_MAX_FILES files. */
    for (int i = 0; i < UI_MAX_FILES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%02d.js", i);
        put(name, 1);
    }
    CHECK(ui_assets_load(root, &a, err, sizeof err) == -1 && a == NULL &&
              strstr(err, "more than 64 files") != NULL,
          "too many files: %s", err);
    for (int i = 0; i < UI_MAX_FILES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%02d.js", i);
        rm(name);
    }

    /* Over 8 MiB in all, each under 1 MiB. */
    for (int i = 0; i < 9; i++) {
        char name[32];
        snprintf(name, sizeof name, "g%d.js", i);
        put(name, UI_FILE_MAX);
    }
    CHECK(ui_assets_load(root, &a, err, sizeof err) == -1 && strstr(err, "in all") != NULL,
          "over the total: %s", err);
    for (int i = 0; i < 9; i++) {
        char name[32];
        snprintf(name, sizeof name, "g%d.js", i);
        rm(name);
    }

    CHECK(ui_assets_load("/nonexistent/ui", &a, err, sizeof err) == -1 &&
              strstr(err, "/nonexistent/ui") != NULL,
          "a missing folder is named: %s", err);
    ui_assets_free(NULL);
}

/* The tree's dashboard loads, index.html included, within the bounds. */
static void test_tree(void)
{
    struct ui_assets *a = NULL;
    char err[512] = "";
    CHECK(ui_assets_load(USERSIGD_UI_DIR, &a, err, sizeof err) == 0 && a != NULL,
          "admin-api/ui loads: %s", err);
    CHECK(ui_assets_count(a) >= 5 && ui_assets_bytes(a) < UI_TOTAL_MAX / 4,
          "admin-api/ui: %zu files, %zu bytes", ui_assets_count(a), ui_assets_bytes(a));
    ui_assets_free(a);
}

int main(void)
{
    char cmd[600];
    snprintf(root, sizeof root, "%s/usersigd-ui-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_folder();
    test_tree();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return test_done("ui");
}
