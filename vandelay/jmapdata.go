package vandelay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// The data kinds beside mail that a JMAP session may offer, by the name
// [JMAPDataOptions.Kinds] and the CLI use.
const (
	JMAPKindSieve    = "sieve"
	JMAPKindIdentity = "identities"
	JMAPKindVacation = "vacation"
	JMAPKindFiles    = "files"
)

// JMAPDataKinds lists them in the order they are imported and exported.
var JMAPDataKinds = []string{JMAPKindSieve, JMAPKindIdentity, JMAPKindVacation, JMAPKindFiles}

// JMAPKindCapability is the session capability that carries each kind.
var JMAPKindCapability = map[string]string{
	JMAPKindSieve:    jmap.CapSieve,
	JMAPKindIdentity: jmap.CapSubmission,
	JMAPKindVacation: jmap.CapVacationResponse,
	JMAPKindFiles:    jmap.CapFileNode,
}

// JMAPDataOptions configure [ImportJMAPData].
type JMAPDataOptions struct {
	// Kinds limits the import to these kinds (JMAPKind*); nil means every
	// kind the session offers.
	Kinds []string
	// DryRun counts and writes nothing.
	DryRun bool
	// AllowSourceChange is passed to the Sieve sync.
	AllowSourceChange bool
}

// JMAPDataResult says what [ImportJMAPData] changed per kind; a nil
// member is a kind the session does not offer or was not asked for.
type JMAPDataResult struct {
	Sieve      *archive.SieveResult      `json:"sieve,omitempty"`
	Identities *archive.IdentitiesResult `json:"identities,omitempty"`
	Files      *FilesImportResult        `json:"files,omitempty"`
	// Vacation is true when the vacation response was read (the session
	// offers it); VacationChanged when the archived one changed.
	Vacation        bool `json:"vacation,omitempty"`
	VacationChanged bool `json:"vacation_changed,omitempty"`
	// Unchanged lists the kinds whose /changes reported nothing since the
	// stored state: nothing else was asked for them.
	Unchanged []string `json:"unchanged,omitempty"`
	// Full lists the kinds read whole: no stored state, or the server
	// could not calculate the changes (cannotCalculateChanges).
	Full   []string `json:"full,omitempty"`
	DryRun bool     `json:"dry_run,omitempty"`
}

// Changes is the number of changes over every kind.
func (r *JMAPDataResult) Changes() int {
	n := 0
	if r.Sieve != nil {
		n += r.Sieve.Changes()
	}
	if r.Identities != nil {
		n += r.Identities.Changes()
	}
	if r.Files != nil {
		n += r.Files.Changes()
	}
	if r.VacationChanged {
		n++
	}
	return n
}

// jmapTypes are the JMAP types with a /changes cursor, by kind.
var jmapTypes = map[string]string{JMAPKindSieve: "SieveScript", JMAPKindIdentity: "Identity", JMAPKindFiles: "FileNode"}

