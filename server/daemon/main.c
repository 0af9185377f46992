/*
 * usersigd: the daemon and its operator commands, and the one command-line parser they share
 * (exact option names, each at most once, unknown ones refused by name without their value).
 * `serve` is serve.c; the other commands share the startup steps of boot.c, do one thing in a
 * transaction with its audit event, and exit. Secrets never come from argv: the master key is a
 * file and tokens are printed, never read.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "boot.h"
#include "checkpoint.h"
#include "build_info.h"
#include "config.h"
#include "keyring.h"
#include "log.h"
#include "migrate.h"
#include "serve.h"
#include "service.h"
#include "store.h"
#include "store_webhook.h"
#include "tokens.h"
#include "usersig.h"

#define EXIT_USAGE 2
#define SHOWN_NAME_MAX 64 /* bytes of an unknown option's name quoted back */

static const char USAGE[] =
    "usage: usersigd COMMAND [options] [--config FILE]\n"
    "\n"
    "Key management and bulk signing of Tencent Cloud Chat / TRTC UserSig tokens.\n"
    "\n"
    "commands:\n"
    "  serve                      run the admin API (see below)\n"
    "  migrate                    apply the pending schema migrations, then exit\n"
    "  token create --name NAME --role ROLE [--apps ID,ID...] [--ttl DURATION]\n"
    "                             create an API token and print it once on stdout\n"
    "  audit verify [--checkpoint FILE [--public-key FILE]]\n"
    "                             check the audit log's HMAC chain (up to a signed checkpoint)\n"
    "  rewrap --new-master-key-file FILE\n"
    "                             re-seal the keyring under a new master key\n"
    "  master-key create FILE     write a new random master key file (mode 0600)\n"
    "\n"
    "options:\n"
    "  --config FILE              read settings from FILE; USERSIGD_* environment variables\n"
    "                             override it (see --help-config)\n"
    "  --help                     this text (also: usersigd COMMAND --help)\n"
    "  --help-config              every setting, its environment variable and default, and\n"
    "                             the other environment variables usersigd reads\n"
    "  --version                  the release, the commit it was built from and the UserSig\n"
    "                             token formats it reads and writes\n"
    "  Option names are exact (no abbreviations); an option takes its value as the next\n"
    "  argument or after \"=\" (--config=FILE); each is given at most once.\n"
    "\n"
    "serve:\n"
    "  With no database_url, starts a private PostgreSQL in data_dir (Unix socket only) and,\n"
    "  on the first run, creates the master key file (mode 0600: back it up, nothing opens\n"
    "  without it). With database_url, the master key file must already exist.\n"
    "  serve applies pending migrations itself before serving (under the migrations' advisory\n"
    "  lock, so several instances starting together apply each one once); `usersigd migrate`\n"
    "  does the same alone, for deployments that migrate as a separate step.\n"
    "  On the first run (no API token at all) it creates the admin token \"bootstrap-admin\"\n"
    "  (every app, no expiry) and prints it once on stdout as \"admin token: usg_...\".\n"
    "  Before it creates anything it checks the listen address (binding it), the data\n"
    "  directory and the master key file, and stops with what to do if one fails.\n"
    "  Logs go to stderr; \"listening on HOST:PORT\" says where it serves (the actual port when\n"
    "  listen asks for port 0). SIGINT or SIGTERM stops it gracefully, SIGQUIT at once; each\n"
    "  stops the embedded PostgreSQL too. SIGHUP re-reads the config file and the environment:\n"
    "  log_level changes at once, a change to another setting is logged as needing a restart.\n"
    "\n"
    "Other commands on the embedded database while serve runs connect to serve's PostgreSQL\n"
    "through its socket. Exit status: 0 ok, 1 failure, 2 bad usage.\n";

