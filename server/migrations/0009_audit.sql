-- The workshop's audit log: one hash chain per workshop and one for server-wide events (docs/records.md).
-- No foreign key to workshops: a workshop's log outlives the workshop (its deletion is the last entry).
CREATE TABLE audit_entries (
    id            bigserial PRIMARY KEY,
    chain         text NOT NULL,      -- the workshop id, or 'server'
    seq           bigint NOT NULL CHECK (seq >= 1),
    workshop_id   uuid,               -- NULL on the server chain
    at            timestamptz NOT NULL,
    actor_id      uuid,               -- NULL for the admin token and the server itself
    actor_role    text NOT NULL,      -- 'admin', 'system', or the participant's role at the time
    actor_name    text NOT NULL DEFAULT '',
    action        text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
    target        jsonb NOT NULL DEFAULT '{}',
    details       jsonb NOT NULL DEFAULT '{}',
    prev_hash     text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    entry_digest  text NOT NULL CHECK (entry_digest ~ '^[0-9a-f]{64}$'),  -- sha256 of the entry's canonical form
    hash          text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),          -- sha256 of (prev_hash, entry_digest)
    redacted_at   timestamptz,        -- set by retention: actor, target and details erased, hashes kept
    UNIQUE (chain, seq)
);
CREATE INDEX audit_by_workshop ON audit_entries (workshop_id, id);
CREATE INDEX audit_by_workshop_action ON audit_entries (workshop_id, action, id);
CREATE INDEX audit_by_workshop_actor ON audit_entries (workshop_id, actor_id, id);
-- Retention finds deleted workshops' chains through their last entry.
CREATE INDEX audit_deletions ON audit_entries (workshop_id) WHERE action = 'workshop.delete' AND redacted_at IS NULL;

-- Entries are never changed or removed. The one change allowed is a redaction (retention): the personal content
-- goes, everything the hashes cover stays, and `redacted_at` says when. A superuser can still disable the
-- trigger; that is what signed anchors are for.
CREATE FUNCTION audit_entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
       AND NEW.id = OLD.id AND NEW.chain = OLD.chain AND NEW.seq = OLD.seq
       AND NEW.workshop_id IS NOT DISTINCT FROM OLD.workshop_id AND NEW.at = OLD.at
       AND NEW.action = OLD.action AND NEW.prev_hash = OLD.prev_hash
       AND NEW.entry_digest = OLD.entry_digest AND NEW.hash = OLD.hash
       AND NEW.actor_id IS NULL AND NEW.actor_name = '' AND NEW.actor_role = OLD.actor_role
       AND NEW.target = '{}'::jsonb AND NEW.details = '{}'::jsonb THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_entries_no_rewrite BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_guard();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_guard();

-- Retention redacts through this function only (the service role may run it; it needs no UPDATE right).
CREATE FUNCTION audit_redact(p_chain text, p_upto_seq bigint) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH done AS (
        UPDATE public.audit_entries
        SET actor_id = NULL, actor_name = '', target = '{}'::jsonb, details = '{}'::jsonb, redacted_at = now()
        WHERE chain = p_chain AND seq <= p_upto_seq AND redacted_at IS NULL AND action <> 'records.retention'
        RETURNING 1
    )
    SELECT count(*) FROM done;
$$;

-- Whoever the service connects as (when it is not the owner) may add and read entries, never rewrite them.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_redact(text, bigint) FROM PUBLIC;

-- Signed anchors: the head (seq, hash) of every chain at a moment, signed with the server's Ed25519 key.
CREATE TABLE audit_anchors (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    document    text NOT NULL
);
CREATE FUNCTION audit_anchors_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit anchors are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_anchors_no_rewrite BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_anchors_guard();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit_anchors_guard();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_anchors FROM PUBLIC;

-- How long a workshop's attendance, chat and audit entries are kept after it ends; NULL: the server's default.
ALTER TABLE workshops ADD COLUMN records_retention_days integer CHECK (records_retention_days BETWEEN 1 AND 36500);
