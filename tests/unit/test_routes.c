/*
 * The route table (admin-api/routes.c), the error table (errors.c) and admin-api/openapi.yaml
 * must tell the same story: the same (method, path) pairs, operationIds, roles, public routes and
 * request bodies; each operation's x-error-codes known, answered with a listed status, and
 * including what the framework itself can send; the query parameters (`in: query`, inline or a
 * $ref to components/parameters) those of the route's query list; ErrorCode's enum equal to the
 * error table. The YAML is read line by line (its layout rules are at its top), so no YAML
 * library is needed.
 * Plus path matching and the table checker, which need no server.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "http.h"
#include "metrics.h"
#include "routes.h"
#include "testlib.h"

#ifndef USERSIGD_SOURCE_DIR
#define USERSIGD_SOURCE_DIR "."
#endif

#define MAX_OPS 64
#define MAX_LIST 40
#define MAX_CODES 64

struct spec_op {
    int line;
    char method[8]; /* upper case */
    char path[128];
    char op[64];
    char roles[MAX_LIST][32];
    int n_roles;
    bool has_roles;
    bool public_route; /* security: [] */
    bool has_body;
    bool body_required;
    char statuses[MAX_LIST][4];
    int n_statuses;
    char codes[MAX_LIST][32];
    int n_codes;
    bool has_codes;
    /* parameters: each inline one's name (query[i] true when `in: query`) or a $ref's target */
    char params[MAX_LIST][64];
    bool param_is_ref[MAX_LIST], param_in_query[MAX_LIST];
    int n_params;
};

/* components: parameters: Key: name: ..., in: ... */
static struct {
    char key[64], name[64];
    bool in_query;
} comp_params[MAX_OPS];
static int n_comp_params;

static struct spec_op ops[MAX_OPS];
static int n_ops;
static struct {
    char code[32];
    int status;
} spec_codes[MAX_CODES];
static int n_spec_codes;

static int indent_of(const char *s)
{
    int n = 0;
    while (s[n] == ' ')
        n++;
    return n;
}

/* "[a, b, c]" -> items; -1 when not a one-line flow list. */
static int flow_list(const char *v, char items[][32], int max)
{
    int n = 0;
    const char *p = v, *end;
    if (*p != '[' || (end = strchr(p, ']')) == NULL || end[1] != '\0')
        return -1;
    for (p++; p < end;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != ' ')
            p++;
        if (p > s) {
            if (n == max || (size_t)(p - s) >= 32)
                return -1;
            memcpy(items[n], s, (size_t)(p - s));
            items[n][p - s] = '\0';
            n++;
        }
    }
    return n;
}

static bool in_list(char items[][32], int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(items[i], s) == 0)
            return true;
    return false;
}

