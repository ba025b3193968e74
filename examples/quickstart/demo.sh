#!/usr/bin/env bash
# The quickstart demo, `just demo` (docs/demo.md): the whole migration of
# examples/quickstart on real servers, while mail keeps arriving and an IMAP
# client keeps logging in through the proxy.
#
#   servers   install the real servers if missing and start a set at port
#             offset 0 (.ci/peers); stopped again at the end
#   seed      a few hundred generated messages (folders, flags, keywords)
#             for alice, bob and carol@example.test on the legacy Dovecot;
#             events and contacts on the legacy Radicale and two Sieve
#             scripts (one active) on the legacy Dovecot
#   plan      mailmig validate, the proxy in the background, mailmig plan
#   apply     mailmig apply -auto-approve until nothing is left: staging,
#             catch-up, cut-over of wave "pilot", then of wave "everyone";
#             meanwhile swaks delivers mail through the proxy (LMTP and SMTP)
#             and curl logs in over IMAP through it, naming the backend that
#             answers
#   after     IMAP, POP3 and JMAP clients reach Cyrus through the proxy, and
#             a CalDAV client (curl PROPFIND/REPORT) that found Radicale's
#             calendar before now finds the same events on Cyrus
#   check     every message (seeded or delivered, in every phase) is on
#             Cyrus exactly once and none is left behind (democheck, plain
#             IMAP on both servers); every event, contact and Sieve script
#             is on Cyrus as on the source (counts and SHA-256 printed);
#             mailmig journal; mailmig journal verify
#
# Usage: examples/quickstart/demo.sh [-keep]
#   -keep (or DEMO_KEEP=1)  leave the servers running (`just peers-down`
#                           stops them) and keep the work directory
# Environment:
#   MAILMIG_PEERS_ROOT, MAILMIG_PEERS_OFFSET  use this running set of servers
#                           (the demo empties alice, bob and carol on it first)
#   DEMO_PROXY_PORT         first port of the proxy's listeners (default 21000)
#   DEMO_WORK               work directory (default: a new one under /tmp)
#   DEMO_MESSAGES           generated messages per account (default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

keep=${DEMO_KEEP:-0}
case ${1:-} in
-keep) keep=1 ;;
"") ;;
*) sed -n '21,29p' "$0" >&2; exit 2 ;;
esac
proxy_port=${DEMO_PROXY_PORT:-21000}
messages=${DEMO_MESSAGES:-100}

