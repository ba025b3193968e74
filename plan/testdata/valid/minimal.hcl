# The smallest useful plan: every other setting has its default.
backend "old" {
  imap {
    address = "imap.old.example.test:993"
  }
}

backend "new" {
  jmap {
    url = "https://mail.new.example.test/.well-known/jmap"
  }
}

accounts "all" {
  from = backend.old
  to   = backend.new
  list = ["alice@example.test"]
}

wave "only" {
  accounts = accounts.all
}
