/*
 * Admin API readiness: the database answers and the schema is current.
 * Not implemented yet: each route answers 501 not_implemented.
 */
#include "handlers.h"

void handle_readyz(struct api_request *r)
{
    api_handler_not_implemented(r);
}