/* Reads the spec; 0, or -1 after reporting the first line it cannot follow. */
static int read_spec(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[2048];
    int lineno = 0, section = 0; /* 0 none, 1 paths, 2 components */
    char cur_path[128] = "";
    struct spec_op *op = NULL;
    char sub[32] = ""; /* the indent-6 key we are under */
    bool in_error_code = false, in_enum = false, in_comp_params = false;

    if (f == NULL) {
        CHECK(0, "cannot open %s", path);
        return -1;
    }
    while (fgets(buf, sizeof buf, f) != NULL) {
        size_t len = strlen(buf);
        int ind;
        char *text;
        lineno++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if (strchr(buf, '\t') != NULL) {
            CHECK(0, "%s:%d: a tab", path, lineno);
            fclose(f);
            return -1;
        }
        ind = indent_of(buf);
        text = buf + ind;
        if (*text == '\0' || *text == '#')
            continue;
        if (ind == 0) {
            section = strcmp(text, "paths:") == 0 ? 1 : strcmp(text, "components:") == 0 ? 2 : 0;
            op = NULL;
            continue;
        }
        if (section == 2) {
            /* components: parameters: Key: (name:, in: at 6) */
            if (ind == 2)
                in_comp_params = strcmp(text, "parameters:") == 0;
            if (in_comp_params && ind == 4 && n_comp_params < MAX_OPS) {
                memset(&comp_params[n_comp_params], 0, sizeof comp_params[0]);
                snprintf(comp_params[n_comp_params].key, sizeof comp_params[0].key, "%.*s",
                         (int)strcspn(text, ":"), text);
                n_comp_params++;
            }
            if (in_comp_params && ind == 6 && n_comp_params > 0) {
                if (strncmp(text, "name: ", 6) == 0)
                    snprintf(comp_params[n_comp_params - 1].name, sizeof comp_params[0].name, "%s",
                             text + 6);
                else if (strcmp(text, "in: query") == 0)
                    comp_params[n_comp_params - 1].in_query = true;
            }
            /* components: schemas: ErrorCode: enum: - code  # status */
            if (ind == 4)
                in_error_code = strcmp(text, "ErrorCode:") == 0;
            if (in_error_code && ind == 6)
                in_enum = strcmp(text, "enum:") == 0;
            if (in_error_code && in_enum && ind == 8 && text[0] == '-') {
                char code[64];
                const char *hash = strchr(text, '#');
                if (sscanf(text, "- %63s", code) != 1 || hash == NULL ||
                    n_spec_codes == MAX_CODES || strlen(code) >= 32) {
                    CHECK(0, "%s:%d: want \"- code  # status\"", path, lineno);
                    continue;
                }
                strcpy(spec_codes[n_spec_codes].code, code);
                spec_codes[n_spec_codes].status = atoi(hash + 1);
                n_spec_codes++;
            }
            continue;
        }
        if (section != 1)
            continue;
        if (ind == 2) {
            if (text[0] != '/' || text[strlen(text) - 1] != ':' ||
                strlen(text) >= sizeof cur_path) {
                CHECK(0, "%s:%d: want \"  /path:\" under paths", path, lineno);
                fclose(f);
                return -1;
            }
            snprintf(cur_path, sizeof cur_path, "%.*s", (int)strlen(text) - 1, text);
            op = NULL;
        } else if (ind == 4) {
            static const char *const methods[] = {"get:", "post:", "put:", "patch:", "delete:"};
            size_t m = 0;
            while (m < 5 && strcmp(text, methods[m]) != 0)
                m++;
            if (m == 5 || cur_path[0] == '\0' || n_ops == MAX_OPS) {
                CHECK(0, "%s:%d: want a method (get, post, put, patch, delete) at indent 4", path,
                      lineno);
                fclose(f);
                return -1;
            }
            op = &ops[n_ops++];
            memset(op, 0, sizeof *op);
            op->line = lineno;
            for (size_t i = 0; i + 1 < strlen(text); i++)
                op->method[i] = (char)toupper((unsigned char)text[i]);
            strcpy(op->path, cur_path);
            sub[0] = '\0';
        } else if (ind == 6 && op != NULL) {
            char key[32];
            const char *colon = strchr(text, ':');
            const char *value = colon ? colon + 1 : "";
            if (colon == NULL || (size_t)(colon - text) >= sizeof key)
                continue;
            snprintf(key, sizeof key, "%.*s", (int)(colon - text), text);
            while (*value == ' ')
                value++;
            snprintf(sub, sizeof sub, "%s", key);
            if (strcmp(key, "operationId") == 0) {
                snprintf(op->op, sizeof op->op, "%s", value);
            } else if (strcmp(key, "x-roles") == 0) {
                op->has_roles = true;
                op->n_roles = flow_list(value, op->roles, MAX_LIST);
                CHECK(op->n_roles >= 0, "%s:%d: x-roles is not a one-line [list]", path, lineno);
            } else if (strcmp(key, "x-error-codes") == 0) {
                op->has_codes = true;
                op->n_codes = flow_list(value, op->codes, MAX_LIST);
                CHECK(op->n_codes >= 0, "%s:%d: x-error-codes is not a one-line [list]", path,
                      lineno);
            } else if (strcmp(key, "security") == 0) {
                op->public_route = strcmp(value, "[]") == 0;
            } else if (strcmp(key, "requestBody") == 0) {
                op->has_body = true;
            }
        } else if (ind == 8 && op != NULL) {
            if (strcmp(sub, "responses") == 0) {
                if (strlen(text) != 6 || text[0] != '\'' || text[4] != '\'' || text[5] != ':' ||
                    op->n_statuses == MAX_LIST) {
                    CHECK(0, "%s:%d: want a quoted status ('200':) under responses", path, lineno);
                    continue;
                }
                memcpy(op->statuses[op->n_statuses], text + 1, 3);
                op->statuses[op->n_statuses++][3] = '\0';
            } else if (strcmp(sub, "requestBody") == 0 && strncmp(text, "required:", 9) == 0) {
                op->body_required = strstr(text, "true") != NULL;
            } else if (strcmp(sub, "parameters") == 0 && text[0] == '-') {
                static const char ref[] = "- $ref: '#/components/parameters/";
                int k = op->n_params;
                if (k == MAX_LIST) {
                    CHECK(0, "%s:%d: over %d parameters", path, lineno, MAX_LIST);
                    continue;
                }
                if (strncmp(text, ref, sizeof ref - 1) == 0) {
                    snprintf(op->params[k], sizeof op->params[k], "%.*s",
                             (int)strcspn(text + sizeof ref - 1, "'"), text + sizeof ref - 1);
                    op->param_is_ref[k] = true;
                } else if (strncmp(text, "- name: ", 8) == 0) {
                    snprintf(op->params[k], sizeof op->params[k], "%s", text + 8);
                } else {
                    CHECK(0, "%s:%d: want \"- name: x\" or \"- $ref: ...\" under parameters", path,
                          lineno);
                    continue;
                }
                op->n_params++;
            }
        } else if (ind == 10 && op != NULL && strcmp(sub, "parameters") == 0 && op->n_params > 0 &&
                   strcmp(text, "in: query") == 0) {
            op->param_in_query[op->n_params - 1] = true;
        }
    }
    fclose(f);
    return 0;
}

