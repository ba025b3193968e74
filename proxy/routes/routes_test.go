package routes

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreRoutesAliasesDefault(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	r, err := s.Set(ctx, " Alice@Example.TEST ", "legacy")
	if err != nil {
		t.Fatal(err)
	}
	if r.Account != "alice@example.test" || r.Generation != 1 || r.State != Active {
		t.Fatalf("Set = %+v", r)
	}
	if r2, _ := s.Set(ctx, "alice@example.test", "legacy"); r2.Generation != 1 {
		t.Errorf("unchanged Set bumped generation to %d", r2.Generation)
	}
	if err := s.AddAlias(ctx, "alice", "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAlias(ctx, "a.smith@other.test", "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAlias(ctx, "alice@example.test", "x@example.test"); !errors.Is(err, ErrInvalid) {
		t.Errorf("alias over an account: err = %v, want ErrInvalid", err)
	}
	if _, err := s.Resolve(ctx, "nobody@example.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown without default: err = %v", err)
	}
	if err := s.SetDefault(ctx, "legacy"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Freeze(ctx, "bob@example.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Freeze of unknown account: err = %v", err)
	}
	if _, err := s.Freeze(ctx, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, "ALICE@example.test", "stalwart"); err != nil {
		t.Fatal(err)
	}
	tab, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		id          string
		wantAccount string
		wantBackend string
		wantState   State
		wantGen     int64
		implicit    bool
	}{
		"account":       {"alice@example.test", "alice@example.test", "stalwart", Frozen, 3, false},
		"bare alias":    {"ALICE", "alice@example.test", "stalwart", Frozen, 3, false},
		"address alias": {"a.smith@other.test", "alice@example.test", "stalwart", Frozen, 3, false},
		"default":       {"Bob@Example.test", "bob@example.test", "legacy", Active, 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, ok := tab.Resolve(tc.id)
			if !ok {
				t.Fatal("not resolved")
			}
			got := []any{r.Account, r.Backend, r.State, r.Generation, r.Implicit}
			want := []any{tc.wantAccount, tc.wantBackend, tc.wantState, tc.wantGen, tc.implicit}
			if d := cmp.Diff(want, got); d != "" {
				t.Error(d)
			}
		})
	}
	if !tab.KnownDomain("other.test") || !tab.KnownDomain("x@EXAMPLE.test") || tab.KnownDomain("evil.test") {
		t.Error("KnownDomain wrong")
	}
	if err := s.AddDomains(ctx, "lists.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDomains(ctx, "bad domain"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad domain: %v", err)
	}
	tab, _ = s.Snapshot(ctx)
	if !tab.KnownDomain("lists.example.test") {
		t.Error("explicit domain unknown")
	}
	if err := s.Delete(ctx, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Aliases(ctx, "alice@example.test"); len(a) != 0 {
		t.Errorf("aliases after delete: %v", a)
	}
}

func TestMappingRoundTrip(t *testing.T) {
	ctx := context.Background()
	in := "# stalwart map\nalice@example.test\tlegacy\n\nbob@example.test\t stalwart \r\n"
	ms, err := ReadMapping(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{{"alice@example.test", "legacy"}, {"bob@example.test", "stalwart"}}
	if d := cmp.Diff(want, ms); d != "" {
		t.Fatal(d)
	}
	for _, bad := range []string{"alice legacy\n", "alice\t\n", "\tx\n", "a\tb\tc\n"} {
		if _, err := ReadMapping(strings.NewReader(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ReadMapping(%q) err = %v", bad, err)
		}
	}
	s := openTemp(t)
	if _, err := s.ImportMapping(ctx, ms); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAlias(ctx, "bob", "bob@example.test"); err != nil {
		t.Fatal(err)
	}
	out, err := s.ExportMapping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteMapping(&buf, out); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "alice@example.test\tlegacy\nbob@example.test\tstalwart\nbob\tstalwart\n"; got != want {
		t.Errorf("export = %q, want %q", got, want)
	}
}

func TestWatcherSeesOtherProcessWithinASecond(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "routes.db")
	writer, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	reader, err := Open(ctx, path) // a second handle, like a second process
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, err := writer.Set(ctx, "alice@example.test", "legacy"); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(ctx, reader, &WatchOptions{Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Change
	seen := make(chan struct{}, 10)
	w.Subscribe(func(c Change) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		seen <- struct{}{}
	})
	go w.Run(ctx)
	start := time.Now()
	if _, err := writer.Set(ctx, "alice@example.test", "stalwart"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-time.After(time.Second):
		t.Fatal("change not seen within 1s")
	}
	t.Logf("change seen after %v", time.Since(start))
	mu.Lock()
	defer mu.Unlock()
	if got[0].Old.Backend != "legacy" || got[0].New.Backend != "stalwart" || got[0].New.Generation != 2 {
		t.Errorf("change = %+v", got[0])
	}
	if r, _ := w.Table().Resolve("alice@example.test"); r.Backend != "stalwart" {
		t.Errorf("table not updated: %+v", r)
	}
}

func TestConcurrentWritersKeepGenerations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routes.db")
	var stores []*Store
	for range 3 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	const n = 20
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				st := Active
				if (i+j)%2 == 0 {
					st = Frozen
				}
				if _, err := s.Update(ctx, "alice@example.test", func(r *Route, _ bool) error {
					r.Backend = "b" + string(rune('0'+i))
					r.State = st
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r, err := stores[0].Get(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if r.Generation < 2 || r.Generation > 3*n {
		t.Errorf("generation %d out of range", r.Generation)
	}
	v, _ := stores[1].Version(ctx)
	if v != r.Generation {
		t.Errorf("version %d != generation %d (only this account changed)", v, r.Generation)
	}
}

func FuzzReadMapping(f *testing.F) {
	f.Add("alice@example.test\tlegacy\n# c\n\nbob\tx\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ReadMapping(strings.NewReader(s))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteMapping(&buf, ms); err != nil {
			t.Fatal(err)
		}
		again, err := ReadMapping(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(ms, again); d != "" && !(len(ms) == 0 && len(again) == 0) {
			t.Fatal(d)
		}
	})
}

func TestDiffAliasesAndDefault(t *testing.T) {
	rs := []Route{{Account: "a@x.test", Backend: "one", State: Active}, {Account: "b@x.test", Backend: "two", State: Active}}
	old := NewTable(1, "one", rs, map[string]string{"a": "a@x.test", "gone": "a@x.test"}, nil)
	cur := NewTable(2, "two", rs, map[string]string{"a": "b@x.test", "new": "b@x.test"}, nil)
	type row struct {
		Account, Alias, Old, New string
		Default                  bool
	}
	var got []row
	for _, c := range Diff(old, cur) {
		got = append(got, row{c.Account, c.Alias, c.Old.Backend, c.New.Backend, c.Default})
	}
	want := []row{
		{"", "", "one", "two", true},
		{"a@x.test", "gone", "one", "two", false}, // now through the new default
		{"b@x.test", "a", "one", "two", false},
		{"b@x.test", "new", "one", "two", false}, // was the old default
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
	if cs := Diff(cur, cur); len(cs) != 0 {
		t.Errorf("no change: %+v", cs)
	}
}
