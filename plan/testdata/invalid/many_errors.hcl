backend "legacy" {
  imap {
    address = "127.0.0.1"
    tls     = "tls"
  }
  login = "master"
}

backend "target" {
  jmap {
    url = "http://127.0.0.1:20038/.well-known/jmap"
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.targt
  list = ["alice@example.test", "bob"]
}

wave "all" {
  accounts       = accounts.staff
  cutover_window = "22:00-05:00 Mars/Olympus"
  after          = [wave.none]
}
