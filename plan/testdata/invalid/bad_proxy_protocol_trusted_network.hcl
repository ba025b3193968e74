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

proxy {
  accept_proxy_protocol           = true
  proxy_protocol_trusted_networks = ["10.0.0.0/8", "10.1.2.3/8", "192.0.2.300", "2001:db8::/129", "fe80::1%eth0", "lb.example.test", "0.0.0.0/0"]
  proxy_protocol_untrusted        = "ignore"

  listen {
    imap = "127.0.0.1:21000"
  }
}
