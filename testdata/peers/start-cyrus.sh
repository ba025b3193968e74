#!/usr/bin/env bash
# Start a self-contained Cyrus IMAP 3.6 (Debian) on 127.0.0.1 with IMAP, POP3,
# LMTP, ManageSieve and HTTP (JMAP + CalDAV + CardDAV).
#
# usage: start-cyrus.sh BASE_DIR PORT_OFFSET
#   ports (P = 20000 + PORT_OFFSET + 30): IMAP P, POP3 P+2, LMTP P+4, ManageSieve P+5, HTTP P+8
#   JMAP EmailSubmission relays to the start-dovecot.sh sink of the same offset (20000+o+7).
# users (sasldb, virtdomains=userid): alice@example.test/alicepw, bob@example.test/bobpw,
#   carol@example.test/carolpw; admin/adminpw is the Cyrus admin (may use SASL authzid)
# Add a user: cyrus-add-user.sh BASE_DIR PORT_OFFSET USER PASS (sasldb + first IMAP
#   login, which autocreates INBOX, Drafts, Sent, Trash, Junk, Archive).
# Logs: BASE/log/syslog.log (via devlog_sink.py when no syslog daemon runs).
# Idempotent. Stop: stop-all.sh BASE_DIR (kills the master pid; master stops children).
. "$(dirname "$0")/lib.sh"

BASE=${1:?usage: $0 BASE_DIR PORT_OFFSET}
OFF=${2:-0}
mkdir -p "$BASE"
BASE="$(cd "$BASE" && pwd)"
P=$((20000 + OFF + 30))
IMAP=$P; POP3=$((P + 2)); LMTP=$((P + 4)); SIEVE=$((P + 5)); HTTP=$((P + 8))
CYRBIN=/usr/lib/cyrus/bin
# cyrus-imapd (imapd, squatter) and cyrus-pop3d (pop3d) CONFLICT with dovecot-imapd /
# dovecot-pop3d (virtual imap-server / pop3-server). install-peers.sh keeps Dovecot
# installed and unpacks those two .debs into $CYRUS_EXTRA instead (dpkg-deb -x).
CYRUS_EXTRA=${CYRUS_EXTRA:-/opt/mailmig-cyrus}
cyrbin() {
  if [ -x "$CYRBIN/$1" ]; then echo "$CYRBIN/$1"
  elif [ -x "$CYRUS_EXTRA$CYRBIN/$1" ]; then echo "$CYRUS_EXTRA$CYRBIN/$1"
  else die "cyrus binary $1 not found (run install-peers.sh)"; fi
}
[ -x "$CYRBIN/master" ] || die "cyrus not installed (run install-peers.sh: cyrus-common cyrus-caldav cyrus-admin sasl2-bin)"
IMAPD=$(cyrbin imapd); POP3D=$(cyrbin pop3d); SQUATTER=$(cyrbin squatter)
LMTPD=$(cyrbin lmtpd); HTTPD=$(cyrbin httpd); TIMSIEVED=$(cyrbin timsieved); CTL=$(cyrbin ctl_cyrusdb)
for b in "$IMAPD" "$POP3D" "$SQUATTER" "$LMTPD" "$HTTPD" "$TIMSIEVED" "$CTL"; do [ -n "$b" ] || exit 1; done

if pid_alive "$BASE/master.pid" && port_open "$HTTP"; then
  echo "cyrus already running in $BASE (http $HTTP)"; exit 0
fi
for p in $IMAP $POP3 $LMTP $SIEVE $HTTP; do port_free_or_die "$p"; done

mkdir -p "$BASE"/{etc,lib,spool,sieve,log,tmp,search}
mkdir -p "$BASE"/lib/{proc,lock,socket,db,log,msg,user,quota,ptclient,sync}
open_parents "$BASE"; chmod 0755 "$BASE"

