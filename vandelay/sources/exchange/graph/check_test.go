package graph_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/graph"
)

// TestGraphCheck is the pre-flight against recorded answers: the app
// signs in and may read mail and contacts but not calendars (reported,
// not failed); an app without Mail.Read gets 403 (a login refusal naming
// the permission); an unknown mailbox is missing. No error carries the
// secret.
func TestGraphCheck(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   error
		text   string
	}{
		{"testdata/graph-check.txtar", nil, ""},
		{"testdata/graph-check-denied.txtar", vandelay.ErrAuth, "Mail.Read"},
		{"testdata/graph-check-missing.txtar", vandelay.ErrAccountMissing, "ErrorInvalidUser"},
	} {
		srv := recorded.New(t, tc.script)
		var sl sleeps
		c, err := graph.Check(context.Background(), options(srv, &sl))
		switch {
		case tc.want == nil && (err != nil || c == nil || !slices.ContainsFunc(c.Unknown, func(s string) bool { return strings.Contains(s, "Calendars.Read") })):
			t.Errorf("%s: %+v, %v; want a note on Calendars.Read", tc.script, c, err)
		case tc.want != nil && (!errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text)):
			t.Errorf("%s: %v, want %v naming %s", tc.script, err, tc.want, tc.text)
		case err != nil && strings.Contains(err.Error(), "fixture-secret"):
			t.Errorf("%s: the error shows the secret", tc.script)
		}
	}
}
