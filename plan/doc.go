// Package plan parses and validates mailmig's migration plan, an HCL file
// (or a directory of *.hcl files) that says which accounts move from which
// backend to which, in which waves, and how the proxy listens. The result is
// a typed, read-only [Migration]; nothing outside this package touches HCL
// types, and this package imports none of mailmig's own packages.
//
// Entry points are [Load] (a file or a directory), [LoadFile], [LoadDir] and
// [Parse] (bytes). They return a best-effort *Migration and hcl.Diagnostics:
// every problem found, not just the first, each with a source range
// (file:line:col), a short Summary and a Detail that says how to fix it.
// Options: [WithEnv] or [WithLookupEnv] replace the process environment
// (tests), [WithBaseDir] sets the directory for relative paths, and
// [WithVariables] sets variables as -var does.
//
// docs/plan.md is generated from this comment (`just update-golden`), and a
// test checks that every attribute of the schema is documented here.
//
// # Files and evaluation
//
// A plan is one file, or every *.hcl file of a directory (in name order);
// blocks may be spread over the files in any way and may refer to each
// other in any order. Relative paths (state, routes, file(), csv(),
// password files, certificates, maildir and takeout paths) are resolved
// against the plan's directory.
//
// Values are HCL expressions. A value attribute may use literals, string
// templates ("${var.domain}"), var.NAME references and these functions:
//
//   - env("NAME") — the value of an environment variable; an unset or empty
//     variable is an error, never an empty string.
//   - file("path") — the contents of a file, exactly (use trimspace() to
//     drop a trailing newline).
//   - csv("path") — the rows of an accounts file; see the accounts block.
//   - trimspace, trimprefix, trimsuffix, lower, upper, format, join,
//     concat, coalesce — as in Terraform.
//
// References to blocks are written without quotes and are allowed only
// where they mean something: backend.NAME in from and to, wave.NAME in
// after, accounts.NAME in a wave's accounts.
//
// Secrets (master passwords, account passwords, client secrets, sensitive
// variables) are held as [Secret], which prints as "(sensitive)" through
// fmt, JSON, text marshalling and slog. Only [Secret.Reveal] returns the
// value.
//
// Values that come from outside the plan's text — env(), file(), csv()
// used in an expression, and variable values given by -var or
// MAILMIG_VAR_NAME — may be used in any attribute, but no diagnostic shows
// them: a CI job that validates plans from pull requests must not copy its
// secrets into its log. They carry a mark through templates and functions
// (as Terraform's sensitive values do), and a diagnostic about an
// expression that used one prints "(sensitive)" in place of the value and
// of every quoted part of it (in the text, in validate -json, and the
// snippet shows the plan's source line, never the value). Values read by
// env() or file() (or given by -var) of 6 bytes or more are also blotted
// out of every other diagnostic, and out of every output of the commands
// for the loaded plan: [Migration.InputValues] lists them (with their
// trimmed forms, for trimspace(file(...))), and mailmig replaces them,
// as is or escaped, in what plan (human, -json, -markdown), apply, show,
// state, journal, routes and the proxy's log print, in the file of
// plan -out and in the journal's error texts. An account address built
// from env() is thus shown as (sensitive)@example.org, and apply refuses a
// saved changes file naming it (apply without the file). Shorter values
// (a port, "none") and values computed from inputs (lower(env("X"))) are
// not hidden there. Account rows streamed by list = csv("file") are account
// data, shown like a literal list; a file whose first row is not an
// accounts header is not shown at all (its unknown columns are named only
// when they are near misses or common aliases such as "login").
//
// # Limits
//
// mailmig treats a plan as untrusted input: a broken or hostile
// file gets a diagnostic at file:line:col, never a crash or a runaway
// allocation. HCL's parser recurses once per level of nesting, and a stack
// overflow kills the process, so a cheap scan (aware of strings,
// interpolations, heredocs and comments) checks each file before HCL sees
// it ([CheckSource]; mailmig fmt and the diagnostics view call it too).
//
//   - [MaxNestingDepth] (100) levels of brackets, braces, parentheses,
//     strings and interpolations in a plan file; real plans nest about 6.
//   - [MaxExprOperators] (1000) operators in one expression (a chain of
//     them is evaluated by recursion too).
//   - [MaxStringEscapes] (1000) escapes such as \n or $${ in one string
//     or heredoc (HCL joins the pieces between them in quadratic time).
//   - [MaxPlanFileSize] (8 MiB) a plan file: about 270,000 accounts listed
//     inline. HCL holds a file as tokens and a syntax tree of about 70
//     times its size, so long account lists belong in csv().
//   - [MaxCSVFileSize] (256 MiB) a file read by csv(): a million accounts
//     with every column filled. list = csv("file") is streamed from the
//     file into the accounts without building HCL values: a million
//     accounts take about 0.5 GB to validate.
//   - [MaxFileSize] (4 MiB) a file read by file(), a password file, a
//     certificate or key.
//   - Host names in addresses and URLs: at most 253 bytes, labels of at
//     most 63 (RFC 1035); URLs at most 2048 bytes; account addresses at
//     most 64 bytes before the @ and 253 after. A bad value is quoted back
//     in at most 128 bytes.
//
// # variable "NAME"
//
// Declares a variable, referenced as var.NAME. Its value comes from, in
// order of precedence: the -var NAME=VALUE flag, the environment variable
// MAILMIG_VAR_NAME, the default. A variable without a value is an error.
// Values given as strings are converted to the default's type (number,
// bool, or a comma-separated list).
//
//   - default — any value; may call functions but not refer to other
//     variables. Default: none (a value must then be given).
//   - description — documentation. Default: "".
//   - sensitive — true makes the value a [Secret] in the model. Default: false.
//
// # state
//
// Where the journal, snapshots and the apply lock live. At most one block.
//
//   - path — the state directory. Default: "state/". With postgres it
//     keeps only what stays on the machine doing the copying (the
//     accounts' archives and logs).
//   - postgres — a PostgreSQL connection string (a postgres:// URL or
//     key=value pairs): the journal, its snapshot and the apply lock live
//     in that database, shared by every machine that runs mailmig with the
//     plan (a CI runner that is thrown away after each job included).
//     Default: none (local files under path).
//   - password_ref — the database password as "env:NAME" or "file:PATH",
//     kept out of the connection string. Default: none.
//   - outage_wait — how long an apply waits for PostgreSQL (this block's
//     database or the routes block's) when it goes away: journal records,
//     route writes and the proxies' barrier retry with a backoff, and the
//     apply lock is taken again on a new session if nobody else took it or
//     wrote the journal meanwhile. "0s" stops at once. Default: "60s".
//
// # routes
//
// Where the proxy's route table lives. At most one block.
//
//   - sqlite — the SQLite file of the route table. Default: "state/routes.db"
//     (inside the state path).
//   - postgres — a PostgreSQL connection string: the route table lives in
//     that database, shared by a fleet of proxies, which follow changes
//     through LISTEN/NOTIFY and acknowledge each one; a cut-over then waits
//     for every live proxy instead of a fixed settle delay. Default: none
//     (sqlite). Not together with sqlite.
//   - password_ref — the database password as "env:NAME" or "file:PATH".
//     Default: none.
//   - lease — how long a proxy counts as alive after its last heartbeat,
//     and how long it may lose the database before it refuses frozen,
//     changing and pending accounts with temporary errors. Default: "10s".
//   - barrier_timeout — how long a freeze waits for every proxy's
//     acknowledgement (a proxy out of contact only when it never saw the
//     account's pending mark) before the cut-over rolls the account back.
//     Default: "30s".
//
// # backend "NAME"
//
// A mail system: where accounts live now, or where they move to. It has one
// block per protocol it speaks (at least one), and each block kind at most
// once.
//
//   - login — how mailmig and the proxy log in for a user: "passthrough"
//     (replay the user's own credentials) or "master" (use the master block;
//     Dovecot "user*master", SASL authorization identity). Default:
//     "passthrough". login = "master" without a master block is an error; a
//     master block with passthrough is a warning.
//   - proxy_protocol — "none", "v1" or "v2": send a HAProxy PROXY protocol
//     header carrying the real client address on mail protocol connections.
//     Endpoint blocks may override it. Default: "none".
//
// Mail protocol endpoints — imap, pop3, managesieve, smtp, submission,
// lmtp — each take:
//
//   - address — host:port. Required.
//   - tls — "implicit" (TLS from the first byte, as on 993), "starttls"
//     (upgrade a plain connection) or "none" (plain text, for loopback and
//     trusted networks). Default: "starttls"; "none" for lmtp.
//   - ca_file — PEM file of CAs to trust instead of the system roots.
//     Default: system roots.
//   - insecure_skip_verify — do not verify the server certificate.
//     Default: false.
//   - server_name — TLS server name. Default: the host of address.
//   - proxy_protocol — as on the backend. Default: the backend's setting.
//
// HTTP endpoints — jmap (the session URL, usually
// https://host/.well-known/jmap), caldav, carddav, webdav — each take:
//
//   - url — absolute http or https URL. Required. TLS follows the scheme.
//   - ca_file, insecure_skip_verify, server_name — as above.
//
// File sources:
//
//   - maildir { path } — the Maildir++ directory of an account. Required. In
//     the path, %u is replaced by the source login, %d by the domain and %n
//     by the local part of the address.
//   - takeout { path } — an unpacked Google Takeout directory (or .zip or
//     .tgz) per account, with the same replacements. Required.
//
// Microsoft Exchange:
//
//   - exchange — with api = "graph" (Microsoft 365, the default): tenant,
//     client_id and client_secret (an app registration with application
//     permissions), all required; url defaults to
//     https://graph.microsoft.com/v1.0 and authority (the login endpoint
//     of the tokens) to https://login.microsoftonline.com; national clouds
//     set both. app_rate (requests per second, default 100) is the
//     budget every mailbox of the app registration shares in one apply,
//     on top of Microsoft's 4 requests in flight per mailbox. With api =
//     "ews" (on-premises):
//     url (the EWS endpoint, https://host/EWS/Exchange.asmx) is required,
//     and the backend's login and master block give the credentials,
//     sent with NTLM or Basic as the server offers (auth = "ntlm" or
//     "basic" forces one).
//     ca_file and insecure_skip_verify as above.
//
// Blocks of a backend that are not endpoints:
//
//   - master { user, password } — master credentials for login = "master".
//     Both required; write the password as env("...") or file("..."), never
//     inline in a committed plan.
//   - limits { connections, messages_per_second, bytes_per_second } — limits
//     shared by every worker that talks to the backend. connections: most
//     simultaneous connections, at least 1, default 8.
//     messages_per_second: a number, default 0 (unlimited).
//     bytes_per_second: a number of bytes or a string with a unit — B, kB,
//     MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024),
//     optionally followed by "/s", for example "40MiB" — default 0
//     (unlimited). breaker_failures: how many consecutive connection
//     failures or timeouts (counted per backend, over every account) open
//     the backend's circuit breaker, default 3, 0 never opens it. An open
//     circuit stops apply from starting more work on the backend (running
//     work finishes), halts the wave with the backend's last error, and
//     is journaled; the next apply probes the backend once and dispatches
//     to it only when the probe succeeds.
//   - timeouts { connect, tls_handshake, response_header, idle } — bounds
//     on each network step of talking to the backend, each a duration
//     such as "30s". connect: the TCP connection, default "15s".
//     tls_handshake: the TLS handshake, default "10s". response_header:
//     the wait for the server's first reply (an HTTP response's header,
//     an IMAP or POP3 greeting), default "60s". idle: how long a
//     connection may receive nothing while a reply is awaited, default
//     "5m". A timeout counts as a failure for breaker_failures. The
//     proxy's connections to the backend follow connect, tls_handshake
//     and response_header (as the wait for an IMAP, POP3 or ManageSieve
//     greeting) too, inside its 30 s bound on a whole backend login.
//
// Which data kinds a backend can hold follows from its endpoints (see
// [Backend.Provides]): mail from imap, pop3, jmap, maildir, takeout or
// exchange; sieve from managesieve or jmap; calendars from caldav, jmap,
// takeout or exchange; contacts from carddav, jmap, takeout or exchange;
// files from webdav, jmap or takeout.
//
// # accounts "NAME"
//
// A group of accounts that move from one backend to another.
//
//   - from — the source, backend.NAME. Required.
//   - to — the target, backend.NAME. Required; must differ from from.
//   - list — the accounts. Required. A list whose elements are address
//     strings, objects { address, source_login, target_login, password_ref },
//     or lists of those, such as the result of csv("accounts.csv"); for
//     example list = concat(["alice@example.org"], csv("more.csv")).
//   - data — the data kinds to migrate: any of "mail", "sieve",
//     "calendars", "contacts", "files". Each must be available at both
//     backends. Default: every kind both backends can hold.
//
// An address is a bare e-mail address (alice@example.org); it identifies
// the account everywhere (journal, routes, archives) and must be unique in
// the plan, compared case-insensitively (its key is the address in lower
// case without surrounding white space, the same key in the plan, the
// journal and the route table).
//
// csv("path") reads an accounts file. Its first row names the columns, in
// any order: address (required), source_login, target_login, password_ref.
// Lines starting with # are comments; an empty field means the default.
// A malformed row is reported at file:row, and the other rows still load
// (the plan fails all the same). A quote opened and not closed on its row
// is reported at the row where it opened: every row up to where the CSV
// reader gave up was read as one field, and none of them loads.
//
//	address,source_login,target_login,password_ref
//	alice@example.org,alice,,env:ALICE_PASSWORD
//	bob@example.org,bob,robert@example.org,file:secrets/bob
//
// A password_ref is "env:NAME" (an environment variable) or "file:PATH" (a
// file; one trailing newline is removed). Accounts without one log in
// through the backends' master credentials.
//
// An account "ADDRESS" block inside an accounts block overrides settings
// for one listed account:
//
//   - source_login — login name on the source. Default: the address.
//   - target_login — login name on the target. Default: the address.
//   - password — the account's password, a [Secret] (env() or file()).
//   - password_ref — as in the CSV file; not together with password.
//   - data — data kinds for this account. Default: the group's.
//   - from, to — other backends for this account. Default: the group's.
//
// # wave "NAME"
//
// A set of accounts that cut over together. Staging and catch-up run at any
// time; a wave's cut-overs happen only inside its cutover_window, after
// not_before, and after every wave in after is done. Every account should
// be in exactly one wave: an account in two waves is an error, an account
// in none a warning (it is staged and kept caught up, never cut over).
// [Migration.Waves] lists the waves in dependency order.
//
//   - accounts — accounts.NAME (a whole group), or a list of addresses and
//     accounts.NAME references. Required.
//   - after — waves that must be done first, [wave.NAME, ...]. Cycles are
//     an error. Default: [].
//   - not_before — earliest cut-over, an RFC 3339 time such as
//     "2026-12-01T22:00:00+01:00". Default: none.
//   - cutover_window — a daily window "HH:MM-HH:MM Zone" with an IANA time
//     zone, such as "22:00-05:00 Europe/Berlin"; an end at or before the
//     start crosses midnight, 24:00 is allowed as an end, and the window
//     follows the wall clock across DST changes. Default: any time.
//   - max_parallel — accounts worked on at once, at least 1. Default: 4.
//   - canary — number of accounts that cut over first; the rest wait until
//     they are done. Default: 0 (no canary).
//   - catchup_threshold — a cut-over starts only when the last catch-up
//     pass copied at most this many messages. Default: 100.
//   - catchup_threshold_bytes — the same limit in bytes (units as for
//     bytes_per_second). Default: "10MiB".
//   - max_errors — failed cut-overs tolerated before the wave halts: a
//     cut-over that fails or rolls back counts, a failed import, export or
//     catch-up (staging) does not, because it changes nothing the users
//     see and the next apply retries it. A backend that keeps failing is
//     stopped by its circuit breaker instead (limits.breaker_failures).
//     Default: 0.
//   - max_verify_mismatches — verify mismatches tolerated before the wave
//     halts. Default: 0.
//
// # proxy
//
// How `mailmig proxy` listens. At most one block.
//
//   - listen — one attribute per protocol, each "[host]:port" (an empty
//     host means every address): imap, imaps, pop3, pop3s, managesieve,
//     submission, submissions, smtp, lmtp, http, https. The names ending in
//     s speak implicit TLS. Required, with at least one protocol; two
//     protocols may not share an address.
//   - tls { cert, key } — a PEM certificate chain (the server's own
//     certificate first) and its private key for implicit TLS and
//     STARTTLS; both required. Repeatable, for several host names: each
//     connection gets the certificate that covers the name the client
//     asks for (SNI), and the first block is the default for clients that
//     send no name or one no certificate covers. At least one is required
//     when an implicit TLS listener is declared. SIGHUP reloads every
//     file. `mailmig proxy` reads the files when it loads the plan and
//     reports, at the attribute, a file it cannot read, one without a PEM
//     certificate or key, and a key that does not belong to its
//     certificate (and warns about an expired certificate); other
//     commands leave them alone, since the machine that plans and applies
//     a migration need not hold the proxy's keys.
//   - public_origin — scheme://host[:port] that clients use for HTTP; JMAP
//     session URLs and DAV redirects are rewritten to it. Default: derived
//     from the https or http listener.
//   - hold_logins — how long a login for a frozen account is held before
//     it is refused temporarily, a duration such as "30s". Default: "30s".
//   - pre_auth_timeout — time a client has to authenticate, however slowly
//     it sends; on SMTP and LMTP, time until a backend accepted the first
//     recipient. Default: "60s".
//   - auth_failure_delay — the least time a failed login takes, on every
//     protocol and whatever the cause (unknown account, wrong password,
//     backend without the protocol or unreachable), so that the time of
//     the answer does not tell accounts apart (Dovecot's
//     auth_failure_delay). Failures also wait as long as the slowest
//     backend refusal of the last 10 minutes (at most 10s). "0s" turns
//     the fixed part off. Default: "2s".
//   - idle_timeout — sessions in which nothing moved for this long are
//     closed, on every listener (SMTP, submission and LMTP answer 421
//     first). Longer than zero. Default: not set, and then each protocol
//     keeps its own: "30m" for IMAP, POP3, ManageSieve and HTTP (RFC 9051
//     5.4), "5m" for SMTP, submission and LMTP (RFC 5321 4.5.3.2.7). Only
//     a value written in the plan applies to the SMTP family.
//   - max_connections — most client connections, at least 1. Default: 10000.
//   - accept_proxy_protocol — expect a HAProxy PROXY protocol header (v1
//     or v2) from a load balancer in front of the proxy, on every
//     listener; the client address it names is the one the per-address
//     limits count and the backends are told. Requires
//     proxy_protocol_trusted_networks. Default: false.
//   - proxy_protocol_trusted_networks — the load balancers: a list of
//     addresses and networks in CIDR notation, such as ["10.0.0.0/8",
//     "2001:db8::/32", "192.0.2.10"] (host bits must be zero). A
//     connection from them must start with the header, within 5 s; a
//     header is never read from anyone else, since it could claim any
//     address (HAProxy and Dovecot's haproxy_trusted_networks work the
//     same way). Required with accept_proxy_protocol.
//   - proxy_protocol_untrusted — what happens to a connection from outside
//     the trusted networks when accept_proxy_protocol is set: "refuse"
//     closes it before reading or writing anything; "plain" serves it as a
//     direct client with its own address and reads no header (a header it
//     sends is a bad command). Default: "refuse", since such a listener is
//     meant to be reached through the load balancer only.
//   - default_backend — the backend of logins and recipients that the
//     route table does not know, a reference such as backend.legacy.
//     `mailmig proxy` writes it into the route table at start (`mailmig
//     routes default` changes it while the proxy runs; the next start sets
//     the plan's value again). Default: not set, and the table's own
//     default, if any, stays. Without one, a proxy whose route table is
//     empty refuses every login and bounces every message, and warns so
//     at start.
//   - domains — the domains the proxy accepts inbound mail for (SMTP and
//     LMTP relay control), a list such as ["example.org"]; the domains of
//     the accounts in the route table are accepted anyway. `mailmig proxy`
//     adds them to the route table at start and removes none (`mailmig
//     routes domain rm` does). Default: none.
//   - admin_token_ref — the bearer token of the route-mapping API on the
//     admin listener (`mailmig proxy -admin ADDR`: look up, set and delete
//     a mapping, statistics; docs/fleet.md), as "env:NAME" or "file:PATH".
//     Requests without it are refused with 401. Default: none, and the API
//     is off (only /healthz, /metrics and /fleet are served).
//
// # Example
//
//	backend "legacy" {
//	  imap {
//	    address = "mail.old.example:993"
//	    tls     = "implicit"
//	  }
//	  login = "master"
//	  master {
//	    user     = "migrator"
//	    password = env("LEGACY_MASTER_PASSWORD")
//	  }
//	  limits {
//	    connections      = 8
//	    bytes_per_second = "40MiB"
//	  }
//	}
//
//	backend "stalwart" {
//	  jmap {
//	    url = "https://mail.new.example/.well-known/jmap"
//	  }
//	}
//
//	accounts "pilot" {
//	  from = backend.legacy
//	  to   = backend.stalwart
//	  list = ["alice@example.org"]
//	}
//
//	accounts "staff" {
//	  from = backend.legacy
//	  to   = backend.stalwart
//	  list = csv("staff.csv")
//	}
//
//	wave "pilot" {
//	  accounts       = accounts.pilot
//	  cutover_window = "22:00-05:00 Europe/Berlin"
//	}
//
//	wave "everyone" {
//	  accounts = accounts.staff
//	  after    = [wave.pilot]
//	}
//
// More complete plans are in examples/ (quickstart, csv-waves, sources) and
// plan/testdata/valid (full.hcl uses every attribute).
//
// # Checks
//
// `mailmig validate` loads the plan and reports every problem at once, each
// at its file:line:col with the source line underlined; errors go to
// standard error, warnings to standard output, and -json prints the same
// diagnostics for tools. The checks, by kind:
//
//   - Syntax: HCL syntax errors stop the load (later checks would be noise),
//     as do the limits on size and nesting (see Limits).
//   - Schema: unknown attributes and blocks (with "Did you mean"), missing
//     required attributes, duplicate singleton blocks (state, routes, proxy,
//     an endpoint kind, listen), wrong value types, numbers out of
//     range or not whole.
//   - Names and references: duplicate backends, accounts blocks, waves,
//     variables and accounts (addresses compared case-insensitively);
//     undefined backends, accounts blocks, waves, accounts and variables;
//     references that are not allowed where they are written; names that
//     cannot be referenced.
//   - Values: addresses that are not e-mail addresses, host:port addresses
//     and listen addresses that do not parse or whose host is too long
//     (RFC 1035), URLs and the public origin,
//     TLS modes, login modes, PROXY protocol versions, Exchange APIs, byte
//     sizes and units, durations, RFC 3339 times, cut-over windows and IANA
//     time zones, data kinds (and whether both backends can hold them).
//   - Secrets and inputs: unset environment variables (env() and env:
//     password references; behind a secret only a warning for the
//     commands that log in nowhere, see [WithSecretsDeferred]), unreadable files, malformed password
//     references, variables without a value, sensitive variables used in
//     plain attributes, login = "master" without a master block, Exchange
//     without credentials, TLS listeners without a certificate.
//   - Proxy certificates (`mailmig proxy` only, see the proxy block):
//     unreadable cert or key files, files without a PEM certificate or
//     key, a key that does not belong to its certificate; an expired
//     certificate (warning).
//   - CSV files: missing or unknown columns, rows with the wrong number of
//     fields, broken quoting (at the row where the quote opened) and empty
//     addresses, each at file:row.
//   - Waves: an account in two waves (error) or in none (warning), cycles
//     in after, a canary larger than its wave (warning).
//   - Warnings also flag settings without effect: a master block with
//     passthrough login, TLS options with tls = "none".
//
// plan/testdata/invalid holds one broken plan per kind of mistake with its
// expected diagnostics.
//
// `mailmig fmt` rewrites plan files in the canonical layout (hclwrite);
// -check lists files that would change and exits 1, -diff shows the change.
//
// # Implementation notes
//
// Decoding runs in dependency order over all files: variables, then state,
// routes and backends, then accounts (which need backends), then waves
// (which need accounts; after references are resolved once every wave is
// known), then the checks that need everything (cycles, accounts in no
// wave), then the proxy. Diagnostics are sorted by file and position so the
// listing is stable. Syntax errors stop the load before decoding: later
// diagnostics would only be noise. Files read by csv() are added to
// [Migration.Sources] so their rows can be shown in snippets (unless their
// header is not an accounts header); files read by file() are not, because
// they usually hold secrets. Redaction happens at the end of the load:
// eval records the range of every expression that used a marked value
// together with the values, and each diagnostic inside such a range is
// scrubbed; diagnostics lose their EvalContext, which HCL's own writer
// would print.
package plan
