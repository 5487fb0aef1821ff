-- Simultaneous interpretation (docs/interpretation.md): the workshop's languages, interpreters' pairs, and the
-- language of each recorded interpretation track.

-- ISO 639-1 (or 639-2) lower-case codes; the first is the floor's usual language. At most 12, no repeats.
ALTER TABLE workshops ADD COLUMN languages text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(languages) <= 12 AND array_position(languages, NULL) IS NULL);

-- Set for an interpreter: the pair of workshop languages they interpret between (null: not an interpreter).
ALTER TABLE participants ADD COLUMN interpreter_languages text[]
    CHECK (interpreter_languages IS NULL OR (cardinality(interpreter_languages) = 2
                                             AND interpreter_languages[1] <> interpreter_languages[2]));

-- The channel an interpretation track was spoken into; null for the floor's tracks.
ALTER TABLE recording_tracks ADD COLUMN language text CHECK (language IS NULL OR language ~ '^[a-z]{2,3}$');
