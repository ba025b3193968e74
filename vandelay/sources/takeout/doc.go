// Package takeout imports Google Takeout mail: the .mbox files of a
// Takeout, read directly from the .zip or .tgz (.tar.gz, .tar) download, a
// single .mbox, or an extracted directory tree.
//
// Each message carries its Gmail labels in X-Gmail-Labels (see
// ParseLabels and MapLabels for the mapping). A message with several
// labels is one archive message in several mailboxes. Message bytes are
// kept as in the mbox except for the mbox framing (">From " un-quoting,
// CRLF line ends) and the two header fields Takeout adds (X-GM-THRID,
// X-Gmail-Labels): what remains is what Gmail serves over IMAP, and a
// re-labelled message keeps its hash. The internal date is
// the time in the "From " separator line (Gmail's receive time), else the
// newest Received: header, else Date:.
//
// Location keys are content hashes, so a newer Takeout of the same account
// converges: messages missing from it are tombstoned, label changes become
// membership and keyword changes. The input is read twice: once to learn
// every label (the mailbox list must be complete before messages are
// placed) and hashes, once more for the bodies the archive lacks.
package takeout
