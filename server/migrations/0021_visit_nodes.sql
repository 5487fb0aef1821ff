-- Several nodes (docs/scaling.md "Sweeping what a dead node left"): which node writes each open visit, so that a
-- node's start, and the sweep every node runs, close only the visits of nodes that are gone, never another live
-- node's. A member resumed on another node moves its visit there (signaling/resume_store.py, TAKE).
-- NULL for visits opened before this migration, and by a node alone (its start closes them as before).
ALTER TABLE visits ADD COLUMN node_id text;
CREATE INDEX visits_open_node ON visits (node_id) WHERE ended_at IS NULL;
