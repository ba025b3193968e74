#!/usr/bin/env bash
# Start every peer under ROOT with one port offset. Idempotent: running peers
# are left alone. When it returns, every listener accepts connections and the
# fixed test users exist on every peer.
#
# usage: start-all.sh ROOT [PORT_OFFSET]
# Ports: 20000 + PORT_OFFSET + index; one set uses indices 0..79, so parallel
# sets need offsets that are multiples of 100 (0, 100, ... 9900).
#   ROOT/dovecot        Dovecot backend (+8: OAuth introspection) +0..+8
#   ROOT/dovecot-b      second Dovecot (sync / routing target) +10..+18
#   ROOT/dovecot-proxy  Dovecot proxy -> ROOT/dovecot          +20..+26
#   ROOT/cyrus          Cyrus IMAP/POP3/LMTP/Sieve/JMAP/DAV    +30..+38
#   ROOT/radicale       Radicale                               +40
#   ROOT/webdav         Apache WebDAV                          +50
#   ROOT/nginx-mail     nginx mail proxy -> ROOT/dovecot       +60..+68
#   ROOT/postgres       PostgreSQL (mailmig/mailmigpw, db mailmig) +70
#   (+71..+79: private PostgreSQL clusters that single tests start in
#   ROOT/postgres-private-N, peers.Postgres.Private; not started here)
# Fixed users on every peer: alice@example.test/alicepw, bob@example.test/bobpw,
# carol@example.test/carolpw. Add more: add-user.sh ROOT USER PASS.
# Stop: stop-all.sh ROOT
set -euo pipefail
D="$(cd "$(dirname "$0")" && pwd)"
ROOT=${1:?usage: $0 ROOT [PORT_OFFSET]}
O=${2:-0}
case $O in *[!0-9]*) echo "port offset must be a number" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "start-all.sh: run as root (daemons drop privileges; Cyrus needs a mount namespace)" >&2; exit 1; }
mkdir -p "$ROOT"
ROOT="$(cd "$ROOT" && pwd)"
[ ${#ROOT} -le 60 ] || { echo "ROOT $ROOT is longer than 60 characters (unix socket paths are limited to 108 bytes)" >&2; exit 2; }
echo "$O" >"$ROOT/offset"
t() { local s=$EPOCHREALTIME; "$@"; awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN{printf "  (%.2fs)\n", b-a}'; }
t "$D/start-dovecot.sh" "$ROOT/dovecot" "$O"
t "$D/start-dovecot.sh" "$ROOT/dovecot-b" $((O + 10))
t "$D/start-dovecot-proxy.sh" "$ROOT/dovecot-proxy" "$O" "$O"
t "$D/start-cyrus.sh" "$ROOT/cyrus" "$O"
t "$D/start-radicale.sh" "$ROOT/radicale" "$O"
t "$D/start-webdav.sh" "$ROOT/webdav" "$O"
t "$D/start-nginx-mail.sh" "$ROOT/nginx-mail" "$O" "$O"
t "$D/start-postgres.sh" "$ROOT/postgres" "$O"
echo "all peers up under $ROOT (offset $O)"
