/*
 * Admin API usersigs: sign one UserSig or PrivateMapKey; verify and explain a token.
 * Not implemented yet: each route answers 501 not_implemented.
 */
#include "handlers.h"

void handle_usersig_sign(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_usersig_verify(struct api_request *r)
{
    api_handler_not_implemented(r);
}
