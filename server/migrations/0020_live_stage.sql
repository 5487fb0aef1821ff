-- What a moderator set in a live room that lived only in its owner's memory (docs/scaling.md, "The stage survives
-- its owner"): who has the floor, who is in the spotlight, and the help requests waiting for a moderator. The owner
-- writes each workshop's whole stage in the background, fenced by its lease when several nodes run; a new owner or a
-- restarted node reads it back when the workshop's first member comes in, keeping only the entries of people whose
-- resume grant has not expired (the others never came back).

CREATE TABLE live_stage (
    workshop_id    uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    room_id        uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    floor          boolean NOT NULL DEFAULT false,
    spotlight      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (room_id, participant_id),
    CHECK (floor OR spotlight)
);
CREATE INDEX live_stage_workshop ON live_stage (workshop_id);
-- One spotlight per room.
CREATE UNIQUE INDEX live_stage_one_spotlight ON live_stage (room_id) WHERE spotlight;

CREATE TABLE live_help (
    workshop_id    uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    participant_id uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    room_id        uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    room_name      text NOT NULL,
    display_name   text NOT NULL,
    text           text,
    asked_at       timestamptz NOT NULL,
    PRIMARY KEY (workshop_id, participant_id)
);
