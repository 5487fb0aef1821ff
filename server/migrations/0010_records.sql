-- The workshop's record: attendance visits, consent evidence (the connection of each answer), certificates.

-- Drops and resumes join the attendance events; a drop that expires is a leave ('timeout') at the drop's time.
ALTER TABLE attendance_events DROP CONSTRAINT attendance_events_event_check;
ALTER TABLE attendance_events ADD CONSTRAINT attendance_events_event_check
    CHECK (event IN ('join', 'leave', 'drop', 'resume'));
ALTER TABLE attendance_events ADD COLUMN visit_id uuid;

-- One row per stay of a participant in a room: opened by a join (or a move in), closed by how it ended. Written by
-- the attendance writer in the same transaction as the events it derives from. No foreign keys: the record of a
-- workshop outlives its roster and rooms (retention removes it, by workshop).
CREATE TABLE visits (
    id              uuid PRIMARY KEY,
    workshop_id     uuid NOT NULL,
    participant_id  uuid NOT NULL,
    room_id         uuid NOT NULL,
    room_name       text NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    ended_how       text CHECK (ended_how IN
                        ('left', 'moved', 'dropped', 'expired', 'removed', 'replaced', 'shutdown', 'crash')),
    -- Socket drops during the visit (resumed within the grace period, or the last one, which expired).
    drops           integer NOT NULL DEFAULT 0 CHECK (drops >= 0),
    -- Set while the socket is down; a crash meanwhile ends the visit here, not at the last heartbeat.
    dropped_at      timestamptz,
    CHECK ((ended_at IS NULL) = (ended_how IS NULL)),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX visits_by_workshop ON visits (workshop_id, started_at);
CREATE INDEX visits_open ON visits (workshop_id) WHERE ended_at IS NULL;
CREATE INDEX visits_by_room ON visits (room_id, started_at);

-- The attendance recorded before visits existed: each join up to the participant's next leave (drops were not
-- recorded then). A join with no leave stays open, and the next start closes it as after a crash.
INSERT INTO visits (id, workshop_id, participant_id, room_id, room_name, started_at, ended_at, ended_how)
SELECT gen_random_uuid(), j.workshop_id, j.participant_id, j.room_id, COALESCE(r.name, ''), j.at,
    CASE WHEN nxt.at IS NULL THEN NULL ELSE GREATEST(nxt.at, j.at) END,
    CASE WHEN nxt.at IS NULL THEN NULL
         WHEN nxt.event = 'join' THEN 'crash'
         WHEN nxt.reason IN ('left', 'protocol_violation') THEN 'left'
         WHEN nxt.reason = 'moved' THEN 'moved'
         WHEN nxt.reason = 'disconnected' THEN 'dropped'
         WHEN nxt.reason = 'timeout' THEN 'expired'
         WHEN nxt.reason = 'removed' THEN 'removed'
         WHEN nxt.reason = 'replaced' THEN 'replaced'
         WHEN nxt.reason = 'server_shutdown' THEN 'shutdown'
         WHEN nxt.reason = 'server_crash' THEN 'crash'
         ELSE 'left' END
FROM attendance_events j
LEFT JOIN LATERAL (
    SELECT n.at, n.event, n.reason FROM attendance_events n
    WHERE n.participant_id = j.participant_id AND n.id > j.id ORDER BY n.id LIMIT 1
) nxt ON true
LEFT JOIN rooms r ON r.id = j.room_id
WHERE j.event = 'join';

-- The connection (WebSocket session id, as in the logs and X-Request-Id) each consent answer came from.
ALTER TABLE recording_consents ADD COLUMN connection_id text;

-- Certificates of attendance: what each one states, frozen when issued, behind an unguessable code.
CREATE TABLE certificates (
    code            text PRIMARY KEY CHECK (code ~ '^[A-Z2-7]{20}$'),
    workshop_id     uuid NOT NULL,
    participant_id  uuid NOT NULL,
    display_name    text NOT NULL,
    organisation    text NOT NULL,
    country         char(2) NOT NULL,
    workshop_title  text NOT NULL,
    timezone        text NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    seconds_present integer NOT NULL CHECK (seconds_present >= 0),
    min_share       double precision NOT NULL CHECK (min_share BETWEEN 0 AND 1),
    issued_at       timestamptz NOT NULL,
    issued_by       text NOT NULL,
    UNIQUE (workshop_id, participant_id)
);
CREATE INDEX certificates_by_workshop ON certificates (workshop_id, display_name);
