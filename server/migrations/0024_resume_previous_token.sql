-- A resume also takes the grant with the token the member last came back with (docs/protocol.md, "Resume"): the
-- welcome that carried the new token may never have reached the client (its socket died right after, or it gave up
-- waiting and tried again), and that client still holds only the one before. Its hash, as for the current token.
ALTER TABLE resume_grants ADD COLUMN previous_sha256 bytea CHECK (octet_length(previous_sha256) = 32);
