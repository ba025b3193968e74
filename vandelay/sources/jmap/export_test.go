package jmap

import jc "github.com/mailmig/mailmig/vandelay/jmap"

// mailboxesOf builds a two-mailbox list with ids "a" and "b" for fuzzing.
func mailboxesOf(n1, p1, n2, p2, role string) []jc.Mailbox {
	return []jc.Mailbox{{ID: "a", Name: n1, ParentID: p1, Role: role}, {ID: "b", Name: n2, ParentID: p2}}
}
