-- 0014_group_check: a signing group in one round trip. A process that appended the chain's last
-- event knows its seq and MAC, so it can chain its next group before it holds the audit lock and
-- send the whole transaction at once (server/README.md, "Group commit"). This check, run under
-- the audit lock and before the insert, makes that safe: it raises 'UG001', which aborts the
-- transaction with nothing written, unless the last event is still the one given, every app's
-- generation is the one the group signed with, every API token is live, and the group's time is
-- no earlier than the last event's and within a second of this database's clock. The process
-- then does the group the usual way (the head read under the lock, then the insert).
CREATE FUNCTION usersigd_group_check(p_seq bigint, p_mac bytea, p_apps bigint[],
                                     p_generations bigint[], p_tokens bigint[], p_at_us bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_seq IS NULL OR p_mac IS NULL OR p_at_us IS NULL
       OR cardinality(p_apps) IS DISTINCT FROM cardinality(p_generations)
       OR NOT EXISTS (SELECT 1 FROM (SELECT seq, mac, at FROM audit_log ORDER BY seq DESC LIMIT 1) AS h
                      WHERE h.seq = p_seq AND h.mac = p_mac
                      AND (extract(epoch FROM h.at) * 1000000)::bigint <= p_at_us)
       OR (SELECT count(*) FROM apps AS a, unnest(p_apps, p_generations) AS u(sdkappid, generation)
           WHERE a.sdkappid = u.sdkappid AND a.generation = u.generation)
          <> cardinality(p_apps)
       OR (SELECT count(*) FROM api_tokens WHERE id = ANY (p_tokens) AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now()))
          <> (SELECT count(DISTINCT t) FROM unnest(p_tokens) AS t)
       OR abs(p_at_us - (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) > 1000000 THEN
        RAISE EXCEPTION 'the audit chain, an app or an API token changed since this process last appended'
            USING ERRCODE = 'UG001';
    END IF;
END
$$;
