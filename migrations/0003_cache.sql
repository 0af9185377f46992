-- What each usersigd process's cache of apps, key versions and API tokens needs to stay exact
-- (server/core/cache.h): a generation per app, bumped in the transaction of every change to the
-- app or to one of its key versions, and a notification on the channel usersigd_cache for every
-- such change and for every change to a token ("app:ID", "token:ID"), delivered at commit.
-- Signing compares the generations it signed with against these, under the audit lock, before
-- any token leaves; the notifications evict what other processes hold.

ALTER TABLE apps ADD COLUMN generation bigint NOT NULL DEFAULT 1;

CREATE FUNCTION apps_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.generation := OLD.generation + 1;
    END IF;
    PERFORM pg_notify('usersigd_cache', 'app:' || NEW.sdkappid);
    RETURN NEW;
END
$$;

CREATE TRIGGER apps_generation BEFORE INSERT OR UPDATE ON apps
    FOR EACH ROW EXECUTE FUNCTION apps_generation();

-- A key version that appears, changes state or is re-sealed changes what its app signs and
-- verifies with; its sign count and last use do not.
CREATE FUNCTION app_keys_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE apps SET generation = generation + 1 WHERE sdkappid = NEW.sdkappid;
    RETURN NULL;
END
$$;

CREATE TRIGGER app_keys_generation_insert AFTER INSERT ON app_keys
    FOR EACH ROW EXECUTE FUNCTION app_keys_generation();
CREATE TRIGGER app_keys_generation_update AFTER UPDATE ON app_keys
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.sealed IS DISTINCT FROM NEW.sealed)
    EXECUTE FUNCTION app_keys_generation();

-- A token that is revoked or otherwise changed (its last use aside).
CREATE FUNCTION api_tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('usersigd_cache', 'token:' || OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_notify_update AFTER UPDATE ON api_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.apps IS DISTINCT FROM NEW.apps OR OLD.secret_hash IS DISTINCT FROM NEW.secret_hash
          OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION api_tokens_notify();
CREATE TRIGGER api_tokens_notify_delete AFTER DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_notify();
