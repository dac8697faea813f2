-- Every bundle revision the server activated (see bundles.go at the
-- repository root), so that `tollgate replay` finds the policy a decision
-- was made with after the bundle directory changed. files is a JSON object
-- of path → content; stored_at is unix nanoseconds (UTC). A revision is a
-- content hash: it is written once and never updated.

-- +goose Up
CREATE TABLE bundles (
    revision  TEXT    NOT NULL PRIMARY KEY,
    files     TEXT    NOT NULL,
    stored_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE bundles;