static const char USAGE_TOKEN[] =
    "usage: usersigd token create --name NAME --role ROLE [--apps ID,ID...] [--ttl DURATION]\n"
    "\n"
    "  --name NAME      who or what uses it (1..128 characters); shown in the audit log\n"
    "  --role ROLE      admin, key_manager, signer, auditor or admin_signer (a rest_caller\n"
    "                   needs rest_allow, and identifier prefixes are set, with POST /v1/tokens)\n"
    "  --apps LIST      scope it to these SDKAppIDs (comma-separated); default: every app\n"
    "  --ttl DURATION   lifetime: seconds, or a number with s, m, h or d (\"30d\", \"12h\");\n"
    "                   default: until revoked\n"
    "\n"
    "Prints the token once on stdout (only its hash is kept) and records token.create in the\n"
    "audit log with the actor \"cli\". Exit status 2 for a bad name, role, list or duration.\n";

static const char USAGE_AUDIT[] =
    "usage: usersigd audit verify [--checkpoint FILE [--public-key FILE]]\n"
    "\n"
    "Walks the audit log and checks every sequence number and HMAC. Prints \"ok: N events\"\n"
    "(exit 0), or \"broken at seq N: PROBLEM\" (exit 1).\n"
    "\n"
    "  --checkpoint FILE  a signed checkpoint as JSON, as GET /v1/audit/checkpoints gives it\n"
    "                     (kept outside the database): checks its Ed25519 signature, the chain\n"
    "                     up to its seq, and that the event at its seq has exactly its MAC.\n"
    "                     Prints \"ok: N events up to checkpoint seq S\" or \"checkpoint seq S:\n"
    "                     PROBLEM\" (bad_signature, missing_event: events were cut off the end,\n"
    "                     mac_mismatch: the chain was rewritten, chain_broken).\n"
    "  --public-key FILE  the checkpoint key to check the signature with (PEM, or the base64\n"
    "                     of GET /v1/audit/checkpoints/key's public_key), kept outside the\n"
    "                     database; default: the key stored in the database.\n";

static const char USAGE_REWRAP[] =
    "usage: usersigd rewrap --new-master-key-file FILE\n"
    "\n"
    "Re-seals the keyring root and every key version under the master key in FILE, in one\n"
    "transaction recorded as keyring.rewrap in the audit log. FILE must exist with mode 0600:\n"
    "make one with `usersigd master-key create FILE`. Afterwards point master_key_file\n"
    "(USERSIGD_MASTER_KEY_FILE) at FILE and restart every usersigd: running ones still hold the\n"
    "old key. The audit chain and key fingerprints are unchanged. Keep the old file until the\n"
    "restart is done.\n";

static const char USAGE_MASTER_KEY[] =
    "usage: usersigd master-key create FILE\n"
    "\n"
    "Writes 32 random bytes as 64 hex characters to FILE, created with mode 0600; refuses to\n"
    "overwrite an existing file. Never prints the key.\n";

static const char USAGE_MIGRATE[] =
    "usage: usersigd migrate\n"
    "\n"
    "Applies the pending migrations of migrations_dir (USERSIGD_MIGRATIONS_DIR; see\n"
    "--help-config), each in one transaction, under an advisory lock. Prints what it applied\n"
    "or \"schema is current\". Uses database_url, or the embedded PostgreSQL of data_dir.\n";

/* ---- the other commands -----------------------------------------------------------------------
 */

static int cmd_migrate(struct boot *d, const char *config_path)
{
    int applied = 0;
    if (boot_load_config(d, config_path) != 0 || boot_interrupted() ||
        boot_open_database(d, false) != 0 || boot_interrupted())
        return -1;
    if (migrate_apply(d->st, d->migrations_dir, &applied) != MIGRATE_OK) {
        log_error("cannot apply the schema migrations of %s (see the message above)",
                  d->migrations_dir);
        return -1;
    }
    if (boot_require_current_schema(d) != 0)
        return -1;
    if (applied > 0)
        printf("applied %d migration(s)\n", applied);
    else
        printf("schema is current\n");
    return 0;
}

static const struct principal *cli_principal(void)
{
    static struct principal p = {.token_id = 0, .name = "cli", .all_apps = true};
    return &p;
}

