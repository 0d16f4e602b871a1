#!/usr/bin/env bash
# Starts the Redis and PostgreSQL servers that the vote-store tests run against, installing
# them from Debian's archive when missing, and prints the variables to export:
#
#   eval "$(scripts/services.sh)"    # then: npx vitest run test/votes
#
# Idempotent: a second run finds both servers up and prints the same lines. It starts its own
# servers (Redis on 127.0.0.1:${IMAGINE_TEST_REDIS_PORT:-6390}, a private PostgreSQL cluster
# under $IMAGINE_SERVICES_DIR on the first free port from 5440) and never stops or reconfigures
# anything else: a Redis already answering on that port is reused as it is, the system's own
# PostgreSQL clusters are left alone. Works as root (CI) or with sudo. Progress goes to stderr;
# stdout carries only the `export …` lines.
#
#   scripts/services.sh stop [redis] [postgres]
#                               stops the servers this script started (by their pid files);
#                               all of them without arguments
#
# IMAGINE_SERVICES_STARTED (printed too) names the servers this run started rather than found
# running, so that scripts/test.sh stops those and leaves a developer's running ones alone.
set -euo pipefail

STATE_DIR="${IMAGINE_SERVICES_DIR:-/tmp/imagine-bot-services}"
REDIS_PORT="${IMAGINE_TEST_REDIS_PORT:-6390}"
PG_USER=imagine
PG_PASSWORD=imagine
PG_DATABASE=imagine_test

log() { echo "services: $*" >&2; }
fail() {
  echo "services: $*" >&2
  exit 1
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: run as root, or install redis-server and postgresql yourself"
  SUDO="sudo"
fi

# Runs a command as the postgres system user (initdb and postgres refuse to run as root).
as_postgres() {
  if [ "$(id -un)" = postgres ]; then
    "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres -- "$@"
  fi
}

pg_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${1:-}" = stop ]; then
  shift
  targets=("$@")
  [ "${#targets[@]}" -gt 0 ] || targets=(redis postgres)
  wants() { [[ " ${targets[*]} " == *" $1 "* ]]; }
  if wants redis && [ -f "$STATE_DIR/redis.pid" ] && kill -0 "$(cat "$STATE_DIR/redis.pid")" 2>/dev/null; then
    kill "$(cat "$STATE_DIR/redis.pid")" && log "stopped redis-server"
  fi
  if wants postgres && [ -f "$STATE_DIR/pgdata/postmaster.pid" ] && bindir="$(pg_bindir)"; then
    as_postgres "$bindir/pg_ctl" -D "$STATE_DIR/pgdata" -m fast -w stop >&2 && log "stopped postgres"
  fi
  exit 0
fi

# --- install what is missing ----------------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if ! pg_bindir >/dev/null || ! command -v psql >/dev/null 2>&1; then missing+=(postgresql); fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} through apt-get"
  "$(dirname "$0")/apt-install.sh" "${missing[@]}"
fi
id postgres >/dev/null 2>&1 || fail "the postgres system user is missing after installing postgresql"
BINDIR="$(pg_bindir)" || fail "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"

$SUDO mkdir -p "$STATE_DIR"
$SUDO chmod 755 "$STATE_DIR"
# What this run started (not what it found running), so that the caller can stop just that.
started=()

# --- Redis ------------------------------------------------------------------------------------
if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ]; then
  log "redis already answering on 127.0.0.1:$REDIS_PORT"
elif port_in_use "$REDIS_PORT"; then
  fail "port $REDIS_PORT is taken by something that is not Redis; set IMAGINE_TEST_REDIS_PORT to a free port"
else
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  started+=(redis)
  $SUDO redis-server --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 \
    --dir "$STATE_DIR" --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log" \
    --save "" --appendonly no >&2
  for _ in $(seq 1 50); do
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ] && break
    sleep 0.1
  done
  [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ] ||
    fail "redis-server did not answer on port $REDIS_PORT (see $STATE_DIR/redis.log)"
fi

# --- PostgreSQL: a private cluster in $STATE_DIR/pgdata ---------------------------------------
PGDATA="$STATE_DIR/pgdata"
SOCKET_DIR="$STATE_DIR/pgsocket"
$SUDO mkdir -p "$SOCKET_DIR"
$SUDO chown postgres "$SOCKET_DIR"

if [ ! -f "$PGDATA/PG_VERSION" ]; then
  log "creating a PostgreSQL cluster in $PGDATA"
  $SUDO mkdir -p "$PGDATA"
  $SUDO chown postgres "$PGDATA"
  $SUDO chmod 700 "$PGDATA"
  # C collation: keys sort bytewise, as the vote store's range scans expect.
  as_postgres "$BINDIR/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C >/dev/null
fi

if as_postgres "$BINDIR/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  PG_PORT="$(cat "$STATE_DIR/pg.port")"
  log "postgres already running on 127.0.0.1:$PG_PORT"
else
  PG_PORT="${IMAGINE_TEST_POSTGRES_PORT:-5440}"
  while port_in_use "$PG_PORT"; do PG_PORT=$((PG_PORT + 1)); done
  echo "$PG_PORT" | $SUDO tee "$STATE_DIR/pg.port" >/dev/null
  log "starting postgres on 127.0.0.1:$PG_PORT"
  started+=(postgres)
  as_postgres "$BINDIR/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $SOCKET_DIR -c fsync=off" start >/dev/null ||
    fail "postgres did not start (see $PGDATA/server.log)"
fi

psql_admin() { as_postgres psql -h "$SOCKET_DIR" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
  log "creating role $PG_USER"
  psql_admin -d postgres -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
fi
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" != 1 ]; then
  log "creating database $PG_DATABASE"
  psql_admin -d postgres -c "CREATE DATABASE $PG_DATABASE OWNER $PG_USER TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
fi

echo "export IMAGINE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
echo "export IMAGINE_TEST_POSTGRES_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DATABASE"
echo "export IMAGINE_SERVICES_STARTED='${started[*]}'"
