#!/usr/bin/env bash
# Add (or re-password) a user on every peer of a set started by start-all.sh:
# both Dovecots, Cyrus (sasldb + first IMAP login, which creates INBOX and the
# special-use folders), Radicale (plus a calendar and an address book) and
# WebDAV (htpasswd entry plus its directory). The Go harness (internal/peers,
# Set.NewAccount) does the same natively; this script is for manual use.
# usage: add-user.sh ROOT USER@DOMAIN PASSWORD
. "$(dirname "$0")/lib.sh"
ROOT=${1:?usage: $0 ROOT USER@DOMAIN PASSWORD}; U=${2:?user}; PW=${3:?password}
ROOT="$(cd "$ROOT" && pwd)"
O=$(cat "$ROOT/offset")
U=$(echo "$U" | tr '[:upper:]' '[:lower:]')
exec 9>"$ROOT/users.lock"; flock 9
for d in dovecot dovecot-b; do
  dir="$ROOT/$d/etc/users.d"; [ -d "$dir" ] || continue
  printf '%s:{PLAIN}%s::::::\n' "$U" "$PW" >"$dir/.$U.new"
  chmod 0640 "$dir/.$U.new"; chgrp dovecot "$dir/.$U.new"; mv -f "$dir/.$U.new" "$dir/$U"
done
if [ -f "$ROOT/cyrus/etc/sasldb2" ]; then
  echo -n "$PW" | saslpasswd2 -f "$ROOT/cyrus/etc/sasldb2" -p -c -u "${U#*@}" "${U%@*}"
  chown cyrus:mail "$ROOT/cyrus/etc/sasldb2"
  curl -sS --max-time 20 --user "$U:$PW" "imap://127.0.0.1:$((20000 + O + 30))/" >/dev/null
fi
if [ -f "$ROOT/radicale/users" ]; then
  f="$ROOT/radicale/users"; grep -v "^$U:" "$f" >"$f.new" || true; printf '%s:%s\n' "$U" "$PW" >>"$f.new"; mv -f "$f.new" "$f"
  R="http://127.0.0.1:$((20000 + O + 40))"
  curl -sS -o /dev/null -u "$U:$PW" -X MKCALENDAR "$R/$U/calendar/" || true
  curl -sS -o /dev/null -u "$U:$PW" -X MKCOL "$R/$U/contacts/" -H 'Content-Type: application/xml' --data '<?xml version="1.0"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>
<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>' || true
fi
if [ -f "$ROOT/webdav/htpasswd" ]; then
  f="$ROOT/webdav/htpasswd"; grep -v "^$U:" "$f" >"$f.new" || true; htpasswd -nbm "$U" "$PW" | head -1 >>"$f.new"
  chmod --reference="$f" "$f.new"; mv -f "$f.new" "$f"
  mkdir -p "$ROOT/webdav/files/$U"; chown www-data:www-data "$ROOT/webdav/files/$U"
fi
echo "user $U added under $ROOT"
