-- 0001_init: apps, their key versions, the keyring's sealed root secret, API tokens and the
-- append-only audit log (server/README.md). Constraint names are part of the contract: the store
-- maps a unique violation to the field it protects by the constraint's name.

CREATE TABLE apps (
    sdkappid          bigint      NOT NULL,
    name              text        NOT NULL,
    default_expire    integer     NOT NULL DEFAULT 15552000,
    max_expire        integer     NOT NULL DEFAULT 315360000,
    identifier_policy text        NOT NULL DEFAULT 'printable',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT apps_pkey PRIMARY KEY (sdkappid),
    CONSTRAINT apps_sdkappid_range CHECK (sdkappid BETWEEN 1 AND 4294967295),
    CONSTRAINT apps_name_length CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT apps_default_expire_range CHECK (default_expire BETWEEN 1 AND 315360000),
    CONSTRAINT apps_max_expire_range CHECK (max_expire BETWEEN 1 AND 315360000),
    CONSTRAINT apps_expire_order CHECK (default_expire <= max_expire),
    CONSTRAINT apps_identifier_policy CHECK (identifier_policy IN ('printable', 'strict'))
);

-- One row per key version. Rows are never deleted (versions are never reused, and a destroyed
-- key keeps its metadata and its fingerprint, so that nobody can import it again anywhere).
CREATE TABLE app_keys (
    sdkappid       bigint      NOT NULL,
    version        integer     NOT NULL,
    kind           text        NOT NULL,
    state          text        NOT NULL,
    fingerprint    bytea       NOT NULL,
    sealed         bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz,
    retired_at     timestamptz,
    disabled_at    timestamptz,
    destroyed_at   timestamptz,
    destroy_reason text,
    sign_count     bigint      NOT NULL DEFAULT 0,
    last_used_at   timestamptz,
    CONSTRAINT app_keys_pkey PRIMARY KEY (sdkappid, version),
    CONSTRAINT app_keys_app_fkey FOREIGN KEY (sdkappid) REFERENCES apps (sdkappid)
        ON DELETE RESTRICT,
    CONSTRAINT app_keys_fingerprint_key UNIQUE (fingerprint),
    CONSTRAINT app_keys_version_range CHECK (version >= 1),
    CONSTRAINT app_keys_kind CHECK (kind IN ('hmac', 'ecdsa')),
    CONSTRAINT app_keys_state CHECK (state IN ('pending', 'active', 'retired', 'disabled',
                                               'destroyed')),
    CONSTRAINT app_keys_fingerprint_length CHECK (octet_length(fingerprint) = 32),
    -- nonce(12) || ciphertext(>= 1) || tag(16)
    CONSTRAINT app_keys_sealed_length CHECK (octet_length(sealed) BETWEEN 29 AND 16384),
    CONSTRAINT app_keys_sealed_iff_live CHECK ((sealed IS NULL) = (state = 'destroyed')),
    CONSTRAINT app_keys_destroyed_has_reason CHECK (
        state <> 'destroyed' OR (destroyed_at IS NOT NULL AND destroy_reason IS NOT NULL)),
    CONSTRAINT app_keys_destroy_reason_length CHECK (char_length(destroy_reason) BETWEEN 1 AND 256),
    CONSTRAINT app_keys_sign_count CHECK (sign_count >= 0)
);

-- Exactly one signing key per app: at most one active row (the service keeps it at least one).
CREATE UNIQUE INDEX app_keys_one_active ON app_keys (sdkappid) WHERE state = 'active';

