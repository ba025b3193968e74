#!/usr/bin/env bash
# Install every real peer the integration tests use, from Debian 12 (bookworm)
# packages. Idempotent and fast when everything is already there (no apt-get
# call at all then). Run as root.
#
# usage: install.sh [all|dovecot|cyrus|radicale|webdav|nginx|postgres|synctools]...
#
# Gotchas handled here:
#  * No daemon may auto-start from a postinst (Dovecot/exim4/apache2/nginx would
#    bind ports 25/80/110/143/993...): /usr/sbin/policy-rc.d must "exit 101".
#    We create it if missing.
#  * cyrus-imapd and cyrus-pop3d CONFLICT with dovecot-imapd and dovecot-pop3d
#    (virtual packages imap-server / pop3-server): installing one REMOVES the
#    other. We keep Dovecot installed and unpack the two Cyrus .debs into
#    $CYRUS_EXTRA (default /opt/mailmig-cyrus) with dpkg-deb -x;
#    start-cyrus.sh finds imapd, pop3d and squatter there.
#  * cyrus-common depends on an MTA and pulls in exim4-daemon-light (never started).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
CYRUS_EXTRA=${CYRUS_EXTRA:-/opt/mailmig-cyrus}
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (it uses apt-get)" >&2; exit 1; }

want=("$@"); [ ${#want[@]} -eq 0 ] && want=(all)
has() { local w; for w in "${want[@]}"; do [ "$w" = all ] || [ "$w" = "$1" ] && return 0; done; return 1; }

pkgs=(curl ca-certificates netcat-openbsd python3 openssl util-linux procps)
has dovecot && pkgs+=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-managesieved
                       dovecot-submissiond dovecot-sieve sieve-connect swaks fetchmail)
has cyrus && pkgs+=(cyrus-common cyrus-caldav cyrus-admin cyrus-clients sasl2-bin eatmydata)
has radicale && pkgs+=(radicale)
has webdav && pkgs+=(apache2 apache2-utils)
has nginx && pkgs+=(nginx libnginx-mod-mail)
has postgres && pkgs+=(postgresql)
has synctools && pkgs+=(isync offlineimap3 libmail-imapclient-perl)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
cyrus_missing=0
if has cyrus && [ ! -x "$CYRUS_EXTRA/usr/lib/cyrus/bin/imapd" ] && [ ! -x /usr/lib/cyrus/bin/imapd ]; then
  cyrus_missing=1
fi
if [ ${#missing[@]} -eq 0 ] && [ $cyrus_missing -eq 0 ]; then
  echo "peers already installed: ${want[*]}"
  exit 0
fi

if [ ! -x /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
fi

updated=0
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq; updated=1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $cyrus_missing -eq 1 ]; then
  mkdir -p "$CYRUS_EXTRA/debs"
  chmod 0755 "$CYRUS_EXTRA" "$CYRUS_EXTRA/debs"
  # apt-get download fetches as the _apt user: let it write here (else apt
  # warns "Download is performed unsandboxed as root").
  if getent passwd _apt >/dev/null; then chown _apt "$CYRUS_EXTRA/debs"; fi
  (cd "$CYRUS_EXTRA/debs" && { [ $updated -eq 1 ] || apt-get update -qq; } && apt-get download -qq cyrus-imapd cyrus-pop3d)
  for d in "$CYRUS_EXTRA"/debs/cyrus-imapd_*.deb "$CYRUS_EXTRA"/debs/cyrus-pop3d_*.deb; do
    dpkg-deb -x "$d" "$CYRUS_EXTRA"
  done
fi
echo "peers installed: ${want[*]}"
