-- Bundle revisions, the same shape as migrations/sqlite. files is kept as
-- text, byte for byte as written, not jsonb.

-- +goose Up
CREATE TABLE bundles (
    revision  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    files     TEXT   NOT NULL,
    stored_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE bundles;
