# Non-IMAP sources: a Maildir tree on disk, Google Takeout exports and a
# Microsoft 365 tenant, all moving onto one JMAP server.
#
#   export GRAPH_CLIENT_SECRET=...
#   mailmig -f examples/sources validate

backend "maildir" {
  maildir {
    path = "/srv/vmail/%d/%n/Maildir"
  }
}

backend "takeout" {
  takeout {
    path = "takeout/%u"
  }
}

backend "m365" {
  exchange {
    tenant        = "contoso.example.test"
    client_id     = "11111111-2222-3333-4444-555555555555"
    client_secret = env("GRAPH_CLIENT_SECRET")
  }
  limits {
    connections         = 4
    messages_per_second = 50
  }
}

backend "stalwart" {
  jmap {
    url = "https://mail.example.test/.well-known/jmap"
  }
  caldav {
    url = "https://mail.example.test/dav/cal/"
  }
  carddav {
    url = "https://mail.example.test/dav/card/"
  }
  webdav {
    url = "https://mail.example.test/dav/file/"
  }
}

accounts "old-server" {
  from = backend.maildir
  to   = backend.stalwart
  list = ["root@example.test", "info@example.test"]
}

accounts "gmail" {
  from = backend.takeout
  to   = backend.stalwart
  list = ["alice@example.test"]
  data = ["mail", "calendars", "contacts", "files"]

  account "alice@example.test" {
    source_login = "alice.gmail"
  }
}

accounts "office" {
  from = backend.m365
  to   = backend.stalwart
  list = ["bob@example.test", "carol@example.test"]
  data = ["mail", "calendars", "contacts"]
}

wave "files" {
  accounts = [accounts.old-server, accounts.gmail]
}

wave "office" {
  accounts       = accounts.office
  after          = [wave.files]
  cutover_window = "18:00-23:00 America/New_York"
}
