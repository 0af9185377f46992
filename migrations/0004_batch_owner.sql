-- 0004_batch_owner: who runs a batch, so that a batch whose process is gone can be told from one
-- still streaming. Each usersigd process takes a new owner id from batch_owners when it starts
-- and holds, for its life, the session-level advisory lock of that id on a connection of its
-- own (the key is 'USGD' * 2^32 + owner: the single-bigint lock space, apart from the two-int
-- locks (1431521092, n) of the audit and migration locks). A batch records its owner. Whoever
-- can take the lock of an owner (pg_try_advisory_xact_lock) has proven that owner gone, and
-- marks its running batches 'interrupted', each with its usersig.batch.finish event (outcome
-- interrupted) in the same transaction. The counts of an interrupted batch are what is known:
-- NULL when nobody knows them, and sha256 is NULL.
--
-- An interrupted batch may still be closed once, as complete or aborted, by its own owner: a
-- process whose owner connection was cut (its lock went with it) keeps streaming and records
-- its end when the database is back, with the real counts and digest.
-- Rows from before this migration have no owner (NULL): a process starting after it marks
-- those still running as interrupted (every process that could own them started before it).

CREATE SEQUENCE batch_owners AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;

ALTER TABLE batches ADD COLUMN owner bigint;
ALTER TABLE batches ADD CONSTRAINT batches_owner_range CHECK (owner BETWEEN 1 AND 4294967295);

ALTER TABLE batches ALTER COLUMN count DROP NOT NULL;
ALTER TABLE batches ALTER COLUMN signed DROP NOT NULL;
ALTER TABLE batches ALTER COLUMN failed DROP NOT NULL;

ALTER TABLE batches DROP CONSTRAINT batches_state;
ALTER TABLE batches ADD CONSTRAINT batches_state
    CHECK (state IN ('running', 'complete', 'aborted', 'interrupted'));

-- Counts are all known or all unknown, and unknown only for an interrupted batch.
ALTER TABLE batches ADD CONSTRAINT batches_counts_known CHECK (
    (count IS NULL) = (signed IS NULL) AND (count IS NULL) = (failed IS NULL)
    AND (count IS NOT NULL OR state = 'interrupted'));

-- finished_at is set once a batch is not running; sha256 only for a batch that ran to its end
-- (complete or aborted).
ALTER TABLE batches DROP CONSTRAINT batches_finished;
ALTER TABLE batches ADD CONSTRAINT batches_finished CHECK (
    (state = 'running') = (finished_at IS NULL)
    AND (state IN ('running', 'interrupted')) = (sha256 IS NULL));

CREATE INDEX batches_running_owner ON batches (owner) WHERE state = 'running';

-- The transitions: running to complete, aborted or interrupted; interrupted to complete or
-- aborted (its owner's late end). Nothing else changes, and the owner never does.
CREATE OR REPLACE FUNCTION batches_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'batches rows are never deleted';
    END IF;
    IF NOT (OLD.state = 'running' AND NEW.state IN ('complete', 'aborted', 'interrupted'))
       AND NOT (OLD.state = 'interrupted' AND NEW.state IN ('complete', 'aborted')) THEN
        RAISE EXCEPTION 'batches: batch % cannot go from % to %', OLD.batch_id, OLD.state,
            NEW.state;
    END IF;
    IF NEW.batch_id <> OLD.batch_id OR NEW.sdkappid <> OLD.sdkappid
       OR NEW.key_version <> OLD.key_version OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
       OR NEW.actor_name <> OLD.actor_name OR NEW.started_at <> OLD.started_at
       OR NEW.owner IS DISTINCT FROM OLD.owner THEN
        RAISE EXCEPTION
            'batches: batch_id, sdkappid, key_version, actor, owner and started_at never change';
    END IF;
    RETURN NEW;
END
$$;