static struct spec_op *find_op(const char *method, const char *path)
{
    for (int i = 0; i < n_ops; i++)
        if (strcmp(ops[i].method, method) == 0 && strcmp(ops[i].path, path) == 0)
            return &ops[i];
    return NULL;
}

static bool has_status(const struct spec_op *op, int status)
{
    char s[8];
    snprintf(s, sizeof s, "%d", status);
    for (int i = 0; i < op->n_statuses; i++)
        if (strcmp(op->statuses[i], s) == 0)
            return true;
    return false;
}

static void check_route_against_spec(const struct api_route *r)
{
    const char *method = api_method_name(r->method);
    struct spec_op *op = find_op(method, r->pattern);
    bool public_route = r->perm == PERM_PUBLIC;
    bool json_body = r->body == API_BODY_JSON || r->body == API_BODY_JSON_OPTIONAL;

    CHECK(op != NULL, "%s %s is in the route table but not in openapi.yaml", method, r->pattern);
    if (op == NULL)
        return;
    CHECK(strcmp(op->op, r->op) == 0, "%s %s: operationId %s in openapi.yaml, %s in the table",
          method, r->pattern, op->op, r->op);
    CHECK(op->has_roles, "%s %s: no x-roles in openapi.yaml", method, r->pattern);
    for (int role = 0; role < ROLE_COUNT; role++) {
        bool table = role_has_perm(role, r->perm);
        bool spec = in_list(op->roles, op->n_roles, role_name(role));
        CHECK(table == spec, "%s %s: role %s is %s in the table but %s in openapi.yaml x-roles",
              method, r->pattern, role_name(role), table ? "allowed" : "refused",
              spec ? "listed" : "not listed");
    }
    for (int i = 0; i < op->n_roles; i++)
        CHECK(role_parse(op->roles[i]) >= 0, "%s %s: x-roles has unknown role %s", method,
              r->pattern, op->roles[i]);
    CHECK(op->public_route == public_route, "%s %s: %s in the table, %s in openapi.yaml", method,
          r->pattern, public_route ? "public" : "needs a token",
          op->public_route ? "security: []" : "bearer security");
    CHECK(op->has_body == (r->body != API_BODY_NONE), "%s %s: body %d in the table, requestBody %s",
          method, r->pattern, (int)r->body, op->has_body ? "present" : "absent");
    if (op->has_body)
        CHECK(op->body_required == (r->body != API_BODY_JSON_OPTIONAL),
              "%s %s: requestBody required: %s, table body kind %d", method, r->pattern,
              op->body_required ? "true" : "false", (int)r->body);

    /* x-error-codes: known, each answered with a listed status, and covering what the
     * framework sends on this route. */
    CHECK(op->has_codes, "%s %s: no x-error-codes", method, r->pattern);
    for (int i = 0; i < op->n_codes; i++) {
        int e = api_error_parse(op->codes[i]);
        CHECK(e > 0, "%s %s: x-error-codes has unknown code %s", method, r->pattern, op->codes[i]);
        if (e > 0)
            CHECK(has_status(op, api_error_status(e)),
                  "%s %s: code %s comes with %d, which responses does not list", method, r->pattern,
                  op->codes[i], api_error_status(e));
    }
    const char *need[12];
    int n_need = 0;
    need[n_need++] = "internal";
    if (!public_route) {
        need[n_need++] = "unauthorized";
        need[n_need++] = "forbidden";
        need[n_need++] = "unavailable";
    }
    need[n_need++] = "invalid_param"; /* a malformed query, a name it does not take; a path
                                       * parameter out of its type */
    if (json_body) {
        need[n_need++] = "bad_json";
        need[n_need++] = "unknown_field";
        need[n_need++] = "invalid_field";
        need[n_need++] = "unsupported_media_type";
    }
    if (r->body != API_BODY_NONE)
        need[n_need++] = "body_too_large";
    if (r->body == API_BODY_JSON)
        need[n_need++] = "missing_field";
    for (int i = 0; i < n_need; i++)
        CHECK(in_list(op->codes, op->n_codes, need[i]),
              "%s %s: the framework can answer %s here but x-error-codes lacks it", method,
              r->pattern, need[i]);
    for (int i = 0; i < op->n_statuses; i++) {
        bool used = atoi(op->statuses[i]) < 400; /* a success or a redirect: no error code */
        for (int k = 0; k < op->n_codes && !used; k++) {
            int e = api_error_parse(op->codes[k]);
            used = e > 0 && atoi(op->statuses[i]) == api_error_status(e);
        }
        CHECK(used, "%s %s: response %s is listed but no x-error-code gives it", method, r->pattern,
              op->statuses[i]);
    }

    /* The query parameters: those the spec lists `in: query` are the route's query list. */
    char spec_query[MAX_LIST][32];
    int n_spec_query = 0;
    for (int i = 0; i < op->n_params; i++) {
        const char *name = op->params[i];
        bool query = op->param_in_query[i];
        if (op->param_is_ref[i]) {
            int c = 0;
            while (c < n_comp_params && strcmp(comp_params[c].key, op->params[i]) != 0)
                c++;
            CHECK(c < n_comp_params, "%s %s: parameter $ref %s is not in components/parameters",
                  method, r->pattern, op->params[i]);
            if (c == n_comp_params)
                continue;
            name = comp_params[c].name;
            query = comp_params[c].in_query;
        }
        if (query && n_spec_query < MAX_LIST && strlen(name) < 32)
            strcpy(spec_query[n_spec_query++], name);
    }
    int n_table_query = 0;
    for (; r->query != NULL && r->query[n_table_query] != NULL; n_table_query++)
        CHECK(in_list(spec_query, n_spec_query, r->query[n_table_query]),
              "%s %s: the table takes query parameter %s, openapi.yaml does not list it", method,
              r->pattern, r->query[n_table_query]);
    for (int i = 0; i < n_spec_query; i++) {
        bool found = false;
        for (int k = 0; k < n_table_query && !found; k++)
            found = strcmp(r->query[k], spec_query[i]) == 0;
        CHECK(found,
              "%s %s: openapi.yaml lists query parameter %s, the route's query list lacks it "
              "(the server would refuse it)",
              method, r->pattern, spec_query[i]);
    }
}

