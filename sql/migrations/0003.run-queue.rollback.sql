-- Undo 0003.run-queue.
ALTER TABLE run_events ALTER COLUMN data TYPE jsonb USING data::jsonb;
DROP INDEX runs_queued_idx;
ALTER TABLE runs DROP COLUMN started_at, DROP COLUMN lease_epoch;
