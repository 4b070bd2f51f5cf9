-- name: insert_thread
-- returns: one
-- A new, empty conversation.
INSERT INTO threads (user_id, title) VALUES (%(user_id)s, %(title)s)
RETURNING id, title, created_at, updated_at, NULL::uuid AS active_run_id;

-- name: get_thread
-- returns: one
-- One thread of one user, with its active run (another user's thread does not exist for them).
SELECT t.id, t.title, t.created_at, t.updated_at,
       (SELECT r.id FROM runs r WHERE r.thread_id = t.id AND r.status IN ('queued', 'running', 'waiting'))
           AS active_run_id
FROM threads t WHERE t.id = %(thread_id)s AND t.user_id = %(user_id)s;

-- name: list_threads
-- returns: rows
-- A page of a user's threads, newest activity first, strictly after the cursor thread when given.
SELECT t.id, t.title, t.created_at, t.updated_at,
       (SELECT r.id FROM runs r WHERE r.thread_id = t.id AND r.status IN ('queued', 'running', 'waiting'))
           AS active_run_id
FROM threads t
WHERE t.user_id = %(user_id)s
  AND (%(before)s::uuid IS NULL OR (t.updated_at, t.id) < (
        SELECT updated_at, id FROM threads WHERE id = %(before)s::uuid AND user_id = %(user_id)s))
ORDER BY t.updated_at DESC, t.id DESC
LIMIT %(limit)s;

-- name: find_thread_of_user
-- returns: one
-- Whether a pagination cursor names one of the user's threads.
SELECT 1 AS found FROM threads WHERE id = %(id)s AND user_id = %(user_id)s;

-- name: touch_thread
-- returns: one
-- A run was added: the thread's activity is now, and a thread without a title takes the prompt's start.
UPDATE threads SET updated_at = now(), title = coalesce(title, left(%(prompt)s, 80))
WHERE id = %(thread_id)s AND user_id = %(user_id)s
RETURNING id;

-- name: delete_thread
-- returns: one
-- A thread, its runs and their events (ON DELETE CASCADE).
DELETE FROM threads WHERE id = %(thread_id)s AND user_id = %(user_id)s RETURNING id;

-- name: get_thread_history
-- returns: rows
-- What the earlier runs of a thread said and did, for the next run's agent: prompts, tool calls and
-- results, final answers, in order.
SELECT r.id AS run_id, r.prompt, e.type, e.data
FROM runs r
LEFT JOIN run_events e ON e.run_id = r.id AND e.type IN ('tool_call', 'tool_result', 'final')
WHERE r.thread_id = %(thread_id)s AND (r.created_at, r.id) < (
    SELECT created_at, id FROM runs WHERE id = %(run_id)s)
ORDER BY r.created_at, r.id, e.seq;
