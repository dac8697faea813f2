-- Gate jobs (see tollgate.Job): requests that wait at the gate until they
-- are allowed. jobs.job is the whole tollgate.Job as JSON; the other
-- columns copy what jobs are found and claimed by, written with it in one
-- statement. A job's queue is its request's repository, pipeline and branch:
-- the open jobs of one queue are checked oldest first, one at a time. A lease
-- (lease_owner, lease_until) marks the job claimed by one process; '' and
-- 0 when free. Times are unix nanoseconds, UTC.

-- +goose Up
CREATE TABLE jobs (
    id                TEXT    NOT NULL PRIMARY KEY,
    idempotency_key   TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    repository        TEXT    NOT NULL,
    environment       TEXT    NOT NULL,
    pipeline          TEXT    NOT NULL,
    branch            TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    next_check_at     INTEGER NOT NULL,
    lease_owner       TEXT    NOT NULL,
    lease_until       INTEGER NOT NULL,
    job               TEXT    NOT NULL CHECK (json_valid(job))
) STRICT;

-- One job per idempotency key, whatever its state.
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key);

-- ClaimJobs: the open jobs by when they are due, so that thousands of
-- waiting jobs cost nothing while none is due.
CREATE INDEX jobs_due ON jobs (next_check_at, created_at, id) WHERE state IN ('queued', 'waiting');

-- ClaimJobs' "oldest open job of its queue", and the open count.
CREATE INDEX jobs_queue ON jobs (repository, pipeline, branch, created_at, id) WHERE state IN ('queued', 'waiting');

-- Jobs listing, newest first, unfiltered or by repository.
CREATE INDEX jobs_created_at ON jobs (created_at, id);
CREATE INDEX jobs_repository ON jobs (repository, created_at, id);

-- +goose Down
DROP TABLE jobs;