cat >"$BASE/etc/imapd.conf" <<EOF
# Self-contained Cyrus 3.6 test instance (generated). Loopback only.
configdirectory: $BASE/lib
proc_path: $BASE/lib/proc
mboxname_lockpath: $BASE/lib/lock
partition-default: $BASE/spool
defaultpartition: default
sievedir: $BASE/sieve
sieveusehomedir: false
temp_path: $BASE/tmp
lmtpsocket: $BASE/lib/socket/lmtp
idlesocket: $BASE/lib/socket/idle
notifysocket: $BASE/lib/socket/notify
servername: cyrus.example.test
# NOT the users' domain: Cyrus strips defaultdomain from logins, then SASL looks
# up "alice" in realm <servername> and fails ("user not found")
defaultdomain: internal.invalid
virtdomains: userid
admins: admin
# admin may log in as another user with SASL PLAIN authzid (IMAP/POP3/Sieve).
# (HTTP "Authorize-As" is refused on a non-Murder server: no JMAP/DAV impersonation)
proxyservers: admin
altnamespace: yes
unixhierarchysep: yes
hashimapspool: false
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $BASE/etc/sasldb2
sasl_mech_list: PLAIN LOGIN
sasl_minimum_layer: 0
# INBOX (with the default folders below) is created on the first IMAP/POP3 login
autocreate_quota: 0
# autocreate_post: yes would make LMTP accept ANY recipient and create its INBOX
autocreate_post: no
autocreate_inbox_folders: Drafts|Sent|Trash|Junk|Archive
autocreate_subscribe_folders: Drafts|Sent|Trash|Junk|Archive
specialuse_extra: \\Archive \\Junk
xlist-drafts: Drafts
xlist-sent: Sent
xlist-trash: Trash
xlist-junk: Junk
xlist-archive: Archive
lmtp_downcase_rcpt: yes
umask: 077
# JMAP needs conversations; CalDAV/CardDAV/JMAP are httpd modules
conversations: yes
conversations_db: twoskip
httpmodules: caldav carddav jmap
httpallowcompress: no
jmap_nonstandard_extensions: yes
jmap_preview_annot: /shared/vendor/messagingengine.com/preview
jmapsubmission_deleteonsend: no
caldav_realm: example.test
carddav_realm: example.test
# Xapian search (JMAP Email/query text/subject/from filters fail with serverFail
# "guidsearch_run_xapian: can't begin search" without it). Rolling squatter
# (DAEMON below) indexes from the sync log a few seconds after each change.
search_engine: xapian
defaultsearchtier: t1
t1searchpartition-default: $BASE/search
search_batchsize: 1000
sync_log: yes
sync_log_channels: squatter
# outgoing mail (JMAP EmailSubmission) goes to the SMTP sink of start-dovecot.sh
smtp_backend: host
smtp_host: 127.0.0.1:$((20000 + OFF + 7))
# fidelity: keep raw 8-bit header bytes (the default "yes" rewrites them to X on
# APPEND and on JMAP blob upload) and add no \$hasattachment keyword on Email/import
munge8bit: no
jmap_set_has_attachment: no
# test convenience
syslog_prefix: cyrus-$OFF
duplicatesuppression: no
popminpoll: 0
EOF

C="-C $BASE/etc/imapd.conf"   # master does NOT pass its -C to children: give it to every cmd
cat >"$BASE/etc/cyrus.conf" <<EOF
# Cyrus master config (generated). All listeners on 127.0.0.1.
START {
  recover   cmd="$CTL $C -r"
}
SERVICES {
  imap      cmd="$IMAPD $C" listen="127.0.0.1:$IMAP" prefork=1 maxchild=200
  pop3      cmd="$POP3D $C" listen="127.0.0.1:$POP3" prefork=0 maxchild=50
  lmtp      cmd="$LMTPD $C -a" listen="127.0.0.1:$LMTP" prefork=0 maxchild=20
  lmtpunix  cmd="$LMTPD $C" listen="$BASE/lib/socket/lmtp" prefork=0 maxchild=20
  sieve     cmd="$TIMSIEVED $C" listen="127.0.0.1:$SIEVE" prefork=0 maxchild=20
  http      cmd="$HTTPD $C" listen="127.0.0.1:$HTTP" prefork=1 maxchild=100
}
EVENTS {
  checkpoint cmd="$CTL $C -c" period=30
}
DAEMON {
  squatter  cmd="$SQUATTER $C -R -d"
}
EOF

