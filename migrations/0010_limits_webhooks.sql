-- 0010_limits_webhooks: rate limits per app and per API token, and webhooks with their outbox
-- (server/README.md "Rate limits" and "Webhooks").
--
-- signs_per_second: a token bucket (burst one second's worth) that single signs take from,
-- held in each process's memory (each process takes signs_per_second / rate_limit_processes);
-- batch_tokens_per_day: the lines a batch may sign per UTC day, counted here, in the batches of
-- the day (a running batch counts at its allowance, a finished one at what it signed). NULL:
-- no limit.

ALTER TABLE apps ADD COLUMN signs_per_second integer;
ALTER TABLE apps ADD COLUMN batch_tokens_per_day bigint;
ALTER TABLE apps ADD CONSTRAINT apps_signs_per_second_range
    CHECK (signs_per_second BETWEEN 1 AND 1000000);
ALTER TABLE apps ADD CONSTRAINT apps_batch_tokens_per_day_range
    CHECK (batch_tokens_per_day BETWEEN 1 AND 1000000000000);

ALTER TABLE api_tokens ADD COLUMN signs_per_second integer;
ALTER TABLE api_tokens ADD COLUMN batch_tokens_per_day bigint;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_signs_per_second_range
    CHECK (signs_per_second BETWEEN 1 AND 1000000);
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_batch_tokens_per_day_range
    CHECK (batch_tokens_per_day BETWEEN 1 AND 1000000000000);

-- A token's limits are part of what the caches hold: a change must be heard.
DROP TRIGGER api_tokens_notify_update ON api_tokens;
CREATE TRIGGER api_tokens_notify_update AFTER UPDATE ON api_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.apps IS DISTINCT FROM NEW.apps OR OLD.secret_hash IS DISTINCT FROM NEW.secret_hash
          OR OLD.name IS DISTINCT FROM NEW.name
          OR OLD.identifier_prefixes IS DISTINCT FROM NEW.identifier_prefixes
          OR OLD.rest_allow IS DISTINCT FROM NEW.rest_allow
          OR OLD.signs_per_second IS DISTINCT FROM NEW.signs_per_second
          OR OLD.batch_tokens_per_day IS DISTINCT FROM NEW.batch_tokens_per_day)
    EXECUTE FUNCTION api_tokens_notify();

-- The lines a batch may sign under a daily limit, reserved at its start (NULL: no limit
-- applied); lines past it are refused in place (batch_quota).
ALTER TABLE batches ADD COLUMN allowance bigint;
ALTER TABLE batches ADD CONSTRAINT batches_allowance_range CHECK (allowance >= 0);
-- The guard of 0004, which lets a running row change only by ending, now also lets a running
-- batch's allowance be written once, in its start's transaction; after that it never changes.
CREATE OR REPLACE FUNCTION batches_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'batches rows are never deleted';
    END IF;
    IF NOT (OLD.state = 'running' AND NEW.state IN ('complete', 'aborted', 'interrupted'))
       AND NOT (OLD.state = 'interrupted' AND NEW.state IN ('complete', 'aborted'))
       AND NOT (OLD.state = 'running' AND NEW.state = 'running' AND OLD.allowance IS NULL
                AND NEW.allowance IS NOT NULL) THEN
        RAISE EXCEPTION 'batches: batch % cannot go from % to %', OLD.batch_id, OLD.state,
            NEW.state;
    END IF;
    IF NEW.batch_id <> OLD.batch_id OR NEW.sdkappid <> OLD.sdkappid
       OR NEW.key_version <> OLD.key_version OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
       OR NEW.actor_name <> OLD.actor_name OR NEW.started_at <> OLD.started_at
       OR NEW.owner IS DISTINCT FROM OLD.owner
       OR (OLD.allowance IS NOT NULL AND NEW.allowance IS DISTINCT FROM OLD.allowance) THEN
        RAISE EXCEPTION
            'batches: batch_id, sdkappid, key_version, actor, owner, allowance and started_at never change';
    END IF;
    RETURN NEW;
END
$$;
-- "A token's batches of today".
CREATE INDEX batches_actor_started ON batches (actor_id, started_at) WHERE actor_id IS NOT NULL;

