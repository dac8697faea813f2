-- API tokens (see tokens.go at the repository root). Only the SHA-256 of a
-- token's secret is stored; the token itself is shown once, at creation.
-- scopes is a comma-separated list. Times are unix nanoseconds (UTC);
-- expires_at and revoked_at are NULL for "never" and "not revoked".
--
-- A name is unique among the tokens not revoked: revoking a token frees its
-- name, and the history keeps naming the identity that made each decision.

-- +goose Up
CREATE TABLE tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
) STRICT;

CREATE UNIQUE INDEX tokens_unrevoked_name ON tokens (name) WHERE revoked_at IS NULL;

-- +goose Down
DROP TABLE tokens;