static int cmd_token_create(struct boot *d, const char *config_path, const char *name,
                            const char *role, const char *apps, const char *ttl)
{
    struct tokens_spec spec = {.name = name, .role = (enum store_role) - 1, .all_apps = true};
    char why[TOKENS_WHY_BUF];
    char token[KEYRING_TOKEN_BUF] = "";
    struct store_token t;
    enum store_rc rc;
    int r;

    if (apps != NULL && tokens_parse_apps(apps, &spec) != 0) {
        fprintf(stderr,
                "usersigd token create: --apps: a comma-separated list of 1 to %d SDKAppIDs, "
                "each 1..4294967295\n",
                STORE_TOKEN_MAX_APPS);
        return EXIT_USAGE;
    }
    if (ttl != NULL && tokens_parse_ttl(ttl, &spec.ttl_s) != 0) {
        fprintf(stderr, "usersigd token create: --ttl: seconds, or a number with s, m, h or d "
                        "(\"30d\"), from 1 second to 10 years\n");
        return EXIT_USAGE;
    }
    if (spec.name == NULL || role == NULL) {
        fprintf(stderr, "usersigd token create: --name and --role are required\n\n%s", USAGE_TOKEN);
        return EXIT_USAGE;
    }
    r = store_role_parse(role);
    spec.role = r >= 0 ? (enum store_role)r : (enum store_role) - 1;
    if (tokens_check(&spec, why, sizeof why) != TOKENS_OK) {
        fprintf(stderr, "usersigd token create: %s\n", why);
        return EXIT_USAGE;
    }
    if (boot_open_all(d, config_path) != 0)
        return 1;
    rc = store_begin(d->st);
    if (rc == STORE_OK)
        rc = tokens_create(&d->svc, cli_principal(), &spec, &t, token, sizeof token);
    if (rc == STORE_OK)
        rc = store_commit(d->st);
    if (rc != STORE_OK) {
        store_rollback(d->st);
        log_error("cannot create the token (see the message above)");
        return 1;
    }
    log_info("created API token %lld \"%s\" (%s)", (long long)t.id, t.name,
             store_role_name(t.role));
    printf("%s\n", token);
    fflush(stdout);
    OPENSSL_cleanse(token, sizeof token);
    return 0;
}

/* Reads at most max bytes of path into a new NUL-terminated buffer (caller free()s). NULL with
 * the reason logged. */
