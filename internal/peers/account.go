package peers

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Account is a user that exists with the same password on every peer of a
// set: both Dovecots, Cyrus (with INBOX and its special-use folders), Radicale
// (with the collections "calendar" and "contacts") and WebDAV (with its
// directory), and nginx's mail routes (to Set.Dovecot).
type Account struct {
	Email    string
	Password string
}

// NewAccount creates a fresh user t<random>@example.test on every peer and
// returns it. Tests that share a set must use their own accounts.
func (s *Set) NewAccount(t testing.TB) Account {
	t.Helper()
	a := Account{Email: "t" + randHex(6) + "@example.test", Password: "pw-" + randHex(8)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.AddAccount(ctx, a); err != nil {
		t.Fatalf("create test account: %v", err)
	}
	return a
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// AddAccount creates a (or re-passwords an existing) user on every peer of
// the set. Passwords may not contain ':' or a newline (passwd-file format).
func (s *Set) AddAccount(ctx context.Context, a Account) error {
	a.Email = strings.ToLower(a.Email)
	local, domain, ok := strings.Cut(a.Email, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(a.Email, ": \t\r\n/") {
		return fmt.Errorf("account %q: want a plain address local@domain", a.Email)
	}
	if strings.ContainsAny(a.Password, ":\r\n") || a.Password == "" {
		return fmt.Errorf("account %s: the password may not be empty or contain ':' or a newline", a.Email)
	}
	if err := s.addFiles(ctx, a, local, domain); err != nil {
		return err
	}
	// Cyrus creates INBOX, Drafts, Sent, Trash, Junk and Archive at the first
	// login; JMAP and DAV answer 500 until then.
	if err := imapLogin(s.Cyrus.IMAP, a); err != nil {
		return fmt.Errorf("first Cyrus login of %s: %w", a.Email, err)
	}
	if err := s.radicaleCollections(ctx, a); err != nil {
		return err
	}
	return nil
}

// addFiles writes every user file under one lock (several test binaries
// may add users to the same set at once).
func (s *Set) addFiles(ctx context.Context, a Account, local, domain string) error {
	lock, err := os.OpenFile(filepath.Join(s.Root, "users.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lock users: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock users: %w", err)
	}
	// Dovecot: one passwd-file per user in etc/users.d (see start-dovecot.sh:
	// Dovecot stats a passwd-file at most once a second, so a line added to
	// the shared file can stay invisible for a second).
	for _, d := range []*Dovecot{s.Dovecot, s.Dovecot2} {
		path := filepath.Join(d.Base, "etc", "users.d", a.Email)
		fi, err := os.Stat(filepath.Dir(path))
		if err != nil {
			return fmt.Errorf("add user to Dovecot %s: %w", d.Base, err)
		}
		_, err = os.Stat(path)
		existed := err == nil
		if err := writeAtomic(path, []byte(a.Email+":{PLAIN}"+a.Password+"::::::\n"), fileMode{fi, 0o640}); err != nil {
			return fmt.Errorf("add user to Dovecot %s: %w", d.Base, err)
		}
		if existed {
			// a changed password of a user looked up within the last second
			// becomes visible only at the next second
			if err := d.waitAuth(ctx, a); err != nil {
				return err
			}
		}
	}
	// Radicale: htpasswd_encryption = plain
	if err := upsertLine(filepath.Join(s.Radicale.Base, "users"), a.Email, a.Email+":"+a.Password); err != nil {
		return err
	}
	// Apache accepts {SHA} (base64 SHA-1) entries on every platform.
	sum := sha1.Sum([]byte(a.Password))
	if err := upsertLine(filepath.Join(s.WebDAV.Base, "htpasswd"), a.Email, a.Email+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])); err != nil {
		return err
	}
	dir := filepath.Join(s.WebDAV.Base, "files", a.Email)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if u, err := user.Lookup("www-data"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(dir, uid, gid)
	}
	if err := s.addRoute(a); err != nil {
		return err
	}
	// Cyrus: sasldb (realm = the user's domain, see start-cyrus.sh)
	sasldb := filepath.Join(s.Cyrus.Base, "etc", "sasldb2")
	cmd := exec.CommandContext(ctx, "saslpasswd2", "-f", sasldb, "-p", "-c", "-u", domain, local)
	cmd.Stdin = strings.NewReader(a.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("saslpasswd2 %s: %w: %s", a.Email, err, out)
	}
	if u, err := user.Lookup("cyrus"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		g, _ := user.LookupGroup("mail")
		gid := -1
		if g != nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
		os.Chown(sasldb, uid, gid)
	}
	return nil
}

// upsertLine replaces the line for key ("key:...") in path, or appends it,
// by writing a temporary file and renaming it over path: the daemons re-read
// these files and must never see a half-written one. Mode and owner are kept.
func upsertLine(path, key, line string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("add user to %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if l == "" || strings.HasPrefix(l, key+":") {
			continue
		}
		b.WriteString(l + "\n")
	}
	b.WriteString(line + "\n")
	return writeAtomic(path, []byte(b.String()), fi)
}

