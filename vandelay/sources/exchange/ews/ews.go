package ews

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/httpx"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/itemsync"
)

// Limits and defaults.
const (
	// MaxChanges is the most changes SyncFolderItems returns per call
	// (the schema's maximum).
	MaxChanges = 512
	// DefaultBatch is the number of items per GetItem with MIME content.
	DefaultBatch = 10
	// DefaultConcurrency is the number of requests in flight.
	DefaultConcurrency = 4
	// maxCalls bounds one SyncFolderItems or SyncFolderHierarchy loop.
	maxCalls = 10000
	// maxBusy bounds the ErrorServerBusy retries of one call.
	maxBusy = 8
)

// Versions are the RequestServerVersion values tried, newest first: the
// source asks for the newest and steps down when the server refuses it.
// Exchange 2013 brought item:Flag; older servers are read without the
// flag.
var Versions = []string{"Exchange2013_SP1", "Exchange2010_SP2", "Exchange2007_SP1"}

// Options are the settings of an EWS source. A zero field means its
// default.
type Options struct {
	// URL is the EWS endpoint, https://host/EWS/Exchange.asmx.
	URL string
	// Login: User is the mailbox (its primary SMTP address); Password is
	// its password, or MasterUser's, who then reads User's mailbox by
	// impersonation (the ApplicationImpersonation role).
	vandelay.Login
	vandelay.Scope
	// Version is the first RequestServerVersion tried. Default: the
	// first of Versions.
	Version string
	// Batch is the number of items per GetItem. Default: DefaultBatch.
	Batch int
	// Concurrency is the number of requests in flight. Default:
	// DefaultConcurrency.
	Concurrency int
	// HTTP is the HTTP client. Default: one with a 5-minute timeout.
	HTTP *http.Client
	// Sleep replaces the waits for the server's back-off (tests).
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Source imports one mailbox over EWS.
type Source struct {
	cfg    Options
	log    *slog.Logger
	client *httpx.Client
	auth   *authTransport

	mu      sync.Mutex
	version string
}

var _ vandelay.MailSource = (*Source)(nil)

// basic sets HTTP Basic credentials; nothing to refresh after a 401. The
// transport sends them as they are, or takes them for NTLM (auth.go).
type basic struct{ user, pass string }

func (b basic) Authorize(_ context.Context, req *http.Request) error {
	req.SetBasicAuth(b.user, b.pass)
	return nil
}
func (basic) Invalidate() bool { return false }

// New returns an EWS source for opts (a copy is kept).
func New(opts *Options) (*Source, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg := *opts
	u, err := url.Parse(cfg.URL)
	if cfg.URL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: exchange-ews source needs the EWS URL (https://host/EWS/Exchange.asmx)", vandelay.ErrUsage)
	}
	if cfg.User == "" || cfg.Password == "" {
		return nil, fmt.Errorf("%w: exchange-ews source needs the mailbox (--user) and a password", vandelay.ErrUsage)
	}
	mode, err := authMode(cfg.Auth)
	if err != nil {
		return nil, err
	}
	if cfg.Version == "" {
		cfg.Version = Versions[0]
	}
	if cfg.Batch < 1 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = DefaultConcurrency
	}
	hc := cfg.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	log := vandelay.LoggerOr(cfg.Logger).With("proto", "ews", "user", cfg.User)
	login := cfg.User
	if cfg.MasterUser != "" {
		login = cfg.MasterUser
	}
	hc, auth := withAuth(hc, cfg.URL, mode, log)
	c := httpx.New(cfg.Concurrency)
	c.HTTP, c.Auth, c.Sleep, c.Log = hc, basic{login, cfg.Password}, cfg.Sleep, log
	return &Source{cfg: cfg, log: log, client: c, auth: auth, version: cfg.Version}, nil
}

// Describe implements vandelay.MailSource.
func (s *Source) Describe() archive.Source {
	login := s.cfg.User
	if s.cfg.MasterUser != "" {
		login = s.cfg.MasterUser
	}
	return archive.Source{Kind: "exchange-ews", Endpoint: s.cfg.URL, Account: s.cfg.User, Login: login}
}

// Close implements vandelay.MailSource.
func (s *Source) Close() error { return nil }

