-- Invitations: a participant's language, the workshop's invitation settings, and a durable outbox of e-mails.

-- The language invitations and reminders are written in (null: English).
ALTER TABLE participants ADD COLUMN language text CHECK (language IN ('en', 'ru'));

-- One row per workshop that set anything about its invitations. `reminders_queued_at` is set once, by the
-- conditional UPDATE that queues the reminders: a restart (or a second process) cannot queue them twice.
CREATE TABLE invitation_settings (
    workshop_id             uuid PRIMARY KEY REFERENCES workshops (id) ON DELETE CASCADE,
    reminder_minutes_before integer CHECK (reminder_minutes_before BETWEEN 1 AND 20160),
    reminders_queued_at     timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- The outbox: one row per participant and kind of message. The sender claims a due row by a conditional UPDATE
-- (`claimed_until`, a lease: a process that dies mid-send leaves the row to be retried after the lease), sends it,
-- and writes the outcome. Nothing is deleted by sending: a failure keeps the row with its reason, to be resent.
CREATE TABLE invitations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workshop_id     uuid NOT NULL REFERENCES workshops (id) ON DELETE CASCADE,
    participant_id  uuid NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('invitation', 'reminder')),
    state           text NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at timestamptz,
    next_attempt_at timestamptz NOT NULL,
    claimed_until   timestamptz,
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (participant_id, kind),
    CHECK (state <> 'failed' OR last_error IS NOT NULL),
    CHECK (state <> 'sent' OR sent_at IS NOT NULL)
);
CREATE INDEX invitations_due ON invitations (next_attempt_at) WHERE state = 'queued';
CREATE INDEX invitations_by_workshop ON invitations (workshop_id, created_at, id);