// fileMode gives the owner of a FileInfo with another permission.
type fileMode struct {
	os.FileInfo
	perm os.FileMode
}

func (f fileMode) Mode() os.FileMode { return f.perm }

// waitAuth polls `doveadm auth test` until Dovecot accepts the password.
func (d *Dovecot) waitAuth(ctx context.Context, a Account) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		cmd := exec.CommandContext(ctx, "doveadm", "-c", d.ConfigPath(), "auth", "test", a.Email, a.Password)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Dovecot %s does not accept the new password of %s: %v: %s", d.Base, a.Email, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func writeAtomic(path string, data []byte, like os.FileInfo) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), like.Mode().Perm()); err != nil {
		return err
	}
	if st, ok := like.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(tmp.Name(), int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return os.Rename(tmp.Name(), path)
}

// addRoute routes the account through nginx's mail proxy to Set.Dovecot.
func (s *Set) addRoute(a Account) error {
	path := s.NginxMail.RoutesFile
	fi, err := os.Stat(path)
	if err != nil {
		return nil // no nginx in this set
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	routes := map[string]map[string]string{}
	if err := json.Unmarshal(raw, &routes); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	p := BasePort + s.Offset
	routes[a.Email] = map[string]string{"password": a.Password,
		"imap": addr(p), "pop3": addr(p + 2), "smtp": addr(p + 7)}
	out, err := json.MarshalIndent(routes, "", " ")
	if err != nil {
		return err
	}
	return writeAtomic(path, out, fi)
}

func imapLogin(address string, a Account) error {
	c, err := imapclient.DialInsecure(address, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		return err
	}
	return c.Logout().Wait()
}

const mkcalendarBody = `<?xml version="1.0"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>
<D:displayname>Calendar</D:displayname>
<C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="VTODO"/></C:supported-calendar-component-set>
</D:prop></D:set></C:mkcalendar>`

const mkcolAddressbookBody = `<?xml version="1.0"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>
<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
<D:displayname>Contacts</D:displayname>
</D:prop></D:set></D:mkcol>`

// radicaleCollections creates HomeURL/calendar/ and HomeURL/contacts/.
func (s *Set) radicaleCollections(ctx context.Context, a Account) error {
	for _, c := range []struct{ method, name, body string }{
		{"MKCALENDAR", "calendar/", mkcalendarBody},
		{"MKCOL", "contacts/", mkcolAddressbookBody},
	} {
		req, err := http.NewRequestWithContext(ctx, c.method, s.Radicale.HomeURL(a.Email)+c.name, strings.NewReader(c.body))
		if err != nil {
			return err
		}
		req.SetBasicAuth(a.Email, a.Password)
		req.Header.Set("Content-Type", "application/xml; charset=utf-8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("radicale %s %s: %w", c.method, c.name, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		// 405 and 409: the collection exists already (AddAccount of an existing user)
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusConflict {
			return fmt.Errorf("radicale %s %s for %s: %s: %s", c.method, c.name, a.Email, resp.Status, body)
		}
	}
	return nil
}

// NewSourceAccount creates a fresh user t<random>@example.test on the two
// Dovecots only: an account that exists at the source of a migration but
// not on Cyrus, its target (a pre-flight must report it missing there).
func (s *Set) NewSourceAccount(t testing.TB) Account {
	t.Helper()
	a := Account{Email: "t" + randHex(6) + "@example.test", Password: "pw-" + randHex(8)}
	lock, err := os.OpenFile(filepath.Join(s.Root, "users.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("lock users: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock users: %v", err)
	}
	for _, d := range []*Dovecot{s.Dovecot, s.Dovecot2} {
		path := filepath.Join(d.Base, "etc", "users.d", a.Email)
		fi, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatalf("add user to Dovecot %s: %v", d.Base, err)
		}
		if err := writeAtomic(path, []byte(a.Email+":{PLAIN}"+a.Password+"::::::\n"), fileMode{fi, 0o640}); err != nil {
			t.Fatalf("add user to Dovecot %s: %v", d.Base, err)
		}
	}
	return a
}
