package jmap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

func TestMain(m *testing.M) { peers.Main(m) }

func cyrusClient(t *testing.T) (*jmap.Client, string) {
	t.Helper()
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	// the base URL: discovery goes through /.well-known/jmap and its 301
	c, err := jmap.Discover(ctx, "http://"+s.Cyrus.HTTP+"/", &jmap.Options{Auth: jmap.BasicAuth{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Session().FindAccount(acct.Email)
	if err != nil {
		t.Fatal(err)
	}
	return c, id
}

func TestCyrusDiscoverAndAuth(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	c, err := jmap.Discover(ctx, s.Cyrus.JMAPURL(), &jmap.Options{Auth: jmap.BasicAuth{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatalf("session url: %v", err)
	}
	if c.Session().Core.MaxCallsInRequest < 1 {
		t.Errorf("limits not read: %+v", c.Session().Core)
	}
	_, err = jmap.Discover(ctx, "http://"+s.Cyrus.HTTP+"/.well-known/jmap", &jmap.Options{Auth: jmap.BasicAuth{User: acct.Email, Password: "wrong"}})
	if err == nil {
		t.Fatalf("wrong password accepted")
	}
	if bytes.Contains([]byte(err.Error()), []byte("wrong")) {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestCyrusMailRoundTrip(t *testing.T) {
	c, acct := cyrusClient(t)
	ctx := context.Background()
	boxes, state0, err := c.Mailboxes(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	inbox := ""
	for _, b := range boxes {
		if b.Role == "inbox" {
			inbox = b.ID
		}
	}
	if inbox == "" || state0 == "" {
		t.Fatalf("no inbox in %+v (state %q)", boxes, state0)
	}

	// Mailbox/set: a non-ASCII parent and child in one request, the child
	// referring to the parent's creation id.
	var setResp jmap.SetResponse
	set := &jmap.Call{Method: "Mailbox/set", Args: map[string]any{"accountId": acct, "create": map[string]any{
		"p": map[string]any{"name": "Entwürfe 2024", "isSubscribed": true},
		"k": map[string]any{"name": "Prüfung", "parentId": "#p"},
	}}, Result: &setResp}
	if err := c.Exec(ctx, jmap.UsingMail, []*jmap.Call{set}); err != nil || set.Err != nil {
		t.Fatal(err, set.Err)
	}
	child := setResp.CreatedID("k")
	if child == "" || len(setResp.NotCreated) > 0 {
		t.Fatalf("Mailbox/set: %+v", setResp)
	}

	raw := []byte("From: a@example.test\r\nTo: b@example.test\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <rt1@example.test>\r\nX-8bit: M\xc3\xbcnchen\r\n\r\nbody\r\n")
	blob, err := c.Upload(ctx, acct, "message/rfc822", int64(len(raw)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recv := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	imp := func() (*jmap.ImportResponse, *jmap.Call) {
		var r jmap.ImportResponse
		call := &jmap.Call{Method: "Email/import", Args: map[string]any{"accountId": acct, "emails": map[string]jmap.EmailImport{
			"m1": {BlobID: blob.BlobID, MailboxIDs: map[string]bool{inbox: true, child: true}, Keywords: map[string]bool{"$seen": true, "Projekt-X": true}, ReceivedAt: ptr(jmap.UTCDate(recv))},
		}}, Result: &r}
		if err := c.Exec(ctx, jmap.UsingMail, []*jmap.Call{call}); err != nil {
			t.Fatal(err)
		}
		return &r, call
	}
	r1, call := imp()
	if call.Err != nil || r1.Created["m1"].ID == "" {
		t.Fatalf("Email/import: %v %+v", call.Err, r1)
	}
	id := r1.Created["m1"].ID
	// the same bytes again: Cyrus answers alreadyExists with the existing id
	r2, _ := imp()
	if se := r2.NotCreated["m1"]; se == nil || se.Type != jmap.SetAlreadyExists || se.ExistingID != id {
		t.Errorf("second import: %+v, want alreadyExists with existingId %s", r2, id)
	}

	// Email/query + Email/get in one request through a back-reference
	var qr jmap.QueryResponse
	var gr jmap.GetResponse
	q := &jmap.Call{Method: "Email/query", Args: map[string]any{"accountId": acct, "filter": map[string]any{"inMailbox": child}}, Result: &qr}
	g := &jmap.Call{Method: "Email/get", Args: map[string]any{"accountId": acct, "#ids": q.Ref("/ids"),
		"properties": []string{"blobId", "keywords", "mailboxIds", "receivedAt", "size", "messageId"}}, Result: &gr}
	if err := c.Exec(ctx, jmap.UsingMail, []*jmap.Call{q, g}); err != nil || jmap.FirstError(q, g) != nil {
		t.Fatal(err, jmap.FirstError(q, g))
	}
	var emails []jmap.Email
	json.Unmarshal(gr.List, &emails)
	if len(emails) != 1 || emails[0].ID != id || !emails[0].ReceivedAt.Equal(recv) || !emails[0].Keywords["projekt-x"] || len(emails[0].MailboxIDs) != 2 {
		t.Fatalf("Email/get: %+v", emails)
	}

	// Email/set patch, then Email/changes reports it
	var es jmap.SetResponse
	patch := &jmap.Call{Method: "Email/set", Args: map[string]any{"accountId": acct, "update": map[string]any{
		id: map[string]any{"keywords/$flagged": true, "mailboxIds/" + child: nil},
	}}, Result: &es}
	var ch jmap.ChangesResponse
	changes := &jmap.Call{Method: "Email/changes", Args: map[string]any{"accountId": acct, "sinceState": gr.State}, Result: &ch}
	if err := c.Exec(ctx, jmap.UsingMail, []*jmap.Call{patch}, []*jmap.Call{changes}); err != nil || jmap.FirstError(patch, changes) != nil {
		t.Fatal(err, jmap.FirstError(patch, changes))
	}
	if _, ok := es.Updated[id]; !ok || len(ch.Updated)+len(ch.Created) == 0 {
		t.Errorf("patch %+v; changes %+v", es, ch)
	}

	// download returns the uploaded bytes unchanged (munge8bit: no)
	rc, err := c.Download(ctx, acct, emails[0].BlobID, "m.eml", "message/rfc822")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, raw) {
		t.Errorf("downloaded %q, want %q", got, raw)
	}
	if st := c.Stats(); st.Uploads.Load() != 1 || st.Downloads.Load() != 1 {
		t.Errorf("stats: %d uploads %d downloads", st.Uploads.Load(), st.Downloads.Load())
	}
}

func TestCyrusBatchedGetUnderSmallLimits(t *testing.T) {
	c, acct := cyrusClient(t)
	ctx := context.Background()
	boxes, _, err := c.Mailboxes(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(boxes))
	for _, b := range boxes {
		ids = append(ids, b.ID)
	}
	ids = append(ids, "nonexistent")
	var got []jmap.Mailbox
	if _, err := jmap.GetObjects(ctx, c, acct, "Mailbox", ids, nil, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(boxes) {
		t.Errorf("GetObjects returned %d of %d mailboxes", len(got), len(boxes))
	}
	// an unknown account gives a method error, not a transport error
	call := &jmap.Call{Method: "Mailbox/get", Args: map[string]any{"accountId": "nobody@example.test"}}
	if err := c.Exec(ctx, jmap.UsingMail, []*jmap.Call{call}); err != nil {
		t.Fatal(err)
	}
	var me *jmap.MethodError
	if !errors.As(error(call.Err), &me) || me.Type != jmap.ErrAccountNotFound {
		t.Errorf("unknown account: %v", fmt.Sprint(call.Err))
	}
}

func ptr[T any](v T) *T { return &v }

func TestCyrusQueryObjects(t *testing.T) {
	c, acct := cyrusClient(t)
	ctx := context.Background()
	var boxes []jmap.Mailbox
	if err := jmap.QueryObjects(ctx, c, acct, "Mailbox", nil, []string{"id", "name", "role"}, &boxes); err != nil {
		t.Fatal(err)
	}
	if len(boxes) < 6 { // INBOX plus the five autocreated special-use folders
		t.Errorf("QueryObjects found %d mailboxes: %+v", len(boxes), boxes)
	}
}
