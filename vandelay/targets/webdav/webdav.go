// Package webdav exports an archive's file trees onto a WebDAV folder
// (Apache mod_dav_fs in the tests; a Cyrus drive or Nextcloud alike):
// MKCOL for folders, PUT streamed with If-None-Match: * or If-Match,
// DELETE with If-Match. See vandelay.ExportFiles for the reconciliation.
package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/davclient"
	srcdav "github.com/mailmig/mailmig/vandelay/sources/dav"
	srcwebdav "github.com/mailmig/mailmig/vandelay/sources/webdav"
)

// Options are the source's: server, login, root path.
type Options = srcwebdav.Options

// Target is one account's file tree at a WebDAV server.
type Target struct {
	o    Options
	c    *davclient.Client
	root string
}

var _ vandelay.FileTarget = (*Target)(nil)

// Open checks the options and returns a target.
func Open(_ context.Context, o *Options) (*Target, error) {
	c, err := srcwebdav.Client(o, "target")
	if err != nil {
		return nil, err
	}
	return &Target{o: *o, c: c, root: o.Root()}, nil
}

// Name is the target's identity in the export mapping.
func (t *Target) Name() string {
	return "webdav " + srcdav.URL(t.o.Server, t.root) + " " + t.o.User
}

func (t *Target) href(p string) string {
	return strings.TrimSuffix(t.root, "/") + "/" + davclient.EscapePath(p)
}

// Walk lists the tree below the root. A root that does not exist yet is
// created (its parent must exist): an empty tree.
func (t *Target) Walk(ctx context.Context) ([]archive.NewFile, error) {
	if _, err := t.c.Stat(ctx, t.root); davclient.Code(err) == http.StatusNotFound {
		if err := t.c.Mkcol(ctx, t.root); err != nil {
			return nil, fmt.Errorf("create the target folder %s: %w", t.root, err)
		}
		return nil, nil
	}
	return srcwebdav.Walk(ctx, t.c, t.root)
}

// Mkdir creates a folder.
func (t *Target) Mkdir(ctx context.Context, p string) error {
	return t.c.Mkcol(ctx, t.href(p)+"/")
}

// Put streams a file and returns the ETag the target then reports.
func (t *Target) Put(ctx context.Context, p string, body io.Reader, size int64, ifMatch string) (string, error) {
	h := t.href(p)
	cond := ifMatch
	if cond != "" {
		var err error
		if cond, err = t.checkWeak(ctx, h, ifMatch); err != nil {
			return "", err
		}
	}
	err := t.c.PutFile(ctx, h, body, size, cond)
	if errors.Is(err, davclient.ErrPrecondition) {
		return "", fmt.Errorf("%w: %s", vandelay.ErrDAVPrecondition, p)
	}
	if err != nil {
		return "", err
	}
	e, err := t.c.Stat(ctx, h)
	if err != nil {
		return "", fmt.Errorf("read the ETag of %s: %w", p, err)
	}
	return e.ETag, nil
}

// checkWeak returns the precondition to send for ifMatch. Apache serves a
// weak ETag (W/"…") for a file written less than a second ago and a
// strong one later, for the same version, and compares If-Match strongly
// (RFC 7232 3.1), so an If-Match sent in that second fails although
// nothing changed. When the file's current ETag is weak and names the
// version expected, the write goes without a precondition ("*"); the
// window left is the time between this PROPFIND and the PUT.
func (t *Target) checkWeak(ctx context.Context, h, ifMatch string) (string, error) {
	e, err := t.c.Stat(ctx, h)
	if davclient.Code(err) == 404 {
		return ifMatch, nil
	}
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(e.ETag, "W/") {
		if vandelay.StrongETag(e.ETag) == vandelay.StrongETag(ifMatch) {
			return "*", nil
		}
		return "", fmt.Errorf("%w: %s", vandelay.ErrDAVPrecondition, h)
	}
	return vandelay.StrongETag(ifMatch), nil
}

// Open streams the bytes stored at path.
func (t *Target) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	body, _, _, err := t.c.Open(ctx, t.href(p))
	return body, err
}

// Delete deletes a file if its ETag is still ifMatch, a folder ("").
func (t *Target) Delete(ctx context.Context, p, ifMatch string) error {
	h := t.href(p)
	if ifMatch == "" {
		h += "/"
	} else {
		var err error
		if ifMatch, err = t.checkWeak(ctx, h, ifMatch); err != nil {
			return err
		}
		if ifMatch == "*" {
			ifMatch = ""
		}
	}
	err := t.c.Delete(ctx, h, ifMatch)
	if errors.Is(err, davclient.ErrPrecondition) {
		return fmt.Errorf("%w: %s", vandelay.ErrDAVPrecondition, p)
	}
	return err
}

// Close releases nothing: HTTP connections are pooled.
func (t *Target) Close() error { return nil }
