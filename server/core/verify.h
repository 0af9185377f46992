/*
 * Verifying a UserSig, as an operation of the core: the token, decoded, is checked against
 * every live key version of its app (the cache's entry, cache.h), naming the version that
 * signed it; on a signature mismatch the keys of the other apps the caller may see are tried
 * (Tencent's 70009 is most often a token made with another app's key), bounded:
 *   - at most VERIFY_SCAN_HMAC_MAX HMAC keys and VERIFY_SCAN_ECDSA_MAX ECDSA keys a request;
 *   - at most VERIFY_SCANS_PER_SECOND scans a second per API token and process.
 * Past a bound the verdict is still 70009, without naming the signer, and says the search was
 * cut short. The cross-app scan uses an index of every live key (cache_scan), built on a
 * database thread when missing.
 *
 * verify_cached runs anywhere (the loop thread: no I/O); verify_run on a database thread.
 */
#ifndef VERIFY_H
#define VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "service.h"
#include "usersig.h"

#define VERIFY_MSG_BUF 512
#define VERIFY_SCAN_HMAC_MAX 20000 /* other apps' HMAC key versions tried a request */
#define VERIFY_SCAN_ECDSA_MAX 16   /* ... ECDSA ones (each check costs ~100 HMAC ones) */
#define VERIFY_SCANS_PER_SECOND 50 /* scans a second per API token (per process) */

/* Tencent's codes for what the core finds beyond the codec's checks. */
#define VERIFY_TENCENT_NO_KEY 70016 /* the app has no key to check with */
#define VERIFY_TENCENT_BAD_SIGNATURE 70009
/* The verdict of a token signed with a retired version past its verify_until (70009: what
 * Tencent answers once that key is reset in the console). */
#define VERIFY_WINDOW_CLOSED "verify_window_closed"

struct verify_result {
    const char *verdict; /* the codec's name, or one of the core's own */
    int tencent_code;
    char message[VERIFY_MSG_BUF];
    bool decoded;                              /* the fields of the decoded token may be shown */
    uint32_t key_version;                      /* of the app's key that signed it; 0 = none */
    uint32_t signed_by_app, signed_by_version; /* another app's key that signed it; 0 = none */
};

/* Sets res's verdict, code and message from the codec's verdict. */
void verify_verdict_set(struct verify_result *res, enum usersig_verdict v);

enum verify_step {
    VERIFY_DONE,      /* *res (or *err) is the answer */
    VERIFY_NEEDS_RUN, /* not cached, or a cross-app scan is due: verify_run on a database
                       * thread */
};

/* Checks d against app's cached entry, if there is one, without I/O. VERIFY_DONE with *res
 * filled (or *err set, msg filled), or VERIFY_NEEDS_RUN. */
enum verify_step verify_cached(struct service *svc, uint32_t app, const struct usersig_decoded *d,
                               const struct usersig_expect *expect, struct verify_result *res,
                               enum api_error *err, char *msg, size_t cap);

/* On a database thread: the app read (and cached) as needed, the check, and the cross-app scan
 * for principal p on a signature mismatch. API_OK with *res filled, or the error (msg). */
enum api_error verify_run(struct service *svc, const struct principal *p, uint32_t app,
                          const struct usersig_decoded *d, const struct usersig_expect *expect,
                          struct verify_result *res, char *msg, size_t cap);

#endif
