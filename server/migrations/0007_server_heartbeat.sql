-- When this server was last known alive, beaten every few seconds: a start after a crash closes the attendance
-- visits the dead process left open with this time, the best known bound of when they ended.
CREATE TABLE server_heartbeat (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    alive_at    timestamptz NOT NULL
);
