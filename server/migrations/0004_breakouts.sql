-- Breakout plans (prepared ahead, reusable), their rooms and assignments, and the moderators' action log.
CREATE TABLE breakout_plans (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id      uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    strategy         text NOT NULL
                     CHECK (strategy IN ('manual', 'random', 'balanced', 'country_mixed', 'self_select')),
    roles            text[] NOT NULL DEFAULT '{participant}',
    self_select_cap  integer CHECK (self_select_cap > 0),
    duration_s       integer CHECK (duration_s > 0),
    countdown_s      integer NOT NULL DEFAULT 60 CHECK (countdown_s BETWEEN 0 AND 3600),
    state            text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'open', 'closing', 'closed')),
    seed             integer NOT NULL DEFAULT 0,
    opened_at        timestamptz,
    ends_at          timestamptz,
    closes_at        timestamptz,
    closed_at        timestamptz,
    copied_from      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX breakout_plans_page ON breakout_plans (workshop_id, created_at, id);
-- At most one plan of a workshop is running at a time.
CREATE UNIQUE INDEX breakout_plans_one_running ON breakout_plans (workshop_id) WHERE state IN ('open', 'closing');

CREATE TABLE breakout_rooms (
    plan_id   uuid NOT NULL REFERENCES breakout_plans (id) ON DELETE CASCADE,
    position  integer NOT NULL CHECK (position >= 0),
    room_id   uuid NOT NULL UNIQUE REFERENCES rooms (id) ON DELETE CASCADE,
    PRIMARY KEY (plan_id, position)
);

CREATE TABLE breakout_assignments (
    plan_id         uuid NOT NULL REFERENCES breakout_plans (id) ON DELETE CASCADE,
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    room_id         uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    PRIMARY KEY (plan_id, participant_id)
);

CREATE TABLE moderator_actions (
    id           bigserial PRIMARY KEY,
    workshop_id  uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    actor_id     uuid,            -- the participant who acted; NULL for the admin token
    actor_role   text NOT NULL,   -- 'admin' or the participant's role at the time
    action       text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderator_actions_by_workshop ON moderator_actions (workshop_id, at);
