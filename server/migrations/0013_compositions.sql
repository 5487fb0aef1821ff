-- Composed video: one job per recording (queued when the recording becomes ready, run by a composer subprocess
-- that the server's supervisor starts), and the files it made. A track's source (camera or screen) where known.

ALTER TABLE recording_tracks ADD COLUMN source text CHECK (source IN ('camera', 'screen'));

-- One row per recording that has something to compose. `attempts` counts the runs started; `heartbeat_at` is
-- written by the supervisor while its subprocess lives, so that a job left `running` by a dead server is seen
-- (its heartbeat lapses) and queued again. `worker_pid` is the composer subprocess's process id while it runs.
CREATE TABLE recording_compositions (
    recording_id    uuid PRIMARY KEY REFERENCES recordings (id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'ready', 'failed')),
    progress        double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    error           text,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker_pid      integer,
    heartbeat_at    timestamptz,
    queued_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at      timestamptz,
    finished_at     timestamptz,
    layout          jsonb           -- the composer's layout timeline: who was where, when
);
CREATE INDEX recording_compositions_queue ON recording_compositions (state, queued_at);

-- The composed files of a recording, one per format; replaced when it is composed again.
CREATE TABLE recording_composed_files (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    recording_id    uuid NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    format          text NOT NULL CHECK (format IN ('webm', 'mp4')),
    codec           text NOT NULL,
    file_key        text,           -- relative to the recordings directory; NULL once deleted
    bytes           bigint NOT NULL,
    sha256          text NOT NULL,
    duration_s      double precision NOT NULL,
    width           integer NOT NULL,
    height          integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (recording_id, format)
);
