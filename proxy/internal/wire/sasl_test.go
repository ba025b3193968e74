package wire

import "testing"

func TestTokenErrorReply(t *testing.T) {
	for _, tc := range []struct {
		mech string
		want []byte
		ok   bool
	}{
		{"OAUTHBEARER", []byte{1}, true},
		{"oauthbearer", []byte{1}, true},
		{"XOAUTH2", []byte{}, true},
		{"PLAIN", nil, false},
	} {
		got, ok := TokenErrorReply(tc.mech)
		if ok != tc.ok || string(got) != string(tc.want) || (tc.ok && got == nil) {
			t.Errorf("TokenErrorReply(%q) = %q, %v; want %q, %v", tc.mech, got, ok, tc.want, tc.ok)
		}
	}
}
