-- Scans posted ahead of an evaluation and the drift baselines, the same
-- shape as migrations/sqlite/00003_scans.sql (read its comments first).

-- +goose Up
CREATE TABLE scans (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    project    TEXT   NOT NULL,
    artifact   TEXT   NOT NULL,
    scanned_at BIGINT NOT NULL,
    scan       JSONB  NOT NULL
);

CREATE INDEX scans_project_artifact ON scans (project, artifact, scanned_at);

CREATE TABLE baselines (
    project      TEXT   NOT NULL,
    environment  TEXT   NOT NULL,
    evaluated_at BIGINT NOT NULL,
    decision_id  TEXT COLLATE "C" NOT NULL,
    baseline     JSONB  NOT NULL,
    PRIMARY KEY (project, environment)
);

-- +goose Down
DROP TABLE baselines;
DROP TABLE scans;
