// Package webdav imports an account's file tree from a WebDAV server (RFC
// 4918: Apache mod_dav_fs, Nextcloud, a Cyrus drive …) into the archive.
//
// The tree is walked folder by folder with PROPFIND Depth 1 (servers
// refuse Depth infinity); each entry's path is the href decoded from the
// URL exactly (no Unicode normalisation: an NFD name stays NFD), its size,
// media type, modified time and ETag kept. Files are fetched by GET and
// streamed into the archive's blob store; only those whose ETag (or size
// and time) changed since the last import are fetched again. The source
// is only read, never changed.
package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/davclient"
	srcdav "github.com/mailmig/mailmig/vandelay/sources/dav"
)

// Kind is the source kind in the registry and the archive.
const Kind = "webdav"

// Bounds of a walk: deeper trees or more entries are refused rather than
// followed without end (a server answering with a loop of folders).
const (
	MaxDepth   = 64
	MaxEntries = 1_000_000
)

// Options configure [New] (and the target's Open).
type Options struct {
	// Server is the WebDAV server: TLS none (with AllowCleartext) for
	// http, anything else for https.
	vandelay.Server
	// Login is the account (HTTP Basic with its own password).
	vandelay.Login
	// Path is the tree's root on the server, e.g. /files/alice@example.test/;
	// "{user}" in it is replaced by the login's user name. Default "/".
	Path string
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Root returns the root path the options name, ending in "/".
func (o *Options) Root() string {
	p := strings.ReplaceAll(o.Path, "{user}", o.User)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// Client checks the options and returns a client for the server.
func Client(o *Options, what string) (*davclient.Client, error) {
	if o == nil || o.Address == "" {
		return nil, fmt.Errorf("%w: a WebDAV %s needs a server address (host:port)", vandelay.ErrUsage, what)
	}
	if o.User == "" {
		return nil, fmt.Errorf("%w: a WebDAV %s needs the account's user name", vandelay.ErrUsage, what)
	}
	if o.TLS == vandelay.TLSNone && !o.AllowCleartext {
		return nil, fmt.Errorf("%w: refusing to send a password over plain http without AllowCleartext", vandelay.ErrUsage)
	}
	if o.MasterUser != "" || o.Token != "" {
		return nil, fmt.Errorf("%w: WebDAV logs in with the user's own password (no master user or token)", vandelay.ErrUsage)
	}
	c, err := davclient.New(srcdav.URL(o.Server, "/"), o.User, o.Password, srcdav.TLSConfig(o.Server))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	return c, nil
}

// Source is one account's file tree.
type Source struct {
	o    Options
	c    *davclient.Client
	root string
	log  *slog.Logger
}

var _ vandelay.FileSource = (*Source)(nil)

// New checks the options and returns a source; it connects on use.
func New(o *Options) (*Source, error) {
	c, err := Client(o, "source")
	if err != nil {
		return nil, err
	}
	return &Source{o: *o, c: c, root: o.Root(), log: vandelay.LoggerOr(o.Logger)}, nil
}

// Describe returns the source's identity.
func (s *Source) Describe() archive.Source {
	return archive.Source{Kind: Kind, Endpoint: srcdav.URL(s.o.Server, "/"), Account: s.o.User, Login: s.o.User}
}

// Root returns the tree's root path.
func (s *Source) Root() string { return s.root }

// Walk lists the tree below the root; the tag is the root's ETag.
func (s *Source) Walk(ctx context.Context) ([]archive.NewFile, string, error) {
	top, err := s.c.Stat(ctx, s.root)
	if err != nil {
		return nil, "", classify(err)
	}
	out, err := Walk(ctx, s.c, s.root)
	return out, top.ETag, err
}

// Walk lists the tree below root (a folder's URL path ending in "/"),
// breadth first, with paths relative to root. Shared by the target.
func Walk(ctx context.Context, c *davclient.Client, root string) ([]archive.NewFile, error) {
	droot, err := url.PathUnescape(root)
	if err != nil {
		return nil, fmt.Errorf("root %q: %w", root, err)
	}
	type dir struct {
		href  string
		depth int
	}
	queue := []dir{{root, 0}}
	var out []archive.NewFile
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		entries, err := c.List(ctx, d.href)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", d.href, err)
		}
		for _, e := range entries {
			dh, err := url.PathUnescape(e.Href)
			if err != nil {
				return nil, fmt.Errorf("href %q from the server: %w", e.Href, err)
			}
			rel := strings.Trim(strings.TrimPrefix(dh, droot), "/")
			if !strings.HasPrefix(dh, droot) || rel == "" || path.Clean("/"+rel) != "/"+rel {
				continue // outside the tree, or the folder itself
			}
			out = append(out, archive.NewFile{Path: rel, IsDir: e.Collection, MediaType: mediaType(e), Size: e.Size, MTime: e.Modified, ETag: e.ETag})
			if len(out) > MaxEntries {
				return nil, fmt.Errorf("more than %d entries below %s", MaxEntries, root)
			}
			if e.Collection {
				if d.depth+1 > MaxDepth {
					return nil, fmt.Errorf("folders nested deeper than %d below %s", MaxDepth, root)
				}
				queue = append(queue, dir{strings.TrimSuffix(root, "/") + "/" + davclient.EscapePath(rel) + "/", d.depth + 1})
			}
		}
	}
	return out, nil
}

// mediaType is a file's type as the server names it; folders have none
// (Apache calls them httpd/unix-directory).
func mediaType(e davclient.Entry) string {
	if e.Collection {
		return ""
	}
	return e.MediaType
}

// Open streams the file at path.
func (s *Source) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	body, _, _, err := s.c.Open(ctx, strings.TrimSuffix(s.root, "/")+"/"+davclient.EscapePath(p))
	return body, err
}

// classify wraps errors in the source error classes: a refused login is
// ErrAuth, a server that cannot be reached ErrConnect.
func classify(err error) error {
	var ne net.Error
	var oe *net.OpError
	switch {
	case davclient.Code(err) == http.StatusUnauthorized:
		return fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
	case errors.As(err, &oe), errors.As(err, &ne):
		return fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
	}
	return err
}

// Close releases nothing: HTTP connections are pooled.
func (s *Source) Close() error { return nil }
