/*
 * Admin API audit: read the audit log (filtered, paged by sequence) and verify its chain.
 * Not implemented yet: each route answers 501 not_implemented.
 */
#include "handlers.h"

void handle_audit_list(struct api_request *r)
{
    api_handler_not_implemented(r);
}

void handle_audit_verify(struct api_request *r)
{
    api_handler_not_implemented(r);
}