static char *read_small_file(const char *what, const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL) {
        log_error("cannot open the %s file %s: %s", what, path, strerror(errno));
        return NULL;
    }
    buf = malloc(max + 2);
    if (buf == NULL) {
        log_error("out of memory");
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f) || n > max) {
        log_error(n > max ? "the %s file %s is over %zu bytes" : "cannot read the %s file %s", what,
                  path, max);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* audit verify --checkpoint FILE [--public-key FILE]. */
static int audit_verify_checkpoint(struct boot *d, const char *file, const char *key_file)
{
    uint8_t pub[KEYRING_CKPT_KEY_BYTES];
    struct store_ckpt c;
    struct ckpt_check chk;
    char msg[CKPT_MSG_BUF] = "";
    json_error_t jerr;
    size_t len = 0;
    char *text = read_small_file("checkpoint", file, CKPT_JSON_MAX, &len);
    json_t *j = text != NULL ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;

    free(text);
    if (text != NULL && j == NULL)
        log_error("the checkpoint file %s is not JSON (line %d: %s)", file, jerr.line, jerr.text);
    if (j == NULL)
        return 1;
    /* The checkpoint itself, or a reply that holds one (POST /v1/audit/verify's body, GET
     * /v1/audit/verify's reply). */
    const json_t *o = json_object_get(j, "signature") == NULL && json_object_get(j, "checkpoint")
                          ? json_object_get(j, "checkpoint")
                          : j;
    if (ckpt_from_json(o, &c, msg, sizeof msg) != 0) {
        log_error("the checkpoint file %s: %s", file, msg);
        json_decref(j);
        return 1;
    }
    json_decref(j);
    if (key_file != NULL) {
        char *k = read_small_file("public key", key_file, KEYRING_CKPT_TEXT_MAX, &len);
        if (k == NULL)
            return 1;
        while (len > 0 && (k[len - 1] == '\n' || k[len - 1] == '\r' || k[len - 1] == ' '))
            len--;
        enum keyring_rc krc = keyring_ckpt_public_parse(k, len, pub);
        free(k);
        if (krc != KEYRING_OK) {
            log_error("the public key file %s holds no Ed25519 public key (PEM, or the base64 of "
                      "its 32 bytes)",
                      key_file);
            return 1;
        }
    }
    if (ckpt_check(&d->svc, &c, key_file != NULL ? pub : NULL, &chk, msg, sizeof msg) != API_OK) {
        log_error("%s", msg);
        return 1;
    }
    if (chk.problem == CKPT_OK) {
        printf("ok: %lld events up to checkpoint seq %lld (signature valid, %s key)\n",
               (long long)chk.chain.checked, (long long)c.seq,
               key_file != NULL ? "given" : "stored");
        return 0;
    }
    printf("checkpoint seq %lld: %s", (long long)c.seq, ckpt_problem_name(chk.problem));
    switch (chk.problem) {
    case CKPT_BAD_SIGNATURE:
        printf(" (not signed by the %s checkpoint key)\n", key_file != NULL ? "given" : "stored");
        break;
    case CKPT_EVENT_MISSING:
        printf(" (the log ends at seq %lld: events were removed from its end)\n",
               (long long)chk.chain.last_seq);
        break;
    case CKPT_MAC_MISMATCH:
        printf(" (the event at seq %lld has another MAC: the chain was rewritten)\n",
               (long long)c.seq);
        break;
    case CKPT_CHAIN_BROKEN:
        printf(" (broken at seq %lld: %s)\n", (long long)chk.chain.bad_seq,
               audit_problem_name(chk.chain.problem));
        break;
    default:
        printf("\n");
        break;
    }
    return 1;
}

static int cmd_audit_verify(struct boot *d, const char *config_path, const char *checkpoint,
                            const char *key_file)
{
    struct audit_verify_result res;
    if (key_file != NULL && checkpoint == NULL) {
        fprintf(stderr, "usersigd audit verify: --public-key goes with --checkpoint FILE\n\n%s",
                USAGE_AUDIT);
        return EXIT_USAGE;
    }
    if (boot_open_all(d, config_path) != 0)
        return 1;
    if (checkpoint != NULL)
        return audit_verify_checkpoint(d, checkpoint, key_file);
    if (audit_verify(d->st, keyring_audit_key(d->kr), &res) != AUDIT_OK) {
        log_error("cannot read the audit log (see the message above)");
        return 1;
    }
    if (res.ok) {
        printf("ok: %lld events\n", (long long)res.checked);
        return 0;
    }
    if (res.problem == AUDIT_CHAIN_GAP)
        printf("broken at seq %lld: %s (found seq %lld)\n", (long long)res.bad_seq,
               audit_problem_name(res.problem), (long long)res.found_seq);
    else
        printf("broken at seq %lld: %s\n", (long long)res.bad_seq, audit_problem_name(res.problem));
    return 1;
}

/* Re-seals the audit checkpoint key (when there is one) under new_kr, in the caller's
 * transaction. */
static int reseal_checkpoint_key(struct boot *d, struct keyring *new_kr)
{
    struct store_ckpt_key k;
    uint8_t *out = NULL;
    size_t out_len = 0;
    enum store_rc rc = store_ckpt_key_get(d->st, true, &k);

    if (rc == STORE_NOT_FOUND)
        return 0;
    if (rc != STORE_OK) {
        log_error("cannot read the audit checkpoint key; nothing was changed");
        return -1;
    }
    enum keyring_rc krc =
        keyring_ckpt_reseal(d->kr, new_kr, k.public_key, k.sealed, k.sealed_len, &out, &out_len);
    if (krc != KEYRING_OK || out_len > sizeof k.sealed) {
        log_error("the audit checkpoint key: %s; nothing was changed", keyring_rc_message(krc));
        free(out);
        return -1;
    }
    memcpy(k.sealed, out, out_len);
    k.sealed_len = out_len;
    free(out);
    if (store_ckpt_key_update_sealed(d->st, &k) != STORE_OK) {
        log_error("cannot store the audit checkpoint key; nothing was changed");
        return -1;
    }
    return 0;
}

/* Re-seals every webhook endpoint's signing secret under new_kr, in the caller's transaction. */
static int reseal_webhooks(struct boot *d, struct keyring *new_kr)
{
    struct store_webhook *w = NULL;
    size_t n = 0;
    int ret = -1;
    if (store_webhook_sealed_all(d->st, &w, &n) != STORE_OK) {
        log_error("cannot read the webhook endpoints; nothing was changed");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        enum keyring_rc krc = keyring_webhook_reseal(d->kr, new_kr, w[i].id, w[i].sealed,
                                                     sizeof w[i].sealed, &out, &out_len);
        if (krc != KEYRING_OK ||
            store_webhook_set_sealed(d->st, w[i].id, out, out_len) != STORE_OK) {
            log_error("webhook endpoint %lld: its secret could not be re-sealed (%s); nothing "
                      "was changed",
                      (long long)w[i].id, keyring_rc_message(krc));
            free(out);
            goto done;
        }
        free(out);
    }
    ret = 0;
done:
    free(w);
    return ret;
}

/* Re-seals every live key version, the root, the audit checkpoint key and the webhook secrets
 * under new_kr, in the caller's transaction. */
static int reseal_all(struct boot *d, struct keyring *new_kr, size_t *n_keys)
{
    struct store_key *keys = NULL;
    uint8_t root[STORE_SEALED_ROOT_MAX];
    uint8_t *out = NULL;
    size_t n = 0, len = 0, out_len = 0;
    int64_t created;
    enum keyring_rc krc;
    int ret = -1;

    /* Lock order: key rows, then the keyring row, then (service_audit) the audit lock. */
    if (store_key_list_sealed(d->st, NULL, 0, true, &keys, &n) != STORE_OK ||
        store_keyring_get(d->st, true, root, sizeof root, &len, &created) != STORE_OK) {
        log_error("cannot read the keyring and the keys (see the message above)");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        krc = keyring_reseal(d->kr, new_kr, keys[i].sdkappid, keys[i].version, keys[i].sealed,
                             keys[i].sealed_len, &out, &out_len);
        if (krc != KEYRING_OK) {
            log_error("key %u/%u: %s; nothing was changed", keys[i].sdkappid, keys[i].version,
                      keyring_rc_message(krc));
            goto done;
        }
        if (store_key_update_sealed(d->st, keys[i].sdkappid, keys[i].version, out, out_len) !=
            STORE_OK) {
            log_error("cannot store key %u/%u; nothing was changed", keys[i].sdkappid,
                      keys[i].version);
            goto done;
        }
        free(out);
        out = NULL;
    }
    krc = keyring_reseal_root(d->kr, new_kr, root, len, &out, &out_len);
    if (krc != KEYRING_OK) {
        log_error("the keyring root: %s; nothing was changed", keyring_rc_message(krc));
        goto done;
    }
    /* The new root must open under the new key and give the same audit key, or the chain
     * would not verify after the switch. */
    if (keyring_root_open(new_kr, out, out_len) != KEYRING_OK ||
        CRYPTO_memcmp(keyring_audit_key(new_kr), keyring_audit_key(d->kr), AUDIT_KEY_LEN) != 0) {
        log_error("the re-sealed keyring root does not check out; nothing was changed");
        goto done;
    }
    if (store_keyring_update(d->st, out, out_len) != STORE_OK) {
        log_error("cannot store the keyring root; nothing was changed");
        goto done;
    }
    if (reseal_checkpoint_key(d, new_kr) != 0 || reseal_webhooks(d, new_kr) != 0)
        goto done;
    *n_keys = n;
    ret = 0;
done:
    free(out);
    store_key_list_free(keys, n);
    return ret;
}

static int cmd_rewrap(struct boot *d, const char *config_path, const char *new_path)
{
    struct keyring *new_kr = NULL;
    struct stat a, b;
    char err[512] = "";
    size_t n_keys = 0;
    json_t *details = NULL;
    enum keyring_rc krc;
    enum store_rc rc;
    int ret = 1;

    if (new_path == NULL) {
        fprintf(stderr, "usersigd rewrap: --new-master-key-file FILE is required\n\n%s",
                USAGE_REWRAP);
        return EXIT_USAGE;
    }
    if (boot_open_all(d, config_path) != 0)
        return 1;
    if (stat(new_path, &a) == 0 && stat(d->cfg.master_key_file, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        log_error("%s is the current master key file: give a new one (usersigd master-key create "
                  "FILE)",
                  new_path);
        return 1;
    }
    krc = keyring_master_load(new_path, &new_kr, err, sizeof err);
    if (krc != KEYRING_OK) {
        log_error("the new master key: %s%s", err[0] ? err : keyring_rc_message(krc),
                  krc == KEYRING_BAD_FILE ? " (create one with usersigd master-key create FILE)"
                                          : "");
        return 1;
    }
    rc = store_begin(d->st);
    if (rc != STORE_OK || reseal_all(d, new_kr, &n_keys) != 0) {
        if (rc != STORE_OK)
            log_error("cannot begin a transaction");
        goto done;
    }
    details = json_pack("{s:I}", "key_versions", (json_int_t)n_keys);
    if (details == NULL) {
        log_error("out of memory");
        goto done;
    }
    rc = service_audit(&d->svc, cli_principal(), "keyring.rewrap", 0, 0, "ok", details);
    if (rc == STORE_OK)
        rc = store_commit(d->st);
    if (rc != STORE_OK) {
        log_error("cannot commit the rewrap; nothing was changed");
        goto done;
    }
    printf("rewrapped the keyring root and %zu key version(s) under %s\n", n_keys, new_path);
    printf("now set USERSIGD_MASTER_KEY_FILE (master_key_file) to %s and restart every "
           "usersigd; keep the old file until then\n",
           new_path);
    ret = 0;
done:
    store_rollback(d->st);
    keyring_free(new_kr);
    return ret;
}

static int cmd_master_key_create(const char *path)
{
    char err[512] = "";
    enum keyring_rc krc = keyring_master_create(path, err, sizeof err);
    if (krc != KEYRING_OK) {
        fprintf(stderr, "usersigd master-key create: %s\n", err[0] ? err : keyring_rc_message(krc));
        return 1;
    }
    printf("created %s (mode 0600)\n", path);
    return 0;
}

/* ---- the command line -------------------------------------------------------------------------
 */

enum opt_id {
    O_CONFIG,
    O_HELP,
    O_H,
    O_HELP_CONFIG,
    O_VERSION,
    O_NAME,
    O_ROLE,
    O_APPS,
    O_TTL,
    O_NEW_KEY,
    O_CHECKPOINT,
    O_PUBLIC_KEY,
    O_COUNT
};
#define GLOBAL_OPTS                                                                                \
    ((1u << O_CONFIG) | (1u << O_HELP) | (1u << O_H) | (1u << O_HELP_CONFIG) | (1u << O_VERSION))

struct opt {
    const char *name;
    bool takes_value;
    bool given;
    const char *value;
};

enum cmd_id { C_SERVE, C_MIGRATE, C_TOKEN_CREATE, C_AUDIT_VERIFY, C_REWRAP, C_MASTER_KEY_CREATE };

struct command {
    enum cmd_id id;
    const char *name;  /* "token create": how errors and help name it */
    const char *word;  /* argv's first word */
    const char *sub;   /* its second word (a positional), or NULL */
    unsigned opts;     /* 1 << enum opt_id it takes, beside GLOBAL_OPTS */
    int args;          /* positionals after the words (master-key create FILE: 1) */
    const char *usage; /* for --help */
};

static const struct command COMMANDS[] = {
    {C_SERVE, "serve", "serve", NULL, 0, 0, USAGE},
    {C_MIGRATE, "migrate", "migrate", NULL, 0, 0, USAGE_MIGRATE},
    {C_TOKEN_CREATE, "token create", "token", "create",
     (1u << O_NAME) | (1u << O_ROLE) | (1u << O_APPS) | (1u << O_TTL), 0, USAGE_TOKEN},
    {C_AUDIT_VERIFY, "audit verify", "audit", "verify", (1u << O_CHECKPOINT) | (1u << O_PUBLIC_KEY),
     0, USAGE_AUDIT},
    {C_REWRAP, "rewrap", "rewrap", NULL, 1u << O_NEW_KEY, 0, USAGE_REWRAP},
    {C_MASTER_KEY_CREATE, "master-key create", "master-key", "create", 0, 1, USAGE_MASTER_KEY},
};

/* An argument's option name, up to any "=" and at most SHOWN_NAME_MAX bytes, printable
 * characters only: what an error may quote back (never a value, which may be a secret). */
static void put_name(const char *arg)
{
    size_t i;
    for (i = 0; arg[i] != '\0' && arg[i] != '=' && i < SHOWN_NAME_MAX; i++)
        fputc(isprint((unsigned char)arg[i]) ? arg[i] : '?', stderr);
    if (arg[i] != '\0' && arg[i] != '=')
        fputs("...", stderr);
}

/* "usersigd CMD: BEFORE"ARG"AFTER (usersigd CMD --help)", ARG by put_name(). */
static int usage_error(const char *cmd, const char *before, const char *arg, const char *after)
{
    const char *sp = cmd != NULL ? " " : "";
    cmd = cmd != NULL ? cmd : "";
    fprintf(stderr, "usersigd%s%s: %s", sp, cmd, before);
    if (arg != NULL) {
        fputc('"', stderr);
        put_name(arg);
        fputc('"', stderr);
    }
    fprintf(stderr, "%s (usersigd%s%s --help)\n", after, sp, cmd);
    return EXIT_USAGE;
}

/* Reads options (those of allowed) from argv[*i] on, and positionals into pos (at most max_pos
 * of them). stop_at_word: return at the first positional, unread (the command's word). 0, or
 * EXIT_USAGE with the reason printed. */
static int parse_args(const char *cmd, int argc, char **argv, int *i, struct opt *opts,
                      unsigned allowed, bool stop_at_word, const char **pos, int max_pos,
                      int *n_pos)
{
    for (; *i < argc; (*i)++) {
        const char *arg = argv[*i];
        const char *eq;
        size_t len;
        int id = -1;

        if (arg[0] != '-' || arg[1] == '\0') {
            if (stop_at_word)
                return 0;
            if (*n_pos >= max_pos)
                return usage_error(cmd, "one argument too many", NULL, "");
            pos[(*n_pos)++] = arg;
            continue;
        }
        eq = strchr(arg, '=');
        len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        for (int k = 0; k < O_COUNT; k++)
            if ((allowed & (1u << k)) && strlen(opts[k].name) == len &&
                memcmp(opts[k].name, arg, len) == 0)
                id = k;
        if (id < 0)
            return usage_error(cmd, "unknown option ", arg, ": option names are exact");
        if (!opts[id].takes_value) {
            if (eq != NULL)
                return usage_error(cmd, "", arg, " takes no value");
            opts[id].given = true;
            continue;
        }
        if (opts[id].given)
            return usage_error(cmd, "", arg, " is given twice: give it once");
        if (eq == NULL && *i + 1 >= argc)
            return usage_error(cmd, "", arg, " needs a value");
        opts[id].given = true;
        opts[id].value = eq != NULL ? eq + 1 : argv[++(*i)];
    }
    return 0;
}

static void print_version(void)
{
    printf("usersigd %s (commit %s)\n", USERSIGD_VERSION, USERSIGD_COMMIT);
    printf("libusersig %s; UserSig formats: %s\n", usersig_version(), usersig_formats());
}

/* Runs the command c, whose options and positionals are parsed. */
static int run_command(struct boot *d, const struct command *c, struct opt *o, const char **pos)
{
    const char *config = o[O_CONFIG].value;

    switch (c->id) {
    case C_SERVE:
        return serve_run(d, config) == 0 ? 0 : 1;
    case C_MIGRATE:
        return cmd_migrate(d, config) == 0 ? 0 : 1;
    case C_TOKEN_CREATE:
        return cmd_token_create(d, config, o[O_NAME].value, o[O_ROLE].value, o[O_APPS].value,
                                o[O_TTL].value);
    case C_AUDIT_VERIFY:
        return cmd_audit_verify(d, config, o[O_CHECKPOINT].value, o[O_PUBLIC_KEY].value);
    case C_REWRAP:
        return cmd_rewrap(d, config, o[O_NEW_KEY].value);
    case C_MASTER_KEY_CREATE:
        return cmd_master_key_create(pos[0]);
    }
    return EXIT_USAGE;
}

/* jansson's memory is cleared as it is freed: a request's parsed body holds what the client
 * sent (a key import's secret, a private key's PEM), and jansson frees its strings as they are. */
static void json_free_wiped(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        free(p);
    }
}

int main(int argc, char **argv)
{
    struct opt opts[O_COUNT] = {
        [O_CONFIG] = {"--config", true, false, NULL},
        [O_HELP] = {"--help", false, false, NULL},
        [O_H] = {"-h", false, false, NULL},
        [O_HELP_CONFIG] = {"--help-config", false, false, NULL},
        [O_VERSION] = {"--version", false, false, NULL},
        [O_NAME] = {"--name", true, false, NULL},
        [O_ROLE] = {"--role", true, false, NULL},
        [O_APPS] = {"--apps", true, false, NULL},
        [O_TTL] = {"--ttl", true, false, NULL},
        [O_NEW_KEY] = {"--new-master-key-file", true, false, NULL},
        [O_CHECKPOINT] = {"--checkpoint", true, false, NULL},
        [O_PUBLIC_KEY] = {"--public-key", true, false, NULL},
    };
    const struct command *c = NULL;
    const char *pos[3] = {NULL, NULL, NULL};
    struct boot d = {0};
    int i = 1, n_pos = 0, rc, ret;
    bool help;

    json_set_alloc_funcs(malloc, json_free_wiped); /* before any other use of jansson */

    /* Global options may come before the command, and after it with its own. */
    rc = parse_args(NULL, argc, argv, &i, opts, GLOBAL_OPTS, true, NULL, 0, NULL);
    if (rc != 0)
        return rc;
    if (i < argc) {
        for (size_t k = 0; k < sizeof COMMANDS / sizeof COMMANDS[0] && c == NULL; k++)
            if (strcmp(argv[i], COMMANDS[k].word) == 0)
                c = &COMMANDS[k];
        if (c == NULL) {
            fprintf(stderr, "usersigd: unknown command \"");
            put_name(argv[i]);
            fprintf(stderr, "\"\n\n%s", USAGE);
            return EXIT_USAGE;
        }
        i++;
        rc = parse_args(c->name, argc, argv, &i, opts, GLOBAL_OPTS | c->opts, false, pos,
                        (c->sub != NULL) + c->args, &n_pos);
        if (rc != 0)
            return rc;
    }
    help = opts[O_HELP].given || opts[O_H].given;
    if (opts[O_HELP_CONFIG].given) {
        config_describe(stdout);
        return 0;
    }
    if (opts[O_VERSION].given) {
        print_version();
        return 0;
    }
    if (c == NULL) {
        fputs(USAGE, help ? stdout : stderr);
        return help ? 0 : EXIT_USAGE;
    }
    if (help) {
        fputs(c->usage, stdout);
        return 0;
    }
    if (c->sub != NULL && (n_pos < 1 || strcmp(pos[0], c->sub) != 0)) {
        fprintf(stderr, "usersigd %s: the command is \"usersigd %s\"\n\n%s", c->word, c->name,
                c->usage);
        return EXIT_USAGE;
    }
    if (n_pos != (c->sub != NULL) + c->args) {
        fprintf(stderr, "usersigd %s: missing argument\n\n%s", c->name, c->usage);
        return EXIT_USAGE;
    }
    if (c->id == C_TOKEN_CREATE && (!opts[O_NAME].given || !opts[O_ROLE].given)) {
        fprintf(stderr, "usersigd token create: --name and --role are required\n\n%s", USAGE_TOKEN);
        return EXIT_USAGE;
    }
    if (c->id == C_REWRAP && !opts[O_NEW_KEY].given) {
        fprintf(stderr, "usersigd rewrap: --new-master-key-file FILE is required\n\n%s",
                USAGE_REWRAP);
        return EXIT_USAGE;
    }
    if (boot_catch_signals() != 0) {
        fprintf(stderr, "usersigd: cannot set up the signal handlers\n");
        return 1;
    }
    ret = run_command(&d, c, opts, c->sub != NULL ? pos + 1 : pos);
    boot_close(&d);
    return ret;
}
