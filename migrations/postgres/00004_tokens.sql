-- API tokens, the same shape as migrations/sqlite.

-- +goose Up
CREATE TABLE tokens (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    scopes      TEXT   NOT NULL,
    secret_hash BYTEA  NOT NULL CHECK (length(secret_hash) = 32),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE UNIQUE INDEX tokens_unrevoked_name ON tokens (name) WHERE revoked_at IS NULL;

-- +goose Down
DROP TABLE tokens;
