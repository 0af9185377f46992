-- 0005_idempotency: the Idempotency-Key of a POST (admin-api/idempotency.c). One row per (API
-- token, key): the keyed hash of what was asked (HMAC-SHA256 under the fingerprint key of
-- SHA-256 over method, path and body, so a body that held a key secret cannot be guessed from
-- it), 'running' while the first request runs, then 'done' with its status and JSON body. A
-- reply of 5xx is never kept: its row is deleted, so a retry runs again. Rows older than 24 h are
-- ignored and deleted by the next claim (of the same key, and a few others each time, oldest
-- first, through idempotency_keys_created). No reply that holds a secret is kept: the routes
-- that answer one (POST /v1/tokens, signing) take no Idempotency-Key.

CREATE TABLE idempotency_keys (
    token_id     bigint      NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    state        text        NOT NULL,
    status       integer,
    body         json,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (token_id, key),
    CONSTRAINT idempotency_keys_token FOREIGN KEY (token_id) REFERENCES api_tokens (id)
        ON DELETE CASCADE,
    CONSTRAINT idempotency_keys_key_length CHECK (octet_length(key) BETWEEN 1 AND 128),
    CONSTRAINT idempotency_keys_hash_length CHECK (octet_length(request_hash) = 32),
    CONSTRAINT idempotency_keys_state CHECK (state IN ('running', 'done')),
    CONSTRAINT idempotency_keys_reply CHECK (
        (state = 'running' AND status IS NULL AND body IS NULL)
        OR (state = 'done' AND status BETWEEN 100 AND 499 AND body IS NOT NULL))
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
