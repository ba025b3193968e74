package state

// TypeTakeover records that an apply worker took an account over from
// another worker whose lease ran out (it died or lost the database):
// Account, and Note saying which worker from which, and whether the
// account's archive is imported again on the new worker's machine. The
// fold keeps the note (Account.TakenOver, until the next cut-over) besides
// the record's time and serial: what the account's phase is does not
// change.
const TypeTakeover RecordType = "takeover"
