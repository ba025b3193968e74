// Package wire holds the small pieces of protocol plumbing the proxy's
// pre-authentication parsers share: a bounded line reader that assembles
// one logical command with its literals (IMAP, ManageSieve), a sticky-error
// decoder over it, and SASL message codecs (PLAIN, LOGIN, XOAUTH2,
// OAUTHBEARER; go-sasl has no XOAUTH2 and no server side for LOGIN).
//
// Implementation notes:
//   - Every read is bounded: MaxLine per line, MaxLiteral per literal,
//     MaxLiterals per command (DefaultLimits), MaxDepth for nested lists.
//     The IMAP front reads with IMAPLimits instead, which let an RFC 2971
//     ID of the maximum size through (30 pairs of 1024-octet values, a
//     31,804-byte line: MaxIMAPLine, MaxIMAPLiterals) and bound a
//     command's text and literals together (MaxIMAPCommand, 128 KiB,
//     less than DefaultLimits allow in the worst case). Exceeding a
//     limit is an error the caller answers with a protocol BAD and, for
//     lines and non-synchronising literals, by closing the connection
//     (the stream cannot be resynchronised).
//   - Literal markers are replaced by a NUL byte in the command text
//     (NUL is not allowed in commands, and lines containing one are
//     refused), so the decoder can walk text and literals together.
//   - The decoder never panics on any input; FuzzIMAPCommand and
//     FuzzManageSieve in the protocol packages check that.
package wire
