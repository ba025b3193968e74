package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

const crashPlan = `
backend "legacy" {
  imap {
    address = "127.0.0.1:20000"
    tls     = "none"
  }
}

backend "target" {
  jmap {
    url = "http://127.0.0.1:20038/.well-known/jmap"
  }
}

accounts "staff" {
  from = backend.legacy
  to   = backend.target
  list = ["a@example.test", "b@example.test", "c@example.test", "d@example.test"]
  data = ["mail"]
}

wave "pilot" {
  accounts          = ["a@example.test", "b@example.test"]
  canary            = 1
  catchup_threshold = 1000
}

wave "rest" {
  accounts          = ["c@example.test", "d@example.test"]
  after             = [wave.pilot]
  catchup_threshold = 1000
}
`

// TestCrashRecovery kills "mailmig apply" with SIGKILL at random points
// (between any two steps, inside cut-overs included) while mail keeps
// arriving, then reruns apply until nothing is left. Afterwards no account
// may be frozen, every account is done on the target with every message
// of its source, the journal verifies and no lock is left behind.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts many processes")
	}
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	midCutover := 0
	defer func() {
		if !t.Failed() && midCutover == 0 {
			t.Error("no run was killed in the middle of a cut-over; pick other seeds")
		}
	}()
	for _, seed := range seeds {
		t.Run("seed="+string(rune('0'+seed)), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "migration.hcl"), []byte(crashPlan), 0o644); err != nil {
				t.Fatal(err)
			}
			world := filepath.Join(dir, "world.json")
			d := fakeData{Source: map[string]int64{"a@example.test": 30, "b@example.test": 20, "c@example.test": 10, "d@example.test": 5}}
			writeWorld(t, world, &d)
			apply := func(crash int) (killed bool, out string) {
				cmd := exec.Command(os.Args[0], "apply", "-auto-approve", "-parallelism", "2", "-refresh=false")
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=1", "MAILMIG_TEST_WORLD="+world, "MAILMIG_ACTOR=crash@example.test")
				if crash > 0 {
					cmd.Env = append(cmd.Env, "MAILMIG_TEST_CRASH="+itoa(crash))
				}
				var b bytes.Buffer
				cmd.Stdout, cmd.Stderr = &b, &b
				err := cmd.Run()
				if ee, ok := err.(*exec.ExitError); ok && ee.ProcessState.String() == "signal: killed" {
					return true, b.String()
				}
				return false, b.String()
			}
			arrive := func() {
				d := readWorld(t, world)
				for _, k := range []string{"a@example.test", "b@example.test", "c@example.test", "d@example.test"} {
					n := int64(rng.IntN(3))
					d.Source[k] += n
					if routeOf(t, dir, k) == "target" {
						d.Target[k] += n // the proxy delivers to the target after the flip
						d.Archive[k] += n
					}
				}
				writeWorld(t, world, d)
			}
			crashes := 0
			for round := 0; round < 12; round++ {
				arrive()
				crash := 1 + rng.IntN(40)
				killed, out := apply(crash)
				if killed {
					crashes++
					j, err := state.Open(filepath.Join(dir, "state"), &state.Options{ReadOnly: true})
					if err != nil {
						t.Fatalf("journal after kill: %v", err)
					}
					mid := false
					for _, a := range j.State().Accounts {
						mid = mid || a.InFlight == "cutover"
					}
					j.Close()
					if mid {
						midCutover++
					}
					t.Logf("round %d: killed at event %d (mid-cut-over: %v)", round, crash, mid)
				} else if strings.Contains(out, "State locked") {
					t.Fatalf("a dead apply's lock was not taken over:\n%s", out)
				}
				if round >= 6 && !killed && strings.Contains(out, "No changes") {
					break
				}
			}
			// Converge without crashes.
			for i := 0; i < 8; i++ {
				_, out := apply(0)
				if strings.Contains(out, "No changes") {
					break
				}
			}
			if crashes == 0 {
				t.Log("no run was killed (crash points beyond the run)")
			}
			d = *readWorld(t, world)
			for _, k := range []string{"a@example.test", "b@example.test", "c@example.test", "d@example.test"} {
				if r, frozen := routeAndFrozen(t, dir, k); r != "target" || frozen {
					t.Errorf("%s: route %s frozen=%v", k, r, frozen)
				}
				if d.Target[k] != d.Source[k] {
					t.Errorf("%s: target has %d of %d messages", k, d.Target[k], d.Source[k])
				}
			}
			res, err := state.Verify(filepath.Join(dir, "state"))
			if err != nil || !res.OK {
				t.Fatalf("journal: %+v %v", res, err)
			}
			if info, _ := state.ReadLock(filepath.Join(dir, "state")); info != nil {
				t.Fatalf("lock left behind: %+v", info)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func writeWorld(t *testing.T, path string, d *fakeData) {
	t.Helper()
	for _, mp := range []*map[string]int64{&d.Archive, &d.Target} {
		if *mp == nil {
			*mp = map[string]int64{}
		}
	}
	b, _ := json.Marshal(d)
	if err := state.WriteFileAtomic(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readWorld(t *testing.T, path string) *fakeData {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d fakeData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for _, mp := range []*map[string]int64{&d.Source, &d.Archive, &d.Target} {
		if *mp == nil {
			*mp = map[string]int64{}
		}
	}
	return &d
}

// routeOf reads an account's backend from the route table via "state
// show -json".
func routeOf(t *testing.T, dir, account string) string {
	r, _ := routeAndFrozen(t, dir, account)
	return r
}

func routeAndFrozen(t *testing.T, dir, account string) (string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "state", "show", "-json", account)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("state show: %v", err)
	}
	var v struct {
		Route  string `json:"route"`
		Frozen bool   `json:"frozen"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("state show: %v: %s", err, out)
	}
	return v.Route, v.Frozen
}