// ImportJMAPData imports every data kind beside mail that the session of
// c offers for accountID (RFC 9661 SieveScript, RFC 8621 Identity and
// VacationResponse, draft-ietf-jmap-filenode FileNode) into a, under the
// source identity src (the mail source's Describe).
//
// Each type has its own /changes cursor in the archive (jmap_cursors).
// All /changes calls, and the VacationResponse/get the singleton needs
// (it has no useful /changes of its own), go in one API request: a run
// with nothing changed is that one small request. A type whose /changes
// reports changes, that has no stored state, or whose state the server
// cannot calculate changes from (cannotCalculateChanges, or any error) is
// read whole and synced like the ManageSieve and WebDAV sources do (the
// archive diffs by name, path or id and content hash; files whose blobId
// is unchanged are not downloaded again). The cursor is stored after the
// sync committed: a killed run reads that type whole again.
func ImportJMAPData(ctx context.Context, c *jmap.Client, accountID string, src archive.Source, a *archive.Archive, opts *JMAPDataOptions) (*JMAPDataResult, error) {
	if opts == nil {
		opts = &JMAPDataOptions{}
	}
	res := &JMAPDataResult{DryRun: opts.DryRun}
	want := map[string]bool{}
	for _, k := range JMAPDataKinds {
		want[k] = c.Session().Offers(JMAPKindCapability[k])
	}
	if opts.Kinds != nil {
		asked := map[string]bool{}
		for _, k := range opts.Kinds {
			if _, ok := JMAPKindCapability[k]; !ok {
				return nil, fmt.Errorf("%w: unknown data kind %q (want one of %v)", ErrUsage, k, JMAPDataKinds)
			}
			asked[k] = true
		}
		for k := range want {
			want[k] = want[k] && asked[k]
		}
	}
	cursorSource := c.SessionURL() + " " + accountID
	using := []string{jmap.CapCore}
	var calls []*jmap.Call
	changes := map[string]*jmap.Call{}
	for _, k := range JMAPDataKinds {
		if !want[k] {
			continue
		}
		using = append(using, JMAPKindCapability[k])
		typ, ok := jmapTypes[k]
		if !ok {
			continue
		}
		state, err := a.JMAPCursor(ctx, typ, cursorSource)
		if err != nil {
			return nil, err
		}
		if state == "" {
			continue
		}
		call := &jmap.Call{Method: typ + "/changes", Args: map[string]any{"accountId": accountID, "sinceState": state}, Result: &jmap.ChangesResponse{}}
		changes[k] = call
		calls = append(calls, call)
	}
	var vac VacationResponse
	var vacList struct {
		List []VacationResponse `json:"list"`
	}
	var vacCall *jmap.Call
	if want[JMAPKindVacation] {
		vacCall = &jmap.Call{Method: "VacationResponse/get", Args: map[string]any{"accountId": accountID, "ids": []string{"singleton"}}, Result: &vacList}
		calls = append(calls, vacCall)
	}
	if len(calls) > 0 {
		groups := make([][]*jmap.Call, len(calls))
		for i, call := range calls {
			groups[i] = []*jmap.Call{call}
		}
		if err := c.Exec(ctx, using, groups...); err != nil {
			return nil, fmt.Errorf("ask the source for changes: %w", err)
		}
	}
	for _, k := range JMAPDataKinds {
		if !want[k] || k == JMAPKindVacation {
			continue
		}
		if call := changes[k]; call != nil && call.Err == nil {
			ch := call.Result.(*jmap.ChangesResponse)
			if len(ch.Created)+len(ch.Updated)+len(ch.Destroyed) == 0 && !ch.HasMoreChanges {
				res.Unchanged = append(res.Unchanged, k)
				continue
			}
		} else {
			// No state, or the server cannot tell the changes since
			// it: everything is read and compared.
			res.Full = append(res.Full, k)
		}
		var err error
		switch k {
		case JMAPKindSieve:
			err = importJMAPSieve(ctx, c, accountID, src, a, opts, res, cursorSource)
		case JMAPKindIdentity:
			err = importJMAPIdentities(ctx, c, accountID, a, opts, res, cursorSource)
		case JMAPKindFiles:
			err = importJMAPFiles(ctx, c, accountID, src, a, opts, res, cursorSource)
		}
		if err != nil {
			return res, err
		}
	}
	if vacCall != nil {
		if vacCall.Err != nil {
			return res, fmt.Errorf("read the source's vacation response: %w", vacCall.Err)
		}
		res.Vacation = true
		if len(vacList.List) > 0 {
			vac = vacList.List[0]
		}
		changed, err := a.SetVacation(ctx, archiveVacation(vac), opts.DryRun)
		if err != nil {
			return res, err
		}
		res.VacationChanged = changed
	}
	return res, nil
}

// archiveVacation is the JMAP object as the archive keeps it; nil for a
// response that was never set (disabled, every text empty).
func archiveVacation(v VacationResponse) *archive.Vacation {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	date := func(p *string) time.Time {
		if p == nil {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, *p)
		if err != nil {
			return time.Time{}
		}
		return t.UTC()
	}
	out := &archive.Vacation{Enabled: v.IsEnabled, From: date(v.FromDate), To: date(v.ToDate), Subject: str(v.Subject),
		TextBody: str(v.TextBody), HTMLBody: str(v.HTMLBody), SourceRef: "jmap:VacationResponse"}
	if !out.Enabled && out.From.IsZero() && out.To.IsZero() && out.Subject == "" && out.TextBody == "" && out.HTMLBody == "" {
		return nil
	}
	return out
}

func saveCursor(ctx context.Context, a *archive.Archive, opts *JMAPDataOptions, typ, source, state string) error {
	if opts.DryRun {
		return nil
	}
	return a.SetJMAPCursor(ctx, typ, source, state)
}

var (
	usingSieveScripts = []string{jmap.CapCore, jmap.CapSieve}
	usingFileNodes    = []string{jmap.CapCore, jmap.CapFileNode}
)

func importJMAPSieve(ctx context.Context, c *jmap.Client, accountID string, src archive.Source, a *archive.Archive, opts *JMAPDataOptions, res *JMAPDataResult, cursorSource string) error {
	list, state, err := jmap.GetAll[jmap.SieveScript](ctx, c, usingSieveScripts, accountID, "SieveScript")
	if err != nil {
		return fmt.Errorf("read the source's sieve scripts: %w", err)
	}
	scripts := make([]archive.NewSieveScript, 0, len(list))
	for _, s := range list {
		if s.Name == nil {
			continue
		}
		r, err := c.Download(ctx, accountID, s.BlobID, *s.Name, "application/sieve")
		if err != nil {
			return fmt.Errorf("fetch sieve script %q: %w", *s.Name, err)
		}
		body, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return fmt.Errorf("fetch sieve script %q: %w", *s.Name, err)
		}
		scripts = append(scripts, archive.NewSieveScript{Name: *s.Name, Body: body, Active: s.IsActive})
	}
	sr, err := a.SyncSieve(ctx, src, scripts, &archive.SieveSyncOptions{DryRun: opts.DryRun, AllowSourceChange: opts.AllowSourceChange})
	if err != nil {
		return err
	}
	res.Sieve = sr
	if !c.Session().Offers(jmap.CapVacationResponse) {
		// Without a VacationResponse of its own, the source's vacation
		// is what its active script says (as for ManageSieve).
		changed, err := a.SetVacation(ctx, VacationFromSieve(scripts), opts.DryRun)
		if err != nil {
			return err
		}
		res.VacationChanged = changed
	}
	return saveCursor(ctx, a, opts, "SieveScript", cursorSource, state)
}

