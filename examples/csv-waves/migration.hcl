# A production-shaped plan: a Dovecot cluster behind TLS moves to Stalwart.
# Accounts come from a CSV export; waves run at night in Berlin, a pilot
# first, then two departments with canaries.
#
#   export LEGACY_MASTER_PASSWORD=...
#   mailmig -f examples/csv-waves -var legacy_host=imap.old.example.test validate

variable "legacy_host" {
  description = "Host name of the legacy Dovecot cluster"
  default     = "imap.old.example.test"
}

variable "stalwart_origin" {
  description = "Origin of the new Stalwart server"
  default     = "https://mail.example.test"
}

state {
  path = "state/"
}

routes {
  sqlite = "state/routes.db"
}

backend "legacy" {
  imap {
    address = "${var.legacy_host}:993"
    tls     = "implicit"
  }
  pop3 {
    address = "${var.legacy_host}:995"
    tls     = "implicit"
  }
  managesieve {
    address = "${var.legacy_host}:4190"
    tls     = "starttls"
  }
  lmtp {
    address        = "${var.legacy_host}:24"
    proxy_protocol = "v2"
  }
  submission {
    address = "${var.legacy_host}:587"
    tls     = "starttls"
  }
  caldav {
    url = "https://dav.old.example.test/"
  }
  carddav {
    url = "https://dav.old.example.test/"
  }

  login = "master"
  master {
    user     = "migrator"
    password = env("LEGACY_MASTER_PASSWORD")
  }

  limits {
    connections         = 16
    messages_per_second = 400
    bytes_per_second    = "40MiB"
  }
}

backend "stalwart" {
  jmap {
    url = "${var.stalwart_origin}/.well-known/jmap"
  }
  imap {
    address = "mail.example.test:993"
    tls     = "implicit"
  }
  lmtp {
    address = "mail.example.test:24"
  }

  limits {
    connections      = 32
    bytes_per_second = "100MiB"
  }
}

accounts "pilot" {
  from = backend.legacy
  to   = backend.stalwart
  list = ["it-team@example.test", "postmaster@example.test"]
}

accounts "sales" {
  from = backend.legacy
  to   = backend.stalwart
  list = csv("sales.csv")
  data = ["mail", "sieve", "calendars", "contacts"]
}

accounts "engineering" {
  from = backend.legacy
  to   = backend.stalwart
  list = csv("engineering.csv")

  # A mailbox too large to stage with the others keeps only its mail.
  account "archive@example.test" {
    data = ["mail"]
  }
}

wave "pilot" {
  accounts       = accounts.pilot
  not_before     = "2026-12-01T22:00:00+01:00"
  cutover_window = "22:00-05:00 Europe/Berlin"
  max_parallel   = 2
}

wave "sales" {
  accounts          = accounts.sales
  after             = [wave.pilot]
  cutover_window    = "22:00-05:00 Europe/Berlin"
  canary            = 1
  max_parallel      = 4
  catchup_threshold = 50
  max_errors        = 1
}

wave "engineering" {
  accounts                = accounts.engineering
  after                   = [wave.pilot]
  cutover_window          = "20:00-06:00 Europe/Berlin"
  canary                  = 2
  max_parallel            = 8
  catchup_threshold_bytes = "5MiB"
}

proxy {
  listen {
    imaps       = ":993"
    imap        = ":143"
    pop3s       = ":995"
    managesieve = ":4190"
    submission  = ":587"
    smtp        = ":25"
    https       = ":443"
  }
  tls {
    cert = "/etc/mailmig/tls/fullchain.pem"
    key  = "/etc/mailmig/tls/privkey.pem"
  }
  public_origin = "https://mail.example.test"
  hold_logins   = "20s"
}
