-- The ledger: the decision history as a hash chain (see adapters/ledger for
-- what is hashed). Each record gets its place in the chain, seq (1, 2, … in
-- the order the store committed them), the chain hash of the record before
-- it and its own. ledger is the chain head, one row, updated in the
-- transaction that records; ledger_anchor is where the chain starts after
-- the oldest records were archived and pruned: the last pruned record.
--
-- Records made before this migration have no seq: the store chains them,
-- oldest first, when it opens.

-- +goose Up
ALTER TABLE decisions ADD COLUMN seq INTEGER;
ALTER TABLE decisions ADD COLUMN prev_hash BLOB;
ALTER TABLE decisions ADD COLUMN hash BLOB;
CREATE UNIQUE INDEX decisions_seq ON decisions (seq);

CREATE TABLE ledger (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
) STRICT;
INSERT INTO ledger (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE ledger_anchor (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
) STRICT;
INSERT INTO ledger_anchor (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Pruning deletes old decisions, and with each one sets NULL the cooldowns
-- that name it: find them by index, not by reading every cooldown.
CREATE INDEX cooldowns_decision_id ON cooldowns (decision_id);

-- +goose Down
DROP INDEX cooldowns_decision_id;
DROP TABLE ledger_anchor;
DROP TABLE ledger;
DROP INDEX decisions_seq;
ALTER TABLE decisions DROP COLUMN hash;
ALTER TABLE decisions DROP COLUMN prev_hash;
ALTER TABLE decisions DROP COLUMN seq;
