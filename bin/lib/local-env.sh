# shellcheck shell=bash
# Sourced by bin/up and bin/migrate: load .env, and when DATABASE_URL is empty point it at
# the embedded PostgreSQL cluster under .data/pg (started if needed). Not executable on its own.
# Variables already in the environment win over .env (as with Docker Compose).
if [ -f .env ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
    [ -n "${!BASH_REMATCH[1]+set}" ] || export "${BASH_REMATCH[1]}=${line#*=}"
  done < .env
fi
LOCAL_PG_DIR=.data/pg
LOCAL_PG_PORT=${LOCAL_PG_PORT:-55432}

use_embedded_db() {
  [ -z "${DATABASE_URL:-}" ] || return 0
  bin/pg-local start "$LOCAL_PG_DIR" "$LOCAL_PG_PORT"
  bin/pg-local ensure-db "$LOCAL_PG_DIR" "$LOCAL_PG_PORT" oneshot
  DATABASE_URL="postgresql://postgres@127.0.0.1:$LOCAL_PG_PORT/oneshot"
  export DATABASE_URL
  echo "database: embedded PostgreSQL in $LOCAL_PG_DIR on 127.0.0.1:$LOCAL_PG_PORT"
}
