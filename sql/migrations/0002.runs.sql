-- Agent runs and their events, each with a per-run sequence number.
-- depends: 0001.accounts

CREATE TABLE runs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prompt text NOT NULL,
    steps integer NOT NULL CHECK (steps BETWEEN 1 AND 50),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    cancel_requested_at timestamptz,
    -- The worker process executing the run, and until when it has promised to show signs of life.
    lease_owner text,
    lease_expires_at timestamptz,
    -- Sequence number of the newest event; the next one is last_seq + 1.
    last_seq integer NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_user_newest_idx ON runs (user_id, created_at DESC, id DESC);
CREATE INDEX runs_active_lease_idx ON runs (lease_expires_at) WHERE status IN ('queued', 'running');

CREATE TABLE run_events (
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