# SASL users (sasldb file readable by the cyrus user)
if [ ! -s "$BASE/etc/sasldb2" ]; then
  for up in admin:adminpw alice@example.test:alicepw bob@example.test:bobpw carol@example.test:carolpw; do
    u=${up%%:*}
    # no @domain -> realm must be the servername (that is what SASL uses for domainless logins)
    case $u in *@*) realm=${u#*@} u=${u%@*} ;; *) realm=cyrus.example.test ;; esac
    echo -n "${up#*:}" | saslpasswd2 -f "$BASE/etc/sasldb2" -p -c -u "$realm" "$u"
  done
fi
chown -R cyrus:mail "$BASE"/{lib,spool,sieve,log,tmp,search}
chown cyrus:mail "$BASE/etc/sasldb2"; chmod 0640 "$BASE/etc/sasldb2"
chmod 0644 "$BASE/etc/imapd.conf" "$BASE/etc/cyrus.conf"

# Cyrus logs ONLY via syslog(3) to /dev/log. With no syslog daemon (CI) every line
# is lost, and a global /dev/log listener would mix all instances. So: a private
# receiver socket per instance, bind-mounted over /dev/log inside a private mount
# namespace that only this master and its children see (needs root/CAP_SYS_ADMIN).
SOCK="$BASE/log/devlog.sock"
if ! pid_alive "$BASE/devlog.pid"; then
  rm -f "$SOCK"
  nohup setsid python3 "$SCRIPTS_DIR/devlog_sink.py" "$BASE/log/syslog.log" "$SOCK" </dev/null >"$BASE/log/devlog.out" 2>&1 &
  echo $! >"$BASE/devlog.pid"
fi
register_pidfile "$BASE" "$BASE/devlog.pid"
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -e /dev/log ] || touch /dev/log      # bind-mount target (an empty file is harmless)

# setsid: Cyrus master (like Apache) signals its whole PROCESS GROUP on shutdown;
# without a session of its own, stopping one instance kills every other daemon
# started from the same shell/test process ("graceful shutdown initiated by
# unexpected process <other master>").
# Cyrus calls fsync/fdatasync about 25 times per APPEND (message file, index,
# cache, conversations, quota, ...), which made loading test mail 3-5x slower
# on a busy CI disk. Tests need no crash durability (like Dovecot's
# mail_fsync = never), so run it under eatmydata unless CYRUS_FSYNC=yes.
WRAP=()
if [ "${CYRUS_FSYNC:-no}" != yes ] && command -v eatmydata >/dev/null; then WRAP=(eatmydata); fi
MASTER=("${WRAP[@]}" "$CYRBIN/master" -C "$BASE/etc/imapd.conf" -M "$BASE/etc/cyrus.conf" -p "$BASE/master.pid" -D)
if unshare -m --propagation private true 2>/dev/null; then
  # unshare execs in place (no fork) and sh execs master: $! is master's pid
  nohup setsid unshare -m --propagation private sh -c 'mount --bind "$0" /dev/log && exec "$@"' \
    "$SOCK" "${MASTER[@]}" </dev/null >"$BASE/log/master.log" 2>&1 &
else
  echo "WARN: no mount namespace; Cyrus logs go to whatever owns /dev/log" >&2
  nohup setsid "${MASTER[@]}" </dev/null >"$BASE/log/master.log" 2>&1 &
fi
echo $! >"$BASE/master.pid.launcher"
for p in $IMAP $POP3 $LMTP $SIEVE $HTTP; do wait_port "$p" 60; done
register_pidfile "$BASE" "$BASE/master.pid"
# provision INBOXes (JMAP/DAV fail with 500 until the first IMAP login autocreates them)
for up in alice@example.test:alicepw bob@example.test:bobpw carol@example.test:carolpw; do
  curl -sS --max-time 20 --user "$up" "imap://127.0.0.1:$IMAP/" >/dev/null
done
echo "cyrus up in $BASE: imap $IMAP pop3 $POP3 lmtp $LMTP sieve $SIEVE http $HTTP"
