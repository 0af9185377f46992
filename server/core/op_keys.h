/*
 * Key-version operations of the core: import, rotate (to new material or to an existing
 * version), disable, enable and destroy, and the list of an app's versions. Every change runs in
 * one transaction that first locks the app's row (the changes of one app are serialized) and
 * ends with its audit event; a refusal that breaks a rule is rolled back and audited on its own
 * (service_audit_refusal). After a commit the app is evicted from the process cache. Key
 * material is checked with the codec, fingerprinted and sealed by the keyring here; only
 * metadata comes out (every struct store_key of an output has sealed NULL: nothing to free).
 * Like every op_* module these run where the handler runs: on a database pool thread for the
 * admin API's API_ROUTE_OFFLOAD routes (op_apps.h says more).
 */
#ifndef OP_KEYS_H
#define OP_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "principal.h"
#include "service.h"
#include "store.h"

#define OP_MSG_BUF 320 /* room for any operation's message */

/* Key material as given by a client: an HMAC secret or a PEM EC private key. The bytes are
 * borrowed (never copied, never kept); the caller wipes them. */
struct op_keys_material {
    enum store_key_kind kind; /* STORE_KEY_HMAC: secret; STORE_KEY_ECDSA: PEM */
    const char *bytes;
    size_t len;
};

struct op_keys_import_in {
    uint32_t sdkappid;
    struct op_keys_material material;
    bool activate; /* make it active now (an app without an active version gets it anyway) */
};

/* What a rotation or an import leaves: the new (or added) version and the one it retired
 * (version 0 when none). */
struct op_keys_rotation {
    struct store_key active; /* import: the added version, whatever its state */
    struct store_key retired;
};

/* Imports the material as the app's next version: active when in->activate or when the app has
 * none active (the previous active one is then retired), pending otherwise. Material that is
 * not a key that can sign is BAD_KEY; a key another app holds or held is refused with
 * KEY_USED_BY_OTHER_APP (that app named only when p's scope covers it), one this app holds or
 * held with CONFLICT, both audited. */
enum api_error op_keys_import(struct service *svc, const struct principal *p,
                              const struct op_keys_import_in *in, struct op_keys_rotation *out,
                              char *msg, size_t cap) SERVICE_WUR;

struct op_keys_rotate_in {
    uint32_t sdkappid;
    uint32_t version;                 /* to this existing pending or retired version; 0: */
    struct op_keys_material material; /* to this new material, imported as the next version */
};

/* Rotates: the new version becomes active and the active one retired, audited "key.rotate"
 * (and "key.import" for new material). A version that is active, disabled or destroyed is
 * refused (INVALID_STATE, audited); one that does not open under this server's master key is
 * INTERNAL. */
enum api_error op_keys_rotate(struct service *svc, const struct principal *p,
                              const struct op_keys_rotate_in *in, struct op_keys_rotation *out,
                              char *msg, size_t cap) SERVICE_WUR;

struct op_keys_change_in {
    uint32_t sdkappid;
    uint32_t version;
    const char *reason; /* 1..STORE_REASON_MAX characters; optional but for destroy */
};

/* The state changes of one version; *out is it as committed. Refused (INVALID_STATE, audited
 * with the state it is in): any change of a destroyed version; disabling or destroying the
 * active one; disabling a disabled one; enabling one that is not disabled. Enabling makes a
 * version retired; destroying wipes its sealed key for good. */
enum api_error op_keys_disable(struct service *svc, const struct principal *p,
                               const struct op_keys_change_in *in, struct store_key *out, char *msg,
                               size_t cap) SERVICE_WUR;
enum api_error op_keys_enable(struct service *svc, const struct principal *p,
                              const struct op_keys_change_in *in, struct store_key *out, char *msg,
                              size_t cap) SERVICE_WUR;
enum api_error op_keys_destroy(struct service *svc, const struct principal *p,
                               const struct op_keys_change_in *in, struct store_key *out, char *msg,
                               size_t cap) SERVICE_WUR;

struct op_keys_update_in {
    uint32_t sdkappid;
    uint32_t version;
    int64_t verify_until_us; /* Unix microseconds; 0: no end (cleared) */
};

/* Sets a version's verify_until: once it has passed, a retired version no longer verifies
 * (verdict verify_window_closed); it applies to the version whenever it is retired (set on the
 * active one, it takes effect at its rotation). Audited "key.update" with {"changed":
 * {"verify_until": {from, to}}} (Unix seconds or null); the same value again changes nothing
 * and writes no event. A destroyed version is refused (INVALID_STATE, audited). *out is the
 * version as committed. */
enum api_error op_keys_update(struct service *svc, const struct principal *p,
                              const struct op_keys_update_in *in, struct store_key *out, char *msg,
                              size_t cap) SERVICE_WUR;

/* The app's versions in version order (metadata only): *keys a new array of *n (NULL when
 * none); caller store_key_list_free()s it (also fine on error: NULL then). */
enum api_error op_keys_list(struct service *svc, const struct principal *p, uint32_t sdkappid,
                            struct store_key **keys, size_t *n, char *msg, size_t cap) SERVICE_WUR;

#endif
