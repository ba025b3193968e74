package peers

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Port indexes of private PostgreSQL clusters (Private), above the set's own
// listeners (0..70) in its block of 100.
const (
	privateFirstIndex = 71
	privateLastIndex  = 79
)

// Private starts a PostgreSQL cluster of the test's own beside p: the same
// role, password and "mailmig" database, data in ROOT/postgres-private-N,
// port BasePort + offset + N (N in 71..79). A test that really stops and
// starts its database server (Stop, Start) uses one, so that the tests of
// other packages sharing p keep their server. The test's cleanup stops it
// and removes its directory. Like Get, it skips the test when PostgreSQL is
// not installed or we are not root (start-postgres.sh runs initdb as the
// postgres user), unless CI=true, where that fails the test.
func (p *Postgres) Private(t testing.TB) *Postgres {
	t.Helper()
	if msg := privateMissing(); msg != "" {
		if os.Getenv("CI") != "true" {
			t.Skipf("private PostgreSQL cluster unavailable: %s", msg)
		}
		t.Fatalf("private PostgreSQL cluster: %s", msg)
	}
	if findScripts() == "" {
		t.Fatalf("cannot find testdata/peers from %s; set %s", mustWd(), EnvScripts)
	}
	root := filepath.Dir(p.Base)
	for idx := privateFirstIndex; idx <= privateLastIndex; idx++ {
		// The lock says which test binary owns index idx: tests of several
		// packages share one set and may each want a private cluster.
		lock, err := os.OpenFile(filepath.Join(root, fmt.Sprintf("postgres-private-%d.lock", idx)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatalf("private PostgreSQL cluster: %v", err)
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
			continue
		}
		q := &Postgres{Base: filepath.Join(root, fmt.Sprintf("postgres-private-%d", idx)),
			Addr: addr(BasePort + p.offset() + idx), index: idx}
		q.DSN = q.DatabaseDSN("mailmig")
		if fileExists(q.Base) {
			// Left by a test binary that died (we hold its lock now): its
			// server may still run.
			if err := q.ctlErr("stop"); err != nil {
				t.Logf("stop a leftover private PostgreSQL cluster: %v", err)
			}
			os.RemoveAll(q.Base)
		}
		if portOpenAddr(q.Addr) {
			lock.Close() // someone else's listener: try the next index
			continue
		}
		t.Cleanup(func() {
			if err := q.ctlErr("stop"); err != nil {
				t.Errorf("stop the private PostgreSQL cluster: %v", err)
			}
			if err := os.RemoveAll(q.Base); err != nil {
				t.Errorf("remove the private PostgreSQL cluster: %v", err)
			}
			lock.Close()
		})
		q.Start(t)
		return q
	}
	t.Fatalf("no free port for a private PostgreSQL cluster (indexes %d..%d of offset %d are locked or in use)",
		privateFirstIndex, privateLastIndex, p.offset())
	return nil
}

// privateMissing says why start-postgres.sh cannot make a cluster here
// ("" when it can).
func privateMissing() string {
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) == 0 {
		return "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); " + howTo
	}
	if os.Geteuid() != 0 {
		return "initdb as the postgres user needs root; " + howTo
	}
	return ""
}
