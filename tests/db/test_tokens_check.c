/*
 * Token checks in a batch (service_check_tokens, what a database thread runs for the checks
 * waiting together) on the real PostgreSQL: each token of one batch gets its own verdict
 * (valid, another secret, revoked, expired, unknown id, malformed, the same token twice), the
 * principal is the row's, and a revocation committed just before is seen by the next batch.
 */
#include "dbtest.h"
#include "service.h"

static int64_t add_token(struct store *st, const char *name, enum store_role role,
                         const uint32_t *apps, size_t n_apps, int64_t expires_at_us,
                         char out[KEYRING_TOKEN_BUF])
{
    int64_t id = dbtest_add_token(st, name, role, apps, n_apps, expires_at_us, out);
    CHECK(id != 0, "token %s", name);
    return id;
}

int main(void)
{
    struct dbtest t;
    char admin[KEYRING_TOKEN_BUF], signer[KEYRING_TOKEN_BUF], revoked[KEYRING_TOKEN_BUF],
        expired[KEYRING_TOKEN_BUF], wrong[KEYRING_TOKEN_BUF], unknown[KEYRING_TOKEN_BUF];
    static const uint32_t apps[] = {1400000001u, 1400000002u};

    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "tokens_check", true);
    struct store *st = dbtest_store(&t);
    struct service svc = {.st = st};

    int64_t admin_id = add_token(st, "admin", STORE_ROLE_ADMIN, NULL, 0, 0, admin);
    int64_t signer_id = add_token(st, "signer", STORE_ROLE_SIGNER, apps, 2, 0, signer);
    int64_t revoked_id = add_token(st, "revoked", STORE_ROLE_ADMIN, NULL, 0, 0, revoked);
    add_token(st, "expired", STORE_ROLE_ADMIN, NULL, 0, 1000000, expired); /* 1970 */
    CHECK(store_token_revoke(st, revoked_id) == STORE_OK, "revoke");
    /* Another secret on the admin's id; an id no row has. */
    snprintf(wrong, sizeof wrong, "%s", admin);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == 'A' ? 'B' : 'A';
    snprintf(unknown, sizeof unknown, "usg_999999_%s", strchr(admin + 4, '_') + 1);

    const char *batch[] = {admin,   signer,        revoked, expired, wrong,
                           unknown, "usg_1_short", "",      admin};
    const size_t n = sizeof batch / sizeof batch[0];
    enum service_token_rc rc[16];
    struct principal p[16];
    service_check_tokens(&svc, batch, n, rc, p);
    CHECK(rc[0] == SERVICE_TOKEN_OK && p[0].token_id == admin_id &&
              strcmp(p[0].name, "admin") == 0 && p[0].role == ROLE_ADMIN && p[0].all_apps,
          "admin: ok, its principal");
    CHECK(rc[1] == SERVICE_TOKEN_OK && p[1].token_id == signer_id && p[1].role == ROLE_SIGNER &&
              !p[1].all_apps && p[1].n_apps == 2 && p[1].apps[0] == apps[0] &&
              p[1].apps[1] == apps[1],
          "signer: ok, scoped to its two apps");
    CHECK(rc[2] == SERVICE_TOKEN_UNKNOWN, "revoked: refused");
    CHECK(rc[3] == SERVICE_TOKEN_UNKNOWN, "expired: refused");
    CHECK(rc[4] == SERVICE_TOKEN_UNKNOWN, "another secret on a real id: refused");
    CHECK(rc[5] == SERVICE_TOKEN_UNKNOWN, "unknown id: refused");
    CHECK(rc[6] == SERVICE_TOKEN_UNKNOWN && rc[7] == SERVICE_TOKEN_UNKNOWN, "malformed: refused");
    CHECK(rc[8] == SERVICE_TOKEN_OK && p[8].token_id == admin_id, "the same token twice: both ok");

    /* Revoked between two batches: the next batch refuses it. */
    CHECK(store_token_revoke(st, signer_id) == STORE_OK, "revoke the signer");
    service_check_tokens(&svc, batch, 2, rc, p);
    CHECK(rc[0] == SERVICE_TOKEN_OK && rc[1] == SERVICE_TOKEN_UNKNOWN,
          "the revocation is seen at once");

    /* The database gone: every well-formed token is "cannot tell", never accepted. */
    PGconn *c = dbtest_connect(&t);
    CHECK(dbtest_exec(c, "ALTER TABLE api_tokens RENAME TO api_tokens_gone", false), "rename");
    service_check_tokens(&svc, batch, n, rc, p);
    CHECK(rc[0] == SERVICE_TOKEN_ERROR && rc[1] == SERVICE_TOKEN_ERROR &&
              rc[6] == SERVICE_TOKEN_UNKNOWN,
          "store failure: 503 for the well-formed, 401 for the malformed");
    PQfinish(c);

    store_close(st);
    dbtest_drop(&t);
    return test_done("db_tokens_check");
}
