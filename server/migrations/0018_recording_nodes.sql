-- Recordings on the workshop's owner (docs/scaling.md "Recordings on the owner"): which node runs a live recording,
-- so that crash recovery finalises only the recordings of nodes that are gone, never another live node's.
-- NULL for recordings made before this migration (their process is gone).
ALTER TABLE recordings ADD COLUMN node_id text;
CREATE INDEX recordings_live_node ON recordings (node_id) WHERE state IN ('starting', 'recording', 'stopping');
