package vandelay_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// fakeSource syncs one INBOX message per call and then returns err.
type fakeSource struct {
	account string
	n       int
	err     error
}

func (s *fakeSource) Describe() archive.Source {
	return archive.Source{Kind: "fake", Endpoint: "fake", Account: s.account, Login: s.account}
}

func (s *fakeSource) Sync(ctx context.Context, run *archive.Run, p vandelay.Progress) error {
	boxes, err := run.SyncMailboxes(ctx, []archive.MailboxInfo{{Path: "INBOX", Selectable: true}}, nil)
	if err != nil {
		return err
	}
	s.n++
	body := fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", s.n)
	p.Discovered(1, int64(len(body)))
	if err := run.Add(ctx, boxes["INBOX"].ID, fmt.Sprint(s.n), &archive.NewMessage{Body: body, ReceivedAt: time.Unix(1e9, 0)}); err != nil {
		return err
	}
	p.Done(1, int64(len(body)))
	return s.err
}

func (s *fakeSource) Close() error { return nil }

// TestImport checks the one import sequence: a run is finished as
// complete only when Sync returned nil; Sync's error comes back unwrapped
// next to the result; a run that cannot begin returns no result.
func TestImport(t *testing.T) {
	ctx := context.Background()
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	src := &fakeSource{account: "alice"}
	partial := &vandelay.PartialError{Failed: map[string]error{"Work": errors.New("gone")}}
	fatal := fmt.Errorf("%w: dropped", vandelay.ErrConnect)
	tests := []struct {
		name     string
		err      error
		opts     *vandelay.ImportOptions
		complete bool
	}{
		{"complete", nil, nil, true},
		{"partial", partial, nil, false},
		{"fatal", fatal, nil, false},
		{"dry run", nil, &vandelay.ImportOptions{DryRun: true}, true},
	}
	for _, tc := range tests {
		src.err = tc.err
		res, err := vandelay.Import(ctx, src, a, tc.opts)
		if res == nil {
			t.Fatalf("%s: no result: %v", tc.name, err)
		}
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
		}
		if res.Complete != tc.complete {
			t.Errorf("%s: complete %v, want %v", tc.name, res.Complete, tc.complete)
		}
		if res.MessagesAdded != 1 || res.DryRun != (tc.opts != nil && tc.opts.DryRun) {
			t.Errorf("%s: result %+v", tc.name, res)
		}
	}
	var pe *vandelay.PartialError
	src.err = partial
	if _, err := vandelay.Import(ctx, src, a, nil); !errors.As(err, &pe) {
		t.Errorf("partial error lost its type: %v", err)
	}

	// Another account into the same archive: the run does not begin.
	res, err := vandelay.Import(ctx, &fakeSource{account: "bob"}, a, nil)
	if res != nil || !errors.Is(err, archive.ErrSourceChanged) {
		t.Fatalf("source change: %+v, %v", res, err)
	}
	res, err = vandelay.Import(ctx, &fakeSource{account: "bob"}, a, &vandelay.ImportOptions{AllowSourceChange: true})
	if err != nil || res == nil {
		t.Fatalf("allowed source change: %v", err)
	}
}