func (s *Source) currentVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// envelope wraps an operation's body in a SOAP envelope with the
// version and, for a master user, the impersonation header.
func (s *Source) envelope(version, body string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<soap:Envelope xmlns:soap="` + nsSOAP + `" xmlns:t="` + nsTypes + `" xmlns:m="` + nsMessages + `">` + "\n")
	b.WriteString("<soap:Header>\n")
	b.WriteString(`<t:RequestServerVersion Version="` + escape(version) + `"/>` + "\n")
	if s.cfg.MasterUser != "" {
		b.WriteString("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>" + escape(s.cfg.User) +
			"</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>\n")
	}
	b.WriteString("</soap:Header>\n<soap:Body>\n")
	b.WriteString(body)
	b.WriteString("\n</soap:Body>\n</soap:Envelope>\n")
	return b.String()
}

// call sends one operation and returns its response messages. It steps
// the server version down when the server refuses the one asked for, and
// waits out ErrorServerBusy as the server's back-off says.
func (s *Source) call(ctx context.Context, op string, body func(version string) string) ([]responseMessage, error) {
	sleep := s.cfg.Sleep
	if sleep == nil {
		sleep = httpx.Sleep
	}
	for busy := 0; ; busy++ {
		version := s.currentVersion()
		payload := s.envelope(version, body(version))
		_, resp, err := s.client.Do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPost, s.cfg.URL, strings.NewReader(payload))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "text/xml; charset=utf-8")
			req.Header.Set("Accept", "text/xml")
			// Routes the request to the mailbox's server (Microsoft's
			// guidance for impersonation and for Exchange 2013 and later).
			req.Header.Set("X-AnchorMailbox", s.cfg.User)
			return req, nil
		})
		var se *httpx.StatusError
		if errors.As(err, &se) && se.Status == http.StatusInternalServerError {
			resp, err = se.Body, nil // a SOAP fault comes as HTTP 500
		}
		if err != nil {
			return nil, s.classify(err)
		}
		env, err := ParseResponse(resp)
		var re *ResponseError
		if errors.As(err, &re) && s.versionRefused(re, version) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		msgs := env.Body.Response.ResponseMessages.Messages
		if r := env.Body.Response; len(msgs) == 0 && r.ResponseClass != "" {
			msgs = []responseMessage{{XMLName: r.XMLName, ResponseClass: r.ResponseClass, ResponseCode: r.ResponseCode,
				MessageText: r.MessageText, InboxRules: r.InboxRules}}
		}
		wait := int64(-1)
		for i := range msgs {
			if errors.As(msgs[i].err(), &re) {
				switch {
				case re.Code == "ErrorServerBusy":
					wait = max(wait, re.BackOff)
				case s.versionRefused(re, version):
					wait = max(wait, 0)
				}
			}
		}
		if wait < 0 {
			return msgs, nil
		}
		if busy >= maxBusy {
			return nil, fmt.Errorf("%s: the server stayed busy after %d back-offs", op, busy)
		}
		if wait > 0 {
			d := time.Duration(wait) * time.Millisecond
			s.log.Info("server busy, waiting", "duration", d)
			if err := sleep(ctx, d); err != nil {
				return nil, err
			}
		}
	}
}

// versionRefused steps the version down after a version error and
// reports whether there was an older one to try.
func (s *Source) versionRefused(re *ResponseError, version string) bool {
	if re.Code != "ErrorInvalidServerVersion" && re.Code != "ErrorInvalidRequestServerVersion" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version != version {
		return true // another call stepped down meanwhile
	}
	for i, v := range Versions {
		if v == version && i+1 < len(Versions) {
			s.log.Info("server refused the EWS version, trying an older one", "version", version, "next", Versions[i+1])
			s.version = Versions[i+1]
			return true
		}
	}
	return false
}

func (s *Source) classify(err error) error {
	var se *httpx.StatusError
	switch {
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		scheme := s.auth.chosen()
		if scheme == "" {
			scheme = "auto"
		}
		return fmt.Errorf("%w: EWS refused the credentials (HTTP %d, %s authentication; --auth basic or ntlm forces one)", vandelay.ErrAuth, se.Status, scheme)
	case errors.Is(err, vandelay.ErrAuth):
		return err
	case errors.As(err, &se), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
}

// authError turns an impersonation refusal into ErrAuth.
func authError(err error) error {
	var re *ResponseError
	if errors.As(err, &re) && (strings.HasPrefix(re.Code, "ErrorImpersonat") || re.Code == "ErrorAccessDenied" ||
		re.Code == "ErrorNonExistentMailbox") {
		return fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
	}
	return err
}

// Folder is a mail folder of the mailbox.
type Folder struct {
	ID, ParentID, Name string
	// Path has Sep between levels: "/" unless a folder name contains one
	// (itemsync.Separator).
	Path, Sep, Role string
	Total           int64
}

// distinguished are the folders asked for by name to find the root and
// the roles; order matters (the answers come in request order).
var distinguished = []struct{ name, role string }{
	{"msgfolderroot", ""},
	{"inbox", archive.RoleInbox},
	{"sentitems", archive.RoleSent},
	{"drafts", archive.RoleDrafts},
	{"deleteditems", archive.RoleTrash},
	{"junkemail", archive.RoleJunk},
}

// Folders lists the mail folders (SyncFolderHierarchy from the start, so
// the whole tree; calendar, contact, task and search folders left out)
// with paths and roles (GetFolder of the distinguished folders).
func (s *Source) Folders(ctx context.Context) ([]*Folder, error) {
	return s.folders(ctx, isMailFolder)
}

// folders lists the folders for which keep is true, with paths and roles.
func (s *Source) folders(ctx context.Context, keep func(*object) bool) ([]*Folder, error) {
	msgs, err := s.call(ctx, "GetFolder", func(string) string {
		var b strings.Builder
		b.WriteString("<m:GetFolder>\n<m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>\n<m:FolderIds>")
		for _, d := range distinguished {
			b.WriteString(`<t:DistinguishedFolderId Id="` + d.name + `"/>`)
		}
		b.WriteString("</m:FolderIds>\n</m:GetFolder>")
		return b.String()
	})
	if err != nil {
		return nil, authError(err)
	}
	if len(msgs) != len(distinguished) {
		return nil, fmt.Errorf("GetFolder: %d answers for %d folders", len(msgs), len(distinguished))
	}
	roles := map[string]string{}
	root := ""
	for i, m := range msgs {
		if err := m.err(); err != nil {
			if i == 0 {
				return nil, authError(fmt.Errorf("GetFolder msgfolderroot: %w", err))
			}
			continue // a mailbox without that folder
		}
		if len(m.Folders.List) == 1 {
			if i == 0 {
				root = m.Folders.List[0].FolderID.ID
			} else {
				roles[m.Folders.List[0].FolderID.ID] = distinguished[i].role
			}
		}
	}
	if root == "" {
		return nil, errors.New("GetFolder: no id for msgfolderroot")
	}
	byID := map[string]*Folder{}
	state := ""
	for calls := 0; ; calls++ {
		if calls >= maxCalls {
			return nil, errors.New("SyncFolderHierarchy does not end")
		}
		msgs, err := s.call(ctx, "SyncFolderHierarchy", func(string) string {
			b := "<m:SyncFolderHierarchy>\n<m:FolderShape><t:BaseShape>Default</t:BaseShape><t:AdditionalProperties>" +
				`<t:FieldURI FieldURI="folder:ParentFolderId"/><t:FieldURI FieldURI="folder:FolderClass"/>` +
				"</t:AdditionalProperties></m:FolderShape>\n" +
				`<m:SyncFolderId><t:DistinguishedFolderId Id="msgfolderroot"/></m:SyncFolderId>`
			if state != "" {
				b += "\n<m:SyncState>" + escape(state) + "</m:SyncState>"
			}
			return b + "\n</m:SyncFolderHierarchy>"
		})
		if err != nil {
			return nil, authError(err)
		}
		if len(msgs) != 1 {
			return nil, fmt.Errorf("SyncFolderHierarchy: %d answers", len(msgs))
		}
		m := msgs[0]
		if err := m.err(); err != nil {
			return nil, authError(fmt.Errorf("SyncFolderHierarchy: %w", err))
		}
		for _, c := range m.Changes.List {
			switch c.XMLName.Local {
			case "Create", "Update":
				for _, o := range c.Objects {
					if !keep(&o) {
						continue
					}
					byID[o.FolderID.ID] = &Folder{ID: o.FolderID.ID, ParentID: o.ParentFolderID.ID, Name: o.DisplayName, Total: o.TotalCount}
				}
			case "Delete":
				if c.FolderID != nil {
					delete(byID, c.FolderID.ID)
				}
			}
		}
		state = m.SyncState
		if m.IncludesLastFolderInRange || state == "" {
			break
		}
	}
	names := make([]string, 0, len(byID))
	for _, f := range byID {
		names = append(names, f.Name)
	}
	sep := itemsync.Separator(names)
	var out []*Folder
	for _, f := range byID {
		p, ok := pathOf(f, byID, roles, root, sep)
		if !ok {
			continue // below a folder that is not a mail folder
		}
		f.Path, f.Sep, f.Role = p, sep, roles[f.ID]
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func isMailFolder(o *object) bool {
	if o.XMLName.Local != "Folder" {
		return false // CalendarFolder, ContactsFolder, TasksFolder, SearchFolder
	}
	return o.FolderClass == "" || o.FolderClass == "IPF.Note" || strings.HasPrefix(o.FolderClass, "IPF.Note.")
}

// pathOf joins the display names up to the root (sep between levels);
// the top-level inbox is "INBOX", as the archive names it.
func pathOf(f *Folder, byID map[string]*Folder, roles map[string]string, root, sep string) (string, bool) {
	var parts []string
	cur := f
	for depth := 0; ; depth++ {
		if cur == nil || depth > 64 {
			return "", false
		}
		name := itemsync.Name(cur.Name, sep)
		if cur.ParentID == root && roles[cur.ID] == archive.RoleInbox {
			name = "INBOX"
		}
		parts = append(parts, name)
		if cur.ParentID == root {
			break
		}
		cur = byID[cur.ParentID]
	}
	slices.Reverse(parts)
	return strings.Join(parts, sep), true
}

// itemProps are the properties SyncFolderItems returns per item (ids and
// what becomes keywords and the received date; never the body).
func itemProps(version string) string {
	p := `<t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:Categories"/>` +
		`<t:FieldURI FieldURI="message:IsRead"/><t:FieldURI FieldURI="item:IsDraft"/>`
	if version != "Exchange2010_SP2" && version != "Exchange2007_SP1" {
		p += `<t:FieldURI FieldURI="item:Flag"/>`
	}
	return p
}

