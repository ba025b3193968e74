#!/usr/bin/env bash
# Install Mermaid's parser for the tests that check the diagrams mailmig
# draws (plan -markdown, report): mermaid and jsdom from the npm registry
# into $MAILMIG_MERMAID_DIR (default /opt/mailmig-mermaid), pinned.
# Idempotent: nothing happens when they are there. Needs node and npm
# (.ci/just installs npm with Debian's package when missing).
set -euo pipefail
dir=${MAILMIG_MERMAID_DIR:-/opt/mailmig-mermaid}
if [ -f "$dir/node_modules/mermaid/package.json" ] && [ -f "$dir/node_modules/jsdom/package.json" ]; then
  echo "mermaid already installed in $dir"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "install-mermaid.sh: npm is missing (apt-get install -y npm)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name":"mailmig-mermaid","private":true}' >package.json
# mermaid 12 asks for node 22; its parser runs on Debian 12's node 18/20
# (only the engine check warns).
npm install --no-audit --no-fund --loglevel=error mermaid@12.3.0 jsdom@29.1.1 >/dev/null
echo "installed mermaid 12.3.0 and jsdom 29.1.1 in $dir"
