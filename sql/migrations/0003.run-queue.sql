-- The run queue: runs wait `queued` until a worker claims them; each claim bumps a fencing epoch.
-- Event data becomes `json` (kept as sent, key order included) instead of `jsonb` (reordered), so
-- an event's bytes are the same live and replayed.
-- depends: 0002.runs

ALTER TABLE runs
    -- Bumped by every claim: an executor writes only while owner and epoch are still its own.
    ADD COLUMN lease_epoch integer NOT NULL DEFAULT 0,
    ADD COLUMN started_at timestamptz;

-- What the dispatchers scan: the oldest queued runs first.
CREATE INDEX runs_queued_idx ON runs (created_at, id) WHERE status = 'queued';

ALTER TABLE run_events ALTER COLUMN data TYPE json USING data::json;