func (o *object) item() itemsync.Item {
	it := itemsync.Item{Key: o.ItemID.ID}
	if o.IsRead != nil && *o.IsRead {
		it.Keywords = append(it.Keywords, archive.KeywordSeen)
	}
	if o.IsDraft != nil && *o.IsDraft {
		it.Keywords = append(it.Keywords, archive.KeywordDraft)
	}
	if o.Flag.FlagStatus == "Flagged" {
		it.Keywords = append(it.Keywords, archive.KeywordFlagged)
	}
	for _, c := range o.Categories.Strings {
		if k := itemsync.Category(c); k != "" {
			it.Keywords = append(it.Keywords, k)
		}
	}
	it.Keywords = archive.NormalizeKeywords(it.Keywords)
	if t, err := time.Parse(time.RFC3339, o.DateTimeReceived); err == nil {
		it.Received = t
	}
	return it
}

// errResync is a SyncState the server no longer accepts.
var errResync = errors.New("sync state invalid")

// syncItems follows SyncFolderItems from state to the end of the
// changes, at most MaxChanges per call.
func (s *Source) syncItems(ctx context.Context, folderID, state string, locs map[string][]string) ([]itemsync.Item, string, error) {
	return s.syncFolderItems(ctx, folderID, state, locs, itemProps)
}

