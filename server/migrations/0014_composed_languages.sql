-- A composed video per interpretation channel (docs/interpretation.md): the same picture with the channel's voice
-- over the floor. '' is the floor's own file (not NULL, so that the one-file-per-format rule stays a plain UNIQUE).
ALTER TABLE recording_composed_files
    ADD COLUMN language text NOT NULL DEFAULT '' CHECK (language = '' OR language ~ '^[a-z]{2,3}$');
ALTER TABLE recording_composed_files DROP CONSTRAINT recording_composed_files_recording_id_format_key;
ALTER TABLE recording_composed_files
    ADD CONSTRAINT recording_composed_files_one_per_language UNIQUE (recording_id, format, language);
