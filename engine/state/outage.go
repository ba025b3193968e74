package state

import "time"

// OutageWaiter is a RecordStore that waits through an outage of its
// database before an append fails (pgstate.Store.SetOutageWait): it
// reconnects and takes the apply lock again. The journal gives each of
// its appends that much more time than RemoteTimeout.
type OutageWaiter interface {
	OutageWait() time.Duration
}

// appendTimeout bounds one append to rs.
func appendTimeout(rs RecordStore) time.Duration {
	if w, ok := rs.(OutageWaiter); ok {
		return RemoteTimeout + w.OutageWait()
	}
	return RemoteTimeout
}
