-- The decision history and the cooldown state (see adapters/sqlite).
--
-- decisions.id is a UUIDv7 string: ids sort in the order decisions were made,
-- so ORDER BY id DESC lists newest first and a page boundary is simply
-- "id < the last id seen" (keyset pagination, stable while new decisions
-- arrive). Every index used to list ends in id for that reason: the page comes
-- straight off the index, in order, without sorting the matching rows.
--
-- Times are INTEGER unix nanoseconds (UTC): exact to the nanosecond, and they
-- compare and sort as numbers. record is the whole tollgate.Record as JSON;
-- the other columns copy the fields the history is filtered on.

-- +goose Up
CREATE TABLE decisions (
    id              TEXT    NOT NULL PRIMARY KEY,
    evaluated_at    INTEGER NOT NULL,
    project         TEXT    NOT NULL,
    pipeline        TEXT    NOT NULL,
    branch          TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('accepted', 'refused')),
    bundle_revision TEXT    NOT NULL,
    record          TEXT    NOT NULL CHECK (json_valid(record))
) STRICT;

-- GET /v1/decisions?project=…[&pipeline=…[&branch=…]], newest first; status
-- and since/until are checked on the rows these walk.
CREATE INDEX decisions_project ON decisions (project, id);
CREATE INDEX decisions_project_pipeline ON decisions (project, pipeline, id);
CREATE INDEX decisions_project_pipeline_branch ON decisions (project, pipeline, branch, id);
-- ?status=… alone ("every refusal").
CREATE INDEX decisions_status ON decisions (status, id);
-- ?since=…&until=… alone, when the range is small.
CREATE INDEX decisions_evaluated_at ON decisions (evaluated_at);

-- One row per project + pipeline + branch that has had an accepted decision:
-- the time of the latest one, and which decision it was. The decision may be
-- pruned from the history one day; the cooldown must outlive it.
CREATE TABLE cooldowns (
    project          TEXT    NOT NULL,
    pipeline         TEXT    NOT NULL,
    branch           TEXT    NOT NULL,
    last_accepted_at INTEGER NOT NULL,
    decision_id      TEXT    REFERENCES decisions (id) ON DELETE SET NULL,
    PRIMARY KEY (project, pipeline, branch)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE cooldowns;
DROP TABLE decisions;
