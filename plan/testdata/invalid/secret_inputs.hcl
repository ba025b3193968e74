# Values from env(), file() and csv() used where they do not belong: the
# diagnostics must say what is wrong without showing the values (the
# secret's marker is SECRET-4711; TestNoSecretsInDiagnostics looks for it).
variable "token" {
  default = env("CI_DEPLOY_TOKEN")
}

backend "legacy" {
  imap {
    address = env("CI_DEPLOY_TOKEN")
    tls     = lower(file("secret_inputs.key"))
  }
  pop3 {
    address = "${var.token}.example.test:110"
  }
  managesieve {
    address = trimspace(file("secret_inputs.key"))
  }
  login = var.token
}

backend "target" {
  jmap {
    url = "https://${env("CI_DEPLOY_TOKEN")}@/.well-known/jmap"
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.target
  list = [env("CI_DEPLOY_TOKEN"), "${var.token}@example.test", csv("secret_inputs.key")]
}

wave "all" {
  accounts = accounts.staff
}