if [ -t 1 ]; then bold=$'\e[1m' off=$'\e[0m'; else bold= off=; fi
started=$EPOCHREALTIME
step=0
section() { step=$((step + 1)); printf '\n%s== %d. %s%s\n' "$bold" "$step" "$*" "$off"; }
show() { printf '$ %s\n' "$*"; "$@"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
fail() { echo "demo: $*" >&2; exit 1; }

# --- cleanup: background loops, the proxy, the servers, the work dir ------
temp_peers=0 work= proxy_pid= bg_pids=()
cleanup() {
  local rc=$?
  set +e
  [ -n "$work" ] && touch "$work/stop"
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null; fi
  [ "$temp_peers" = 1 ] && "$repo/.ci/peers" down-temp
  if [ "$keep" = 1 ]; then
    echo "kept: work directory $work; servers: ${MAILMIG_PEERS_ROOT:-} (stop them with \`just peers-down\`)"
  elif [ -n "$work" ] && [ -z "${DEMO_WORK:-}" ]; then
    rm -rf "$work"
  fi
  if [ $rc = 0 ]; then
    echo "${bold}demo complete in $(elapsed "$started")s${off}"
  else
    echo "${bold}demo FAILED (exit $rc) after $(elapsed "$started")s${off}" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. servers ------------------------------------------------------------
section "Real servers: Dovecot and Radicale (legacy), Cyrus (JMAP, CalDAV, CardDAV target)"
if [ -n "${MAILMIG_PEERS_ROOT:-}" ]; then
  echo "using the running set in $MAILMIG_PEERS_ROOT"
elif [ "$keep" = 1 ]; then
  .ci/peers install
  .ci/peers up 0 >/dev/null
  . .peers/env
else
  .ci/peers install
  temp_peers=1
  peers_env=$(.ci/peers up-temp)
  eval "$peers_env"
fi
offset=${MAILMIG_PEERS_OFFSET:-$(cat "$MAILMIG_PEERS_ROOT/offset")}
port_open $((20000 + offset)) || fail "no Dovecot on port $((20000 + offset)) (servers in ${MAILMIG_PEERS_ROOT})"
echo "servers at port offset $offset: Dovecot IMAP 127.0.0.1:$((20000 + offset)), ManageSieve 127.0.0.1:$((20005 + offset));" \
  "Radicale http://127.0.0.1:$((20040 + offset))/; Cyrus IMAP 127.0.0.1:$((20030 + offset)), ManageSieve 127.0.0.1:$((20035 + offset))," \
  "JMAP and DAV http://127.0.0.1:$((20038 + offset))/"
for p in $(seq "$proxy_port" $((proxy_port + 9))); do
  if port_open "$p"; then fail "port $p is in use; set DEMO_PROXY_PORT to a free range of 10 ports"; fi
done

work=${DEMO_WORK:-$(mktemp -d /tmp/mailmig-demo.XXXXXX)}
rm -rf "$work/quickstart" "$work/stop" "$work"/*.log # a fresh state for every run
mkdir -p "$work/bin" "$work/quickstart"
s=$EPOCHREALTIME
go build -o "$work/bin/" ./cmd/mailmig ./internal/corpus/cmd/gencorpus ./examples/quickstart/democheck
echo "built mailmig, gencorpus and democheck in $(elapsed "$s")s"
cp examples/quickstart/migration.hcl examples/quickstart/accounts.csv "$work/quickstart/"
cd "$work/quickstart"
export PATH="$work/bin:$PATH"
# The quickstart's secrets (the servers' fixed test passwords) and the two
# variables that place the plan on this set of servers.
export LEGACY_MASTER_PASSWORD=masterpw ALICE_PASSWORD=alicepw BOB_PASSWORD=bobpw CAROL_PASSWORD=carolpw
export MAILMIG_VAR_peers_offset=$offset MAILMIG_VAR_proxy_port=$proxy_port
export MAILMIG_RUN_ID=demo-$(date +%s)
accounts=(alice bob carol)
password() { local v="${1^^}_PASSWORD"; printf '%s' "${!v}"; }

# --- 2. the plan -----------------------------------------------------------
section "The plan (a copy of examples/quickstart in $work/quickstart)"
grep -v '^#' accounts.csv
show mailmig validate

# --- 3. seed ---------------------------------------------------------------
section "Seed the legacy servers: $messages generated messages per account, events, contacts and Sieve scripts"
democheck reset
i=0
for u in "${accounts[@]}"; do
  i=$((i + 1))
  # The whole summary for the first account, the gist for the others.
  pattern='^(corpus|loaded)'
  [ $i = 1 ] && pattern='^[^g]'
  gencorpus -seed "$i" -n "$messages" -folders 8 -max-size 256K -imap "127.0.0.1:$((20000 + offset))" \
    -user "$u@example.test" -pass-env "${u^^}_PASSWORD" | grep -E "$pattern" || fail "seeding $u failed"
done
democheck seed-data

# --- 4. the proxy ----------------------------------------------------------
section "The proxy: everyone on legacy for now"
show mailmig routes default legacy
show mailmig routes domain add example.test
echo '$ mailmig proxy &'
mailmig proxy -drain 5s >"$work/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 100); do port_open "$proxy_port" && break; sleep 0.1; done
port_open "$proxy_port" || { cat "$work/proxy.log"; fail "the proxy did not start"; }
cat "$work/proxy.log"

# backend ACCOUNT: log in through the proxy with curl and print the name the
# IMAP server gives in its ID response (Dovecot or Cyrus IMAPD).
backend() {
  curl -s -m 60 --url "imap://127.0.0.1:$proxy_port/" -u "$1@example.test:$(password "$1")" -X 'ID NIL' |
    sed -n 's/^\* ID ("name" "\([^"]*\)".*/\1/p'
}
section "An IMAP client (curl) logs in through the proxy"
for u in "${accounts[@]}"; do
  who=$(backend "$u") || fail "the IMAP login for $u through the proxy failed"
  echo "$u@example.test → $who"
done

# dav_xml MODE reads a WebDAV multistatus on stdin and prints, for MODE
# principal or home, the href inside current-user-principal or
# calendar-home-set; for calendars, the hrefs of the calendar collections;
# for uids, the UID of each calendar-data.
dav_xml() {
  python3 -c '
import sys, xml.etree.ElementTree as ET
mode, D, C = sys.argv[1], "{DAV:}", "{urn:ietf:params:xml:ns:caldav}"
for r in ET.fromstring(sys.stdin.buffer.read()).iter(D + "response"):
    if mode == "calendars":
        if r.find(D + "propstat/" + D + "prop/" + D + "resourcetype/" + C + "calendar") is not None:
            print(r.findtext(D + "href").strip())
    elif mode == "uids":
        for d in r.iter(C + "calendar-data"):
            print("\n".join(l[4:].strip() for l in (d.text or "").splitlines() if l.startswith("UID:")))
    else:
        for e in r.iter({"principal": D + "current-user-principal", "home": C + "calendar-home-set"}[mode]):
            print(e.findtext(D + "href").strip())
' "$1"
}
# caldav_client ACCOUNT is what a CalDAV client does with the one URL it
# was given, the proxy's: /.well-known/caldav, its redirect, the principal,
# the calendar home, the calendars there (PROPFIND), the events of each
# (REPORT calendar-query). It prints where it landed and the events' UIDs.
caldav_client() {
  local auth="$1@example.test:$(password "$1")" base="http://127.0.0.1:$((proxy_port + 8))" loc principal home cal uids=""
  dav() { curl -sf -m 60 -u "$auth" -X "$1" -H "Depth: $3" -H 'Content-Type: application/xml; charset=utf-8' --data "$4" "$2"; }
  loc=$(curl -s -m 60 -o /dev/null -D - -u "$auth" -X PROPFIND -H 'Depth: 0' "$base/.well-known/caldav" | sed -n 's/^[Ll]ocation: *\([^[:space:]]*\).*/\1/p') || return 1
  [ -n "$loc" ] || { echo "no redirect from /.well-known/caldav" >&2; return 1; }
  [[ $loc == /* ]] && loc=$base$loc
  [[ $loc == "$base"/* ]] || { echo "the well-known redirect left the proxy: $loc" >&2; return 1; }
  principal=$(dav PROPFIND "$loc" 0 '<propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>' | dav_xml principal) || return 1
  home=$(dav PROPFIND "$base$principal" 0 '<propfind xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><C:calendar-home-set/></prop></propfind>' | dav_xml home) || return 1
  for cal in $(dav PROPFIND "$base$home" 1 '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>' | dav_xml calendars); do
    uids+=" $(dav REPORT "$base$cal" 1 '<C:calendar-query xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><C:calendar-data/></prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>' | dav_xml uids | sort | tr '\n' ' ')" || return 1
  done
  uids=$(xargs -n1 <<<"$uids" | sort -u | xargs)
  echo "$1@example.test → principal $principal, calendar home $home: $(wc -w <<<"$uids") events and tasks: $uids"
}
section "A CalDAV client (curl PROPFIND, REPORT) finds its calendar through the proxy"
caldav_before=$(caldav_client alice) || fail "the CalDAV client for alice through the proxy failed"
echo "$caldav_before"

# --- 5. mail and logins while apply runs ------------------------------------
# set_phase NAME labels the deliveries from now on (renamed into place: the
# streams read it concurrently).
set_phase() { echo "$1" >"$work/phase.tmp" && mv "$work/phase.tmp" "$work/phase"; }
# deliver ACCOUNT VIA: one message through the proxy, retried while the
# account is frozen (4xx), as a mail server would; an accepted one is logged
# to delivered.log for the final check.
n=0
deliver() {
  local u=$1 via=$2 phase id out deadline=$((SECONDS + 60))
  phase=$(cat "$work/phase")
  n=$((n + 1))
  id="demo-$phase-$u-$n.$$@example.test"
  local args=(--server "127.0.0.1:$((proxy_port + 7))")
  [ "$via" = lmtp ] && args=(--protocol LMTP --server "127.0.0.1:$((proxy_port + 4))")
  while :; do
    if out=$(swaks --silent 2 "${args[@]}" --from news@example.test --to "$u@example.test" \
      --header "Message-Id: <$id>" --header "Subject: $phase mail $n via $via" --body "sent during $phase" 2>&1); then
      echo "$phase $u@example.test $id" >>"$work/delivered.log"
      return 0
    fi
    [ -e "$work/stop" ] && return 1 # the demo is ending
    if grep -q '^<\*\* 4' <<<"$out" && [ $SECONDS -lt $deadline ]; then
      echo "$u $(grep -m1 '^<\*\* 4' <<<"$out" | cut -c5-)" >>"$work/deferred.log"
      sleep 0.3
      continue
    fi
    echo "delivery to $u via $via failed: $out" >>"$work/failed.log"
    return 1
  done
}
# deliver_loop ACCOUNT: a steady stream of mail for one account, in turn
# through the proxy's LMTP and SMTP fronts.
deliver_loop() {
  local i=0 via
  while [ ! -e "$work/stop" ]; do
    i=$((i + 1))
    if [ $((i % 2)) = 0 ]; then via=smtp; else via=lmtp; fi
    deliver "$1" "$via" || true
    sleep 0.2
  done
}
# watch_loop logs in for each account again and again and prints a line when
# the answering backend changes or a login was held (frozen account).
watch_loop() {
  local -A last=()
  local u t0 ts who dt
  while [ ! -e "$work/stop" ]; do
    for u in "${accounts[@]}"; do
      t0=$EPOCHREALTIME ts=$(date +%T)
      if ! who=$(backend "$u"); then
        # The proxy ends an account's sessions when its route changes.
        echo "  [imap client $ts] $u@example.test: session closed by the proxy (route changed), logging in again"
        continue
      fi
      dt=$(elapsed "$t0")
      if [ "$who" != "${last[$u]:-}" ] || awk -v d="$dt" 'BEGIN{exit !(d > 1)}'; then
        if awk -v d="$dt" 'BEGIN{exit !(d > 1)}'; then
          echo "  [imap client $ts] $u@example.test: login held ${dt}s while frozen, then answered by ${who:-nobody}"
        else
          echo "  [imap client $ts] $u@example.test: answered by ${who:-nobody (login failed)}"
        fi
        last[$u]=$who
      fi
    done
    sleep 0.2
  done
}
set_phase before
: >"$work/delivered.log"
: >"$work/deferred.log"
for u in "${accounts[@]}"; do
  deliver_loop "$u" &
  bg_pids+=($!)
done
watch_loop &
bg_pids+=($!)

section "mailmig plan"
show mailmig plan

converged=0
for round in 1 2 3 4 5; do
  set_phase "apply$round"
  section "mailmig apply, round $round (mail keeps arriving through the proxy)"
  show mailmig apply -auto-approve
  if mailmig plan -refresh=false -detailed-exitcode >/dev/null; then
    converged=1
    break
  fi
done
set_phase after
[ $converged = 1 ] || fail "apply did not converge in 5 rounds"
sleep 1 # a few deliveries after the last cut-over
touch "$work/stop"
for p in "${bg_pids[@]}"; do wait "$p" || fail "a background loop failed (exit $?)"; done
bg_pids=()
if [ -s "$work/failed.log" ]; then cat "$work/failed.log"; fail "a delivery through the proxy failed"; fi

# --- 6. after ----------------------------------------------------------------
# pop3_count ACCOUNT: messages in the INBOX, over POP3 through the proxy.
pop3_count() {
  local list
  list=$(curl -sf -m 60 --url "pop3://127.0.0.1:$((proxy_port + 2))/" -u "$1@example.test:$(password "$1")") || return 1
  grep -c . <<<"$list" || true
}
# jmap_summary ACCOUNT: the JMAP session through the proxy's HTTP front and
# what the server behind it holds.
jmap_summary() {
  local auth="$1@example.test:$(password "$1")" session acct api
  session=$(curl -sfL -m 60 -u "$auth" "http://127.0.0.1:$((proxy_port + 8))/.well-known/jmap") || return 1
  read -r acct api < <(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["primaryAccounts"]["urn:ietf:params:jmap:mail"], d["apiUrl"])' <<<"$session") || return 1
  curl -sf -m 60 -u "$auth" -H 'Content-Type: application/json' "$api" \
    -d '{"using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],"methodCalls":[["Email/query",{"accountId":"'"$acct"'","calculateTotal":true,"limit":0},"q"],["Mailbox/get",{"accountId":"'"$acct"'","properties":["name"]},"m"]]}' |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["methodResponses"]; print("%d emails in %d mailboxes" % (r[0][1]["total"], len(r[1][1]["list"])))' |
    sed "s|^|apiUrl $api, |"
}
section "After the cut-over: IMAP, POP3, JMAP and CalDAV clients through the proxy"
for u in "${accounts[@]}"; do
  who=$(backend "$u") || fail "the IMAP login for $u through the proxy failed"
  n=$(pop3_count "$u") || fail "POP3 for $u through the proxy failed"
  jmap=$(jmap_summary "$u") || fail "JMAP for $u through the proxy failed"
  echo "$u@example.test → IMAP: $who; POP3: $n messages in INBOX; JMAP: $jmap"
done
# The same CalDAV discovery from the same URL now lands on Cyrus (another
# principal and home) and finds the same events.
caldav_after=$(caldav_client alice) || fail "the CalDAV client for alice through the proxy failed"
echo "before: $caldav_before"
echo "after:  $caldav_after"
[ "${caldav_before#*: }" = "${caldav_after#*: }" ] || fail "the CalDAV client does not find the same events after the cut-over"
[ "${caldav_before%%,*}" != "${caldav_after%%,*}" ] || fail "the CalDAV client's principal did not change with the cut-over"
echo "deliveries through the proxy (swaks, LMTP and SMTP): $(wc -l <"$work/delivered.log") accepted;" \
  "$(wc -l <"$work/deferred.log") times deferred while the account was frozen, and retried:"
sort "$work/deferred.log" | uniq -c | sed 's/^ */  /'


section "Check: every message on Cyrus exactly once, nothing left behind (plain IMAP, both servers); events, contacts and Sieve scripts equal (DAV and ManageSieve, both sides)"
show democheck check -delivered "$work/delivered.log"

section "State and journal"
show mailmig state list
show mailmig plan -detailed-exitcode
show mailmig journal
show mailmig journal verify
