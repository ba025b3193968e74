#!/usr/bin/env bash
# Start PostgreSQL (Debian 12's postgresql 15) on 127.0.0.1 for the fleet tests
# (shared routes, journal and lock).
#
# usage: start-postgres.sh BASE_DIR PORT_OFFSET [PORT_INDEX] [stop]
#   port: 20000 + PORT_OFFSET + PORT_INDEX (default 70: the set's cluster;
#   71..79 are private clusters of single tests, peers.Postgres.Private)
#   role: mailmig / mailmigpw (CREATEDB and pg_signal_backend, so each test makes
#   and drops a database of its own)
#   database: mailmig
#   DSN: postgres://mailmig:mailmigpw@127.0.0.1:PORT/mailmig?sslmode=disable
# The cluster lives in BASE/data, owned by the postgres user (initdb refuses
# root); its unix socket is in BASE/run, never in /var/run/postgresql, so two
# sets never share one. Passwords are checked (scram-sha-256) on TCP, so the
# tests can exercise a wrong password.
# Idempotent. Stop: stop-all.sh BASE_DIR (SIGTERM is a smart shutdown: it waits
# for clients, then stop-all.sh's SIGKILL fallback applies), or
# start-postgres.sh BASE_DIR PORT_OFFSET [PORT_INDEX] stop for a fast shutdown
# that keeps the data (tests restart it).
. "$(dirname "$0")/lib.sh"

BASE=${1:?usage: $0 BASE_DIR PORT_OFFSET [PORT_INDEX] [stop]}
OFF=${2:-0}
IDX=70
VERB=
for a in "${@:3}"; do
  case $a in
  stop) VERB=stop ;;
  *[!0-9]* | '') die "unknown argument $a (want a port index or stop)" ;;
  *) IDX=$a ;;
  esac
done
mkdir -p "$BASE"
BASE="$(cd "$BASE" && pwd)"
PORT=$((20000 + OFF + IDX))
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || die "postgresql not installed (apt-get install postgresql)"
id postgres >/dev/null 2>&1 || die "no postgres user (apt-get install postgresql creates it)"
as_pg() { runuser -u postgres -- "$@"; }

if [ "$VERB" = stop ]; then
  [ -f "$BASE/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$BASE/data" -m fast -w stop >/dev/null
  echo "postgres stopped in $BASE"; exit 0
fi

if pid_alive "$BASE/postgres.pid" && port_open "$PORT"; then
  echo "postgres already running in $BASE (port $PORT)"; exit 0
fi
port_free_or_die "$PORT"
open_parents "$BASE"
mkdir -p "$BASE/run" "$BASE/log"
chown postgres:postgres "$BASE" "$BASE/run" "$BASE/log"
if [ ! -s "$BASE/data/PG_VERSION" ]; then
  rm -rf "$BASE/data"
  # --no-sync: a throwaway test cluster (it runs with fsync=off anyway), and
  # private clusters are initdb'd inside a test.
  as_pg "$BIN/initdb" -D "$BASE/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$BASE/log/initdb.log"
  cat >"$BASE/data/pg_hba.conf" <<HBA
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
  fresh=1
fi
as_pg "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/log/postgres.log" -w -t 30 \
  -o "-p $PORT -k $BASE/run -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
head -1 "$BASE/data/postmaster.pid" >"$BASE/postgres.pid"
register_pidfile "$BASE" "$BASE/postgres.pid"
wait_port "$PORT" 30
if [ "${fresh:-0}" = 1 ]; then
  as_pg "$BIN/psql" -q -h "$BASE/run" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE mailmig LOGIN CREATEDB PASSWORD 'mailmigpw';
-- DROP DATABASE ... WITH (FORCE) of a test's database must be able to end
-- an autovacuum worker there.
GRANT pg_signal_backend TO mailmig;
CREATE DATABASE mailmig OWNER mailmig;
SQL
fi
echo "postgres up in $BASE: postgres://mailmig:mailmigpw@127.0.0.1:$PORT/mailmig?sslmode=disable"
