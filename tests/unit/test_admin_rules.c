/*
 * The rules of who signs what, alone: identifier prefixes and REST patterns of a principal
 * (server/core/principal.c), an app's tencent_base_url (op_apps_base_url), the single sign's
 * check of administrator identifiers and prefixes (sign_check_principal) and the same rules on a
 * batch line (pipeline_item_line_why). No database, no server.
 */
#include <stdio.h>
#include <string.h>

#include "op_apps.h"
#include "pipeline.h"
#include "pipeline_int.h"
#include "principal.h"
#include "sign.h"
#include "testlib.h"
#include "usersig.h"

#define APP 1400000300u
#define SECRET "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"

static void principal_with(struct principal *p, enum role role, const char *const *prefixes)
{
    memset(p, 0, sizeof *p);
    p->token_id = 7;
    snprintf(p->name, sizeof p->name, "t");
    p->role = role;
    p->all_apps = true;
    for (; prefixes != NULL && *prefixes != NULL; prefixes++)
        snprintf(p->prefixes[p->n_prefixes++], sizeof p->prefixes[0], "%s", *prefixes);
}

static void test_principal(void)
{
    static const char *const pre[] = {"user_", "bot-", NULL};
    struct principal p;

    principal_with(&p, ROLE_SIGNER, NULL);
    CHECK(principal_prefix_allows(&p, "anything", 8), "no prefixes: any identifier");
    principal_with(&p, ROLE_SIGNER, pre);
    CHECK(principal_prefix_allows(&p, "user_1", 6) && principal_prefix_allows(&p, "bot-x", 5) &&
              principal_prefix_allows(&p, "user_", 5),
          "an identifier starting with a prefix");
    CHECK(!principal_prefix_allows(&p, "admin", 5) && !principal_prefix_allows(&p, "user", 4) &&
              !principal_prefix_allows(&p, "User_1", 6) && !principal_prefix_allows(NULL, "u", 1),
          "none matches: refused (case counts, a shorter identifier never matches)");

    CHECK(principal_prefix_valid("a", 1) && principal_prefix_valid(" x~", 3) &&
              !principal_prefix_valid("", 0) && !principal_prefix_valid("a\tb", 3) &&
              !principal_prefix_valid("0123456789012345678901234567890123", 33),
          "prefix rule: 1..32 printable bytes");

    CHECK(principal_rest_pattern_valid("openim/sendmsg", 14) &&
              principal_rest_pattern_valid("openim/*", 8) &&
              principal_rest_pattern_valid("im_open_login_svc/account_import", 32),
          "exact and wildcard patterns");
    static const char *const bad[] = {"openim",    "/sendmsg",  "openim/",
                                      "*/sendmsg", "a/b/c",     "openim/send*",
                                      "open im/x", "openim/**", NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        CHECK(!principal_rest_pattern_valid(bad[i], strlen(bad[i])), "bad pattern %s", bad[i]);

    memset(&p, 0, sizeof p);
    p.role = ROLE_REST_CALLER;
    snprintf(p.rest[p.n_rest++], sizeof p.rest[0], "openim/*");
    snprintf(p.rest[p.n_rest++], sizeof p.rest[0], "im_open_login_svc/account_import");
    CHECK(principal_rest_allows(&p, "openim", "sendmsg") &&
              principal_rest_allows(&p, "im_open_login_svc", "account_import"),
          "allowed calls");
    CHECK(!principal_rest_allows(&p, "im_open_login_svc", "account_delete") &&
              !principal_rest_allows(&p, "openimx", "sendmsg") &&
              !principal_rest_allows(&p, "open", "im/sendmsg") &&
              !principal_rest_allows(&p, "openim", "") && !principal_rest_allows(NULL, "a", "b"),
          "calls outside the patterns");

    CHECK(role_signs_admin_ids(ROLE_ADMIN) && role_signs_admin_ids(ROLE_ADMIN_SIGNER) &&
              !role_signs_admin_ids(ROLE_SIGNER) && !role_signs_admin_ids(ROLE_REST_CALLER),
          "who signs administrator identifiers");
    CHECK(role_has_perm(ROLE_ADMIN_SIGNER, PERM_SIGN) &&
              role_has_perm(ROLE_ADMIN_SIGNER, PERM_VERIFY) &&
              !role_has_perm(ROLE_ADMIN_SIGNER, PERM_TOKENS) &&
              role_has_perm(ROLE_REST_CALLER, PERM_TENCENT_REST) &&
              !role_has_perm(ROLE_REST_CALLER, PERM_SIGN) &&
              role_has_perm(ROLE_ADMIN, PERM_TENCENT_REST) &&
              !role_has_perm(ROLE_SIGNER, PERM_TENCENT_REST),
          "the new roles' permissions");
    CHECK(role_parse("admin_signer") == ROLE_ADMIN_SIGNER &&
              role_parse("rest_caller") == ROLE_REST_CALLER &&
              strcmp(role_name(ROLE_REST_CALLER), "rest_caller") == 0,
          "role names");
}

static void test_base_url(void)
{
    char out[STORE_BASE_URL_MAX + 1], msg[OP_MSG_BUF];
    static const struct {
        const char *in, *want; /* want NULL: refused */
        bool insecure;
    } cases[] = {
        {"https://console.tim.qq.com", "https://console.tim.qq.com", false},
        {"https://adminapisgp.im.qcloud.com/", "https://adminapisgp.im.qcloud.com", false},
        {"HTTPS://AdminApiUSA.im.qcloud.com", "https://adminapiusa.im.qcloud.com", false},
        {"https://adminapiidn.im.qcloud.com", "https://adminapiidn.im.qcloud.com", false},
        {"http://console.tim.qq.com", NULL, false},
        {"https://127.0.0.1:8443", NULL, false},
        {"https://localhost", NULL, false},
        {"https://evil.example.com", NULL, false},
        {"https://console.tim.qq.com.evil.example", NULL, false},
        {"https://console.tim.qq.com:8443", NULL, false},
        {"https://console.tim.qq.com/v4", NULL, false},
        {"https://user@console.tim.qq.com", NULL, false},
        {"https://console.tim.qq.com?x=1", NULL, false},
        {"ftp://console.tim.qq.com", NULL, false},
        {"", NULL, false},
        {"http://127.0.0.1:18080", "http://127.0.0.1:18080", true},
        {"http://LOCALHOST:1/stand-in/", "http://localhost:1/stand-in", true},
        {"https://[::1]:8443", "https://[::1]:8443", true},
        {"http://127.0.0.1:1/a b", NULL, true},
        {"http://user@127.0.0.1", NULL, true},
        {"http://", NULL, true},
        {"gopher://127.0.0.1", NULL, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum api_error err =
            op_apps_base_url(cases[i].insecure, cases[i].in, out, sizeof out, msg, sizeof msg);
        if (cases[i].want != NULL)
            CHECK(err == API_OK && strcmp(out, cases[i].want) == 0, "%s: %d %s", cases[i].in, err,
                  err == API_OK ? out : msg);
        else
            CHECK(err == API_ERR_INVALID_FIELD && strstr(msg, "tencent_base_url") != NULL,
                  "%s refused: %d %s", cases[i].in, err, msg);
    }
    CHECK(strcmp(op_apps_tencent_region("https://console.tim.qq.com"), "china") == 0 &&
              strcmp(op_apps_tencent_region("https://adminapiger.im.qcloud.com"), "germany") == 0 &&
              op_apps_tencent_region("http://127.0.0.1:1") == NULL,
          "regions");
}

static struct store_app admin_app(void)
{
    struct store_app a;
    memset(&a, 0, sizeof a);
    a.sdkappid = APP;
    a.default_expire = 15552000;
    a.max_expire = 315360000;
    a.admin_max_expire = 86400;
    a.n_admin_ids = 2;
    snprintf(a.admin_ids[0], sizeof a.admin_ids[0], "administrator");
    snprintf(a.admin_ids[1], sizeof a.admin_ids[1], "ops");
    return a;
}

static enum api_error check_sign(const struct store_app *a, const struct principal *p,
                                 const char *id, json_int_t expire, json_int_t *final, char *msg)
{
    struct sign_input in = {.identifier = id, .identifier_len = strlen(id)};
    if (expire > 0) {
        in.has_expire = true;
        in.expire = expire;
    }
    enum api_error err = sign_check_app(a, &in, msg, SIGN_MSG_BUF);
    if (err == API_OK)
        err = sign_check_principal(a, p, &in, msg, SIGN_MSG_BUF);
    *final = in.expire;
    return err;
}

static void test_single_sign(void)
{
    static const char *const pre[] = {"user_", NULL};
    struct store_app a = admin_app();
    struct principal signer, asigner, admin, prefixed;
    char msg[SIGN_MSG_BUF];
    json_int_t e;

    principal_with(&signer, ROLE_SIGNER, NULL);
    principal_with(&asigner, ROLE_ADMIN_SIGNER, NULL);
    principal_with(&admin, ROLE_ADMIN, NULL);
    principal_with(&prefixed, ROLE_ADMIN_SIGNER, pre);

    CHECK(check_sign(&a, &signer, "administrator", 0, &e, msg) == API_ERR_ADMIN_IDENTIFIER &&
              strstr(msg, "administrator") != NULL && strstr(msg, "admin_signer") != NULL,
          "signer refused for an administrator: %s", msg);
    CHECK(check_sign(&a, &signer, "administrator2", 0, &e, msg) == API_OK,
          "a longer identifier is not the administrator");
    CHECK(check_sign(&a, &signer, "admin", 0, &e, msg) == API_OK, "nor a shorter one");
    CHECK(check_sign(&a, &asigner, "ops", 0, &e, msg) == API_OK && e == 86400,
          "admin_signer: the default expire lowered to admin_max_expire (%lld)", (long long)e);
    CHECK(check_sign(&a, &admin, "ops", 3600, &e, msg) == API_OK && e == 3600, "admin, 1 h");
    CHECK(check_sign(&a, &asigner, "ops", 86401, &e, msg) == API_ERR_BAD_EXPIRE &&
              strstr(msg, "admin_max_expire") != NULL,
          "over admin_max_expire: %s", msg);
    CHECK(check_sign(&a, NULL, "ops", 0, &e, msg) == API_OK, "the server itself");
    CHECK(check_sign(&a, &prefixed, "user_9", 0, &e, msg) == API_OK, "a prefix matches");
    CHECK(check_sign(&a, &prefixed, "bob", 0, &e, msg) == API_ERR_IDENTIFIER_PREFIX &&
              strstr(msg, "user_") != NULL,
          "no prefix matches: %s", msg);
    CHECK(check_sign(&a, &prefixed, "ops", 0, &e, msg) == API_ERR_IDENTIFIER_PREFIX,
          "an administrator outside the prefixes");
    CHECK(check_sign(&a, &signer, "administrator", 99999999999LL, &e, msg) == API_ERR_BAD_EXPIRE,
          "the app's own max_expire first");
    /* An expire that is an upper bound (the gateway's admin UserSigs): lowered, never refused,
     * to admin_max_expire and to max_expire, whichever the app has now. */
    struct sign_input bound = {.identifier = "administrator",
                               .identifier_len = strlen("administrator"),
                               .has_expire = true,
                               .expire = 172800,
                               .expire_defaulted = true};
    CHECK(sign_check_app(&a, &bound, msg, SIGN_MSG_BUF) == API_OK &&
              sign_check_principal(&a, NULL, &bound, msg, SIGN_MSG_BUF) == API_OK &&
              bound.expire == 86400,
          "an upper bound lowered to admin_max_expire (%lld): %s", (long long)bound.expire, msg);
    struct store_app low = a;
    low.max_expire = 600;
    low.admin_max_expire = 600;
    bound.expire = 86400;
    CHECK(sign_check_app(&low, &bound, msg, SIGN_MSG_BUF) == API_OK && bound.expire == 600,
          "an upper bound lowered to max_expire (%lld): %s", (long long)bound.expire, msg);
    a.n_admin_ids = 0;
    CHECK(check_sign(&a, &signer, "administrator", 0, &e, msg) == API_OK && e == 15552000,
          "no administrators: anyone, the app's default");
}

/* One batch line through the rules. */
static void line_of(const struct pipeline_job_config *cfg, struct usersig_signer *signer,
                    const char *item, char *line, bool *failed, enum pipeline_refusal *why)
{
    static char idbuf[PIPELINE_ITEM_MAX];
    size_t index = 99;
    char *end = pipeline_item_line_why(cfg, signer, 1700000000, item, strlen(item), false, idbuf,
                                       line, failed, why, &index);
    CHECK(end != NULL, "a line for %s", item);
    if (end != NULL)
        *end = '\0';
    else
        line[0] = '\0';
}

static void test_batch_lines(void)
{
    static char line[PIPELINE_OUT_LINE_MAX + 1];
    struct usersig_key *key = NULL;
    struct usersig_signer *signer = NULL;
    bool failed;
    enum pipeline_refusal why;
    struct pipeline_job_config cfg = {
        .sdkappid = APP,
        .level = 6,
        .policy = USERSIG_ID_PRINTABLE,
        .expire = 15552000,
        .max_expire = 315360000,
        .input = PIPELINE_IN_NDJSON,
        .output = PIPELINE_OUT_NDJSON,
    };
    cfg.rules.n_admin_ids = 1;
    snprintf(cfg.rules.admin_ids[0], sizeof cfg.rules.admin_ids[0], "administrator");
    cfg.rules.admin_max_expire = 86400;

    if (usersig_key_new_hmac(SECRET, strlen(SECRET), &key) != USERSIG_OK ||
        usersig_signer_new(key, APP, 6, USERSIG_ID_PRINTABLE, &signer) != USERSIG_OK) {
        CHECK(false, "a signer");
        usersig_key_free(key);
        return;
    }
    line_of(&cfg, signer, "{\"identifier\":\"administrator\"}", line, &failed, &why);
    CHECK(failed && why == PIPELINE_REFUSED_ADMIN && strstr(line, "\"admin_identifier\"") != NULL,
          "a signer's line for the administrator: %s", line);
    line_of(&cfg, signer, "{\"identifier\":\"alice\"}", line, &failed, &why);
    CHECK(!failed && why == PIPELINE_REFUSED_NONE && strstr(line, "\"usersig\"") != NULL,
          "another line signed: %s", line);

    cfg.rules.admin_allowed = true;
    line_of(&cfg, signer, "{\"identifier\":\"administrator\"}", line, &failed, &why);
    CHECK(!failed && strstr(line, "\"usersig\"") != NULL, "admin_signer's line signed: %s", line);
    line_of(&cfg, signer, "{\"identifier\":\"administrator\",\"expire\":86401}", line, &failed,
            &why);
    CHECK(failed && why == PIPELINE_REFUSED_NONE && strstr(line, "\"bad_expire\"") != NULL &&
              strstr(line, "admin_max_expire") != NULL,
          "its own expire over admin_max_expire: %s", line);
    cfg.expire_given = true;
    line_of(&cfg, signer, "{\"identifier\":\"administrator\"}", line, &failed, &why);
    CHECK(failed && strstr(line, "\"bad_expire\"") != NULL,
          "the batch's asked expire over admin_max_expire: %s", line);
    cfg.expire_given = false;

    cfg.rules.n_prefixes = 1;
    snprintf(cfg.rules.prefixes[0], sizeof cfg.rules.prefixes[0], "user_");
    cfg.input = PIPELINE_IN_TEXT;
    cfg.output = PIPELINE_OUT_CSV;
    line_of(&cfg, signer, "user_1", line, &failed, &why);
    CHECK(!failed && strncmp(line, "user_1,", 7) == 0, "a prefix matches: %s", line);
    line_of(&cfg, signer, "alice", line, &failed, &why);
    CHECK(failed && why == PIPELINE_REFUSED_PREFIX &&
              strcmp(line, "alice,,identifier_prefix\n") == 0,
          "outside the prefixes: %s", line);
    line_of(&cfg, signer, "bad\x01id", line, &failed, &why);
    CHECK(failed && why == PIPELINE_REFUSED_NONE && strstr(line, "bad_identifier") != NULL,
          "a bad identifier stays bad_identifier: %s", line);

    usersig_signer_free(signer);
    usersig_key_free(key);
}

int main(void)
{
    test_principal();
    test_base_url();
    test_single_sign();
    test_batch_lines();
    return test_done("admin_rules");
}
