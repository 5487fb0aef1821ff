-- Who may publish in a room's SFU: open (everyone but observers) or moderated (moderators and the floor).
ALTER TABLE rooms ADD COLUMN publishing text NOT NULL DEFAULT 'open' CHECK (publishing IN ('open', 'moderated'));
