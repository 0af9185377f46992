-- 0002_batches: one row per batch signing job (POST /v1/apps/{sdkappid}/usersigs/batch), the
-- manifest beside its two audit events (usersig.batch "started", usersig.batch.finish). A row is
-- inserted as 'running' in the transaction of the start event, before the first token leaves,
-- and closed once: 'complete' (every line out and the summary about to be sent) or 'aborted'
-- (the client left, the server stopped, or an internal failure). A row still 'running' after
-- its server is gone is a batch cut short by a crash: visible as incomplete.

CREATE TABLE batches (
    batch_id    text        NOT NULL,
    sdkappid    bigint      NOT NULL,
    key_version integer     NOT NULL,
    actor_id    bigint,
    actor_name  text        NOT NULL,
    state       text        NOT NULL DEFAULT 'running',
    count       bigint      NOT NULL DEFAULT 0,
    signed      bigint      NOT NULL DEFAULT 0,
    failed      bigint      NOT NULL DEFAULT 0,
    -- hex SHA-256 over the output lines in order (each with its "\n"); NULL while running
    sha256      text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT batches_pkey PRIMARY KEY (batch_id),
    CONSTRAINT batches_key_fkey FOREIGN KEY (sdkappid, key_version)
        REFERENCES app_keys (sdkappid, version) ON DELETE RESTRICT,
    CONSTRAINT batches_batch_id_format CHECK (batch_id ~ '^[0-9a-f]{32}$'),
    CONSTRAINT batches_actor_id_range CHECK (actor_id >= 1),
    CONSTRAINT batches_actor_name_length CHECK (octet_length(actor_name) <= 256),
    CONSTRAINT batches_state CHECK (state IN ('running', 'complete', 'aborted')),
    CONSTRAINT batches_counts CHECK (
        count >= 0 AND signed >= 0 AND failed >= 0 AND signed + failed = count),
    CONSTRAINT batches_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT batches_finished CHECK (
        (state = 'running') = (finished_at IS NULL)
        AND (state = 'running') = (sha256 IS NULL))
);

-- "The batches of an app, newest first" and "batches still running".
CREATE INDEX batches_sdkappid_started ON batches (sdkappid, started_at);
CREATE INDEX batches_running ON batches (started_at) WHERE state = 'running';

-- A manifest is written once: rows are never deleted, and a finished batch never changes (the
-- audit event usersig.batch.finish quotes its counts and digest).
CREATE FUNCTION batches_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'batches rows are never deleted';
    END IF;
    IF OLD.state <> 'running' THEN
        RAISE EXCEPTION 'batches: batch % is finished (%) and never changes', OLD.batch_id,
            OLD.state;
    END IF;
    IF NEW.batch_id <> OLD.batch_id OR NEW.sdkappid <> OLD.sdkappid
       OR NEW.key_version <> OLD.key_version OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
       OR NEW.actor_name <> OLD.actor_name OR NEW.started_at <> OLD.started_at THEN
        RAISE EXCEPTION 'batches: batch_id, sdkappid, key_version, actor and started_at never change';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER batches_guard BEFORE UPDATE OR DELETE ON batches
    FOR EACH ROW EXECUTE FUNCTION batches_guard();
