-- Signalling records: attendance (each join and leave of a room) and room chat.
CREATE TABLE attendance_events (
    id              bigserial PRIMARY KEY,
    workshop_id     uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    room_id         uuid NOT NULL,
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    event           text NOT NULL CHECK (event IN ('join', 'leave')),
    at              timestamptz NOT NULL,
    reason          text NOT NULL DEFAULT ''
);
CREATE INDEX attendance_by_workshop ON attendance_events (workshop_id, at);
CREATE INDEX attendance_by_participant ON attendance_events (participant_id, at);

CREATE TABLE chat_messages (
    id              bigserial PRIMARY KEY,
    workshop_id     uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    room_id         uuid NOT NULL,
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    display_name    text NOT NULL,
    text            text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
    sent_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_by_room ON chat_messages (room_id, id);
