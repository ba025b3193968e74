# Quickstart: three accounts move from the test harness's Dovecot ("legacy")
# onto its Cyrus JMAP server ("target") in two waves, with the proxy in front.
# Ports are those of the harness at offset 0 (see testdata/peers).
#
#   export LEGACY_MASTER_PASSWORD=masterpw TARGET_MASTER_PASSWORD=adminpw
#   mailmig -f examples/quickstart validate

state {
  path = "state/"
}

routes {
  sqlite = "state/routes.db"
}

backend "legacy" {
  imap {
    address = "127.0.0.1:20000"
    tls     = "none"
  }
  pop3 {
    address = "127.0.0.1:20002"
    tls     = "none"
  }
  lmtp {
    address = "127.0.0.1:20004"
    tls     = "none"
  }
  managesieve {
    address = "127.0.0.1:20005"
    tls     = "none"
  }
  submission {
    address = "127.0.0.1:20006"
    tls     = "none"
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

# A Stalwart-style JMAP target: the harness's Cyrus server.
backend "target" {
  imap {
    address = "127.0.0.1:20030"
    tls     = "none"
  }
  lmtp {
    address = "127.0.0.1:20034"
    tls     = "none"
  }
  managesieve {
    address = "127.0.0.1:20035"
    tls     = "none"
  }
  jmap {
    url = "http://127.0.0.1:20038/.well-known/jmap"
  }

  login = "master"
  master {
    user     = "admin"
    password = env("TARGET_MASTER_PASSWORD")
  }

  limits {
    connections = 4
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.target
  list = [
    "alice@example.test",
    "bob@example.test",
    "carol@example.test",
  ]
  data = ["mail", "sieve"]
}

wave "pilot" {
  accounts     = ["alice@example.test"]
  max_parallel = 1
}

wave "everyone" {
  accounts          = ["bob@example.test", "carol@example.test"]
  after             = [wave.pilot]
  max_parallel      = 2
  catchup_threshold = 50
}

proxy {
  listen {
    imap        = "127.0.0.1:21000"
    pop3        = "127.0.0.1:21002"
    lmtp        = "127.0.0.1:21004"
    managesieve = "127.0.0.1:21005"
    submission  = "127.0.0.1:21006"
    smtp        = "127.0.0.1:21007"
    http        = "127.0.0.1:21008"
  }
  public_origin = "http://127.0.0.1:21008"
  hold_logins   = "30s"
}
