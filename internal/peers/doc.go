// Package peers runs the real servers that mailmig's integration tests talk
// to: two Dovecot 2.3 backends, a Dovecot proxy, Cyrus IMAP 3.6 (IMAP, POP3,
// LMTP, ManageSieve, JMAP, CalDAV, CardDAV), Radicale, an Apache WebDAV file
// server and nginx's mail proxy, all on 127.0.0.1, without TLS.
//
// The servers are started by the project's scripts in testdata/peers
// (install.sh installs them with apt-get; start-all.sh ROOT OFFSET starts a
// set; stop-all.sh ROOT stops it). A set lives in one directory ROOT with
// the subdirectories dovecot, dovecot-b, dovecot-proxy, cyrus, radicale,
// webdav and nginx-mail, and listens on ports 20000+OFFSET+index (the
// index of each listener is in testdata/peers/start-all.sh); sets at
// different offsets (multiples of 100) run side by side.
//
// # Use in tests
//
//	func TestMain(m *testing.M) { peers.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		s := peers.Get(t)          // skips in -short mode
//		acct := s.NewAccount(t)    // fresh user, same password on every peer
//		c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
//		...
//	}
//
// Get reuses the set named by MAILMIG_PEERS_ROOT (and MAILMIG_PEERS_OFFSET,
// default: the offset file start-all.sh writes into ROOT); `just test` and
// `just peers-up` start one set and export these. Without them, the first
// Get of a test binary starts a private set in os.MkdirTemp("", "mmp") at a
// free offset in 1000..9900 (chosen under an flock in $TMPDIR/mailmig-peers,
// so parallel test binaries never clash), waits until every listener
// answers (about 2.5 s), and Main stops it after the tests. A detached
// reaper also stops it if the binary dies without reaching Main (a -timeout
// panic, a signal). Set MAILMIG_PEERS_KEEP=1 to keep such a set for
// debugging (logs are in ROOT/*/log).
//
// When the servers are not installed, or the tests do not run as root (the
// daemons drop privileges to vmail, cyrus and www-data, and Cyrus needs a
// private mount namespace for its syslog), Get skips the test with a
// message saying how to install them — unless CI=true, where it fails.
//
// # Accounts
//
// Every test creates its own users with NewAccount, so packages can run in
// parallel against one set. An account exists on both Dovecots (passwd-file),
// Cyrus (sasldb; the first IMAP login creates INBOX, Drafts, Sent, Trash,
// Junk and Archive), Radicale (with the collections calendar/ and contacts/),
// WebDAV (with the directory files/<email>/) and nginx's routes (to the first
// Dovecot). User files are rewritten atomically (temp file + rename) under an
// flock on ROOT/users.lock. The fixed users alice, bob and carol
// (@example.test, passwords alicepw, bobpw, carolpw) are for manual use.
//
// Fixed admin credentials: the Dovecot master user admin/masterpw (log in as
// "user@example.test*admin", or SASL PLAIN with authzid), the Cyrus admin
// admin/adminpw (SASL authzid over IMAP, POP3 and Sieve only), and the WebDAV
// admin admin/adminpw (may read every user's directory).
//
// # OAuth bearer tokens
//
// Both Dovecots accept XOAUTH2 and OAUTHBEARER with the token Token(email)
// returns (TEST ONLY: an HMAC of the address under a fixed key, so no state
// is shared); their oauth2 passdb checks it at an RFC 7662 introspection
// endpoint (testdata/peers/oauth_introspect.py, Dovecot.OAuthIntrospect,
// port index +8 / +18). XOAuth2Client is a SASL client for XOAUTH2 (go-sasl
// has OAUTHBEARER). PLAIN and LOGIN are unchanged. Tests that need tokens
// call Set.RequireOAuth, which fails clearly on a set started by older
// scripts.
//
// # Server behaviours that matter for fidelity tests
//
// Cyrus runs with munge8bit: no (8-bit header bytes stay as they are) and
// jmap_set_has_attachment: no (no $hasattachment keyword on Email/import).
// Dovecot replaces an APPEND internal date more than 2 h in the future with
// "now", refuses non-ASCII keywords and keeps at most 26 keywords per folder;
// its special-use folders Drafts, Sent, Trash, Junk (subscribed) and Archive
// exist for every user. Dovecot runs with mail_fsync = never (set
// DOVECOT_MAIL_FSYNC=optimized before starting a set to measure durable
// behaviour). Cyrus JMAP returns keywords lower-cased, wants receivedAt in
// UTC ("Z"), answers alreadyExists for the same bytes imported twice, hides
// \Deleted messages and refuses mailbox names with / % ; \ " or control
// characters; HTTP impersonation (Authorize-As) does not work, so JMAP and
// DAV need each user's own password. Dovecot folder names containing "."
// would need LAYOUT=fs (not configured). nginx's SMTP proxy never
// authenticates upstream, so its SMTP port relays to the sink.
package peers