// syncFolderItems is syncItems with the additional properties props
// gives for the server version ("" for ids only).
func (s *Source) syncFolderItems(ctx context.Context, folderID, state string, locs map[string][]string, props func(version string) string) ([]itemsync.Item, string, error) {
	var items []itemsync.Item
	for calls := 0; calls < maxCalls; calls++ {
		msgs, err := s.call(ctx, "SyncFolderItems", func(version string) string {
			shape := "<t:BaseShape>IdOnly</t:BaseShape>"
			if p := props(version); p != "" {
				shape += "<t:AdditionalProperties>" + p + "</t:AdditionalProperties>"
			}
			b := "<m:SyncFolderItems>\n<m:ItemShape>" + shape + "</m:ItemShape>\n" +
				`<m:SyncFolderId><t:FolderId Id="` + escape(folderID) + `"/></m:SyncFolderId>`
			if state != "" {
				b += "\n<m:SyncState>" + escape(state) + "</m:SyncState>"
			}
			return b + fmt.Sprintf("\n<m:MaxChangesReturned>%d</m:MaxChangesReturned>\n<m:SyncScope>NormalItems</m:SyncScope>\n</m:SyncFolderItems>", MaxChanges)
		})
		if err != nil {
			return nil, "", authError(err)
		}
		if len(msgs) != 1 {
			return nil, "", fmt.Errorf("SyncFolderItems: %d answers", len(msgs))
		}
		m := msgs[0]
		if err := m.err(); err != nil {
			var re *ResponseError
			if errors.As(err, &re) && (re.Code == "ErrorInvalidSyncStateData" || re.Code == "ErrorInvalidSyncStateData2") {
				return nil, "", errResync
			}
			return nil, "", authError(fmt.Errorf("SyncFolderItems: %w", err))
		}
		for _, c := range m.Changes.List {
			switch c.XMLName.Local {
			case "Create", "Update":
				for _, o := range c.Objects {
					if o.ItemID.ID != "" {
						items = append(items, o.item())
					}
				}
			case "Delete":
				if c.ItemID != nil {
					items = append(items, itemsync.Item{Key: c.ItemID.ID, Removed: true})
				}
			case "ReadFlagChange":
				// Only the read state changed: the other keywords are the
				// ones the archive holds.
				if c.ItemID != nil && c.IsRead != nil {
					kws := removeSeen(locs[c.ItemID.ID])
					if *c.IsRead {
						kws = append(kws, archive.KeywordSeen)
					}
					items = append(items, itemsync.Item{Key: c.ItemID.ID, Keywords: archive.NormalizeKeywords(kws)})
				}
			}
		}
		state = m.SyncState
		if m.IncludesLastItemInRange {
			return items, state, nil
		}
	}
	return nil, "", errors.New("SyncFolderItems does not end")
}

