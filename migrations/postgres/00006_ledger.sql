-- The ledger, the same shape as migrations/sqlite/00006_ledger.sql (read its
-- comments first).
--
-- PostgreSQL specifics: several servers record at once, so the chain head
-- is taken in SQL, in the statement that inserts the record: an UPDATE of
-- the one ledger row (seq + 1, prev_hash = the old hash, hash =
-- sha256(old hash || the record's digest)), whose row lock orders every
-- transaction that records, across servers, until it commits. The digest
-- (SHA-256 of the record's canonical JSON) is computed by the server that
-- records, before the transaction. New records must be chained: the CHECK
-- is NOT VALID so that records made before this migration (chained by the
-- store when it opens) do not fail it.

-- +goose Up
ALTER TABLE decisions
    ADD COLUMN seq BIGINT,
    ADD COLUMN prev_hash BYTEA,
    ADD COLUMN hash BYTEA;
ALTER TABLE decisions ADD CONSTRAINT decisions_chained
    CHECK (seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL) NOT VALID;
CREATE UNIQUE INDEX decisions_seq ON decisions (seq);

CREATE TABLE ledger (
    id        INT    NOT NULL PRIMARY KEY CHECK (id = 1),
    seq       BIGINT NOT NULL,
    prev_hash BYTEA  NOT NULL,
    hash      BYTEA  NOT NULL
);
INSERT INTO ledger (id, seq, prev_hash, hash)
VALUES (1, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));

CREATE TABLE ledger_anchor (
    id   INT    NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA  NOT NULL
);
INSERT INTO ledger_anchor (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Pruning deletes old decisions, and with each one sets NULL the cooldowns
-- that name it: find them by index, not by reading every cooldown.
CREATE INDEX cooldowns_decision_id ON cooldowns (decision_id);

-- +goose Down
DROP INDEX cooldowns_decision_id;
DROP TABLE ledger_anchor;
DROP TABLE ledger;
DROP INDEX decisions_seq;
ALTER TABLE decisions DROP CONSTRAINT decisions_chained,
    DROP COLUMN hash, DROP COLUMN prev_hash, DROP COLUMN seq;
