# The plan of the CI example (examples/ci/mailmig.yml). The state lives on
# the runner that keeps the archives, outside the checkout.

variable "state_dir" {
  description = "Directory on the runner for the journal, routes and archives"
  default     = "/var/lib/mailmig"
}

state {
  path = "${var.state_dir}/state"
}

routes {
  sqlite = "${var.state_dir}/state/routes.db"
}

backend "legacy" {
  imap {
    address = "imap.old.example.test:993"
    tls     = "implicit"
  }
  login = "master"
  master {
    user     = "migrator"
    password = env("LEGACY_MASTER_PASSWORD")
  }
}

backend "stalwart" {
  jmap {
    url = "https://mail.example.test/.well-known/jmap"
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.stalwart
  list = ["alice@example.test", "bob@example.test", "carol@example.test"]
  data = ["mail"]
}

wave "pilot" {
  accounts = ["alice@example.test"]
}

wave "everyone" {
  accounts       = ["bob@example.test", "carol@example.test"]
  after          = [wave.pilot]
  cutover_window = "22:00-05:00 Europe/Berlin"
  canary         = 1
}
