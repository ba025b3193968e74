#!/usr/bin/env python3
"""OAuth 2.0 token introspection endpoint (RFC 7662) for the test Dovecots
(stdlib only). Dovecot's oauth2 passdb asks it whether an XOAUTH2 or
OAUTHBEARER bearer token is valid and whose it is.

usage: oauth_introspect.py PORT [PIDFILE]
Listens on 127.0.0.1:PORT only. With PIDFILE (Dovecot's run/master.pid) it
exits by itself once that process is gone (or never appeared within 60 s),
so a Dovecot stopped with `dovecot stop` does not leave it behind.

Tokens need no shared state: a valid token for USER is
    "mmtok." + base64url(USER, no padding) + "." + hex(HMAC-SHA256(KEY, USER))[:32]
with the fixed TEST-ONLY key below (the same function is peers.Token in
internal/peers), optionally followed by "." and filler that is ignored, so
tests can send tokens as long as real ones (1-3 KB; peers.TokenOfSize). USER is lower-cased, as Dovecot does with
auth_username_format = %Lu.

Requests: POST (Dovecot's introspection_mode = post) with the form body
"token=TOKEN"; also GET ?token=TOKEN and "Authorization: Bearer TOKEN"
(introspection_mode = get / auth), for manual use.
Answer (always 200, JSON): {"active": true, "username": USER} for a valid
token, {"active": false} otherwise. Tokens are never logged.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Fixed test key: these tokens open test accounts on loopback servers only.
KEY = b"mailmig-peers-test-oauth-key"
PREFIX = "mmtok."


def mac(user):
    return hmac.new(KEY, user.encode(), hashlib.sha256).hexdigest()[:32]


def token(user):
    """The valid token for user (peers.Token in Go)."""
    user = user.lower()
    b = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
    return PREFIX + b + "." + mac(user)


def check(tok):
    """Returns the user a valid token belongs to, else None."""
    if not tok.startswith(PREFIX):
        return None
    parts = tok[len(PREFIX):].split(".")
    if len(parts) not in (2, 3):
        return None
    b, sig = parts[0], parts[1]
    try:
        user = base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)).decode()
    except Exception:
        return None
    if not user or user != user.lower() or not hmac.compare_digest(sig, mac(user)):
        return None
    return user


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # the request line may hold a token: not logged
        pass

    def answer(self, tok):
        user = check(tok or "")
        body = {"active": True, "username": user} if user else {"active": False}
        sys.stderr.write("introspect %s -> %s\n" % (self.command, user if user else "inactive"))
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def header_token(self):
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return None

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode("utf-8", "replace"))
        tok = form.get("token", [None])[0] or self.header_token()
        self.answer(tok)

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        tok = q.get("token", [None])[0] or self.header_token()
        self.answer(tok)


def watch(pidfile):
    """Exits the process when the pid in pidfile is gone."""
    start = time.monotonic()
    seen = False
    while True:
        time.sleep(1)
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            seen = True
            continue
        except (OSError, ValueError):
            pass
        if seen or time.monotonic() - start > 60:
            os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        threading.Thread(target=watch, args=(sys.argv[2],), daemon=True).start()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
