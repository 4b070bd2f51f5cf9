# Sourced by bin/up, bin/migrate and bin/down: load .env, and when DATABASE_URL is empty point it at
# the embedded PostgreSQL cluster under .data/pg (started if needed). Not executable on its own.
if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  . ./.env
  set +a
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
