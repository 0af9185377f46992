-- 0008_verify_counts: verifies per key version and verdict (server/core/usage.h). Each usersigd
-- process counts in memory and adds what it counted here every few seconds, in one statement;
-- the listing of an app's keys shows the sums. version 0 holds the verifies that no version of
-- the app matched (signature_mismatch, no_key ...), so it refers to no app_keys row.

CREATE TABLE key_verify_counts (
    sdkappid bigint  NOT NULL,
    version  integer NOT NULL,
    verdict  text    NOT NULL,
    count    bigint  NOT NULL,
    CONSTRAINT key_verify_counts_pkey PRIMARY KEY (sdkappid, version, verdict),
    CONSTRAINT key_verify_counts_app_fkey FOREIGN KEY (sdkappid) REFERENCES apps (sdkappid)
        ON DELETE RESTRICT,
    CONSTRAINT key_verify_counts_version_range CHECK (version >= 0),
    CONSTRAINT key_verify_counts_verdict CHECK (verdict ~ '^[a-z0-9_]{1,31}$'),
    CONSTRAINT key_verify_counts_count CHECK (count >= 0)
);
