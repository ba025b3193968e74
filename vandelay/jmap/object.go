package jmap

import (
	"bytes"
	"encoding/json"
)

// Object is a JSON object whose members are marshalled in the order they
// were added; encoding/json writes a Go map with its keys sorted. The order
// matters where a server acts on the members one after the other: Cyrus
// files the emails of an Email/import, and the creations and updates of a
// /set, in the order of the request, so that order decides the IMAP UIDs
// the emails get. The zero value is an empty object.
type Object[V any] struct {
	keys []string
	vals []V
}

// Add appends a member. Adding a key twice gives a duplicate member (the
// caller keeps keys unique).
func (o *Object[V]) Add(key string, v V) {
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, v)
}

// Len returns the number of members.
func (o *Object[V]) Len() int { return len(o.keys) }

// MarshalJSON implements json.Marshaler.
func (o Object[V]) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
