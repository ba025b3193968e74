package canon

import "testing"

func TestAddress(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"plain":          {"alice@example.test", "alice@example.test"},
		"upper":          {"Alice@Example.TEST", "alice@example.test"},
		"spaces":         {" \talice@example.test\r\n", "alice@example.test"},
		"sub-address":    {"Alice+Tag@example.test", "alice+tag@example.test"},
		"inner space":    {"a b@example.test", "a b@example.test"},
		"quoted":         {`"A.B"@example.test`, `"a.b"@example.test`},
		"domain only":    {"Example.TEST", "example.test"},
		"no domain":      {"Postmaster", "postmaster"},
		"unicode":        {"JÖRG@Bücher.example", "jörg@bücher.example"},
		"idn a-label":    {"x@XN--BCHER-KVA.example", "x@xn--bcher-kva.example"},
		"empty":          {"", ""},
		"only spaces":    {"   ", ""},
		"trailing dot":   {"a@example.test.", "a@example.test."},
		"already folded": {"a@example.test", "a@example.test"},
	} {
		if got := Address(tc.in); got != tc.want {
			t.Errorf("%s: Address(%q) = %q, want %q", name, tc.in, got, tc.want)
		}
		if got := Address(Address(tc.in)); got != Address(tc.in) {
			t.Errorf("%s: not idempotent: %q", name, got)
		}
	}
}
