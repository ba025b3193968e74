# shellcheck shell=bash
# Common helpers for the peer start scripts. Source it: . "$(dirname "$0")/lib.sh"
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "ERROR: $*" >&2; exit 1; }

# port_open PORT -> 0 when something accepts TCP on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT [TIMEOUT_SECONDS] -> waits until 127.0.0.1:PORT accepts
wait_port() {
  local port=$1 timeout=${2:-30} i=0
  while ! port_open "$port"; do
    i=$((i + 1))
    [ "$i" -gt $((timeout * 10)) ] && die "port $port not open after ${timeout}s"
    sleep 0.1
  done
}

# wait_port_closed PORT [TIMEOUT_SECONDS]
wait_port_closed() {
  local port=$1 timeout=${2:-15} i=0
  while port_open "$port"; do
    i=$((i + 1))
    [ "$i" -gt $((timeout * 10)) ] && { echo "WARN: port $port still open" >&2; return 1; }
    sleep 0.1
  done
}

# port_free_or_die PORT : refuse to start if a foreign process holds the port
port_free_or_die() { if port_open "$1"; then die "port $1 already in use"; fi; }

# pid_alive PIDFILE -> 0 when the pid in the file is a live process
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ensure_vmail: one system user/group that owns all mail files
ensure_vmail() {
  getent group vmail >/dev/null || groupadd --system vmail
  getent passwd vmail >/dev/null || useradd --system -g vmail -d /nonexistent -M -s /usr/sbin/nologin vmail
}

# make every parent of $1 traversable (mktemp -d / t.TempDir() create 0700 dirs,
# and Dovecot/Cyrus drop privileges to other users that must reach their files)
open_parents() {
  local d
  d="$(cd "$1" && pwd)"
  while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d="$(dirname "$d")"; done
}

# atomic_append FILE LINE: add LINE to FILE through a temp file + rename, keeping
# mode and owner (daemons re-read these files while we write them)
atomic_append() {
  local f=$1 line=$2 tmp
  tmp="$(mktemp "$f.XXXXXX")"
  { [ -f "$f" ] && cat "$f"; printf '%s\n' "$line"; } >"$tmp"
  [ -f "$f" ] && chmod --reference="$f" "$tmp" && chown --reference="$f" "$tmp"
  mv -f "$tmp" "$f"
}

# record PIDFILE NAME into BASE/pids.list so stop-all.sh can find it
register_pidfile() {
  local base=$1 pidfile=$2
  touch "$base/pids.list"
  grep -qxF "$pidfile" "$base/pids.list" || echo "$pidfile" >>"$base/pids.list"
}
