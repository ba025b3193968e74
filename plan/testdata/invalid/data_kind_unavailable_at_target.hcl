backend "legacy" {
  imap {
    address = "127.0.0.1:20000"
    tls     = "none"
  }
  managesieve {
    address = "127.0.0.1:20005"
  }
}

backend "target" {
  imap {
    address = "127.0.0.1:20030"
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.target
  list = ["alice@example.test", "bob@example.test"]
  data = ["mail", "sieve"]
}

wave "all" {
  accounts = accounts.staff
}
