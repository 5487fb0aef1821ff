-- Durable resume wired (docs/scaling.md "Durable resume"): a grant exists from the member's welcome on, not only
-- once its socket dropped, so that a node killed without warning still leaves every place behind.

-- detached_at and expires_at are NULL while the member is connected: such a grant lasts while its node is alive
-- and expires grace_s after the node was last seen (nodes.seen_at, PostgreSQL's clock). A dropped or drained member's
-- grant has both: it expires grace_s after it was written.
ALTER TABLE resume_grants ALTER COLUMN detached_at DROP NOT NULL;
ALTER TABLE resume_grants ALTER COLUMN expires_at DROP NOT NULL;
ALTER TABLE resume_grants ADD COLUMN grace_s double precision NOT NULL DEFAULT 0 CHECK (grace_s >= 0);
ALTER TABLE resume_grants ADD CONSTRAINT resume_grants_detached_expires
    CHECK ((detached_at IS NULL) = (expires_at IS NULL));
CREATE INDEX resume_grants_node ON resume_grants (node_id);

-- When the node's record was last known complete (its heartbeat, on the record's clock, never ahead of what its
-- attendance writer has written): a visit kept open by a grant of a node that died ends here when nobody resumes it.
ALTER TABLE nodes ADD COLUMN alive_at timestamptz;
