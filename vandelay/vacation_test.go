package vandelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// vacationServer answers VacationResponse/get and /set like RFC 8621 8
// describes (its example object: every field null, isEnabled false) and
// records each request's method calls. No server here offers the
// standard capability in a working way (Cyrus 3.6's httpd crashes on
// VacationResponse/get), so the export path is checked against this
// recording of the RFC's exchange.
type vacationServer struct {
	mu      sync.Mutex
	obj     map[string]any
	calls   []string // "method args" per call
	withCap bool
}

func newVacationServer(t *testing.T, withCap bool) (*vacationServer, *jmap.Client) {
	v := &vacationServer{withCap: withCap, obj: map[string]any{"id": "singleton", "isEnabled": false, "fromDate": nil, "toDate": nil, "subject": nil, "textBody": nil, "htmlBody": nil}}
	mux := http.NewServeMux()
	mux.HandleFunc("/jmap/session", func(w http.ResponseWriter, r *http.Request) {
		caps := map[string]any{jmap.CapCore: map[string]any{"maxCallsInRequest": 16, "maxObjectsInGet": 500, "maxObjectsInSet": 500, "maxSizeRequest": 10000000}, jmap.CapMail: map[string]any{}}
		if withCap {
			caps[vandelay.CapVacationResponse] = map[string]any{}
		}
		json.NewEncoder(w).Encode(map[string]any{"capabilities": caps, "accounts": map[string]any{"u1": map[string]any{"name": "alice@example.test"}},
			"primaryAccounts": map[string]string{jmap.CapMail: "u1"}, "username": "alice@example.test", "apiUrl": "/jmap/api/", "state": "s"})
	})
	mux.HandleFunc("/jmap/api/", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Using       []string            `json:"using"`
			MethodCalls [][]json.RawMessage `json:"methodCalls"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		v.mu.Lock()
		defer v.mu.Unlock()
		var out [][]any
		for _, c := range req.MethodCalls {
			var name, id string
			json.Unmarshal(c[0], &name)
			json.Unmarshal(c[2], &id)
			v.calls = append(v.calls, name+" "+string(c[1]))
			switch name {
			case "VacationResponse/get":
				out = append(out, []any{name, map[string]any{"accountId": "u1", "state": "s1", "list": []any{v.obj}, "notFound": []string{}}, id})
			case "VacationResponse/set":
				var args struct {
					Update map[string]map[string]any `json:"update"`
				}
				json.Unmarshal(c[1], &args)
				for k, val := range args.Update["singleton"] {
					v.obj[k] = val
				}
				out = append(out, []any{name, map[string]any{"accountId": "u1", "oldState": "s1", "newState": "s2", "updated": map[string]any{"singleton": nil}}, id})
			default:
				out = append(out, []any{"error", map[string]any{"type": "unknownMethod"}, id})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"methodResponses": out, "sessionState": "s"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := jmap.Discover(context.Background(), srv.URL+"/jmap/session", &jmap.Options{Auth: jmap.BasicAuth{User: "alice@example.test", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	return v, c
}

func (v *vacationServer) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.calls
	v.calls = nil
	return c
}

// TestExportVacationJMAP: the archived response (read from a Sieve
// script) is sent once with VacationResponse/set — the request checked
// member by member — not again when the target has it, again when it
// changed in the archive, never over a response the user changed at the
// target (a conflict), and not at all to a target without the capability.
func TestExportVacationJMAP(t *testing.T) {
	ctx := context.Background()
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv, c := newVacationServer(t, true)
	if r, err := vandelay.ExportVacationJMAP(ctx, a, c, "u1", nil); err != nil || r.Set {
		t.Fatalf("without an archived response: %+v %v", r, err)
	}
	srv.take()
	v := &archive.Vacation{Enabled: true, From: time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC), Subject: "Im Urlaub", TextBody: "Bis Januar weg.\r\n",
		Days: 3, FromAddress: "alice@example.test", SourceRef: "sieve:urlaub"}
	if _, err := a.SetVacation(ctx, v, false); err != nil {
		t.Fatal(err)
	}
	r, err := vandelay.ExportVacationJMAP(ctx, a, c, "u1", nil)
	if err != nil || !r.Set || r.Conflict {
		t.Fatalf("first export: %+v %v", r, err)
	}
	want := []string{
		`VacationResponse/get {"accountId":"u1","ids":["singleton"]}`,
		`VacationResponse/set {"accountId":"u1","update":{"singleton":{"isEnabled":true,"fromDate":"2026-12-20T00:00:00Z","toDate":null,"subject":"Im Urlaub","textBody":"Bis Januar weg.\r\n","htmlBody":null}}}`,
	}
	if got := srv.take(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("requests:\n%q\nwant\n%q", got, want)
	}
	if r, err := vandelay.ExportVacationJMAP(ctx, a, c, "u1", nil); err != nil || r.Set {
		t.Errorf("no-change export: %+v %v", r, err)
	}
	if got := srv.take(); len(got) != 1 {
		t.Errorf("no-change export sent %q, want one get", got)
	}
	v.Subject = "Bis 5. Januar im Urlaub"
	a.SetVacation(ctx, v, false)
	if r, err := vandelay.ExportVacationJMAP(ctx, a, c, "u1", nil); err != nil || !r.Set {
		t.Errorf("export after a change at the source: %+v %v", r, err)
	}
	srv.take()
	// The user edits it at the target; the source changes too: kept.
	srv.mu.Lock()
	srv.obj["subject"] = "vom Nutzer am Ziel"
	srv.mu.Unlock()
	v.Enabled = false
	a.SetVacation(ctx, v, false)
	if r, err := vandelay.ExportVacationJMAP(ctx, a, c, "u1", nil); err != nil || r.Set || !r.Conflict {
		t.Errorf("export over the user's own response: %+v %v, want a conflict", r, err)
	}
	_, noCap := newVacationServer(t, false)
	if _, err := vandelay.ExportVacationJMAP(ctx, a, noCap, "u1", nil); !errors.Is(err, vandelay.ErrNoCapability) {
		t.Errorf("target without the capability: %v", err)
	}
}
