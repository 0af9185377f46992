/*
 * Admin API apps: create, list, read and update SDKAppIDs.
 * Not implemented yet: each route answers 501 not_implemented.
 */
#include "handlers.h"

void handle_app_create(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_app_list(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_app_get(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_app_update(struct api_request *r)
{
    api_handler_not_implemented(r);
}
