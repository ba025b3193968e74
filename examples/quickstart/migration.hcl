# Quickstart: three accounts move from the test harness's Dovecot ("legacy",
# with Radicale for calendars and contacts) onto its Cyrus JMAP server
# ("target", CalDAV and CardDAV too) in two waves, with the proxy in front:
# mail, Sieve scripts, contacts and calendars.
# Ports are those of the harness at offset 0 (testdata/peers; `just peers-up`).
#
#   export LEGACY_MASTER_PASSWORD=masterpw
#   export ALICE_PASSWORD=alicepw BOB_PASSWORD=bobpw CAROL_PASSWORD=carolpw
#   mailmig -f examples/quickstart validate
#
# `just demo` runs the whole migration on a copy of this plan against fresh
# servers: examples/quickstart/demo.sh, docs/demo.md.

variable "peers_offset" {
  description = "Port offset of the harness's server set (ports 20000 + offset + index); 0 for `just peers-up` and `just demo`"
  default     = 0
}

variable "proxy_port" {
  description = "First port of the proxy's listeners: imap, then pop3 +2, lmtp +4, managesieve +5, submission +6, smtp +7, http +8"
  default     = 21000
}

variable "everyone_window" {
  description = "When the everyone wave may cut over; a real migration would say \"22:00-05:00 Europe/Berlin\""
  default     = "00:00-24:00 Europe/Berlin"
}

state {
  path = "state/"
}

routes {
  sqlite = "state/routes.db"
}

# The old system: logins for the migration use Dovecot's master user
# ("alice@example.test*admin"), so nobody's own password is needed to read it.
backend "legacy" {
  imap {
    address = "127.0.0.1:${20000 + var.peers_offset}"
    tls     = "none"
  }
  pop3 {
    address = "127.0.0.1:${20002 + var.peers_offset}"
    tls     = "none"
  }
  lmtp {
    address = "127.0.0.1:${20004 + var.peers_offset}"
    tls     = "none"
  }
  managesieve {
    address = "127.0.0.1:${20005 + var.peers_offset}"
    tls     = "none"
  }
  submission {
    address = "127.0.0.1:${20006 + var.peers_offset}"
    tls     = "none"
  }
  # Calendars and address books live on a Radicale server beside Dovecot;
  # DAV servers take each user's own login (password_ref), not the master.
  # It is also where the proxy sends this backend's HTTP (CalDAV/CardDAV)
  # clients.
  caldav {
    url = "http://127.0.0.1:${20040 + var.peers_offset}/"
  }
  carddav {
    url = "http://127.0.0.1:${20040 + var.peers_offset}/"
  }

  login = "master"
  master {
    user     = "admin"
    password = env("LEGACY_MASTER_PASSWORD")
  }

  limits {
    connections         = 4
    messages_per_second = 500
    bytes_per_second    = "40MiB"
  }
}

# A Stalwart-style JMAP target: the harness's Cyrus server. Cyrus JMAP has
# no impersonation, so the target logs in as each user with the password
# named by the account's password_ref (accounts.csv).
backend "target" {
  imap {
    address = "127.0.0.1:${20030 + var.peers_offset}"
    tls     = "none"
  }
  pop3 {
    address = "127.0.0.1:${20032 + var.peers_offset}"
    tls     = "none"
  }
  lmtp {
    address = "127.0.0.1:${20034 + var.peers_offset}"
    tls     = "none"
  }
  managesieve {
    address = "127.0.0.1:${20035 + var.peers_offset}"
    tls     = "none"
  }
  jmap {
    url = "http://127.0.0.1:${20038 + var.peers_offset}/.well-known/jmap"
  }
  # Cyrus 3.6 has contacts, calendars and Sieve over JMAP only in its own
  # namespace: they travel over its CalDAV, CardDAV and ManageSieve, which
  # keep the original bytes.
  caldav {
    url = "http://127.0.0.1:${20038 + var.peers_offset}/"
  }
  carddav {
    url = "http://127.0.0.1:${20038 + var.peers_offset}/"
  }

  limits {
    connections = 4
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.target
  list = csv("accounts.csv")
  data = ["mail", "sieve", "contacts", "calendars"]
}

# alice's mailbox is small: she may cut over right after staging (the final
# catch-up inside the cut-over copies what arrived since). Everyone else is
# caught up until a pass copies at most 50 messages.
wave "pilot" {
  accounts          = ["alice@example.test"]
  max_parallel      = 1
  catchup_threshold = 200
}

wave "everyone" {
  accounts          = ["bob@example.test", "carol@example.test"]
  after             = [wave.pilot]
  cutover_window    = var.everyone_window
  max_parallel      = 2
  catchup_threshold = 50
}

proxy {
  listen {
    imap        = "127.0.0.1:${var.proxy_port}"
    pop3        = "127.0.0.1:${var.proxy_port + 2}"
    lmtp        = "127.0.0.1:${var.proxy_port + 4}"
    managesieve = "127.0.0.1:${var.proxy_port + 5}"
    submission  = "127.0.0.1:${var.proxy_port + 6}"
    smtp        = "127.0.0.1:${var.proxy_port + 7}"
    http        = "127.0.0.1:${var.proxy_port + 8}"
  }
  public_origin = "http://127.0.0.1:${var.proxy_port + 8}"
  hold_logins   = "30s"
}
