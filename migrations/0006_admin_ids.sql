-- 0006_admin_ids: an app's Tencent administrator accounts and REST region, and what narrows an
-- API token further than its role and apps.
--
-- apps.admin_identifiers: up to 10 UserIDs (SPEC: 1 to 32 bytes of printable ASCII, distinct)
-- that are the app's administrator accounts; a UserSig for one of them is signed only for the
-- roles admin and admin_signer, and for at most admin_max_expire seconds (1 .. max_expire).
-- gateway_identifier is the administrator account the REST gateway signs as (one of the list,
-- or NULL). tencent_base_url is the REST API's region host (https://console.tim.qq.com unless
-- set; the server checks the host list, server/core/op_apps.c).
--
-- api_tokens.identifier_prefixes (signing roles only): a token that has them signs only
-- identifiers starting with one of them. api_tokens.rest_allow (rest_caller only, and required
-- there): the servicename/command patterns it may call through the gateway ("svc/cmd" or
-- "svc/*"). Neither ever changes after the token is made; the notification trigger names them
-- all the same, so that a cached token cannot outlive a change made by hand.
--
-- The lists hold no newline: the store reads and writes them joined by one (store.c).

CREATE FUNCTION usersigd_text_list_ok(a text[], max_n integer, max_len integer, pattern text)
    RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT a IS NULL OR (
        (array_ndims(a) IS NULL OR array_ndims(a) = 1) AND cardinality(a) <= max_n
        AND NOT EXISTS (SELECT 1 FROM unnest(a) x
                        WHERE x IS NULL OR octet_length(x) NOT BETWEEN 1 AND max_len
                              OR x !~ pattern)
        AND (SELECT count(DISTINCT x) FROM unnest(a) x) = cardinality(a))
$$;

ALTER TABLE apps ADD COLUMN admin_identifiers text[] NOT NULL DEFAULT '{}';
ALTER TABLE apps ADD COLUMN admin_max_expire integer NOT NULL DEFAULT 86400;
ALTER TABLE apps ADD COLUMN gateway_identifier text;
ALTER TABLE apps ADD COLUMN tencent_base_url text NOT NULL
    DEFAULT 'https://console.tim.qq.com';

-- An app whose max_expire is under a day keeps its administrators' UserSigs within it.
UPDATE apps SET admin_max_expire = max_expire WHERE max_expire < admin_max_expire;

ALTER TABLE apps ADD CONSTRAINT apps_admin_identifiers CHECK (
    usersigd_text_list_ok(admin_identifiers, 10, 32, '^[ -~]+$'));
ALTER TABLE apps ADD CONSTRAINT apps_admin_max_expire_range CHECK (
    admin_max_expire BETWEEN 1 AND 315360000 AND admin_max_expire <= max_expire);
ALTER TABLE apps ADD CONSTRAINT apps_gateway_identifier CHECK (
    gateway_identifier IS NULL OR gateway_identifier = ANY (admin_identifiers));
ALTER TABLE apps ADD CONSTRAINT apps_tencent_base_url CHECK (
    octet_length(tencent_base_url) BETWEEN 8 AND 256
    AND tencent_base_url ~ '^https?://[!-~]+$');

ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role CHECK (
    role IN ('admin', 'key_manager', 'signer', 'auditor', 'admin_signer', 'rest_caller'));

ALTER TABLE api_tokens ADD COLUMN identifier_prefixes text[];
ALTER TABLE api_tokens ADD COLUMN rest_allow text[];

ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_identifier_prefixes CHECK (
    identifier_prefixes IS NULL OR (
        cardinality(identifier_prefixes) BETWEEN 1 AND 16
        AND usersigd_text_list_ok(identifier_prefixes, 16, 32, '^[ -~]+$')
        AND role IN ('admin', 'signer', 'admin_signer')));
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_rest_allow CHECK (
    (rest_allow IS NOT NULL) = (role = 'rest_caller')
    AND (rest_allow IS NULL OR (
        cardinality(rest_allow) BETWEEN 1 AND 32
        AND usersigd_text_list_ok(rest_allow, 32, 64,
                                  '^[A-Za-z0-9_.-]+/([A-Za-z0-9_.-]+|[*])$'))));

DROP TRIGGER api_tokens_notify_update ON api_tokens;
CREATE TRIGGER api_tokens_notify_update AFTER UPDATE ON api_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.apps IS DISTINCT FROM NEW.apps OR OLD.secret_hash IS DISTINCT FROM NEW.secret_hash
          OR OLD.name IS DISTINCT FROM NEW.name
          OR OLD.identifier_prefixes IS DISTINCT FROM NEW.identifier_prefixes
          OR OLD.rest_allow IS DISTINCT FROM NEW.rest_allow)
    EXECUTE FUNCTION api_tokens_notify();
