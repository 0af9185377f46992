/*
 * The admin API's authenticate callback (api_server_config.authenticate): a token found in the
 * cache is answered at once on the loop thread; any other is checked on a database thread
 * (service_check_tokens, several waiting checks in one statement) and answered from there.
 */
#ifndef AUTHN_H
#define AUTHN_H

#include "http.h"

/* ctx is the loop's struct service. */
void authn_token(void *ctx, const char *token, struct api_auth *call);

#endif
