-- 0009_key_schedule: verify windows, cryptoperiods and what is still live on a key version
-- (server/README.md "Key schedules and exposure").
--
-- app_keys.verify_until: once that time has passed, a retired version no longer verifies (the
-- verdict verify_window_closed); NULL: no end. apps.rotate_every: the app's cryptoperiod in
-- seconds, against which the active version's age is shown; NULL: none. usersigd never rotates
-- by itself: keys come from Tencent's console.
--
-- What is still live on a version, from the usersig.sign events (outcome ok, details with
-- expire_at):
--   key_exposure           single signs per (app, version, hour of expiry), summed by a
--                          statement trigger on audit_log in the transaction of each sign;
--   key_live_identifiers   each identifier signed (a plain UserSig, no room) and the latest
--                          expiry of its UserSigs, per (app, version): what a re-issue re-signs.
--                          Kept off the signing path (a random insert into a large index per
--                          sign would double a group commit's cost): the upkeep job of a serve
--                          process adds the events after key_live_watermark.last_seq every
--                          second (store_live_catch_up), and a re-issue catches up first.
-- Batches are counted from their manifests: batches.expire (the batch's expire, every line but
-- those that gave their own) with the counts the finish wrote.

ALTER TABLE app_keys ADD COLUMN verify_until timestamptz;
ALTER TABLE apps ADD COLUMN rotate_every integer;
ALTER TABLE apps ADD CONSTRAINT apps_rotate_every_range
    CHECK (rotate_every BETWEEN 1 AND 315360000);

-- A change of verify_until changes what the app verifies with: the caches must hear of it.
DROP TRIGGER app_keys_generation_update ON app_keys;
CREATE TRIGGER app_keys_generation_update AFTER UPDATE ON app_keys
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.sealed IS DISTINCT FROM NEW.sealed
          OR OLD.verify_until IS DISTINCT FROM NEW.verify_until)
    EXECUTE FUNCTION app_keys_generation();

CREATE TABLE key_exposure (
    sdkappid    bigint  NOT NULL,
    version     integer NOT NULL,
    expire_hour bigint  NOT NULL, -- floor(expire_at / 3600), expire_at in Unix seconds
    count       bigint  NOT NULL,
    CONSTRAINT key_exposure_pkey PRIMARY KEY (sdkappid, version, expire_hour),
    CONSTRAINT key_exposure_count CHECK (count >= 0)
);

CREATE TABLE key_live_identifiers (
    sdkappid   bigint  NOT NULL,
    version    integer NOT NULL,
    identifier text    NOT NULL,
    expire_at  bigint  NOT NULL, -- Unix seconds: the latest expiry of its UserSigs on version
    CONSTRAINT key_live_identifiers_pkey PRIMARY KEY (sdkappid, version, identifier),
    CONSTRAINT key_live_identifiers_identifier CHECK (octet_length(identifier) BETWEEN 1 AND 32)
);

-- The signs of one statement (a group commit inserts its events in one), each sum once: ON
-- CONFLICT may touch a row only once a statement.
CREATE FUNCTION audit_log_exposure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_exposure (sdkappid, version, expire_hour, count)
    SELECT e.sdkappid, e.key_version, (e.details::jsonb ->> 'expire_at')::bigint / 3600, count(*)
    FROM new_events e
    WHERE e.action = 'usersig.sign' AND e.outcome = 'ok' AND e.sdkappid IS NOT NULL
      AND e.key_version IS NOT NULL AND e.details::jsonb ? 'expire_at'
    GROUP BY 1, 2, 3
    ON CONFLICT (sdkappid, version, expire_hour)
    DO UPDATE SET count = key_exposure.count + EXCLUDED.count;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_log_exposure AFTER INSERT ON audit_log
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_exposure();

-- What is live already: the signs made before this migration whose UserSigs have not expired.
INSERT INTO key_exposure (sdkappid, version, expire_hour, count)
SELECT sdkappid, key_version, (details::jsonb ->> 'expire_at')::bigint / 3600, count(*)
FROM audit_log
WHERE action = 'usersig.sign' AND outcome = 'ok' AND sdkappid IS NOT NULL
  AND key_version IS NOT NULL AND details::jsonb ? 'expire_at'
  AND (details::jsonb ->> 'expire_at')::bigint > extract(epoch FROM now())
GROUP BY 1, 2, 3;
INSERT INTO key_live_identifiers (sdkappid, version, identifier, expire_at)
SELECT sdkappid, key_version, details::jsonb ->> 'identifier',
       max((details::jsonb ->> 'expire_at')::bigint)
FROM audit_log
WHERE action = 'usersig.sign' AND outcome = 'ok' AND sdkappid IS NOT NULL
  AND key_version IS NOT NULL AND details::jsonb ? 'expire_at'
  AND details::jsonb ? 'identifier'
  AND NOT (details::jsonb ? 'room_id' OR details::jsonb ? 'room_str')
  AND (details::jsonb ->> 'expire_at')::bigint > extract(epoch FROM now())
GROUP BY 1, 2, 3;

CREATE TABLE key_live_watermark (
    id       integer NOT NULL DEFAULT 1,
    last_seq bigint  NOT NULL,
    CONSTRAINT key_live_watermark_pkey PRIMARY KEY (id),
    CONSTRAINT key_live_watermark_single_row CHECK (id = 1)
);
INSERT INTO key_live_watermark (last_seq) SELECT COALESCE(max(seq), 0) FROM audit_log;

-- The batch's expire, written with its running row; for the batches from before, read from
-- their start events (the guard would refuse the change of a finished row: it is off meanwhile).
ALTER TABLE batches ADD COLUMN expire integer;
ALTER TABLE batches ADD CONSTRAINT batches_expire_range CHECK (expire BETWEEN 1 AND 315360000);
ALTER TABLE batches DISABLE TRIGGER batches_guard;
UPDATE batches b SET expire = (a.details::jsonb ->> 'expire')::integer
FROM audit_log a
WHERE a.action = 'usersig.batch' AND a.outcome = 'started' AND a.sdkappid = b.sdkappid
  AND a.details::jsonb ->> 'batch_id' = b.batch_id AND a.details::jsonb ? 'expire';
ALTER TABLE batches ENABLE TRIGGER batches_guard;
CREATE INDEX batches_sdkappid_version ON batches (sdkappid, key_version);
