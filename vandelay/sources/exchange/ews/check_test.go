package ews_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/ews"
)

// TestEWSCheck is the pre-flight against recorded answers: a mailbox that
// can be read, a master user without the impersonation right, and an
// unknown mailbox; no error carries the password.
func TestEWSCheck(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   error
		text   string
	}{
		{"testdata/ews-check.txtar", nil, ""},
		{"testdata/ews-check-denied.txtar", vandelay.ErrAuth, "ApplicationImpersonation"},
		{"testdata/ews-check-missing.txtar", vandelay.ErrAccountMissing, "ErrorNonExistentMailbox"},
	} {
		srv := recorded.New(t, tc.script)
		var sl sleeps
		c, err := ews.Check(context.Background(), options(srv, &sl))
		switch {
		case tc.want == nil && (err != nil || c == nil || c.Size != -1):
			t.Errorf("%s: %+v, %v", tc.script, c, err)
		case tc.want != nil && (!errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text)):
			t.Errorf("%s: %v, want %v naming %s", tc.script, err, tc.want, tc.text)
		case err != nil && strings.Contains(err.Error(), "fixture-password"):
			t.Errorf("%s: the error shows the password", tc.script)
		}
	}
}
