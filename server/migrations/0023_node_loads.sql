-- Which node owns a new workshop (docs/scaling.md, "Which node owns a workshop"): every node publishes the sessions
-- it serves at each lease renewal, and its soft limit of workshops (NULL: none) when it registers. The workshops it
-- holds are counted from workshop_leases, which is exact at every moment.
ALTER TABLE nodes
    ADD COLUMN sessions      integer NOT NULL DEFAULT 0 CHECK (sessions >= 0),
    ADD COLUMN max_workshops integer CHECK (max_workshops > 0);