-- Webhook endpoints: a URL (https unless webhook_allow_insecure_url), the event types it takes,
-- an app (NULL: every app's events and those of no app), and the HMAC-SHA256 signing secret
-- sealed under the master key (associated data "usersigd/webhook/v1" 0x00 be64(id)).
CREATE TABLE webhooks (
    id         bigserial   NOT NULL,
    url        text        NOT NULL,
    events     text[]      NOT NULL,
    sdkappid   bigint,
    sealed     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text        NOT NULL,
    CONSTRAINT webhooks_pkey PRIMARY KEY (id),
    CONSTRAINT webhooks_app_fkey FOREIGN KEY (sdkappid) REFERENCES apps (sdkappid)
        ON DELETE RESTRICT,
    CONSTRAINT webhooks_url_length CHECK (octet_length(url) BETWEEN 8 AND 2048),
    CONSTRAINT webhooks_events CHECK (
        array_ndims(events) = 1 AND cardinality(events) BETWEEN 1 AND 32
        AND array_position(events, NULL) IS NULL),
    -- nonce(12) || ciphertext(32) || tag(16)
    CONSTRAINT webhooks_sealed_length CHECK (octet_length(sealed) = 60),
    CONSTRAINT webhooks_created_by_length CHECK (octet_length(created_by) <= 256)
);

-- The outbox: one row per event some endpoint wanted, inserted in the transaction of the change
-- it reports; the JSON body sent, verbatim.
CREATE TABLE webhook_events (
    id       bigserial   NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    type     text        NOT NULL,
    sdkappid bigint,
    body     text        NOT NULL,
    CONSTRAINT webhook_events_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_events_type CHECK (type ~ '^[a-z][a-z0-9_.]{0,63}$'),
    CONSTRAINT webhook_events_body_length CHECK (octet_length(body) <= 16384)
);

-- One row per (endpoint, event): pending until a 2xx (delivered) or webhook_max_attempts
-- (failed); next_at is when it is tried again. An endpoint's deliveries go in id order, one at a
-- time.
CREATE TABLE webhook_deliveries (
    id           bigserial   NOT NULL,
    webhook_id   bigint      NOT NULL,
    event_id     bigint      NOT NULL,
    state        text        NOT NULL DEFAULT 'pending',
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_deliveries_webhook_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks (id)
        ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_event_fkey FOREIGN KEY (event_id) REFERENCES webhook_events (id)
        ON DELETE RESTRICT,
    CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, event_id),
    CONSTRAINT webhook_deliveries_state CHECK (state IN ('pending', 'delivered', 'failed')),
    CONSTRAINT webhook_deliveries_attempts CHECK (attempts >= 0),
    CONSTRAINT webhook_deliveries_delivered CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);
-- "Each endpoint's next pending delivery" and "an endpoint's deliveries, paged".
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

-- Each attempt: when, how long, the HTTP status (NULL: no reply) or the transport error.
CREATE TABLE webhook_attempts (
    delivery_id bigint      NOT NULL,
    n           integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    duration_ms integer     NOT NULL,
    status      integer,
    error       text,
    CONSTRAINT webhook_attempts_pkey PRIMARY KEY (delivery_id, n),
    CONSTRAINT webhook_attempts_delivery_fkey FOREIGN KEY (delivery_id)
        REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    CONSTRAINT webhook_attempts_n CHECK (n >= 1),
    CONSTRAINT webhook_attempts_duration CHECK (duration_ms >= 0),
    CONSTRAINT webhook_attempts_status CHECK (status BETWEEN 100 AND 599),
    CONSTRAINT webhook_attempts_error_length CHECK (octet_length(error) <= 256)
);

-- A key version past its app's rotate_every is reported once (key.rotation_due): the versions
-- reported, so that the deliverer's periodic check sends no second one.
CREATE TABLE webhook_rotation_notices (
    sdkappid bigint      NOT NULL,
    version  integer     NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_rotation_notices_pkey PRIMARY KEY (sdkappid, version),
    CONSTRAINT webhook_rotation_notices_key_fkey FOREIGN KEY (sdkappid, version)
        REFERENCES app_keys (sdkappid, version) ON DELETE CASCADE
);

-- One deliverer at a time across processes: the process holding an unexpired lease delivers.
CREATE TABLE webhook_lease (
    id    integer     NOT NULL DEFAULT 1,
    owner text        NOT NULL,
    until timestamptz NOT NULL,
    CONSTRAINT webhook_lease_pkey PRIMARY KEY (id),
    CONSTRAINT webhook_lease_single_row CHECK (id = 1),
    CONSTRAINT webhook_lease_owner_length CHECK (octet_length(owner) <= 64)
);
