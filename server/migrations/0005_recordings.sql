-- Recordings: one row per recording, one per track file, the consent ledger, grants, and the download log.
CREATE TABLE recordings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id     uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    room_id         uuid NOT NULL,
    room_name       text NOT NULL,
    state           text NOT NULL DEFAULT 'starting'
                    CHECK (state IN ('starting', 'recording', 'stopping', 'ready', 'failed', 'deleted')),
    partial         boolean NOT NULL DEFAULT false,
    failure_reason  text,
    consent_mode    text NOT NULL CHECK (consent_mode IN ('explicit', 'assumed')),
    started_by      uuid,           -- participant id; NULL for the admin token
    started_by_role text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    stopped_at      timestamptz,
    ready_at        timestamptz,
    deleted_at      timestamptz,
    deleted_by      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_page ON recordings (workshop_id, created_at, id);
-- One live recording per room.
CREATE UNIQUE INDEX recordings_one_live_per_room ON recordings (room_id)
    WHERE state IN ('starting', 'recording', 'stopping');

CREATE TABLE recording_tracks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    recording_id    uuid NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('audio', 'video')),
    codec           text NOT NULL,
    file_key        text,           -- relative to the recordings directory; NULL once deleted
    state           text NOT NULL DEFAULT 'writing' CHECK (state IN ('writing', 'complete', 'partial', 'deleted')),
    bytes           bigint,
    duration_s      double precision,
    sha256          text,
    offset_s        double precision NOT NULL DEFAULT 0,  -- from the recording's start
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE INDEX recording_tracks_by_recording ON recording_tracks (recording_id);

-- The consent ledger is append-only: the latest row of a participant for a recording is its answer.
CREATE TABLE recording_consents (
    id              bigserial PRIMARY KEY,
    recording_id    uuid NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    granted         boolean NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recording_consents_by_recording ON recording_consents (recording_id, participant_id, id);

CREATE TABLE recording_grants (
    recording_id    uuid NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    granted_by      text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, participant_id)
);

CREATE TABLE recording_downloads (
    id              bigserial PRIMARY KEY,
    recording_id    uuid NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    track_id        uuid NOT NULL,
    principal       text NOT NULL,   -- 'admin', or the participant id (also behind a signed URL)
    via             text NOT NULL CHECK (via IN ('bearer', 'signed_url')),
    range_header    text,
    status          integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recording_downloads_by_recording ON recording_downloads (recording_id, at);
