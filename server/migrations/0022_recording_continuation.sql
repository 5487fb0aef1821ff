-- Recording continuation (docs/recordings.md "Continuation after a failover"): a recording that was running when
-- its node died, was paused past its lease or drained is finalised `partial`; the workshop's next owner starts a
-- continuation of the same room as soon as the room has members again. `continues` links it to the recording it
-- continues (at most one continuation per recording: the unique constraint, with the owner's fence, makes it once
-- among racing nodes). `continuation_pending` is true from the finalisation until the continuation starts or a
-- moderator stops the room's recording meanwhile.
ALTER TABLE recordings ADD COLUMN continues uuid UNIQUE REFERENCES recordings (id) ON DELETE SET NULL;
ALTER TABLE recordings ADD COLUMN continuation_pending boolean NOT NULL DEFAULT false;
CREATE INDEX recordings_continuation_pending ON recordings (workshop_id) WHERE continuation_pending;
-- A consent answer carried over from the recording a continuation continues (the member's decision for the same
-- session, not asked again); NULL for an answer the member gave.
ALTER TABLE recording_consents ADD COLUMN carried_from uuid REFERENCES recordings (id) ON DELETE SET NULL;
