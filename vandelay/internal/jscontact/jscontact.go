// Package jscontact converts contact cards between vCard (RFC 6350, and
// the vCard 3.0 of RFC 2426 as CardDAV servers still serve it) and
// JSContact (RFC 9553), following RFC 9555.
//
// A [Card] is JSContact's JSON object kept as a generic map, so that a
// card read from a JMAP server keeps every property, known or not, on its
// way to vCard. Whatever vCard has that no JSContact property carries is
// kept in the card's "vCardProps" (RFC 9555 3.3.1, jCard form) and
// unmapped parameters in an object's "vCardParams" (3.3.2); the other way
// round, a JSContact property vCard has no property for travels as a
// JSPROP property (RFC 9555 3.2.1) with its JSON value. docs/export.md
// lists what each direction keeps, what it normalises and what it loses.
package jscontact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Card is a JSContact Card object (RFC 9553 2): "@type" "Card",
// "version" "1.0", "uid" and the other properties by name.
type Card map[string]any

// MaxCardSize bounds the vCard and JSON bodies the converters accept, far
// above the 500 KB photos of the corpus.
const MaxCardSize = 16 << 20

// ErrTooLarge reports a card above [MaxCardSize].
var ErrTooLarge = errors.New("jscontact: card larger than 16 MiB")

// ServerSet are the ContactCard properties a JMAP server sets (RFC 9610
// 3: id, addressBookIds) and that are no part of the card's content.
var ServerSet = []string{"id", "addressBookIds"}

// Canonical returns c as JSON with sorted keys and without the
// [ServerSet] properties: the form hashed to compare a card with the one
// a server holds.
func Canonical(c Card) []byte {
	m := make(map[string]any, len(c))
	for k, v := range c {
		m[k] = v
	}
	for _, k := range ServerSet {
		delete(m, k)
	}
	b, _ := json.Marshal(m) // maps marshal with sorted keys
	return b
}

// Hash is the hex SHA-256 of [Canonical].
func Hash(c Card) string {
	s := sha256.Sum256(Canonical(c))
	return hex.EncodeToString(s[:])
}

// Parse decodes a Card from JSON, keeping numbers exact.
func Parse(b []byte) (Card, error) {
	if len(b) > MaxCardSize {
		return nil, ErrTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var c Card
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("jscontact: %w", err)
	}
	if c == nil {
		return nil, errors.New("jscontact: not an object")
	}
	return normalizeNumbers(c).(Card), nil
}

// normalizeNumbers turns json.Number into int64 or float64 so that a
// parsed card compares and marshals like a converted one.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case Card:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// Clone returns a deep copy of c (by JSON).
func Clone(c Card) Card {
	b, _ := json.Marshal(c)
	out, _ := Parse(b)
	return out
}

// idPrefix is the prefix of the map keys the vCard→JSContact direction
// generates per property map ("e1", "e2" for emails …). A key of this
// form is not written as PROP-ID on the way back, so that a vCard without
// PROP-ID parameters keeps none.
var idPrefix = map[string]string{
	"emails": "e", "phones": "p", "addresses": "a", "nicknames": "n", "organizations": "o",
	"titles": "t", "media": "m", "anniversaries": "d", "onlineServices": "s", "preferredLanguages": "l",
	"links": "u", "notes": "x", "cryptoKeys": "k", "calendars": "c", "schedulingAddresses": "r", "directories": "y",
}

func generatedKey(mapName, key string) bool {
	p := idPrefix[mapName]
	if p == "" || !strings.HasPrefix(key, p) || len(key) == len(p) {
		return false
	}
	n, err := strconv.Atoi(key[len(p):])
	return err == nil && n > 0 && strconv.Itoa(n) == key[len(p):]
}

// sortedKeys orders a property map's keys: generated ones by number,
// then the others by name.
func sortedKeys(mapName string, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	num := func(k string) int {
		if !generatedKey(mapName, k) {
			return 1 << 30
		}
		n, _ := strconv.Atoi(k[len(idPrefix[mapName]):])
		return n
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := num(keys[i]), num(keys[j])
		if a != b {
			return a < b
		}
		return keys[i] < keys[j]
	})
	return keys
}