func removeSeen(kws []string) []string {
	var out []string
	for _, k := range kws {
		if k != archive.KeywordSeen {
			out = append(out, k)
		}
	}
	return out
}

// fetch gets MIME content with GetItem, Batch items per call.
func (s *Source) fetch(ctx context.Context, keys []string, deliver func(string, []byte) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	var mu sync.Mutex
	for i := 0; i < len(keys); i += s.cfg.Batch {
		batch := keys[i:min(i+s.cfg.Batch, len(keys))]
		g.Go(func() error {
			msgs, err := s.call(ctx, "GetItem", func(string) string {
				var b strings.Builder
				b.WriteString("<m:GetItem>\n<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape>\n<m:ItemIds>")
				for _, k := range batch {
					b.WriteString(`<t:ItemId Id="` + escape(k) + `"/>`)
				}
				b.WriteString("</m:ItemIds>\n</m:GetItem>")
				return b.String()
			})
			if err != nil {
				return authError(err)
			}
			if len(msgs) != len(batch) {
				return fmt.Errorf("GetItem: %d answers for %d items", len(msgs), len(batch))
			}
			for j, m := range msgs {
				if err := m.err(); err != nil {
					var re *ResponseError
					if errors.As(err, &re) && re.Code == "ErrorItemNotFound" {
						s.log.Info("item vanished before it was fetched", "id", batch[j])
						continue
					}
					return fmt.Errorf("GetItem: %w", err)
				}
				if len(m.Items.List) != 1 || m.Items.List[0].MimeContent == nil {
					return fmt.Errorf("GetItem: no MIME content for an item")
				}
				// The answers come in request order (EWS guarantees it),
				// and the id check catches a server that does not.
				o := m.Items.List[0]
				if o.ItemID.ID != "" && o.ItemID.ID != batch[j] {
					return fmt.Errorf("GetItem: answer %d is for another item", j)
				}
				body, err := base64.StdEncoding.DecodeString(strings.TrimSpace(o.MimeContent.Data))
				if err != nil {
					return fmt.Errorf("GetItem: MIME content: %w", err)
				}
				mu.Lock()
				err = deliver(batch[j], body)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// Sync implements vandelay.MailSource.
func (s *Source) Sync(ctx context.Context, run *archive.Run, progress vandelay.Progress) error {
	prog := vandelay.ProgressOr(progress)
	folders, err := s.Folders(ctx)
	if err != nil {
		return err
	}
	var infos []archive.MailboxInfo
	var todo []*Folder
	for _, f := range folders {
		if !s.cfg.InScope(f.Path) {
			continue
		}
		infos = append(infos, archive.MailboxInfo{Path: f.Path, Sep: f.Sep, Role: f.Role, Subscribed: true, Selectable: true, SourceRef: "ews:" + f.ID})
		todo = append(todo, f)
	}
	boxes, err := run.SyncMailboxes(ctx, infos, s.cfg.InScope)
	if err != nil {
		return err
	}
	failed := map[string]error{}
	for _, f := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		box := boxes[f.Path]
		if box == nil {
			continue
		}
		if err := s.syncFolder(ctx, run, box, f, prog); err != nil {
			if errors.Is(err, vandelay.ErrAuth) || errors.Is(err, context.Canceled) {
				return err
			}
			s.log.Warn("folder not synced", "mailbox", f.Path, "err", err)
			failed[f.Path] = err
		}
	}
	if len(failed) > 0 {
		return &vandelay.PartialError{Failed: failed}
	}
	return nil
}

func (s *Source) syncFolder(ctx context.Context, run *archive.Run, box *archive.Mailbox, f *Folder, prog vandelay.Progress) error {
	cur, err := run.Cursor(ctx, box.ID)
	if err != nil {
		return err
	}
	locs, err := run.Locations(ctx, box.ID)
	if err != nil {
		return err
	}
	kws := map[string][]string{}
	for k, l := range locs {
		kws[k] = l.Keywords
	}
	full := cur.Extra == ""
	items, state, err := s.syncItems(ctx, f.ID, cur.Extra, kws)
	if errors.Is(err, errResync) && !full {
		s.log.Info("sync state refused, reading the folder again", "mailbox", f.Path)
		full = true
		items, state, err = s.syncItems(ctx, f.ID, "", kws)
	}
	if err != nil {
		return err
	}
	// EWS item ids change when an item moves, so there is no cross-folder
	// index: a moved message is fetched again and matched by content.
	st, err := itemsync.Apply(ctx, run, box.ID, items, full, nil, s.fetch, prog)
	if err != nil {
		return err
	}
	s.log.Debug("folder synced", "mailbox", f.Path, "added", st.Added, "removed", st.Removed, "reflagged", st.Reflagged, "fetched", st.Fetched)
	return run.SetCursor(ctx, box.ID, archive.Cursor{Extra: state})
}

// Probe asks, for each folder with a stored SyncState, one
// SyncFolderItems for at most one change (ids only, no MIME, the new
// state not kept) and reports what the next import would find. Folders
// without a state are new.
func Probe(ctx context.Context, opts *Options, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	folders, err := s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	info := func(f *Folder) (string, int64) { return f.Path, f.Total }
	return itemsync.Probe(folders, info, s.cfg.InScope, known, func(f *Folder, state string) (bool, error) {
		msgs, err := s.call(ctx, "SyncFolderItems", func(string) string {
			return "<m:SyncFolderItems>\n<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>\n" +
				`<m:SyncFolderId><t:FolderId Id="` + escape(f.ID) + `"/></m:SyncFolderId>` +
				"\n<m:SyncState>" + escape(state) + "</m:SyncState>" +
				"\n<m:MaxChangesReturned>1</m:MaxChangesReturned>\n<m:SyncScope>NormalItems</m:SyncScope>\n</m:SyncFolderItems>"
		})
		if err != nil {
			return false, authError(err)
		}
		if len(msgs) != 1 {
			return false, fmt.Errorf("%d answers", len(msgs))
		}
		// A refused state means a full read: changed.
		return msgs[0].err() != nil || len(msgs[0].Changes.List) > 0, nil
	})
}
