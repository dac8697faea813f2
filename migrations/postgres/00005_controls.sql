-- Controls and their append-only history, the same shape as
-- migrations/sqlite/00005_controls.sql (read its comments first).

-- +goose Up
CREATE TABLE controls (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    kind       TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    project    TEXT   NOT NULL,
    code       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    control    JSONB  NOT NULL
);

CREATE INDEX controls_state_expires_at ON controls (state, expires_at);
CREATE INDEX controls_created_at ON controls (created_at, id);
CREATE INDEX controls_kind ON controls (kind, created_at, id);
CREATE INDEX controls_project ON controls (project, created_at, id);

CREATE TABLE control_events (
    control_id TEXT COLLATE "C" NOT NULL REFERENCES controls (id),
    seq        INTEGER NOT NULL,
    at         BIGINT  NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    PRIMARY KEY (control_id, seq)
);

-- +goose Down
DROP TABLE control_events;
DROP TABLE controls;
