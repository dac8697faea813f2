-- A wake (a freeze lifted, an incident ended, an exception decided) that
-- finds a job being checked cannot move its next check: the check under
-- way is deciding on what it read before the wake, and would put the job
-- back to wait for that. woken marks it (1) instead; the check's update
-- then makes the job due at once, and a claim clears the mark.

-- +goose Up
ALTER TABLE jobs ADD COLUMN woken INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN woken;
