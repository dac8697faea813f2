-- The EPSS scores of one day (see adapters/epss), replaced whole by each
-- import, and a single row describing the set imported.

-- +goose Up
CREATE TABLE epss (
    cve        TEXT NOT NULL PRIMARY KEY,
    epss       REAL NOT NULL,
    percentile REAL NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE epss_import (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    model_version TEXT    NOT NULL,
    score_date    INTEGER NOT NULL, -- unix nanoseconds, UTC
    count         INTEGER NOT NULL,
    imported_at   INTEGER NOT NULL  -- unix nanoseconds, UTC
) STRICT;

-- +goose Down
DROP TABLE epss_import;
DROP TABLE epss;
