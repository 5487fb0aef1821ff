-- The workshop's agenda: timed sessions (plenary, breakouts, break), each optionally opening a breakout plan and
-- starting a recording at its start and bringing everyone back at its end; and a participant's own time zone.
CREATE TABLE agenda_sessions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id       uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description       text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    kind              text NOT NULL CHECK (kind IN ('plenary', 'breakouts', 'break')),
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL,
    presenters        text NOT NULL DEFAULT '' CHECK (length(presenters) <= 500),
    breakout_plan_id  uuid NULL REFERENCES breakout_plans (id) ON DELETE SET NULL,
    record            boolean NOT NULL DEFAULT false,
    -- A moderator's hold: a held session fires neither edge while held.
    held              boolean NOT NULL DEFAULT false,
    -- Each edge fires once: the scheduler claims it with a conditional UPDATE ... WHERE ..._fired_at IS NULL in the
    -- same transaction as its effect, so a restart neither repeats nor misses it.
    started_fired_at  timestamptz,
    ended_fired_at    timestamptz,
    -- What the start edge did (e.g. {"plan_opened": true, "recording_id": "..."}), read by the end edge.
    fired_effects     jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX agenda_sessions_by_workshop ON agenda_sessions (workshop_id, starts_at, id);
CREATE INDEX agenda_sessions_pending ON agenda_sessions (starts_at) WHERE ended_fired_at IS NULL;

ALTER TABLE participants ADD COLUMN timezone text NULL CHECK (timezone IS NULL OR length(timezone) BETWEEN 1 AND 64);
