-- name: insert_run
-- returns: one
-- A new run, queued until an orchestrator worker claims it.
INSERT INTO runs (user_id, prompt, steps, thread_id)
VALUES (%(user_id)s, %(prompt)s, %(steps)s, %(thread_id)s)
RETURNING id, prompt, steps, status, error, created_at, updated_at, started_at, thread_id;

-- name: get_run
-- returns: one
-- One run of one user (another user's run does not exist for them).
SELECT id, prompt, steps, status, error, created_at, updated_at, started_at, thread_id, last_seq
FROM runs WHERE id = %(run_id)s AND user_id = %(user_id)s;

-- name: list_runs
-- returns: rows
-- A page of a user's runs, newest first, strictly older than the cursor run when one is given.
SELECT id, prompt, steps, status, error, created_at, updated_at, started_at, thread_id
FROM runs
WHERE user_id = %(user_id)s
  AND (%(before)s::uuid IS NULL OR (created_at, id) < (
        SELECT created_at, id FROM runs WHERE id = %(before)s::uuid AND user_id = %(user_id)s))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: find_run_of_user
-- returns: one
-- Whether a pagination cursor names one of the user's runs.
SELECT 1 AS found FROM runs WHERE id = %(id)s AND user_id = %(user_id)s;

-- name: request_cancel
-- returns: one
-- Ask an unfinished run to stop at its next step (kept in the row, so no notification is needed).
UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
WHERE id = %(run_id)s AND user_id = %(user_id)s AND status IN ('queued', 'running', 'waiting')
RETURNING id, status;

-- name: lock_idle_run
-- returns: one
-- A queued or waiting run (no worker executes it), locked to be cancelled at once. One being
-- claimed right now is skipped: its claimer sees the cancel request instead.
SELECT id, user_id, last_seq, status FROM runs
WHERE id = %(run_id)s AND status IN ('queued', 'waiting')
FOR UPDATE SKIP LOCKED;

-- name: lock_run_of_user
-- returns: one
-- One of the user's runs, locked to answer its input request.
SELECT id, user_id, last_seq, status FROM runs
WHERE id = %(run_id)s AND user_id = %(user_id)s
FOR UPDATE;

-- name: get_input_request
-- returns: one
-- A run's request for input with this id, and whether it was answered.
SELECT q.data AS request, EXISTS (
    SELECT 1 FROM run_events a WHERE a.run_id = q.run_id AND a.type = 'input' AND a.data ->> 'id' = %(input_id)s
) AS answered
FROM run_events q
WHERE q.run_id = %(run_id)s AND q.type = 'input_required' AND q.data ->> 'id' = %(input_id)s;

-- name: list_runs_of_thread
-- returns: rows
-- A thread's runs, oldest first.
SELECT id, prompt, steps, status, error, created_at, updated_at, started_at, thread_id
FROM runs WHERE thread_id = %(thread_id)s AND user_id = %(user_id)s
ORDER BY created_at, id;

-- name: claim_queued_runs
-- returns: rows
-- The oldest queued runs no other worker is claiming, leased to this one under a new epoch.
UPDATE runs
SET lease_owner = %(owner)s, lease_epoch = lease_epoch + 1, started_at = coalesce(started_at, now()),
    lease_expires_at = now() + make_interval(secs => %(lease)s), updated_at = now()
WHERE id IN (
    SELECT id FROM runs WHERE status = 'queued'
    ORDER BY created_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING id, user_id, prompt, steps, status, last_seq, lease_epoch, thread_id,
          cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: count_queued_runs
-- returns: one
-- How many runs wait for a worker (a gauge).
SELECT count(*) AS n FROM runs WHERE status = 'queued';

-- name: lock_run_for_step
-- returns: one
-- The executor's run, locked for its next events: nothing if it has ended, or if its lease was taken
-- (another owner, or a later claim's epoch) — a stale executor then writes nothing.
SELECT id, user_id, last_seq, status, cancel_requested_at IS NOT NULL AS cancel_requested
FROM runs
WHERE id = %(run_id)s AND lease_owner = %(owner)s AND lease_epoch = %(epoch)s AND status = 'running'
FOR UPDATE;

-- name: renew_leases
-- returns: rows
-- Every run this worker executes promises another lease; returns their cancel requests too.
UPDATE runs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
WHERE lease_owner = %(owner)s AND status = 'running'
RETURNING id, lease_epoch, cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: lock_expired_runs
-- returns: rows
-- Unfinished runs whose executor stopped renewing its lease (it died), skipping ones being handled.
-- A queued run has no lease yet, so it waits for a worker however long that takes.
SELECT id, user_id, last_seq, status FROM runs
WHERE status IN ('queued', 'running') AND lease_expires_at < now()
ORDER BY lease_expires_at
LIMIT 100
FOR UPDATE SKIP LOCKED;

-- name: lock_expired_waits
-- returns: rows
-- Runs that waited for an answer longer than RUN_INPUT_TIMEOUT.
SELECT id, user_id, last_seq, status FROM runs
WHERE status = 'waiting' AND waiting_since < now() - make_interval(secs => %(wait_seconds)s)
ORDER BY waiting_since
LIMIT 100
FOR UPDATE SKIP LOCKED;

-- name: lock_owned_runs
-- returns: rows
-- Unfinished runs executed by one worker process (failed when it shuts down). No SKIP LOCKED: a
-- step being written right now is waited for, then its run is failed too (unless it just ended).
SELECT id, user_id, last_seq, status FROM runs
WHERE status = 'running' AND lease_owner = %(owner)s
FOR UPDATE;

-- name: advance_run
-- returns: rowcount
-- Record that events up to `seq` happened: new status, renewed lease. A run that waits for a
-- person, or is queued again, holds no lease at all (a waiting one counts its wait instead).
UPDATE runs
SET last_seq = %(seq)s, status = %(status)s, error = %(error)s, updated_at = now(),
    lease_owner = CASE WHEN %(status)s IN ('waiting', 'queued') THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN %(status)s IN ('waiting', 'queued') THEN NULL
                            ELSE now() + make_interval(secs => %(lease)s) END,
    waiting_since = CASE WHEN %(status)s = 'waiting' THEN coalesce(waiting_since, now()) END
WHERE id = %(run_id)s;

-- name: insert_run_event
-- returns: rowcount
-- Store one event of a run; `data` is JSON text, kept byte for byte (a json column, not jsonb).
INSERT INTO run_events (run_id, seq, type, data) VALUES (%(run_id)s, %(seq)s, %(type)s, %(data)s::json);

-- name: list_run_events_after
-- returns: rows
-- A run's events after a sequence number, in order.
SELECT seq, type, data FROM run_events
WHERE run_id = %(run_id)s AND seq > %(after)s
ORDER BY seq
LIMIT %(limit)s;

-- name: search_runs
-- returns: rows
-- A user's own runs whose prompt contains `text` (any case), newest first, with their answers.
SELECT r.id, r.prompt, r.status, r.created_at, f.data ->> 'text' AS answer
FROM runs r
LEFT JOIN run_events f ON f.run_id = r.id AND f.type = 'final'
WHERE r.user_id = %(user_id)s AND strpos(lower(r.prompt), lower(%(text)s)) > 0
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s;
