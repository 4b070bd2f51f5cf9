-- Threads (conversations: ordered runs of one user) and approvals (runs `waiting` for a person).
-- depends: 0003.run-queue

CREATE TABLE threads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title text,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The newest activity (a run created): threads are listed by it.
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_by_user_activity_idx ON threads (user_id, updated_at DESC, id DESC);

ALTER TABLE runs
    ADD COLUMN thread_id uuid REFERENCES threads (id) ON DELETE CASCADE,
    -- When the run began waiting for an answer (RUN_INPUT_TIMEOUT counts from here).
    ADD COLUMN waiting_since timestamptz,
    DROP CONSTRAINT runs_status_check,
    ADD CONSTRAINT runs_status_check
        CHECK (status IN ('queued', 'running', 'waiting', 'completed', 'failed', 'cancelled'));

-- At most one active run per thread: a second one is refused by the database itself.
CREATE UNIQUE INDEX runs_one_active_per_thread_idx ON runs (thread_id)
    WHERE status IN ('queued', 'running', 'waiting');
CREATE INDEX runs_by_thread_idx ON runs (thread_id, created_at, id);
CREATE INDEX runs_waiting_idx ON runs (waiting_since) WHERE status = 'waiting';
