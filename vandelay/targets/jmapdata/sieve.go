// Package jmapdata writes the data kinds beside mail onto a JMAP target
// whose session offers the standard capability: Sieve scripts as RFC 9661
// SieveScript objects and files as draft-ietf-jmap-filenode FileNodes.
// Each type implements the interface the ManageSieve and WebDAV targets
// implement ([vandelay.SieveTarget], [vandelay.FileTarget]), so the
// convergent export, conflict handling and verify of those paths
// ([vandelay.ExportSieve], [vandelay.ExportFiles] and their Verify) are
// the same code for both transports; only the wire differs.
//
// No server of the test harness offers these capabilities (Cyrus 3.6
// uses its own cyrusimap.org namespaces), so the package is tested
// against recorded exchanges written from the RFCs' and the draft's
// examples (internal/recorded), which check every request.
package jmapdata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

var usingSieve = []string{jmap.CapCore, jmap.CapSieve}

// SieveTarget is one account's SieveScript set (RFC 9661).
type SieveTarget struct {
	c         *jmap.Client
	accountID string
	// byName caches the last SieveScript/get by name, refreshed by List.
	byName map[string]jmap.SieveScript
}

// NewSieveTarget returns the account's scripts at c, or an error wrapping
// [vandelay.ErrNoCapability] when the session lacks RFC 9661.
func NewSieveTarget(c *jmap.Client, accountID string) (*SieveTarget, error) {
	if !c.Session().Has(jmap.CapSieve) {
		return nil, fmt.Errorf("%w %s", vandelay.ErrNoCapability, jmap.CapSieve)
	}
	return &SieveTarget{c: c, accountID: accountID}, nil
}

// Name implements vandelay.SieveTarget.
func (t *SieveTarget) Name() string {
	return "jmap-sieve " + t.c.SessionURL() + " " + t.accountID
}

// Close implements vandelay.SieveTarget (the client is the caller's).
func (t *SieveTarget) Close() error { return nil }

func (t *SieveTarget) load(ctx context.Context) error {
	list, _, err := jmap.GetAll[jmap.SieveScript](ctx, t.c, usingSieve, t.accountID, "SieveScript")
	if err != nil {
		return fmt.Errorf("read the target's sieve scripts: %w", err)
	}
	t.byName = map[string]jmap.SieveScript{}
	for _, s := range list {
		if s.Name != nil {
			t.byName[*s.Name] = s
		}
	}
	return nil
}

// List implements vandelay.SieveTarget.
func (t *SieveTarget) List(ctx context.Context) ([]vandelay.RemoteScript, error) {
	if err := t.load(ctx); err != nil {
		return nil, err
	}
	out := make([]vandelay.RemoteScript, 0, len(t.byName))
	for n, s := range t.byName {
		out = append(out, vandelay.RemoteScript{Name: n, Active: s.IsActive})
	}
	return out, nil
}

func (t *SieveTarget) script(ctx context.Context, name string) (jmap.SieveScript, bool, error) {
	if t.byName == nil {
		if err := t.load(ctx); err != nil {
			return jmap.SieveScript{}, false, err
		}
	}
	s, ok := t.byName[name]
	return s, ok, nil
}

// Get implements vandelay.SieveTarget: the script's blob, downloaded.
func (t *SieveTarget) Get(ctx context.Context, name string) ([]byte, error) {
	s, ok, err := t.script(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no sieve script %q at the target", name)
	}
	r, err := t.c.Download(ctx, t.accountID, s.BlobID, name, "application/sieve")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// Put implements vandelay.SieveTarget: the bytes are uploaded as a blob
// and a script of that name created, or its blobId replaced. A script the
// server's Sieve refuses (invalidSieve, or any other per-object error) is
// a *[vandelay.ScriptRefusedError] with the server's text.
func (t *SieveTarget) Put(ctx context.Context, name string, body []byte) error {
	cur, exists, err := t.script(ctx, name)
	if err != nil {
		return err
	}
	blob, err := t.c.Upload(ctx, t.accountID, "application/sieve", int64(len(body)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	})
	if err != nil {
		return err
	}
	args := map[string]any{}
	if exists {
		args["update"] = map[string]any{cur.ID: map[string]any{"blobId": blob.BlobID}}
	} else {
		args["create"] = map[string]any{"s": map[string]any{"name": name, "blobId": blob.BlobID}}
	}
	resp, err := jmap.Set(ctx, t.c, usingSieve, t.accountID, "SieveScript", args)
	if err != nil {
		return fmt.Errorf("store sieve script %q: %w", name, err)
	}
	if e := firstSetError(resp.NotCreated, resp.NotUpdated); e != nil {
		text := e.Description
		if text == "" {
			text = e.Type
		}
		return &vandelay.ScriptRefusedError{Name: name, Text: text}
	}
	if exists {
		cur.BlobID = blob.BlobID
		t.byName[name] = cur
	} else {
		t.byName[name] = jmap.SieveScript{ID: resp.CreatedID("s"), Name: &name, BlobID: blob.BlobID}
	}
	return nil
}

func firstSetError(ms ...map[string]*jmap.SetError) *jmap.SetError {
	for _, m := range ms {
		for _, e := range m {
			if e != nil {
				return e
			}
		}
	}
	return nil
}

// SetActive implements vandelay.SieveTarget with RFC 9661 2.2's
// onSuccessActivateScript (or onSuccessDeactivateScript for "") on an
// otherwise empty SieveScript/set.
func (t *SieveTarget) SetActive(ctx context.Context, name string) error {
	args := map[string]any{}
	if name == "" {
		args["onSuccessDeactivateScript"] = true
	} else {
		s, ok, err := t.script(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no sieve script %q at the target", name)
		}
		args["onSuccessActivateScript"] = s.ID
	}
	if _, err := jmap.Set(ctx, t.c, usingSieve, t.accountID, "SieveScript", args); err != nil {
		return err
	}
	for n, s := range t.byName {
		s.IsActive = n == name
		t.byName[n] = s
	}
	return nil
}

// Delete implements vandelay.SieveTarget.
func (t *SieveTarget) Delete(ctx context.Context, name string) error {
	s, ok, err := t.script(ctx, name)
	if err != nil || !ok {
		return err
	}
	resp, err := jmap.Set(ctx, t.c, usingSieve, t.accountID, "SieveScript", map[string]any{"destroy": []string{s.ID}})
	if err != nil {
		return err
	}
	if e := firstSetError(resp.NotDestroyed); e != nil {
		return errors.New(e.Error())
	}
	delete(t.byName, name)
	return nil
}

var _ vandelay.SieveTarget = (*SieveTarget)(nil)
