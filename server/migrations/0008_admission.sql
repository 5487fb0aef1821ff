-- Admission (docs/moderation.md): the workshop's lobby setting, room locks, bans, knocks and trusted devices.
ALTER TABLE workshops ADD COLUMN lobby text NOT NULL DEFAULT 'off' CHECK (lobby IN ('off', 'everyone', 'unverified'));
ALTER TABLE rooms ADD COLUMN locked boolean NOT NULL DEFAULT false;

-- A ban bars the participant by identity: every token is refused while banned_at is set (server.auth).
ALTER TABLE participants
    ADD COLUMN banned_at   timestamptz,
    ADD COLUMN banned_by   uuid,  -- the participant who banned; NULL for the admin token
    ADD COLUMN ban_reason  text CHECK (length(ban_reason) <= 500);
CREATE INDEX participants_banned ON participants (workshop_id, banned_at) WHERE banned_at IS NOT NULL;

-- A knock: someone waiting to enter. `pending` until a moderator admits or denies it, or the knocker goes away
-- (`left`). An admitted knock is also the admission: it lets that participant in again from the same device until
-- `ended_at` (they left on purpose, were removed or banned).
CREATE TABLE lobby_knocks (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id          uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    participant_id       uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    room_id              uuid NOT NULL,
    device               text CHECK (length(device) BETWEEN 1 AND 64),
    reason               text NOT NULL CHECK (reason IN ('lobby', 'unverified', 'locked')),
    link_used_elsewhere  boolean NOT NULL DEFAULT false,
    state                text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'admitted', 'denied', 'left')),
    knocked_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    decided_at           timestamptz,
    decided_by           uuid,
    message              text CHECK (length(message) <= 500),
    ended_at             timestamptz
);
CREATE UNIQUE INDEX lobby_one_pending_knock ON lobby_knocks (participant_id) WHERE state = 'pending';
CREATE INDEX lobby_knocks_pending ON lobby_knocks (workshop_id, knocked_at) WHERE state = 'pending';
CREATE INDEX lobby_admissions ON lobby_knocks (participant_id) WHERE state = 'admitted' AND ended_at IS NULL;

-- Devices (the browser's random id, sent in hello) that entered a room as this participant: trusted afterwards
-- by the `unverified` lobby.
CREATE TABLE participant_devices (
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    device          text NOT NULL CHECK (length(device) BETWEEN 1 AND 64),
    trusted_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, device)
);
