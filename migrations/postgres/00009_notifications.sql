-- Notifications (see tollgate.Outbox). notification_events holds what
-- happened: written in the transaction of the change it tells of (a job's
-- state, a control's step), or, for refused decisions, derived from the
-- decisions after notification_cursor.decision_seq, in the transaction
-- that moves the cursor. fanned is 0 until the worker has made its
-- deliveries, one per sink subscribed: notification_deliveries, each
-- claimed by one process at a time under a lease (lease_owner,
-- lease_until; '' and 0 when free). subject is JSON. Times are unix
-- nanoseconds, UTC.

-- +goose Up
CREATE TABLE notification_events (
    id           TEXT    NOT NULL PRIMARY KEY, -- "<event>:<subject id>": once per subject
    event        TEXT    NOT NULL,
    occurred_at  BIGINT  NOT NULL,
    subject      TEXT    NOT NULL,
    fanned       BIGINT  NOT NULL
);

-- FanOut: the events not fanned out yet, oldest first.
CREATE INDEX notification_events_new ON notification_events (occurred_at, id) WHERE fanned = 0;
-- PruneNotifications.
CREATE INDEX notification_events_occurred_at ON notification_events (occurred_at);

CREATE TABLE notification_deliveries (
    id               TEXT    NOT NULL PRIMARY KEY,
    event_id         TEXT    NOT NULL,
    event            TEXT    NOT NULL,
    sink             TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT  NOT NULL,
    occurred_at      BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    next_attempt_at  BIGINT  NOT NULL,
    last_status      BIGINT  NOT NULL,
    last_error       TEXT    NOT NULL,
    lease_owner      TEXT    NOT NULL,
    lease_until      BIGINT  NOT NULL
);

-- One delivery per event and sink, however often it is fanned out.
CREATE UNIQUE INDEX notification_deliveries_event_sink ON notification_deliveries (event_id, sink);
-- ClaimDeliveries: the pending ones by when they are due.
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at, id) WHERE state = 'pending';
-- Deliveries, newest first; PruneNotifications by when they ended.
CREATE INDEX notification_deliveries_created_at ON notification_deliveries (created_at, id);
CREATE INDEX notification_deliveries_ended ON notification_deliveries (updated_at) WHERE state <> 'pending';

-- The last decision seq FanOut looked at: decisions recorded before this
-- migration are not notified.
CREATE TABLE notification_cursor (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    decision_seq  BIGINT  NOT NULL
);
INSERT INTO notification_cursor (id, decision_seq) SELECT 1, coalesce(max(seq), 0) FROM decisions;

-- +goose Down
DROP TABLE notification_cursor;
DROP TABLE notification_deliveries;
DROP TABLE notification_events;