static void test_spec(const char *yaml)
{
    if (read_spec(yaml) != 0)
        return;
    CHECK(n_ops == (int)api_routes_count, "openapi.yaml has %d operations, the table %zu routes",
          n_ops, api_routes_count);
    for (size_t i = 0; i < api_routes_count; i++)
        check_route_against_spec(&api_routes[i]);
    for (int i = 0; i < n_ops; i++) {
        bool found = false;
        for (size_t k = 0; k < api_routes_count && !found; k++)
            found = strcmp(api_method_name(api_routes[k].method), ops[i].method) == 0 &&
                    strcmp(api_routes[k].pattern, ops[i].path) == 0;
        CHECK(found, "openapi.yaml line %d: %s %s is not in the route table", ops[i].line,
              ops[i].method, ops[i].path);
    }

    /* ErrorCode's enum is the error table, statuses included. */
    CHECK(n_spec_codes == API_ERR_COUNT - 1, "ErrorCode lists %d codes, the table has %d",
          n_spec_codes, API_ERR_COUNT - 1);
    for (int i = 0; i < n_spec_codes; i++) {
        int e = api_error_parse(spec_codes[i].code);
        CHECK(e > 0, "ErrorCode %s is not in the error table", spec_codes[i].code);
        if (e > 0)
            CHECK(api_error_status(e) == spec_codes[i].status,
                  "ErrorCode %s: %d in openapi.yaml, %d in the table", spec_codes[i].code,
                  spec_codes[i].status, api_error_status(e));
    }
    for (int e = 1; e < API_ERR_COUNT; e++) {
        bool found = false;
        for (int i = 0; i < n_spec_codes && !found; i++)
            found = strcmp(spec_codes[i].code, api_error_code(e)) == 0;
        CHECK(found, "error %s is in the table but not in openapi.yaml ErrorCode",
              api_error_code(e));
    }
}

