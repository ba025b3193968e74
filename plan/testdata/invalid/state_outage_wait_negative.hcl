state {
  outage_wait = "-5s"
}

routes {
  postgres = "postgres://mailmig@db.example.net/mailmig"
  lease    = "100ms"
}

backend "legacy" {
  imap {
    address = "127.0.0.1:20000"
    tls     = "none"
  }
}

backend "target" {
  jmap {
    url = "http://127.0.0.1:20038/.well-known/jmap"
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.target
  list = ["alice@example.test", "bob@example.test"]
}

wave "all" {
  accounts = accounts.staff
}