-- What no code path does, the database refuses too: deleting a version, changing what a row is,
-- bringing a destroyed key back, destroying the active one.
CREATE FUNCTION app_keys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'app_keys rows are never deleted (destroy the key instead)';
    END IF;
    IF NEW.sdkappid <> OLD.sdkappid OR NEW.version <> OLD.version OR NEW.kind <> OLD.kind
       OR NEW.fingerprint <> OLD.fingerprint OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'app_keys: sdkappid, version, kind, fingerprint and created_at never change';
    END IF;
    IF OLD.state = 'destroyed' AND (NEW.state <> 'destroyed' OR NEW.sealed IS NOT NULL) THEN
        RAISE EXCEPTION 'app_keys: a destroyed key stays destroyed';
    END IF;
    IF OLD.state = 'active' AND NEW.state = 'destroyed' THEN
        RAISE EXCEPTION 'app_keys: the active key cannot be destroyed';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER app_keys_guard BEFORE UPDATE OR DELETE ON app_keys
    FOR EACH ROW EXECUTE FUNCTION app_keys_guard();

-- The root secret, sealed under the master key (associated data "usersigd/root/v1"). One row.
CREATE TABLE keyring (
    id          integer     NOT NULL DEFAULT 1,
    sealed_root bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT keyring_pkey PRIMARY KEY (id),
    CONSTRAINT keyring_single_row CHECK (id = 1),
    CONSTRAINT keyring_sealed_length CHECK (octet_length(sealed_root) BETWEEN 29 AND 1024)
);

-- API tokens: usg_<id>_<secret>; only SHA-256(secret) is kept. apps NULL = every app.
CREATE TABLE api_tokens (
    id           bigserial   NOT NULL,
    name         text        NOT NULL,
    role         text        NOT NULL,
    apps         bigint[],
    secret_hash  bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT api_tokens_name_length CHECK (char_length(name) BETWEEN 1 AND 128),
    CONSTRAINT api_tokens_role CHECK (role IN ('admin', 'key_manager', 'signer', 'auditor')),
    CONSTRAINT api_tokens_apps CHECK (apps IS NULL OR (
        array_ndims(apps) = 1 AND cardinality(apps) BETWEEN 1 AND 256
        AND array_position(apps, NULL) IS NULL
        AND 1 <= ALL (apps) AND 4294967295 >= ALL (apps))),
    CONSTRAINT api_tokens_secret_hash_length CHECK (octet_length(secret_hash) = 32)
);

-- The audit log: an HMAC chain, mac[n] = HMAC-SHA256(audit key, mac[n-1] || canonical(event n)),
-- each text field followed by a newline in the canonical form, so no field may hold one.
CREATE TABLE audit_log (
    seq         bigint      NOT NULL,
    at          timestamptz NOT NULL,
    actor_id    bigint,
    actor_name  text        NOT NULL,
    action      text        NOT NULL,
    sdkappid    bigint,
    key_version integer,
    outcome     text        NOT NULL,
    details     text        NOT NULL,
    mac         bytea       NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (seq),
    CONSTRAINT audit_log_seq_range CHECK (seq >= 1),
    CONSTRAINT audit_log_actor_id_range CHECK (actor_id >= 1),
    CONSTRAINT audit_log_sdkappid_range CHECK (sdkappid BETWEEN 1 AND 4294967295),
    CONSTRAINT audit_log_key_version_range CHECK (key_version >= 1),
    CONSTRAINT audit_log_text_lengths CHECK (
        octet_length(actor_name) <= 256 AND octet_length(action) BETWEEN 1 AND 256
        AND octet_length(outcome) BETWEEN 1 AND 256 AND octet_length(details) <= 8192),
    CONSTRAINT audit_log_no_newlines CHECK (
        strpos(actor_name, E'\n') = 0 AND strpos(action, E'\n') = 0
        AND strpos(outcome, E'\n') = 0 AND strpos(details, E'\n') = 0),
    CONSTRAINT audit_log_mac_length CHECK (octet_length(mac) = 32)
);

-- The filters of GET /v1/audit, each paged by seq.
CREATE INDEX audit_log_sdkappid_seq ON audit_log (sdkappid, seq);
CREATE INDEX audit_log_action_seq ON audit_log (action, seq);
CREATE INDEX audit_log_actor_name_seq ON audit_log (actor_name, seq);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING HINT = 'audit events are never changed or removed; audit verify checks the chain';
END
$$;

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
