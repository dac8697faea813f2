-- Scans posted ahead of an evaluation (POST /v1/scans), and the baseline the
-- drift gate compares a release with (see adapters/sqlite).
--
-- scans.scan is the whole tollgate.StoredScan as JSON; the other columns copy
-- what it is found by. Times are unix nanoseconds, UTC, as in decisions.

-- +goose Up
CREATE TABLE scans (
    id         TEXT    NOT NULL PRIMARY KEY,
    project    TEXT    NOT NULL,
    artifact   TEXT    NOT NULL,
    scanned_at INTEGER NOT NULL,
    scan       TEXT    NOT NULL CHECK (json_valid(scan))
) STRICT;

-- The scans of one artifact of a project, newest last.
CREATE INDEX scans_project_artifact ON scans (project, artifact, scanned_at);

-- One row per project + environment that has had an accepted decision with
-- a scan: that decision and its scored scan (a tollgate.Baseline as JSON),
-- written in the decision's transaction. A copy rather than a reference, so
-- that the baseline outlives the decision if the history is pruned.
CREATE TABLE baselines (
    project      TEXT    NOT NULL,
    environment  TEXT    NOT NULL,
    evaluated_at INTEGER NOT NULL,
    decision_id  TEXT    NOT NULL,
    baseline     TEXT    NOT NULL CHECK (json_valid(baseline)),
    PRIMARY KEY (project, environment)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE baselines;
DROP TABLE scans;
