-- 0011_signer_rest_allow: a signer or admin_signer token may carry rest_allow too, for a batch's
-- ?import=1 (im_open_login_svc/multiaccount_import before each UserSig is released); a
-- rest_caller still needs it, and no other role may have it; a signer's patterns are only
-- that command (or im_open_login_svc/*). The patterns' rule is 0006's.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_rest_allow;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_rest_allow CHECK (
    (role <> 'rest_caller' OR rest_allow IS NOT NULL)
    AND (rest_allow IS NULL OR (
        (role = 'rest_caller' OR (role IN ('signer', 'admin_signer') AND rest_allow <@
            ARRAY['im_open_login_svc/multiaccount_import', 'im_open_login_svc/*']::text[]))
        AND cardinality(rest_allow) BETWEEN 1 AND 32
        AND usersigd_text_list_ok(rest_allow, 32, 64,
                                  '^[A-Za-z0-9_.-]+/([A-Za-z0-9_.-]+|[*])$'))));
