-- Controls (see tollgate.Control): exceptions, emergency freezes and
-- incidents, and the append-only history of each.
--
-- controls.control is the whole tollgate.Control as JSON, without its
-- history; the other columns copy what controls are found by. state is
-- kept equal to the JSON's state by the store, which writes both in one
-- statement. Times are unix nanoseconds, UTC, as in decisions. Kinds and
-- states are checked by the store (adapters/internal/storekit), not by
-- CHECK constraints, so that a new state needs no table rebuild.

-- +goose Up
CREATE TABLE controls (
    id         TEXT    NOT NULL PRIMARY KEY,
    kind       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    project    TEXT    NOT NULL, -- '' for freezes and incidents
    code       TEXT    NOT NULL, -- the reason code an exception waives; '' otherwise
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    control    TEXT    NOT NULL CHECK (json_valid(control))
) STRICT;

-- InForce (state IN ('approved', 'active') AND expires_at > ?) and ExpireDue
-- (state IN the live states AND expires_at <= ?): one range of expires_at
-- per state listed, so neither walks the controls that ended long ago.
CREATE INDEX controls_state_expires_at ON controls (state, expires_at);

-- Controls listing, newest first (ORDER BY created_at DESC, id DESC):
-- unfiltered, by kind, by project (code, if given, is checked on the rows
-- these walk; state too, unless the planner prefers the index above).
CREATE INDEX controls_created_at ON controls (created_at, id);
CREATE INDEX controls_kind ON controls (kind, created_at, id);
CREATE INDEX controls_project ON controls (project, created_at, id);

-- Every step of every control, numbered from 1 per control. Only ever
-- inserted into: an event is written in the transaction that changes its
-- control, never updated or deleted. actor is ControlEvent.By (BY is an
-- SQL keyword); from_state is '' for the creation.
CREATE TABLE control_events (
    control_id TEXT    NOT NULL REFERENCES controls (id),
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    PRIMARY KEY (control_id, seq)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE control_events;
DROP TABLE controls;
