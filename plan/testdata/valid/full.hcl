# Every block and attribute of the plan language, with non-default values.
variable "domain" {
  description = "Mail domain of the migrated accounts"
  default     = "example.test"
}

variable "legacy_host" {
  default = "127.0.0.1"
}

variable "graph_secret" {
  sensitive = true
  default   = "from-default"
}

state {
  path         = "var/state"
  postgres     = "postgres://mailmig@db.example.net:5432/mailmig_state"
  password_ref = "file:secret.txt"
}

routes {
  sqlite = "var/routes.db"
}

backend "legacy" {
  proxy_protocol = "v2"

  imap {
    address              = "${var.legacy_host}:993"
    tls                  = "implicit"
    ca_file              = "ca.pem"
    insecure_skip_verify = false
    server_name          = "imap.example.test"
  }
  pop3 {
    address        = "${var.legacy_host}:995"
    tls            = "implicit"
    proxy_protocol = "none"
  }
  managesieve {
    address = "${var.legacy_host}:4190"
  }
  smtp {
    address = "${var.legacy_host}:25"
  }
  submission {
    address = "${var.legacy_host}:587"
    tls     = "starttls"
  }
  lmtp {
    address = "${var.legacy_host}:24"
  }
  caldav {
    url = "https://dav.example.test/calendars/"
  }
  carddav {
    url = "https://dav.example.test/addressbooks/"
  }
  webdav {
    url                  = "https://files.example.test/"
    insecure_skip_verify = true
  }

  login = "master"
  master {
    user     = "admin"
    password = env("LEGACY_MASTER_PASSWORD")
  }

  limits {
    connections         = 16
    messages_per_second = 250.5
    bytes_per_second    = "40MiB/s"
    breaker_failures    = 5
  }
  timeouts {
    connect         = "5s"
    tls_handshake   = "5s"
    response_header = "2m"
    idle            = "10m"
  }
}

backend "files" {
  maildir {
    path = "/var/vmail/%d/%n/Maildir"
  }
  takeout {
    path = "takeout/%u"
  }
}

backend "m365" {
  exchange {
    tenant        = "contoso.example.test"
    client_id     = "00000000-0000-0000-0000-000000000000"
    client_secret = var.graph_secret
  }
}

backend "ews" {
  exchange {
    api = "ews"
    url = "https://exchange.example.test/EWS/Exchange.asmx"
  }
}

backend "stalwart" {
  jmap {
    url     = "https://mail.example.test/.well-known/jmap"
    ca_file = "/etc/ssl/ca.pem"
  }
  imap {
    address = "mail.example.test:993"
    tls     = "implicit"
  }
  login = "passthrough"
}

accounts "staff" {
  from = backend.legacy
  to   = backend.stalwart
  list = [
    "alice@${var.domain}",
    "bob@${var.domain}",
    { address = "carol@example.test", source_login = "carol", target_login = "carol@new.example.test" },
  ]
  data = ["mail", "sieve", "calendars", "contacts", "files"]

  account "bob@example.test" {
    source_login = "bob.legacy"
    password     = env("ALICE_PASSWORD")
    data         = ["mail"]
  }
}

accounts "imported" {
  from = backend.legacy
  to   = backend.stalwart
  list = csv("accounts.csv")
}

accounts "archive" {
  from = backend.files
  to   = backend.stalwart
  list = ["grace@example.test"]
}

wave "pilot" {
  accounts                = ["alice@example.test"]
  not_before              = "2026-12-01T22:00:00+01:00"
  cutover_window          = "22:00-05:00 Europe/Berlin"
  max_parallel            = 1
  canary                  = 1
  catchup_threshold       = 20
  catchup_threshold_bytes = "1MiB"
  max_errors              = 0
  max_verify_mismatches   = 0
}

# Declared before "staff" on purpose: the model lists waves in dependency
# order.
wave "rest" {
  accounts = [accounts.imported, "grace@example.test"]
  after    = [wave.staff]
}

wave "staff" {
  accounts       = ["bob@example.test", "carol@example.test"]
  after          = [wave.pilot]
  cutover_window = "01:00-24:00 America/New_York"
  max_parallel   = 8
  max_errors     = 2
}

proxy {
  listen {
    imap        = ":143"
    imaps       = ":993"
    pop3        = ":110"
    pop3s       = ":995"
    managesieve = ":4190"
    submission  = ":587"
    submissions = ":465"
    smtp        = ":25"
    lmtp        = "127.0.0.1:24"
    http        = ":80"
    https       = ":443"
  }
  # The first certificate is the default; the second is served to
  # clients that ask for imap.example.test (SNI).
  tls {
    cert = "tls/mail.example.test.pem"
    key  = "tls/mail.example.test.key"
  }
  tls {
    cert = "tls/imap.example.test.pem"
    key  = "tls/imap.example.test.key"
  }
  public_origin                   = "https://mail.example.test"
  hold_logins                     = "10s"
  pre_auth_timeout                = "30s"
  idle_timeout                    = "1h"
  max_connections                 = 5000
  accept_proxy_protocol           = true
  proxy_protocol_trusted_networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.10"]
  proxy_protocol_untrusted        = "plain"
  default_backend                 = backend.legacy
  domains                         = ["example.test", "Example.ORG", "example.test"]
  admin_token_ref                 = "file:secret.txt"
}
