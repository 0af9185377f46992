-- 0007_audit_checkpoints: signed checkpoints of the audit chain (server/README.md "Audit
-- checkpoints"). The chain alone cannot show that events were cut off its end; a checkpoint
-- (seq, mac and time of the chain's latest event, signed with an Ed25519 key) copied outside the
-- database can. The key's private half is sealed under the master key like an app key
-- (associated data "usersigd/checkpoint/v1" 0x00 public_key); one key, made on first use.

CREATE TABLE audit_checkpoint_key (
    id         integer     NOT NULL DEFAULT 1,
    public_key bytea       NOT NULL,
    sealed     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_checkpoint_key_pkey PRIMARY KEY (id),
    CONSTRAINT audit_checkpoint_key_single_row CHECK (id = 1),
    CONSTRAINT audit_checkpoint_key_public_length CHECK (octet_length(public_key) = 32),
    -- nonce(12) || ciphertext(32) || tag(16)
    CONSTRAINT audit_checkpoint_key_sealed_length CHECK (octet_length(sealed) = 60)
);

-- One row per checkpoint: the event it names (seq, mac), when it was made (at, to the
-- microsecond: it is signed), the public key that signed it and the signature over
-- "usersigd audit checkpoint v1\n" seq "\n" hex(mac) "\n" at_us "\n".
CREATE TABLE audit_checkpoints (
    seq        bigint      NOT NULL,
    mac        bytea       NOT NULL,
    at         timestamptz NOT NULL,
    public_key bytea       NOT NULL,
    signature  bytea       NOT NULL,
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (seq),
    CONSTRAINT audit_checkpoints_seq_range CHECK (seq >= 1),
    CONSTRAINT audit_checkpoints_mac_length CHECK (octet_length(mac) = 32),
    CONSTRAINT audit_checkpoints_public_length CHECK (octet_length(public_key) = 32),
    CONSTRAINT audit_checkpoints_signature_length CHECK (octet_length(signature) = 64)
);

-- Append-only, as the log it vouches for.
CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
