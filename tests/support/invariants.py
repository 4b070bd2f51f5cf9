"""What must hold in the database after any fault, whatever clients saw: each a query listing the
rows that break it (none, when all is well)."""

import psycopg
from psycopg.rows import dict_row

INVARIANTS = {
    # Each rotation spends one token and issues one: a session never has two live (unspent) tokens,
    # which two concurrent or retried refreshes of one token would leave behind.
    "a refresh token with two live successors": """
        SELECT session_id, count(*) AS unspent FROM refresh_tokens
        WHERE spent_at IS NULL GROUP BY session_id HAVING count(*) > 1""",
    # A refresh answered 503 and retried is not a reuse: no session was revoked for one.
    "a session revoked for refresh-token reuse": """
        SELECT id FROM sessions WHERE revoked_reason = 'refresh_token_reused'""",
    # Terminal, or progressing: queued or waiting, or running under a lease someone renews.
    "a run neither terminal nor progressing": """
        SELECT id, status, lease_expires_at FROM runs
        WHERE status NOT IN ('completed', 'failed', 'cancelled', 'queued', 'waiting')
          AND NOT (status = 'running' AND lease_expires_at > now())""",
    # Sequence numbers 1..last_seq, each once (the primary key forbids duplicates).
    "a run whose events are not 1..last_seq": """
        SELECT r.id, r.last_seq, count(e.seq) AS stored, min(e.seq) AS first, max(e.seq) AS last
        FROM runs r LEFT JOIN run_events e ON e.run_id = r.id
        GROUP BY r.id, r.last_seq
        HAVING count(e.seq) <> r.last_seq OR coalesce(min(e.seq), 1) <> 1 OR coalesce(max(e.seq), 0) <> r.last_seq""",
    # A terminal run has exactly one terminal event, its last, naming its status.
    "a terminal run whose terminal event is not its one last event": """
        SELECT r.id, r.status FROM runs r
        WHERE r.status IN ('completed', 'failed', 'cancelled')
          AND (SELECT count(*) FROM run_events e
               WHERE e.run_id = r.id AND e.type IN ('completed', 'failed', 'cancelled')) <> 1
           OR r.status IN ('completed', 'failed', 'cancelled')
          AND NOT EXISTS (SELECT FROM run_events e
                          WHERE e.run_id = r.id AND e.seq = r.last_seq AND e.type = r.status)""",
}


def broken_invariants(database_url):
    """{invariant: offending rows} for every invariant that does not hold."""
    broken = {}
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        for name, sql in INVARIANTS.items():
            rows = conn.execute(sql).fetchall()
            if rows:
                broken[name] = rows[:5]
    return broken
