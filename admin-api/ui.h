/*
 * The web dashboard's files (admin-api/ui/: index.html, CSS, JavaScript modules), read once from
 * ui_dir into memory at start (and again on SIGHUP), then served from memory by the handlers of
 * GET /ui and GET /ui/{file}: nothing touches the disk while a request is served.
 */
#ifndef API_UI_H
#define API_UI_H

#include <stddef.h>

#define UI_WUR __attribute__((warn_unused_result))

#define UI_MAX_FILES 64                /* files served, at most */
#define UI_FILE_MAX (1024 * 1024)      /* bytes of one file */
#define UI_TOTAL_MAX (8 * 1024 * 1024) /* bytes of all of them */
#define UI_NAME_MAX 64                 /* characters of a file name */

struct ui_assets; /* opaque */

/* Reads every regular file at the top of dir whose name is 1..UI_NAME_MAX of [A-Za-z0-9._-],
 * not starting with '.', and ends in an extension of the allow-list (.html .css .js .svg .png
 * .ico .txt .json); anything else there (subfolders, other files) is left alone. index.html
 * must be among them. dir "" means no dashboard: *out NULL and 0. Otherwise 0 with *out a new
 * set (ui_assets_free), or -1 with err naming the file and the bound (more than UI_MAX_FILES
 * files, one over UI_FILE_MAX, all over UI_TOTAL_MAX, unreadable, no index.html). Blocking file
 * reads: at start or from a signal callback, never for a request. */
int ui_assets_load(const char *dir, struct ui_assets **out, char *err, size_t errlen) UI_WUR;

/* Reads a's directory again and, when that succeeds, serves the new files in place of the old
 * (a stays the same pointer); on failure a keeps its files and err says why. Loop thread. */
int ui_assets_reload(struct ui_assets *a, char *err, size_t errlen) UI_WUR;

size_t ui_assets_count(const struct ui_assets *a); /* files, 0 for NULL */
size_t ui_assets_bytes(const struct ui_assets *a); /* their bytes, 0 for NULL */
void ui_assets_free(struct ui_assets *a);          /* accepts NULL */

#endif