/* ---- the error table ---------------------------------------------------------------------- */

static void test_error_table(void)
{
    for (int e = 0; e < API_ERR_COUNT; e++) {
        const struct api_error_info *info = api_error_info(e);
        CHECK(info->code != NULL && info->message != NULL, "error %d has no row", e);
        CHECK(api_error_parse(info->code) == e, "code %s does not parse back to %d", info->code, e);
        for (int k = 0; k < e; k++)
            CHECK(strcmp(api_error_code(k), info->code) != 0, "code %s twice", info->code);
        if (e == API_OK)
            continue;
        CHECK(info->status >= 400 && info->status <= 599, "%s: status %d", info->code,
              info->status);
        if (info->status < 500)
            CHECK(info->level <= LOG_INFO, "%s: a 4xx logs at %d, want INFO or DEBUG", info->code,
                  info->level);
        else if (info->status == 501 || info->status == 505) /* the client's method, version */
            CHECK(info->level == LOG_INFO, "%s: logs at %d, want INFO", info->code, info->level);
        else
            CHECK(info->level == LOG_ERROR, "%s: a 5xx logs at %d, want ERROR", info->code,
                  info->level);
    }
    CHECK(api_error_status(API_ERR_COUNT) == 500 && api_error_status(-1) == 500,
          "out-of-range errors fall back to internal");
    CHECK(api_error_parse("no_such_code") == -1 && api_error_parse(NULL) == -1, "unknown code");

    static const struct {
        enum api_error err;
        int status;
        const char *code;
    } want[] = {
        {API_ERR_BAD_JSON, 400, "bad_json"},
        {API_ERR_UNKNOWN_FIELD, 400, "unknown_field"},
        {API_ERR_BODY_TOO_LARGE, 413, "body_too_large"},
        {API_ERR_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type"},
        {API_ERR_METHOD_NOT_ALLOWED, 405, "method_not_allowed"},
        {API_ERR_UNAUTHORIZED, 401, "unauthorized"},
        {API_ERR_FORBIDDEN, 403, "forbidden"},
        {API_ERR_APP_EXISTS, 409, "app_exists"},
        {API_ERR_KEY_USED_BY_OTHER_APP, 409, "key_used_by_other_app"},
        {API_ERR_INVALID_STATE, 409, "invalid_state"},
        {API_ERR_UNAVAILABLE, 503, "unavailable"},
        {API_ERR_NOT_IMPLEMENTED, 501, "not_implemented"},
        {API_ERR_INTERNAL, 500, "internal"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(api_error_status(want[i].err) == want[i].status &&
                  strcmp(api_error_code(want[i].err), want[i].code) == 0,
              "%s: want %d", want[i].code, want[i].status);

    json_t *body = api_error_body(API_ERR_APP_NOT_FOUND, "no app 7");
    json_t *err = json_object_get(body, "error");
    CHECK(json_object_size(body) == 1 && json_object_size(err) == 2 &&
              strcmp(json_string_value(json_object_get(err, "code")), "app_not_found") == 0 &&
              strcmp(json_string_value(json_object_get(err, "message")), "no app 7") == 0,
          "api_error_body shape");
    json_decref(body);
    body = api_error_body(API_ERR_FORBIDDEN, NULL);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(body, "error"), "message")),
                 api_error_info(API_ERR_FORBIDDEN)->message) == 0,
          "default message");
    json_decref(body);

    CHECK(api_error_from_usersig(USERSIG_OK) == API_OK, "usersig ok");
    CHECK(api_error_from_usersig(USERSIG_BAD_IDENTIFIER) == API_ERR_BAD_IDENTIFIER, "identifier");
    CHECK(api_error_from_usersig(USERSIG_BAD_EXPIRE) == API_ERR_BAD_EXPIRE, "expire");
    CHECK(api_error_from_usersig(USERSIG_BAD_ROOM) == API_ERR_BAD_ROOM, "room");
    CHECK(api_error_from_usersig(USERSIG_BAD_PRIVILEGE) == API_ERR_BAD_PRIVILEGE, "privilege");
    CHECK(api_error_from_usersig(USERSIG_KEY_CANNOT_SIGN) == API_ERR_BAD_KEY, "public key");
    CHECK(api_error_from_usersig(USERSIG_CRYPTO_FAILED) == API_ERR_INTERNAL, "crypto");
}

