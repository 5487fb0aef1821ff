-- Several Janus (docs/sfu.md#several-janus): which Janus each live SFU room was placed on, by which node (the
-- workshop's owner). The load of a Janus is, over its rows whose node is alive (seen within the lease TTL), one per
-- room plus its members (kept up to date by the owner in the background, at most about once a second per room),
-- read when a room is placed, never per message. No secret is kept here: a Janus's secrets are configured
-- (external ones) or derived from the deployment's shared secret key (a node's embedded Janus).
CREATE TABLE sfu_placements (
    room_id    text PRIMARY KEY CHECK (length(room_id) BETWEEN 1 AND 100),
    janus_url  text NOT NULL CHECK (length(janus_url) BETWEEN 1 AND 500),
    node_id    text NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    members    integer NOT NULL DEFAULT 0 CHECK (members >= 0),
    placed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sfu_placements_janus ON sfu_placements (janus_url);
CREATE INDEX sfu_placements_node ON sfu_placements (node_id);
