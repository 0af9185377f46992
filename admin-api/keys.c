/*
 * Admin API keys: import, list, rotate, disable, enable and destroy key versions of an app.
 * Not implemented yet: each route answers 501 not_implemented.
 */
#include "handlers.h"

void handle_key_add(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_key_list(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_key_rotate(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_key_disable(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_key_enable(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_key_destroy(struct api_request *r)
{
    api_handler_not_implemented(r);
}
