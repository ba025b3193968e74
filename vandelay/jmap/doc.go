// Package jmap is mailmig's small JMAP client: the core protocol of RFC 8620
// plus the parts of RFC 8621 (mail) that the exporter and verifier need.
//
// # Lifecycle
//
// [Discover] fetches the session resource (from a base URL, from
// /.well-known/jmap with its redirects, or from a session URL given
// directly) and returns a [Client]. The client resolves the session's
// apiUrl, uploadUrl and downloadUrl against the URL the session was finally
// served from, so relative and cross-origin URLs both work, and expands the
// RFC 6570 level-1 templates in them.
//
// # Limits
//
// Every limit comes from the session's urn:ietf:params:jmap:core
// capability, never from constants (RFC 8620 2.1):
//   - maxCallsInRequest and maxSizeRequest: [Client.Exec] packs groups of
//     calls into as few requests as these allow, and halves a request that
//     the server still refuses with a "limit" problem;
//   - maxObjectsInGet and maxObjectsInSet: [Client.MaxObjectsInGet] and
//     [Client.MaxObjectsInSet] tell callers how to chunk, and the helpers in
//     mail.go chunk by them;
//   - maxConcurrentRequests and maxConcurrentUpload: semaphores inside the
//     client bound API requests and uploads across all goroutines;
//   - maxSizeUpload: [Client.Upload] refuses a larger blob with
//     [ErrTooLarge] before sending a byte.
//
// # Errors and their defined behaviour
//
//   - HTTP 429 and 503 (and connection failures before a response) are
//     retried with exponential backoff, honouring Retry-After, up to
//     Options.MaxRetries times.
//   - Request-level problems (RFC 7807 JSON, RFC 8620 3.6.1) become
//     *[ProblemError]; a "limit" problem makes Exec split the request.
//   - Method-level errors (RFC 8620 3.6.2) are stored per call in
//     [Call.Err]; serverUnavailable and rateLimit on every call of a group
//     retry that group with backoff. Other errors are left to the caller.
//   - Per-object SetErrors (notCreated/notUpdated/notDestroyed) are the
//     caller's business: [SetError.Type] tells alreadyExists (count as
//     matched, [SetError.ExistingID]), blobNotFound (re-upload), tooLarge
//     and overQuota (fail the item by name) apart.
//
// # Secrets
//
// Credentials live only in the [Auth] value; its String method redacts
// them, and the client logs URLs and method names but never headers or
// bodies.
//
// # Concurrency
//
// A Client is safe for concurrent use by multiple goroutines once Discover
// has returned.
package jmap
