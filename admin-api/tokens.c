/*
 * Admin API tokens: create, list and revoke API tokens.
 * Not implemented yet: each route answers 501 not_implemented.
 */
#include "handlers.h"

void handle_token_create(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_token_list(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_token_revoke(struct api_request *r)
{
    api_handler_not_implemented(r);
}
