#!/usr/bin/env bash
# Stop every peer process started by the start-*.sh scripts.
# usage: stop-all.sh ROOT|BASE_DIR [...]
# A ROOT (made by start-all.sh) stops every peer below it; a BASE_DIR stops one
# peer. Each start script registers its pidfile(s) in BASE/pids.list; this
# sends SIGTERM to each recorded PID (never by process name), waits up to 10 s,
# then SIGKILLs leftovers. Idempotent.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 ROOT|BASE_DIR..." >&2; exit 2; }
bases=()
for arg in "$@"; do
  if [ -f "$arg/pids.list" ]; then bases+=("$arg"); continue; fi
  for sub in "$arg"/*/; do [ -f "$sub/pids.list" ] && bases+=("${sub%/}"); done
done
# SIGTERM everything first, then wait for all at once (Cyrus and Apache take
# a few seconds each to shut down; one after the other adds up).
pids=()
declare -A count
for BASE in "${bases[@]}"; do
  count[$BASE]=0
  while IFS= read -r pf; do
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null && { pids+=("$pid"); count[$BASE]=$((count[$BASE] + 1)); }
    fi
  done <"$BASE/pids.list"
done
for _ in $(seq 1 100); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && break
  sleep 0.1
done
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && { echo "WARN: pid $pid ignored SIGTERM, killing" >&2; kill -9 "$pid" 2>/dev/null; }; done
for BASE in "${bases[@]}"; do
  while IFS= read -r pf; do rm -f "$pf"; done <"$BASE/pids.list"
  rm -f "$BASE/pids.list"
  echo "stopped ${count[$BASE]} process(es) under $BASE"
done
exit 0
