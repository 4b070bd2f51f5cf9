-- Undo 0004.threads-approvals: threads go, and their runs with them; waiting runs are failed.
DELETE FROM runs WHERE thread_id IS NOT NULL;
UPDATE runs SET status = 'failed', error = 'input_timeout' WHERE status = 'waiting';
DROP INDEX runs_waiting_idx;
DROP INDEX runs_by_thread_idx;
DROP INDEX runs_one_active_per_thread_idx;
ALTER TABLE runs
    DROP CONSTRAINT runs_status_check,
    ADD CONSTRAINT runs_status_check CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    DROP COLUMN waiting_since,
    DROP COLUMN thread_id;
DROP TABLE threads;
