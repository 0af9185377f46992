/*
 * The product's role rules and token scopes (principal.h). Pure functions, tested in
 * tests/unit/test_authz.c.
 */
#include "principal.h"

#include <string.h>

static const char *const role_names[ROLE_COUNT] = {
    [ROLE_ADMIN] = "admin",
    [ROLE_KEY_MANAGER] = "key_manager",
    [ROLE_SIGNER] = "signer",
    [ROLE_AUDITOR] = "auditor",
    [ROLE_ADMIN_SIGNER] = "admin_signer",
    [ROLE_REST_CALLER] = "rest_caller",
};

#define PERM_BIT(p) (1u << (p))

/* admin everything; key_manager apps and keys; signer signs and verifies; auditor reads app and
 * key metadata and the audit log (batch manifests included), and the metrics; admin_signer signs
 * and verifies as signer does (and, unlike it, for the apps' administrator identifiers:
 * role_signs_admin_ids); rest_caller calls Tencent's REST API through the gateway. Token
 * management is admin's alone. Anyone may call a public route. */
static const unsigned role_perms[ROLE_COUNT] = {
    [ROLE_ADMIN] = PERM_BIT(PERM_COUNT) - 1u,
    [ROLE_KEY_MANAGER] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_APPS_READ) |
                         PERM_BIT(PERM_APPS_WRITE) | PERM_BIT(PERM_KEYS_READ) |
                         PERM_BIT(PERM_KEYS_WRITE),
    [ROLE_SIGNER] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_SIGN) | PERM_BIT(PERM_VERIFY),
    [ROLE_AUDITOR] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_APPS_READ) | PERM_BIT(PERM_KEYS_READ) |
                     PERM_BIT(PERM_AUDIT_READ) | PERM_BIT(PERM_METRICS),
    [ROLE_ADMIN_SIGNER] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_SIGN) | PERM_BIT(PERM_VERIFY),
    [ROLE_REST_CALLER] = PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_TENCENT_REST),
};

const char *role_name(enum role role)
{
    return (unsigned)role < ROLE_COUNT ? role_names[role] : "unknown";
}

int role_parse(const char *name)
{
    for (int i = 0; name != NULL && i < ROLE_COUNT; i++)
        if (strcmp(role_names[i], name) == 0)
            return i;
    return -1;
}

bool role_has_perm(enum role role, enum perm perm)
{
    if ((unsigned)role >= ROLE_COUNT || (unsigned)perm >= PERM_COUNT)
        return false;
    if (perm == PERM_SELF) /* every role, present and future */
        return true;
    return (role_perms[role] & PERM_BIT(perm)) != 0;
}

bool principal_has_app(const struct principal *p, uint32_t sdkappid)
{
    if (p == NULL || sdkappid == 0)
        return false;
    if (p->all_apps)
        return true;
    for (size_t i = 0; i < p->n_apps && i < PRINCIPAL_MAX_APPS; i++)
        if (p->apps[i] == sdkappid)
            return true;
    return false;
}

bool role_signs_admin_ids(enum role role)
{
    return role == ROLE_ADMIN || role == ROLE_ADMIN_SIGNER;
}

bool principal_prefix_allows(const struct principal *p, const char *id, size_t len)
{
    if (p == NULL)
        return false;
    if (p->n_prefixes == 0)
        return true;
    for (size_t i = 0; i < p->n_prefixes && i < PRINCIPAL_MAX_PREFIXES; i++) {
        size_t n = strnlen(p->prefixes[i], PRINCIPAL_PREFIX_MAX);
        if (n > 0 && n <= len && memcmp(p->prefixes[i], id, n) == 0)
            return true;
    }
    return false;
}

/* One part of a rest pattern: 1 or more of A-Z a-z 0-9 _ . - */
static bool rest_part_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

bool principal_rest_allows(const struct principal *p, const char *service, const char *command)
{
    if (p == NULL || service == NULL || command == NULL)
        return false;
    size_t ls = strlen(service), lc = strlen(command);
    if (!rest_part_valid(service, ls) || !rest_part_valid(command, lc))
        return false;
    for (size_t i = 0; i < p->n_rest && i < PRINCIPAL_MAX_REST; i++) {
        const char *pat = p->rest[i];
        size_t n = strnlen(pat, PRINCIPAL_REST_MAX);
        if (n < ls + 2 || memcmp(pat, service, ls) != 0 || pat[ls] != '/')
            continue;
        const char *cmd = pat + ls + 1;
        size_t lp = n - ls - 1;
        if ((lp == 1 && cmd[0] == '*') || (lp == lc && memcmp(cmd, command, lc) == 0))
            return true;
    }
    return false;
}

bool principal_prefix_valid(const char *s, size_t len)
{
    if (s == NULL || len < 1 || len > PRINCIPAL_PREFIX_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool principal_rest_pattern_valid(const char *s, size_t len)
{
    const char *slash;
    if (s == NULL || len < 3 || len > PRINCIPAL_REST_MAX)
        return false;
    slash = memchr(s, '/', len);
    if (slash == NULL)
        return false;
    size_t ls = (size_t)(slash - s), lc = len - ls - 1;
    return rest_part_valid(s, ls) &&
           ((lc == 1 && slash[1] == '*') || rest_part_valid(slash + 1, lc));
}
