-- Foundation: workshops, rooms, participants, server secrets.
CREATE TABLE server_secrets (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workshops (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title              text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    timezone           text NOT NULL,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    status             text NOT NULL DEFAULT 'scheduled'
                       CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled')),
    recording_consent  text NOT NULL DEFAULT 'explicit' CHECK (recording_consent IN ('explicit', 'assumed')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX workshops_page ON workshops (created_at, id);

CREATE TABLE rooms (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id  uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CHECK (kind IN ('plenary', 'breakout')),
    capacity     integer NOT NULL CHECK (capacity > 0),
    media        text NOT NULL DEFAULT 'mesh' CHECK (media IN ('mesh', 'sfu')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rooms_one_plenary ON rooms (workshop_id) WHERE kind = 'plenary';
CREATE INDEX rooms_page ON rooms (workshop_id, created_at, id);

-- Participants are soft-deleted: attendance, chat and consent records keep pointing at them.
CREATE TABLE participants (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id       uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    display_name      text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    country           char(2) NOT NULL,
    organisation      text NOT NULL DEFAULT '' CHECK (length(organisation) <= 200),
    email             text,
    role              text NOT NULL CHECK (role IN ('organiser', 'moderator', 'participant', 'observer')),
    -- Every join token carries the generation it was minted in; revoking bumps it.
    token_generation  integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);
CREATE INDEX participants_page ON participants (workshop_id, created_at, id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX participants_email ON participants (workshop_id, lower(email))
    WHERE email IS NOT NULL AND deleted_at IS NULL;
