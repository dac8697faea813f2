-- The EPSS scores of one day, the same shape as migrations/sqlite.

-- +goose Up
CREATE TABLE epss (
    cve        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    epss       DOUBLE PRECISION NOT NULL,
    percentile DOUBLE PRECISION NOT NULL
);

CREATE TABLE epss_import (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    model_version TEXT    NOT NULL,
    score_date    BIGINT  NOT NULL, -- unix nanoseconds, UTC
    count         INTEGER NOT NULL,
    imported_at   BIGINT  NOT NULL  -- unix nanoseconds, UTC
);

-- +goose Down
DROP TABLE epss_import;
DROP TABLE epss;
