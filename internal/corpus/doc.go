// Package corpus generates deterministic test mail: folders and messages of
// realistic variety from a seed, for fidelity tests and benchmarks.
//
//	c := corpus.Generate(corpus.Options{Seed: 1, Messages: 3000, HugeSize: 25 << 20})
//	fmt.Print(c.Summary())
//	err := c.LoadIMAP(ctx, s.Dovecot.IMAP, acct.Email, acct.Password, 4)
//
// The same Options give the same corpus byte for byte. What it contains:
//
//   - Folders: INBOX, the special-use folders Sent, Drafts, Trash, Junk and
//     Archive, and up to 16 user folders with non-ASCII names (Проекты,
//     日本語のフォルダ, Zażółć gęślą, Newsletters 📬, Ünïcödé & Co), nested ones
//     whose parents exist only as a prefix (Work/Reports 2024, Lists/…,
//     Entwürfe/…, Reisen/2023/Italien) and ones under a real parent
//     (Kunden/Müller GmbH, Archive/2019). Every fourth user folder is
//     unsubscribed. Names avoid "." (Dovecot's Maildir++ separator) and the
//     characters Cyrus refuses.
//   - Sizes from about 1 KB up to Options.MaxSize (default 1 MiB), skewed to
//     small (p50 ≈ 5 KiB, p90 ≈ 140 KiB for the default), plus one message
//     of Options.HugeSize (e.g. 25 MiB) when asked.
//   - Structure (Kind): text/plain in quoted-printable, 8bit, 7bit, base64 or
//     ISO-8859-1; multipart/alternative (text + html); multipart/mixed with 1–3
//     binary attachments (pdf, png, zip, xlsx and jpg with RFC 2231 file
//     names); forwards with a message/rfc822 part.
//   - Headers: RFC 2047 B and Q encoded-words in UTF-8 and ISO-8859-1, raw
//     8-bit UTF-8 Subject and From in some 8bit messages, folded long
//     subjects, threads (In-Reply-To, References), List-Id, Cc, time zones.
//     Each message has an "X-Corpus: <index> <seed>" header.
//   - Flags \Seen, \Answered, \Flagged, \Draft (in Drafts), $Forwarded, $Junk
//     and custom ASCII keywords (2–8 distinct per folder: Dovecot refuses
//     non-ASCII keywords and keeps at most 26 per Maildir folder).
//   - Internal dates over the ten years before Options.Now (fixed default
//     2026-01-01, so always in the past: Dovecot replaces APPEND dates more
//     than 2 h in the future by "now").
//   - About 2% exact duplicates: the same bytes as an earlier message, in
//     another folder (DuplicateOf).
//
// Messages are not kept in memory: Generate reads each once to record its
// Size and SHA256, and Message.Open regenerates the bytes as a stream
// (attachments are produced while they are read), so a 3,000-message corpus
// with a 25 MiB message needs only a few MB.
//
// LoadIMAP creates the folders and subscriptions and APPENDs the messages
// with flags and internal dates over several connections, pipelined. On this
// 2-core machine, 3,000 messages (186 MiB, one of 25 MiB) load into Dovecot
// in about 4 s over 4 connections. WriteMaildir writes the same corpus as a
// Maildir++ tree (flags in file names, keywords in dovecot-keywords, the
// internal date as mtime).
//
// The command internal/corpus/cmd/gencorpus does the same from the shell.
package corpus
