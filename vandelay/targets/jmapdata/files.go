package jmapdata

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

var usingFiles = []string{jmap.CapCore, jmap.CapFileNode}

// FileTarget is one account's FileNode tree (draft-ietf-jmap-filenode).
// Paths are "/"-joined node names from the top of the account's tree
// (nodes without a parentId). A file's version, the ETag of
// [vandelay.FileTarget], is its blobId: a FileNode's content changes only
// by a new blob, so "the blobId the export last wrote" says whether the
// user changed the file since, as an ETag does over WebDAV.
type FileTarget struct {
	c         *jmap.Client
	accountID string
	byPath    map[string]jmap.FileNode
}

// NewFileTarget returns the account's file tree at c, or an error wrapping
// [vandelay.ErrNoCapability] when the session lacks FileNode.
func NewFileTarget(c *jmap.Client, accountID string) (*FileTarget, error) {
	if !c.Session().Has(jmap.CapFileNode) {
		return nil, fmt.Errorf("%w %s", vandelay.ErrNoCapability, jmap.CapFileNode)
	}
	return &FileTarget{c: c, accountID: accountID}, nil
}

// Name implements vandelay.FileTarget.
func (t *FileTarget) Name() string { return "jmap-files " + t.c.SessionURL() + " " + t.accountID }

// Close implements vandelay.FileTarget.
func (t *FileTarget) Close() error { return nil }

// Walk implements vandelay.FileTarget.
func (t *FileTarget) Walk(ctx context.Context) ([]archive.NewFile, error) {
	nodes, _, err := jmap.GetAll[jmap.FileNode](ctx, t.c, usingFiles, t.accountID, "FileNode")
	if err != nil {
		return nil, fmt.Errorf("read the target's files: %w", err)
	}
	t.byPath = vandelay.FileNodePaths(nodes)
	out := make([]archive.NewFile, 0, len(t.byPath))
	for p, n := range t.byPath {
		out = append(out, newFile(p, n))
	}
	return out, nil
}

func newFile(p string, n jmap.FileNode) archive.NewFile {
	f := archive.NewFile{Path: p, IsDir: n.BlobID == nil, Size: n.Size}
	if n.BlobID != nil {
		f.ETag = *n.BlobID
	}
	if n.Type != nil {
		f.MediaType = *n.Type
	}
	return f
}

func (t *FileTarget) node(ctx context.Context, p string) (jmap.FileNode, bool, error) {
	if t.byPath == nil {
		if _, err := t.Walk(ctx); err != nil {
			return jmap.FileNode{}, false, err
		}
	}
	n, ok := t.byPath[p]
	return n, ok, nil
}

// parentID returns the id of p's folder (nil at the top).
func (t *FileTarget) parentID(ctx context.Context, p string) (*string, error) {
	dir := path.Dir(p)
	if dir == "." {
		return nil, nil
	}
	n, ok, err := t.node(ctx, dir)
	if err != nil {
		return nil, err
	}
	if !ok || n.BlobID != nil {
		return nil, fmt.Errorf("no folder %s at the target", dir)
	}
	return &n.ID, nil
}

