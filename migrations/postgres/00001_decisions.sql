-- The decision history and the cooldown state, the same shape as
-- migrations/sqlite (read its comments first).
--
-- PostgreSQL specifics:
-- - id is TEXT COLLATE "C": ids must sort byte-wise (UUIDv7 strings sort in
--   time order only that way), whatever the database's default collation.
-- - Times are BIGINT unix nanoseconds, not TIMESTAMPTZ: TIMESTAMPTZ keeps
--   microseconds only, so a decision made at t+500ns would fall outside
--   since=t+500ns, and a cooldown read back would not equal the evaluation
--   time that started it. record (JSONB) keeps the exact times for people.

-- +goose Up
CREATE TABLE decisions (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    evaluated_at    BIGINT NOT NULL,
    project         TEXT   NOT NULL,
    pipeline        TEXT   NOT NULL,
    branch          TEXT   NOT NULL,
    environment     TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('accepted', 'refused')),
    bundle_revision TEXT   NOT NULL,
    record          JSONB  NOT NULL
);

CREATE INDEX decisions_project ON decisions (project, id);
CREATE INDEX decisions_project_pipeline ON decisions (project, pipeline, id);
CREATE INDEX decisions_project_pipeline_branch ON decisions (project, pipeline, branch, id);
CREATE INDEX decisions_status ON decisions (status, id);
CREATE INDEX decisions_evaluated_at ON decisions (evaluated_at);

CREATE TABLE cooldowns (
    project          TEXT   NOT NULL,
    pipeline         TEXT   NOT NULL,
    branch           TEXT   NOT NULL,
    last_accepted_at BIGINT NOT NULL,
    decision_id      TEXT COLLATE "C" REFERENCES decisions (id) ON DELETE SET NULL,
    PRIMARY KEY (project, pipeline, branch)
);

-- +goose Down
DROP TABLE cooldowns;
DROP TABLE decisions;
