-- Several nodes on one database (docs/scaling.md): who is up, who owns which workshop's live state, and what a
-- member dropped within its grace period needs to resume on any node.

-- One row per server process: a restart is a new node (a new id), so that a lease of the old process is never
-- mistaken for one of the new. seen_at is beaten by the node's LeaseKeeper with the database's clock.
CREATE TABLE nodes (
    id           text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    started_at   timestamptz NOT NULL DEFAULT now(),
    seen_at      timestamptz NOT NULL DEFAULT now(),
    address      text NOT NULL DEFAULT '',
    janus_url    text,
    janus_rooms  integer CHECK (janus_rooms >= 0),
    draining     boolean NOT NULL DEFAULT false
);

-- Fencing numbers: one sequence for every workshop, so that a number is never given twice, even after a lease
-- row was released (deleted) and taken again.
CREATE SEQUENCE workshop_lease_fence AS bigint;

-- The owner of a workshop's live state. A lease lapses at expires_at (the database's clock) unless renewed; another
-- node may then take it over, with a new, larger fence. Writes that matter check the fence in their transaction.
CREATE TABLE workshop_leases (
    workshop_id  uuid PRIMARY KEY REFERENCES workshops (id) ON DELETE CASCADE,
    node_id      text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    fence        bigint NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX workshop_leases_node ON workshop_leases (node_id);

-- A member's place while its socket is down (the resume grace period), readable by any node: the hash of the resume
-- token it was given, and what it had (room, media state, hand). Taken once (deleted) by the node it resumes on.
CREATE TABLE resume_grants (
    participant_id  uuid PRIMARY KEY REFERENCES participants (id) ON DELETE CASCADE,
    workshop_id     uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    token_sha256    bytea NOT NULL CHECK (length(token_sha256) = 32),
    room_id         uuid NOT NULL,
    state           jsonb NOT NULL,
    visit_id        text NOT NULL DEFAULT '',
    detached_at     timestamptz NOT NULL,
    node_id         text NOT NULL DEFAULT '',
    expires_at      timestamptz NOT NULL
);
CREATE INDEX resume_grants_expiry ON resume_grants (expires_at);
