-- 0012_exposure_parse_once: the exposure trigger of 0009 reads each sign's expire_at with one
-- parse of its details (json ->>, in a subquery kept apart by OFFSET 0) instead of two jsonb
-- casts: it runs in every sign's transaction, under the audit lock. Same rows, same sums; the one
-- difference: an expire_at that is a JSON null (the server never writes one) is left out, where
-- before it failed the insert on the NOT NULL hour.
CREATE OR REPLACE FUNCTION audit_log_exposure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_exposure (sdkappid, version, expire_hour, count)
    SELECT e.sdkappid, e.key_version, d.expire_at / 3600, count(*)
    FROM new_events e,
         LATERAL (SELECT (e.details::json ->> 'expire_at')::bigint AS expire_at OFFSET 0) d
    WHERE e.action = 'usersig.sign' AND e.outcome = 'ok' AND e.sdkappid IS NOT NULL
      AND e.key_version IS NOT NULL AND d.expire_at IS NOT NULL
    GROUP BY 1, 2, 3
    ON CONFLICT (sdkappid, version, expire_hour)
    DO UPDATE SET count = key_exposure.count + EXCLUDED.count;
    RETURN NULL;
END
$$;