func (t *FileTarget) set(ctx context.Context, what string, args map[string]any) (*jmap.SetResponse, error) {
	resp, err := jmap.Set(ctx, t.c, usingFiles, t.accountID, "FileNode", args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if e := firstSetError(resp.NotCreated, resp.NotUpdated, resp.NotDestroyed); e != nil {
		return nil, fmt.Errorf("%s: the target refused: %s", what, e.Error())
	}
	return resp, nil
}

// Mkdir implements vandelay.FileTarget.
func (t *FileTarget) Mkdir(ctx context.Context, p string) error {
	if n, ok, err := t.node(ctx, p); err != nil || ok && n.BlobID == nil {
		return err
	}
	parent, err := t.parentID(ctx, p)
	if err != nil {
		return err
	}
	name := path.Base(p)
	resp, err := t.set(ctx, "create folder "+p, map[string]any{"create": map[string]any{"d": map[string]any{"parentId": parent, "name": name}}})
	if err != nil {
		return err
	}
	t.byPath[p] = jmap.FileNode{ID: resp.CreatedID("d"), ParentID: parent, Name: name}
	return nil
}

// Put implements vandelay.FileTarget: the bytes are uploaded as a blob
// and the node created (ifMatch "": only when nothing is there) or its
// blobId replaced (only while it still has the blobId ifMatch). A failed
// precondition is [vandelay.ErrDAVPrecondition]. The media type is
// derived from the name, as Apache does over WebDAV.
func (t *FileTarget) Put(ctx context.Context, p string, body io.Reader, size int64, ifMatch string) (string, error) {
	cur, exists, err := t.node(ctx, p)
	if err != nil {
		return "", err
	}
	switch {
	case ifMatch == "" && exists, ifMatch != "" && (!exists || cur.BlobID == nil || *cur.BlobID != ifMatch):
		return "", vandelay.ErrDAVPrecondition
	}
	ctype := mediaType(p)
	used := false
	blob, err := t.c.Upload(ctx, t.accountID, ctype, size, func() (io.ReadCloser, error) {
		// The export streams from the archive; a retried upload would
		// need the bytes again, which a reader cannot give twice.
		if used {
			return nil, fmt.Errorf("upload of %s cannot be retried from a stream", p)
		}
		used = true
		return io.NopCloser(body), nil
	})
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", p, err)
	}
	if exists {
		if _, err := t.set(ctx, "update "+p, map[string]any{"update": map[string]any{cur.ID: map[string]any{"blobId": blob.BlobID}}}); err != nil {
			return "", err
		}
		cur.BlobID, cur.Size = &blob.BlobID, size
		t.byPath[p] = cur
		return blob.BlobID, nil
	}
	parent, err := t.parentID(ctx, p)
	if err != nil {
		return "", err
	}
	name := path.Base(p)
	resp, err := t.set(ctx, "create "+p, map[string]any{"create": map[string]any{"f": map[string]any{
		"parentId": parent, "name": name, "blobId": blob.BlobID, "type": ctype}}})
	if err != nil {
		return "", err
	}
	t.byPath[p] = jmap.FileNode{ID: resp.CreatedID("f"), ParentID: parent, Name: name, BlobID: &blob.BlobID, Size: size}
	return blob.BlobID, nil
}

// mediaTypes are the types set on FileNodes by the name's extension: a
// fixed table, not the system's mime.types, so that what the export sends
// does not depend on the machine. WebDAV cannot send a type either (the
// server derives it); a JMAP server may keep or re-derive this one.
var mediaTypes = map[string]string{
	".txt": "text/plain", ".md": "text/markdown", ".html": "text/html", ".htm": "text/html", ".css": "text/css",
	".csv": "text/csv", ".pdf": "application/pdf", ".json": "application/json", ".xml": "application/xml",
	".zip": "application/zip", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".svg": "image/svg+xml", ".webp": "image/webp", ".ics": "text/calendar", ".vcf": "text/vcard",
	".mp3": "audio/mpeg", ".mp4": "video/mp4", ".odt": "application/vnd.oasis.opendocument.text",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

func mediaType(p string) string {
	if t, ok := mediaTypes[strings.ToLower(path.Ext(p))]; ok {
		return t
	}
	return "application/octet-stream"
}

// Open implements vandelay.FileTarget.
func (t *FileTarget) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	n, ok, err := t.node(ctx, p)
	if err != nil {
		return nil, err
	}
	if !ok || n.BlobID == nil {
		return nil, fmt.Errorf("no file %s at the target", p)
	}
	return t.c.Download(ctx, t.accountID, *n.BlobID, path.Base(p), "application/octet-stream")
}

// Delete implements vandelay.FileTarget; ifMatch (files) is the blobId the
// node must still have.
func (t *FileTarget) Delete(ctx context.Context, p, ifMatch string) error {
	n, ok, err := t.node(ctx, p)
	if err != nil || !ok {
		return err
	}
	if ifMatch != "" && (n.BlobID == nil || *n.BlobID != ifMatch) {
		return vandelay.ErrDAVPrecondition
	}
	if _, err := t.set(ctx, "delete "+p, map[string]any{"destroy": []string{n.ID}}); err != nil {
		return err
	}
	delete(t.byPath, p)
	return nil
}

var _ vandelay.FileTarget = (*FileTarget)(nil)