func importJMAPIdentities(ctx context.Context, c *jmap.Client, accountID string, a *archive.Archive, opts *JMAPDataOptions, res *JMAPDataResult, cursorSource string) error {
	list, state, err := jmap.GetAll[jmap.Identity](ctx, c, usingIdentity, accountID, "Identity")
	if err != nil {
		return fmt.Errorf("read the source's identities: %w", err)
	}
	enc := func(l []jmap.EmailAddress) string {
		if len(l) == 0 {
			return ""
		}
		b, _ := json.Marshal(l)
		return string(b)
	}
	ids := make([]archive.NewIdentity, 0, len(list))
	for _, i := range list {
		ids = append(ids, archive.NewIdentity{SourceRef: "jmap:" + i.ID, Name: i.Name, Email: i.Email, ReplyTo: enc(i.ReplyTo),
			Bcc: enc(i.Bcc), TextSignature: i.TextSignature, HTMLSignature: i.HTMLSignature})
	}
	ir, err := a.SyncIdentities(ctx, ids, opts.DryRun)
	if err != nil {
		return err
	}
	res.Identities = ir
	return saveCursor(ctx, a, opts, "Identity", cursorSource, state)
}

// fileNodeSource is a [FileSource] over a FileNode tree: the blobId is
// each file's ETag, so [ImportFiles] downloads only files whose content
// changed.
type fileNodeSource struct {
	c         *jmap.Client
	accountID string
	src       archive.Source
	state     string
	blobs     map[string]string // path → blobId
}

func (s *fileNodeSource) Describe() archive.Source { return s.src }
func (s *fileNodeSource) Root() string             { return "/" }
func (s *fileNodeSource) Close() error             { return nil }

func (s *fileNodeSource) Walk(ctx context.Context) ([]archive.NewFile, string, error) {
	nodes, state, err := jmap.GetAll[jmap.FileNode](ctx, s.c, usingFileNodes, s.accountID, "FileNode")
	if err != nil {
		return nil, "", err
	}
	s.state, s.blobs = state, map[string]string{}
	var out []archive.NewFile
	for p, n := range FileNodePaths(nodes) {
		f := archive.NewFile{Path: p, IsDir: n.BlobID == nil, Size: n.Size}
		if n.BlobID != nil {
			f.ETag = *n.BlobID
			s.blobs[p] = *n.BlobID
		}
		if n.Type != nil {
			f.MediaType = *n.Type
		}
		if t, err := time.Parse(time.RFC3339, n.Modified); err == nil {
			f.MTime = t.UTC()
		}
		out = append(out, f)
	}
	return out, "", nil
}

func (s *fileNodeSource) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	id, ok := s.blobs[p]
	if !ok {
		return nil, fmt.Errorf("no file %s at the source", p)
	}
	return s.c.Download(ctx, s.accountID, id, "file", "application/octet-stream")
}

func importJMAPFiles(ctx context.Context, c *jmap.Client, accountID string, src archive.Source, a *archive.Archive, opts *JMAPDataOptions, res *JMAPDataResult, cursorSource string) error {
	fs := &fileNodeSource{c: c, accountID: accountID, src: src}
	fr, err := ImportFiles(ctx, fs, a, &ImportOptions{DryRun: opts.DryRun})
	if fr != nil {
		res.Files = fr
	}
	if err != nil {
		return fmt.Errorf("import the source's files: %w", err)
	}
	return saveCursor(ctx, a, opts, "FileNode", cursorSource, fs.state)
}

// FileNodePaths returns each FileNode's path below the top of the
// account's tree ("/"-joined names along the parentId chain). A node
// whose chain does not reach the top (a parent missing from the list, a
// cycle) or whose name is empty or holds a "/" is left out.
func FileNodePaths(nodes []jmap.FileNode) map[string]jmap.FileNode {
	byID := make(map[string]jmap.FileNode, len(nodes))
	for _, n := range nodes {
		byID[n.ID] = n
	}
	bad := func(name string) bool {
		for i := 0; i < len(name); i++ {
			if name[i] == '/' {
				return true
			}
		}
		return name == "" || name == "." || name == ".."
	}
	out := map[string]jmap.FileNode{}
	for _, n := range nodes {
		p, cur, ok := n.Name, n, !bad(n.Name)
		for depth := 0; ok && cur.ParentID != nil; depth++ {
			parent, found := byID[*cur.ParentID]
			if !found || depth > len(nodes) || bad(parent.Name) {
				ok = false
				break
			}
			p = parent.Name + "/" + p
			cur = parent
		}
		if ok {
			out[p] = n
		}
	}
	return out
}
