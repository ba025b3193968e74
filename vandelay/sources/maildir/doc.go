// Package maildir imports a Maildir++ tree as Dovecot writes it: INBOX in
// the root (cur/, new/), folders in ".Name.Sub" directories (modified
// UTF-7, "." as the hierarchy separator, shown as "/" in the archive),
// flags in the ":2," info of file names, custom keywords as letters a–z
// indexed into each folder's dovecot-keywords, subscriptions from the
// "subscriptions" file (version 1 or 2), UIDVALIDITY from dovecot-uidlist
// (for rename detection), and the internal date from the file's mtime
// (Dovecot sets it to the INTERNALDATE), else the time in the file name.
//
// The source is read-only: it never creates, renames or deletes a file.
// Location keys are the unique part of the file name (before ":"), so a
// flag change (a rename of the file) is a keyword update and a re-run
// reads only files it has not archived. Files are stored with bare LFs
// turned into CRLF, the bytes Dovecot serves over IMAP (see ToCRLF). Roles
// come from the name heuristic (Dovecot keeps SPECIAL-USE in its
// configuration, not on disk).
package maildir