/* ---- matching and the table checker ------------------------------------------------------- */

/* The pattern with each {param} replaced by a valid value. */
static void concrete(const char *pattern, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = pattern; *p != '\0' && n + 16 < cap;) {
        if (strncmp(p, "{sdkappid}", 10) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "1400000000");
            p += 10;
        } else if (strncmp(p, "{version}", 9) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "3");
            p += 9;
        } else if (strncmp(p, "{id}", 4) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "42");
            p += 4;
        } else if (strncmp(p, "{servicename}", 13) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "im_open_login_svc");
            p += 13;
        } else if (strncmp(p, "{command}", 9) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "account_check");
            p += 9;
        } else if (strncmp(p, "{file}", 6) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "app.js");
            p += 6;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

static void test_matching(void)
{
    char err[256], path[256];
    struct api_match m;

    CHECK(api_routes_check(api_routes, api_routes_count, err, sizeof err) == 0,
          "the route table: %s", err);
    for (size_t i = 0; i < api_routes_count; i++) {
        const struct api_route *r = &api_routes[i];
        concrete(r->pattern, path, sizeof path);
        CHECK(api_route_match(api_routes, api_routes_count, r->method, path, &m) == API_MATCH_OK &&
                  m.route == r,
              "%s %s does not find its route", api_method_name(r->method), path);
        CHECK(m.sdkappid == (strstr(r->pattern, "{sdkappid}") ? 1400000000u : 0u) &&
                  m.key_version == (strstr(r->pattern, "{version}") ? 3u : 0u) &&
                  m.id == (strstr(r->pattern, "{id}") ? 42 : 0),
              "%s: params", path);
        CHECK(api_route_match(api_routes, api_routes_count, EVHTTP_REQ_PUT, path, &m) ==
                      API_MATCH_NO_METHOD &&
                  (m.allow & (unsigned)r->method) && !(m.allow & EVHTTP_REQ_PUT),
              "PUT %s: 405 with %s allowed", path, api_method_name(r->method));
    }

    static const struct {
        const char *path;
        enum api_match_rc rc;
        const char *param;
    } cases[] = {
        {"/v1/apps/1", API_MATCH_OK, NULL},
        {"/v1/apps/4294967295", API_MATCH_OK, NULL},
        {"/v1/apps/0", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/4294967296", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/99999999999999999999", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/abc", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/01", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/-1", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/+1", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/%31", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/apps/1/keys/2147483647/disable", API_MATCH_OK, NULL},
        {"/v1/apps/1/keys/2147483648/disable", API_MATCH_BAD_PARAM, "version"},
        {"/v1/apps/1/keys/0/destroy", API_MATCH_BAD_PARAM, "version"},
        {"/v1/apps/0/keys/0/destroy", API_MATCH_BAD_PARAM, "sdkappid"},
        {"/v1/tokens/9223372036854775807", API_MATCH_OK, NULL},
        {"/v1/tokens/9223372036854775808", API_MATCH_BAD_PARAM, "id"},
        {"/v1/apps/", API_MATCH_NO_PATH, NULL},
        {"/v1//apps", API_MATCH_NO_PATH, NULL},
        {"/v1/apps/1/", API_MATCH_NO_PATH, NULL},
        {"/", API_MATCH_NO_PATH, NULL},
        {"", API_MATCH_NO_PATH, NULL},
        {"v1/apps", API_MATCH_NO_PATH, NULL},
        {"/V1/APPS", API_MATCH_NO_PATH, NULL},
        {"/v1/apps/1/keys/rotate/x", API_MATCH_NO_PATH, NULL},
        {"/a/b/c/d/e/f/g/h/i", API_MATCH_NO_PATH, NULL},
        /* {file}: any last segment, the empty one included; the handler decides. */
        {"/ui", API_MATCH_OK, NULL},
        {"/ui/", API_MATCH_OK, NULL},
        {"/ui/index.html", API_MATCH_OK, NULL},
        {"/ui/%2e%2e", API_MATCH_OK, NULL},
        {"/ui//", API_MATCH_NO_PATH, NULL},
        {"/ui/js/app.js", API_MATCH_NO_PATH, NULL},
        {"/ui/../v1/apps", API_MATCH_NO_PATH, NULL},
        {"/v1/tokens/self", API_MATCH_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum evhttp_cmd_type method =
            strstr(cases[i].path, "/keys/") || strstr(cases[i].path, "/tokens/")
                ? (strstr(cases[i].path, "/tokens/") ? EVHTTP_REQ_DELETE : EVHTTP_REQ_POST)
                : EVHTTP_REQ_GET;
        if (strcmp(cases[i].path, "/v1/tokens/self") == 0)
            method = EVHTTP_REQ_GET;
        enum api_match_rc rc =
            api_route_match(api_routes, api_routes_count, method, cases[i].path, &m);
        CHECK(rc == cases[i].rc, "%s: match %d, want %d", cases[i].path, rc, cases[i].rc);
        if (cases[i].param != NULL)
            CHECK(m.bad_param != NULL && strcmp(m.bad_param, cases[i].param) == 0 &&
                      m.bad_param_rule != NULL && m.route != NULL,
                  "%s: bad param %s", cases[i].path, cases[i].param);
    }
    CHECK(api_route_match(api_routes, api_routes_count, EVHTTP_REQ_GET, NULL, &m) ==
              API_MATCH_NO_PATH,
          "NULL path");
    CHECK(api_route_match(api_routes, api_routes_count, EVHTTP_REQ_GET, "/ui/", &m) ==
                  API_MATCH_OK &&
              strcmp(m.route->pattern, "/ui/{file}") == 0,
          "/ui/ is the dashboard's index");
    CHECK(api_route_match(api_routes, api_routes_count, EVHTTP_REQ_GET, "/ui", &m) ==
                  API_MATCH_OK &&
              strcmp(m.route->pattern, "/ui/{file}") == 0,
          "/ui, {file} absent, is the dashboard's route (its redirect)");
    /* Only a {file} may be absent: a number may not. */
    static const struct api_route absent[] = {
        {EVHTTP_REQ_GET, "/x/{id}", "byId", PERM_PUBLIC, API_BODY_NONE, 0,
         api_handler_not_implemented, NULL},
    };
    CHECK(api_route_match(absent, 1, EVHTTP_REQ_GET, "/x", &m) == API_MATCH_NO_PATH,
          "/x is not /x/{id}");
    CHECK(api_route_match(api_routes, api_routes_count, EVHTTP_REQ_GET, "/v1/tokens/self", &m) ==
                  API_MATCH_OK &&
              strcmp(m.route->op, "getTokenSelf") == 0,
          "the literal self beats {id}");
    CHECK(api_route_match(api_routes, api_routes_count, EVHTTP_REQ_DELETE, "/v1/tokens/self", &m) ==
                  API_MATCH_NO_METHOD &&
              m.allow == EVHTTP_REQ_GET,
          "DELETE /v1/tokens/self is 405, not a revoke");

    /* A literal segment wins over a {param} at the same place, whatever the table order. */
    static const struct api_route lit[] = {
        {EVHTTP_REQ_GET, "/x/{id}", "byId", PERM_PUBLIC, API_BODY_NONE, 0,
         api_handler_not_implemented, NULL},
        {EVHTTP_REQ_POST, "/x/new", "makeNew", PERM_PUBLIC, API_BODY_JSON, 0,
         api_handler_not_implemented, NULL},
    };
    CHECK(api_routes_check(lit, 2, err, sizeof err) == 0, "literal table: %s", err);
    CHECK(api_route_match(lit, 2, EVHTTP_REQ_POST, "/x/new", &m) == API_MATCH_OK &&
              m.route == &lit[1],
          "POST /x/new is the literal route");
    CHECK(api_route_match(lit, 2, EVHTTP_REQ_GET, "/x/new", &m) == API_MATCH_NO_METHOD &&
              m.allow == EVHTTP_REQ_POST,
          "GET /x/new is 405, the literal path takes POST only");
    CHECK(api_route_match(lit, 2, EVHTTP_REQ_GET, "/x/7", &m) == API_MATCH_OK &&
              m.route == &lit[0] && m.id == 7,
          "GET /x/7 is the param route");

    /* The checker refuses what would make routing ambiguous or unsafe, and a query list the
     * dispatcher could not use as it is (one way to say "none", names a client can send). */
    static const char *const q_empty[] = {NULL};
    static const char *const q_upper[] = {"limit", "After", NULL};
    static const char *const q_blank[] = {"", NULL};
    static const char *const q_twice[] = {"after", "limit", "after", NULL};
    static const struct {
        struct api_route route;
        const char *why;
    } bad[] = {
        {{EVHTTP_REQ_GET, "/v1/apps/{sdkappid}", "dup", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "method and pattern listed twice"},
        {{EVHTTP_REQ_POST, "/v1/apps/{id}", "other", PERM_APPS_READ, API_BODY_JSON, 0,
          api_handler_not_implemented, NULL},
         "matches the same paths"},
        {{EVHTTP_REQ_GET, "/v1/things/{name}", "unknownParam", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "unknown {param}"},
        {{EVHTTP_REQ_GET, "/v1/things", "getWithBody", PERM_APPS_READ, API_BODY_JSON, 0,
          api_handler_not_implemented, NULL},
         "GET and DELETE take no body"},
        {{EVHTTP_REQ_GET, "/v1/things", "noHandler", PERM_APPS_READ, API_BODY_NONE, 0, NULL, NULL},
         "no handler"},
        {{EVHTTP_REQ_GET, "/v1/things/", "trailingSlash", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "malformed pattern"},
        {{EVHTTP_REQ_GET, "/v1/Things", "upper", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "literal segment"},
        {{EVHTTP_REQ_HEAD, "/v1/things", "head", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "method not"},
        {{EVHTTP_REQ_GET, "/v1/things", "getApp", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "op listed twice"},
        {{EVHTTP_REQ_GET, "/v1/a/{id}/b/{id}", "twice", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "a {param} twice"},
        {{EVHTTP_REQ_GET, "/v1/{file}/x", "fileFirst", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, NULL},
         "{file} not the last segment"},
        {{EVHTTP_REQ_GET, "/v1/things", "emptyQuery", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, q_empty},
         "an empty query list"},
        {{EVHTTP_REQ_GET, "/v1/things", "upperQuery", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, q_upper},
         "query parameter name not 1 to 32"},
        {{EVHTTP_REQ_GET, "/v1/things", "blankQuery", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, q_blank},
         "query parameter name not 1 to 32"},
        {{EVHTTP_REQ_GET, "/v1/things", "twiceQuery", PERM_APPS_READ, API_BODY_NONE, 0,
          api_handler_not_implemented, q_twice},
         "a query parameter listed twice"},
    };
    struct api_route table[2];
    table[0] = api_routes[4]; /* GET /v1/apps/{sdkappid} */
    CHECK(strcmp(table[0].pattern, "/v1/apps/{sdkappid}") == 0 && table[0].method == EVHTTP_REQ_GET,
          "api_routes[4] is GET /v1/apps/{sdkappid}");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        table[1] = bad[i].route;
        err[0] = '\0';
        CHECK(api_routes_check(table, 2, err, sizeof err) == -1 && strstr(err, bad[i].why),
              "checker on %s: got \"%s\", want \"%s\"", bad[i].route.op, err, bad[i].why);
    }
}

/* Every route, a HEAD pair of each GET route and the unmatched requests have a metrics slot of
 * their own (past METRICS_MAX_ROUTES they would be counted as route="other", silently). */
static void test_metric_slots(void)
{
    size_t gets = 0;
    for (size_t i = 0; i < api_routes_count; i++)
        gets += api_routes[i].method == EVHTTP_REQ_GET;
    CHECK(api_routes_count + gets + 1 <= METRICS_MAX_ROUTES,
          "%zu routes, %zu HEAD pairs and unmatched fit in METRICS_MAX_ROUTES (%d)",
          api_routes_count, gets, METRICS_MAX_ROUTES);
}

int main(int argc, char **argv)
{
    const char *yaml = argc > 1 ? argv[1] : USERSIGD_SOURCE_DIR "/admin-api/openapi.yaml";
    test_error_table();
    test_matching();
    test_metric_slots();
    test_spec(yaml);
    return test_done("routes");
}
