-- name: insert_run
-- A new run, queued and leased to the worker that will execute it.
INSERT INTO runs (user_id, prompt, steps, lease_owner, lease_expires_at)
VALUES (%(user_id)s, %(prompt)s, %(steps)s, %(owner)s, now() + make_interval(secs => %(lease)s))
RETURNING id, prompt, steps, status, error, created_at, updated_at;

-- name: get_run
-- One run of one user (another user's run does not exist for them).
SELECT id, prompt, steps, status, error, created_at, updated_at, last_seq
FROM runs WHERE id = %(run_id)s AND user_id = %(user_id)s;

-- name: list_runs
-- A page of a user's runs, newest first, strictly older than the cursor run when one is given.
SELECT id, prompt, steps, status, error, created_at, updated_at
FROM runs
WHERE user_id = %(user_id)s
  AND (%(before)s::uuid IS NULL OR (created_at, id) < (
        SELECT created_at, id FROM runs WHERE id = %(before)s::uuid AND user_id = %(user_id)s))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: run_exists_for_user
-- Whether a pagination cursor names one of the user's runs.
SELECT 1 AS found FROM runs WHERE id = %(run_id)s AND user_id = %(user_id)s;

-- name: request_cancel
-- Ask an unfinished run to stop at its next step.
UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
WHERE id = %(run_id)s AND user_id = %(user_id)s AND status IN ('queued', 'running')
RETURNING id;

-- name: lock_run_for_step
-- The executor's run, locked for its next event; nothing if it has ended or was taken from it.
SELECT id, user_id, last_seq, status, cancel_requested_at IS NOT NULL AS cancel_requested
FROM runs
WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status IN ('queued', 'running')
FOR UPDATE;

-- name: lock_expired_runs
-- Unfinished runs whose executor stopped renewing its lease (it died), skipping ones being handled.
SELECT id, user_id, last_seq, status FROM runs
WHERE status IN ('queued', 'running') AND lease_expires_at < now()
ORDER BY lease_expires_at
LIMIT 100
FOR UPDATE SKIP LOCKED;

-- name: lock_owned_runs
-- Unfinished runs executed by one worker process (failed when it shuts down). No SKIP LOCKED: a
-- step being written right now is waited for, then its run is failed too (unless it just ended).
SELECT id, user_id, last_seq, status FROM runs
WHERE status IN ('queued', 'running') AND lease_owner = %(owner)s
FOR UPDATE;

-- name: advance_run
-- Record that event `seq` happened: new status, renewed lease.
UPDATE runs
SET last_seq = %(seq)s, status = %(status)s, error = %(error)s, updated_at = now(),
    lease_expires_at = now() + make_interval(secs => %(lease)s)
WHERE id = %(run_id)s;

-- name: insert_run_event
-- Store one event of a run.
INSERT INTO run_events (run_id, seq, type, data) VALUES (%(run_id)s, %(seq)s, %(type)s, %(data)s);

-- name: run_events_after
-- A run's events after a sequence number, in order.
SELECT seq, type, data FROM run_events
WHERE run_id = %(run_id)s AND seq > %(after)s
ORDER BY seq
LIMIT %(limit)s;
