package jmap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// childEnv makes the test binary run one export and exit (see TestMain).
const childEnv = "MAILMIG_TEST_EXPORT_CHILD"

// exportChild runs an export for TestExportKillResume in a process of its
// own, so that the parent can SIGKILL it at any moment.
func exportChild() {
	ctx := context.Background()
	a, err := archive.Open(ctx, os.Getenv("EXPORT_ARCHIVE"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	c, err := jc.Discover(ctx, os.Getenv("EXPORT_URL"), &jc.Options{Auth: jc.BasicAuth{User: os.Getenv("EXPORT_USER"), Password: os.Getenv("EXPORT_PASS")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	acct, _ := c.Session().FindAccount("")
	_, err = tj.Export(ctx, a, c, acct, &tj.Options{BatchSize: 7, Workers: 2, Progress: func(p tj.Progress) {
		fmt.Printf("%s %d\n", p.Phase, p.Done)
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	os.Exit(0)
}

// TestExportKillResume kills an export with SIGKILL at random moments,
// resumes it each time, and checks that the target ends up with every
// message exactly once and that the export still knows it created them.
func TestExportKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: several processes")
	}
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	dir := t.TempDir()
	path := dir + "/a.db"
	a, err := archive.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &source{folders: folders[:7], msgs: genCorpus(5, 80)}
	for _, m := range src.msgs {
		for i, b := range m.boxes {
			if b == "Lists/a;b" {
				m.boxes[i] = "INBOX"
			}
		}
	}
	src.load(t, a)
	a.Close()

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	kills := 0
	for round := 0; round < 6; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "EXPORT_ARCHIVE="+path, "EXPORT_URL="+s.Cyrus.JMAPURL(),
			"EXPORT_USER="+acct.Email, "EXPORT_PASS="+acct.Password)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := time.Duration(150+r.IntN(900)) * time.Millisecond
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child export: %v\n%s", err, out.String())
			}
			t.Logf("round %d finished before the kill", round)
			round = 99
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			t.Logf("round %d killed after %v: %q", round, delay, lastLine(out.String()))
		}
	}
	a, err = archive.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c := dial(t, s.Cyrus.JMAPURL(), acct)
	acctID, _ := c.Session().FindAccount("")
	res, err := tj.Export(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("final run after %d kills: %d imported, %d matched", kills, res.EmailsImported, res.EmailsMatched)
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTarget(t, s, acct, src, rep)
	tgt, _ := a.ExportTarget(ctx, tj.TargetName(c, acctID))
	maps, _ := tgt.Mappings(ctx, archive.KindEmail)
	for id, m := range maps {
		if !m.Created {
			t.Errorf("archive message %d: the export forgot that it created target email %s", id, m.RemoteID)
		}
	}
	if len(maps) != 80 {
		t.Errorf("%d mappings, want 80", len(maps))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// limitProxy is a reverse proxy in front of Cyrus's JMAP that advertises
// tiny limits in the session and enforces them like a strict server.
type limitProxy struct {
	srv        *httptest.Server
	violations atomic.Int64
	requests   atomic.Int64
	inUpload   atomic.Int64
}

func newLimitProxy(t *testing.T, backend string, core map[string]any) *limitProxy {
	p := &limitProxy{}
	u, _ := url.Parse(backend)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var sess map[string]any
		if json.Unmarshal(b, &sess) == nil && sess["capabilities"] != nil {
			caps := sess["capabilities"].(map[string]any)
			cc := caps[jc.CapCore].(map[string]any)
			for k, v := range core {
				cc[k] = v
			}
			b, _ = json.Marshal(sess)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/upload/") {
			if n := p.inUpload.Add(1); n > int64(core["maxConcurrentUpload"].(int)) {
				p.violations.Add(1)
			}
			defer p.inUpload.Add(-1)
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/jmap/") {
			p.requests.Add(1)
			body, _ := io.ReadAll(r.Body)
			var req struct {
				MethodCalls [][]json.RawMessage `json:"methodCalls"`
			}
			json.Unmarshal(body, &req)
			if len(req.MethodCalls) > core["maxCallsInRequest"].(int) {
				p.violations.Add(1)
				w.WriteHeader(400)
				fmt.Fprintf(w, `{"type":"urn:ietf:params:jmap:error:limit","limit":"maxCallsInRequest","status":400}`)
				return
			}
			for _, mc := range req.MethodCalls {
				var args map[string]json.RawMessage
				json.Unmarshal(mc[1], &args)
				n := 0
				for _, k := range []string{"create", "update", "emails"} {
					var m map[string]any
					json.Unmarshal(args[k], &m)
					n += len(m)
				}
				var ids, destroy []string
				json.Unmarshal(args["destroy"], &destroy)
				json.Unmarshal(args["ids"], &ids)
				if n+len(destroy) > core["maxObjectsInSet"].(int) || len(ids) > core["maxObjectsInGet"].(int) {
					p.violations.Add(1)
				}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// TestExportSmallLimits exports through a session that allows 2 calls per
// request, 3 objects per get/set, one upload and one request at a time
// and 100 KiB uploads: everything but the 2 MiB message arrives, that one
// is skipped by name and the run is partial.
func TestExportSmallLimits(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	a := tempArchive(t)
	src := &source{folders: folders, msgs: genCorpus(9, 25)}
	src.load(t, a)
	core := map[string]any{"maxCallsInRequest": 2, "maxObjectsInSet": 3, "maxObjectsInGet": 3,
		"maxConcurrentUpload": 1, "maxConcurrentRequests": 1, "maxSizeUpload": 100 << 10}
	p := newLimitProxy(t, "http://"+s.Cyrus.HTTP, core)
	c := dial(t, p.srv.URL+"/jmap/", acct)
	if c.MaxObjectsInSet() != 3 {
		t.Fatalf("session limits not taken from the session: %+v", c.Session().Core)
	}
	acctID, _ := c.Session().FindAccount("")
	res, err := tj.Export(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Name, "gen-9-7@example.test") || !res.Partial() {
		t.Fatalf("skipped %+v, want only the 2 MiB message gen-9-7", res.Skipped)
	}
	t.Logf("skipped: %s: %s", res.Skipped[0].Name, res.Skipped[0].Reason)
	if res.EmailsImported != 24 {
		t.Errorf("imported %d, want 24", res.EmailsImported)
	}
	if v := p.violations.Load(); v != 0 {
		t.Errorf("%d requests broke the advertised limits", v)
	}
	// Read back: exactly the big one is missing.
	rep, err := verify.Target(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var missing int
	for _, m := range rep.Mismatches {
		if m.Kind == "missing" {
			missing++
		} else if m.Kind != "count" {
			t.Errorf("verify: %s", m)
		}
	}
	if missing != 1 || rep.HashEqual != 24 {
		t.Errorf("verify: %d missing, %d hash-equal; want 1 and 24", missing, rep.HashEqual)
	}
	// A re-run retries only the skipped one and changes nothing else.
	before := p.requests.Load()
	res, err = tj.Export(ctx, a, c, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || res.Uploads != 0 || res.EmailsUpdated != 0 {
		t.Errorf("re-run: %+v", res)
	}
	t.Logf("re-run: %d requests", p.requests.Load()-before)
}
