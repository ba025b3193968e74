package imap_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// privateDovecotZlib starts a private Dovecot from the project's script at
// the set's offset + 80 (indices 80–87 are unused by the layout) with the
// imap_zlib plugin, which offers COMPRESS=DEFLATE. It returns the IMAP
// address; the fixed user alice@example.test/alicepw exists there.
func privateDovecotZlib(t *testing.T) string {
	t.Helper()
	s := peers.Get(t)
	base, err := os.MkdirTemp("", "mmz")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("../../../testdata/peers/start-dovecot.sh")
	stop, _ := filepath.Abs("../../../testdata/peers/stop-all.sh")
	// Registered before the start: a start that fails half-way (a port
	// taken) must not leave its SMTP sink or token endpoint running.
	// stop-all.sh stops every process the start script recorded.
	t.Cleanup(func() {
		exec.Command("bash", stop, base).Run()
		os.RemoveAll(base)
	})
	off := s.Offset + 80
	out, err := exec.Command("bash", script, base, strconv.Itoa(off)).CombinedOutput()
	if err != nil {
		t.Fatalf("start private dovecot: %v\n%s", err, out)
	}
	conf := filepath.Join(base, "etc", "dovecot.conf")
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(data), "protocol imap {\n", "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n", 1)
	if err := os.WriteFile(conf, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dovecot", "-c", conf, "reload").CombinedOutput(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(20000+off)
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond) // the reload takes effect asynchronously
	defer tick.Stop()
	for {
		if c, err := imapclient.DialInsecure(addr, nil); err == nil {
			err = c.Login("alice@example.test", "alicepw").Wait()
			caps := c.Caps()
			c.Close()
			if err == nil && caps.Has("COMPRESS=DEFLATE") {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("private Dovecot never offered COMPRESS=DEFLATE")
		}
		<-tick.C
	}
}

// TestCompressDeflate imports from a Dovecot that offers COMPRESS=DEFLATE:
// every connection compresses, and the archive equals the source.
func TestCompressDeflate(t *testing.T) {
	addr := privateDovecotZlib(t)
	a := account{set: peers.Get(t), addr: addr, user: "alice@example.test", pass: "alicepw"}
	a.load(t, 12, 150)
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	ar := vandelaytest.OpenArchive(t)
	src := a.factory()(t)
	vandelaytest.Import(t, ar, src, nil)
	st := src.(*imapsrc.Source).Stats()
	if st.Compressed == 0 || st.Compressed != st.Connections {
		t.Errorf("%d of %d connections compressed", st.Compressed, st.Connections)
	}
	vandelaytest.Check(t, ar, want)

	off := a.factory(func(c *imapsrc.Options) { c.NoCompress = true })(t)
	vandelaytest.Import(t, vandelaytest.OpenArchive(t), off, nil)
	if n := off.(*imapsrc.Source).Stats().Compressed; n != 0 {
		t.Errorf("NoCompress: %d compressed connections", n)
	}
}
