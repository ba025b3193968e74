backend "legacy" {
  imap {
    address = "127.0.0.1:20000"
    tls     = "none"
  }
  limits {
    breaker_failures = -1
  }
  timeouts {
    connect         = "0s"
    response_header = "soon"
    forever         = "1h"
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
  list = ["alice@example.test"]
}

wave "all" {
  accounts = accounts.staff
}
