package jmap_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// TestCheckTarget runs the pre-flight login against the real Cyrus: a
// good login (capabilities, no quota set), a wrong password (refused, as
// a missing account would be: HTTP 401 for both), and a login that works
// but does not list the account it should act for (certainly missing).
func TestCheckTarget(t *testing.T) {
	s := peers.Get(t)
	a := s.NewAccount(t)
	ctx := context.Background()
	url := s.Cyrus.JMAPURL()

	r, err := vandelay.CheckTarget(ctx, &vandelay.TargetOptions{URL: url, Auth: vandelay.BasicAuth{User: a.Email, Password: a.Password}})
	if err != nil {
		t.Fatalf("good login: %v", err)
	}
	if r.AccountID == "" || !r.Has(jmap.CapMail) || !r.Has(vandelay.CapCyrusQuota) {
		t.Errorf("good login: account %q, capabilities %v", r.AccountID, r.Capabilities)
	}
	if r.Quota != nil {
		t.Errorf("good login: quota %+v, want none (no quota set)", r.Quota)
	}

	_, err = vandelay.CheckTarget(ctx, &vandelay.TargetOptions{URL: url, Auth: vandelay.BasicAuth{User: a.Email, Password: "wrong"}})
	if !errors.Is(err, jmap.ErrAuthRefused) {
		t.Errorf("wrong password: %v, want ErrAuthRefused", err)
	}
	_, err = vandelay.CheckTarget(ctx, &vandelay.TargetOptions{URL: url, Auth: vandelay.BasicAuth{User: "nobody-" + a.Email, Password: "x"}})
	if !errors.Is(err, jmap.ErrAuthRefused) {
		t.Errorf("missing account, own login: %v, want ErrAuthRefused (indistinguishable)", err)
	}

	// The Cyrus admin logs in, but its session lists only itself.
	_, err = vandelay.CheckTarget(ctx, &vandelay.TargetOptions{URL: url, Auth: vandelay.BasicAuth{User: "admin", Password: "adminpw"}, AccountName: "nobody@example.test"})
	if !errors.Is(err, vandelay.ErrAccountMissing) {
		t.Errorf("master login, account not listed: %v, want ErrAccountMissing", err)
	}
}
