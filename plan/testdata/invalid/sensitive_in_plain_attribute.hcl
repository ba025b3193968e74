variable "token" {
  sensitive = true
  default   = "s3cret-token"
}

backend "legacy" {
  imap {
    address = "${var.token}.example.test:993"
  }
  login = "master"
  master {
    user     = "admin"
    password = var.token
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
