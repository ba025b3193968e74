package graph

import (
	"context"
	"encoding/json"
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
	"github.com/mailmig/mailmig/vandelay/sources/exchange/oauth"
)

// DefaultURL is the Microsoft Graph v1.0 endpoint.
const DefaultURL = "https://graph.microsoft.com/v1.0"

// Limits.
const (
	// DefaultAppRate is the requests per second one app registration
	// sends from one process, all mailboxes together (Options.AppRate).
	DefaultAppRate = httpx.DefaultAppRate
	// MaxConcurrency is Microsoft's limit of concurrent requests per
	// mailbox for Outlook resources; more only earns 429s.
	MaxConcurrency = 4
	// DefaultPageSize is the odata.maxpagesize asked for in delta and
	// folder listings.
	DefaultPageSize = 100
	// maxPages bounds one paging loop (100 000 items at the default page
	// size per folder is far beyond a real mailbox's folder; a server that
	// loops its nextLink must not make the import run forever).
	maxPages = 10000
	// maxFolders bounds the folder tree.
	maxFolders = 20000
)

// Options are the settings of a Graph source. A zero field means its
// default.
type Options struct {
	// URL is the Graph endpoint. Default: DefaultURL.
	URL string
	// User is the mailbox (user principal name or id) whose mail is read.
	User string
	// OAuth is the app registration and grant.
	OAuth oauth.Config
	vandelay.Scope
	// Concurrency is the number of requests in flight. Default and
	// maximum: MaxConcurrency.
	Concurrency int
	// PageSize is the page size asked for. Default: DefaultPageSize.
	PageSize int
	// HTTP is the HTTP client (TLS settings, timeouts). Default: one with
	// the vandelay default timeouts.
	HTTP *http.Client
	// Sleep replaces the wait for Retry-After (tests). Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
	// AppRate is the requests per second shared by every mailbox of the
	// app registration (authority, tenant, client id) in this process,
	// on top of the 4 in flight per mailbox. Default: DefaultAppRate.
	AppRate float64
	// Now is the clock that places the window of a series without an end
	// (SeriesHorizon). Default: time.Now.
	Now func() time.Time
}

// Source imports one mailbox through Microsoft Graph.
type Source struct {
	cfg    Options
	log    *slog.Logger
	client *httpx.Client
	tokens *oauth.Source
	base   string
}

var _ vandelay.MailSource = (*Source)(nil)

// New returns a Graph source for opts (a copy is kept).
func New(opts *Options) (*Source, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg := *opts
	if cfg.User == "" {
		return nil, fmt.Errorf("%w: exchange-graph source needs the mailbox (--user)", vandelay.ErrUsage)
	}
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: Graph URL %q is not an absolute http(s) URL", vandelay.ErrUsage, cfg.URL)
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency {
		cfg.Concurrency = MaxConcurrency
	}
	if cfg.PageSize < 1 {
		cfg.PageSize = DefaultPageSize
	}
	log := vandelay.LoggerOr(cfg.Logger).With("proto", "graph", "user", cfg.User)
	hc := cfg.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	tokClient := httpx.New(1)
	tokClient.HTTP, tokClient.Sleep, tokClient.Log = hc, cfg.Sleep, log
	tokens, err := oauth.New(cfg.OAuth, tokClient)
	if err != nil {
		return nil, fmt.Errorf("%w: exchange-graph: %w", vandelay.ErrUsage, err)
	}
	c := httpx.New(cfg.Concurrency)
	c.HTTP, c.Auth, c.Sleep, c.Log = hc, tokens, cfg.Sleep, log
	c.Budget = httpx.AppBudget(strings.Join([]string{cfg.OAuth.Authority, cfg.OAuth.Tenant, cfg.OAuth.ClientID}, "\x00"), cfg.AppRate, 0)
	return &Source{cfg: cfg, log: log, client: c, tokens: tokens,
		base: strings.TrimRight(cfg.URL, "/") + "/users/" + url.PathEscape(cfg.User)}, nil
}

// Describe implements vandelay.MailSource.
func (s *Source) Describe() archive.Source {
	login := s.cfg.OAuth.ClientID
	if s.cfg.OAuth.Tenant != "" {
		login = s.cfg.OAuth.Tenant + "/" + login
	}
	return archive.Source{Kind: "exchange-graph", Endpoint: s.cfg.URL, Account: s.cfg.User, Login: login}
}

// Close implements vandelay.MailSource.
func (s *Source) Close() error { return nil }

// get sends a GET with the ImmutableId preference and decodes JSON into v.
func (s *Source) get(ctx context.Context, u string, v any, prefer ...string) error {
	_, body, err := s.client.Do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		setPrefer(req, prefer...)
		req.Header.Set("Accept", "application/json")
		return req, nil
	})
	if err != nil {
		return classify(err)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", redactURL(u), err)
	}
	return nil
}

// setPrefer asks for immutable ids (so that a message keeps its id when
// moved, and a move is a membership change) plus any other preferences.
func setPrefer(req *http.Request, more ...string) {
	req.Header.Add("Prefer", `IdType="ImmutableId"`)
	for _, p := range more {
		req.Header.Add("Prefer", p)
	}
}

// classify maps HTTP failures to the import's error classes.
func classify(err error) error {
	var se *httpx.StatusError
	var oe *oauth.Error
	switch {
	case errors.As(err, &oe):
		return fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		return fmt.Errorf("%w: %s (check the app's Mail.Read permission and admin consent): %w", vandelay.ErrAuth, graphError(se.Body), err)
	case errors.As(err, &se):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
}

// graphError extracts error.code from a Graph error body.
func graphError(body []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return e.Error.Code
	}
	return "refused"
}

// redactURL drops the query (delta and skip tokens) from a URL for errors
// and logs.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(url)"
	}
	p.RawQuery = ""
	return p.String()
}

// Folder is a mail folder of the tree.
type Folder struct {
	ID               string `json:"id"`
	DisplayName      string `json:"displayName"`
	ParentFolderID   string `json:"parentFolderId"`
	ChildFolderCount int    `json:"childFolderCount"`
	TotalItemCount   int64  `json:"totalItemCount"`
	IsHidden         bool   `json:"isHidden"`
	// Path is the folder's full path (Sep between levels), Role its role.
	Path string `json:"-"`
	// Sep is the mailbox's hierarchy separator: "/" unless a folder name
	// contains one (itemsync.Separator).
	Sep string `json:"-"`
	// parts are the path's levels.
	parts []string
	Role  string `json:"-"`
}

type folderPage struct {
	Value    []*Folder `json:"value"`
	NextLink string    `json:"@odata.nextLink"`
}

// wellKnown maps Graph's well-known folder names to archive roles.
var wellKnown = map[string]string{
	"inbox":        archive.RoleInbox,
	"sentitems":    archive.RoleSent,
	"drafts":       archive.RoleDrafts,
	"deleteditems": archive.RoleTrash,
	"junkemail":    archive.RoleJunk,
	"archive":      archive.RoleArchive,
}

// Folders lists the mailbox's folder tree (hidden folders included),
// with paths and roles.
func (s *Source) Folders(ctx context.Context) ([]*Folder, error) {
	roles, err := s.roles(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Folder
	q := fmt.Sprintf("?includeHiddenFolders=true&$top=%d", s.cfg.PageSize)
	type level struct {
		url    string
		prefix []string
	}
	queue := []level{{s.base + "/mailFolders" + q, nil}}
	for len(queue) > 0 {
		lv := queue[0]
		queue = queue[1:]
		next := lv.url
		for pages := 0; next != ""; pages++ {
			if pages >= maxPages || len(out) > maxFolders {
				return nil, fmt.Errorf("folder listing of %s does not end", s.cfg.User)
			}
			var p folderPage
			if err := s.get(ctx, next, &p); err != nil {
				return nil, fmt.Errorf("list folders: %w", err)
			}
			for _, f := range p.Value {
				name := f.DisplayName
				f.Role = roles[f.ID]
				if f.Role == archive.RoleInbox && len(lv.prefix) == 0 {
					name = "INBOX" // as the archive names the inbox; its children follow
				}
				f.parts = append(slices.Clip(lv.prefix), name)
				out = append(out, f)
				if f.ChildFolderCount > 0 {
					queue = append(queue, level{s.base + "/mailFolders/" + url.PathEscape(f.ID) + "/childFolders" + q, f.parts})
				}
			}
			next = p.NextLink
		}
	}
	names := make([]string, len(out))
	for i, f := range out {
		names[i] = f.DisplayName
	}
	sep := itemsync.Separator(names)
	if sep == "/" && slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "/") }) {
		s.log.Warn("folder names contain every separator candidate; \"/\" in names becomes \"_\"")
	}
	for _, f := range out {
		levels := make([]string, len(f.parts))
		for i, p := range f.parts {
			levels[i] = itemsync.Name(p, sep)
		}
		f.Path, f.Sep = strings.Join(levels, sep), sep
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

type batchRequest struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	URL    string `json:"url"`
}

type batchResponse struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

// roles asks for the well-known folders in one JSON batch (up to 20
// requests; six here) and maps their ids to roles. A well-known folder
// the mailbox lacks (no archive folder) answers 404 and has no role.
func (s *Source) roles(ctx context.Context) (map[string]string, error) {
	names := make([]string, 0, len(wellKnown))
	for n := range wellKnown {
		names = append(names, n)
	}
	sort.Strings(names)
	userPath := "/users/" + url.PathEscape(s.cfg.User)
	out := map[string]string{}
	for round := 0; len(names) > 0; round++ {
		if round >= httpx.MaxAttempts {
			return nil, errors.New("well-known folders: throttled too often")
		}
		var reqs []batchRequest
		for _, n := range names {
			reqs = append(reqs, batchRequest{ID: n, Method: "GET", URL: userPath + "/mailFolders/" + n + "?$select=id"})
		}
		body, err := json.Marshal(map[string]any{"requests": reqs})
		if err != nil {
			return nil, err
		}
		_, resp, err := s.client.Do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPost, strings.TrimRight(s.cfg.URL, "/")+"/$batch", strings.NewReader(string(body)))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			setPrefer(req)
			return req, nil
		})
		if err != nil {
			return nil, fmt.Errorf("well-known folders: %w", classify(err))
		}
		var br batchResponse
		if err := json.Unmarshal(resp, &br); err != nil {
			return nil, fmt.Errorf("well-known folders: unreadable batch answer: %w", err)
		}
		var again []string
		var wait time.Duration
		for _, r := range br.Responses {
			switch {
			case r.Status == http.StatusOK:
				var f struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(r.Body, &f) == nil && f.ID != "" {
					out[f.ID] = wellKnown[r.ID]
				}
			case r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable:
				// Each request of a batch is throttled on its own; retry
				// those after the longest Retry-After among them.
				again = append(again, r.ID)
				wait = max(wait, httpx.RetryAfter(header(r.Headers, "Retry-After"), time.Now()))
			case r.Status == http.StatusNotFound:
			case r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
				return nil, fmt.Errorf("%w: well-known folder %s: HTTP %d", vandelay.ErrAuth, r.ID, r.Status)
			default:
				return nil, fmt.Errorf("well-known folder %s: HTTP %d", r.ID, r.Status)
			}
		}
		names = again
		if len(again) > 0 {
			sleep := s.cfg.Sleep
			if sleep == nil {
				sleep = httpx.Sleep
			}
			s.log.Info("throttled by the server, waiting", "duration", wait)
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// deltaSelect is what a delta page carries per message: enough for
// keywords and the received date, never the body.
const deltaSelect = "receivedDateTime,isRead,isDraft,flag,categories"

// deltaURL is the first delta request of a folder.
func (s *Source) deltaURL(folderID string) string {
	return s.base + "/mailFolders/" + url.PathEscape(folderID) + "/messages/delta?" +
		url.Values{"$select": {deltaSelect}}.Encode()
}

type message struct {
	ID               string          `json:"id"`
	Removed          json.RawMessage `json:"@removed"`
	ReceivedDateTime string          `json:"receivedDateTime"`
	IsRead           bool            `json:"isRead"`
	IsDraft          bool            `json:"isDraft"`
	Flag             struct {
		FlagStatus string `json:"flagStatus"`
	} `json:"flag"`
	Categories []string `json:"categories"`
}

type deltaPage struct {
	Value     []message `json:"value"`
	NextLink  string    `json:"@odata.nextLink"`
	DeltaLink string    `json:"@odata.deltaLink"`
}

// item turns a delta entry into an itemsync change.
func (m *message) item() itemsync.Item {
	it := itemsync.Item{Key: m.ID, Removed: len(m.Removed) > 0 && string(m.Removed) != "null"}
	if it.Removed {
		return it
	}
	if m.IsRead {
		it.Keywords = append(it.Keywords, archive.KeywordSeen)
	}
	if m.IsDraft {
		it.Keywords = append(it.Keywords, archive.KeywordDraft)
	}
	if m.Flag.FlagStatus == "flagged" {
		it.Keywords = append(it.Keywords, archive.KeywordFlagged)
	}
	for _, c := range m.Categories {
		if k := itemsync.Category(c); k != "" {
			it.Keywords = append(it.Keywords, k)
		}
	}
	it.Keywords = archive.NormalizeKeywords(it.Keywords)
	if t, err := time.Parse(time.RFC3339, m.ReceivedDateTime); err == nil {
		it.Received = t
	}
	return it
}

// errResync is a delta link the server no longer knows (HTTP 410 Gone,
// syncStateNotFound): the folder must be read again from the start.
var errResync = errors.New("delta token expired")

// delta follows a delta chain from u to its deltaLink, collecting the
// changes. A 410 is errResync.
func (s *Source) delta(ctx context.Context, u string) ([]itemsync.Item, string, error) {
	var items []itemsync.Item
	next := u
	for pages := 0; pages < maxPages; pages++ {
		var p deltaPage
		err := s.get(ctx, next, &p, fmt.Sprintf("odata.maxpagesize=%d", s.cfg.PageSize))
		if httpx.IsStatus(err, http.StatusGone) {
			return nil, "", errResync
		}
		if err != nil {
			return nil, "", err
		}
		for i := range p.Value {
			if p.Value[i].ID != "" {
				items = append(items, p.Value[i].item())
			}
		}
		switch {
		case p.DeltaLink != "":
			return items, p.DeltaLink, nil
		case p.NextLink == "":
			return nil, "", fmt.Errorf("delta page of %s has neither nextLink nor deltaLink", redactURL(next))
		}
		next = p.NextLink
	}
	return nil, "", fmt.Errorf("delta of %s does not end", redactURL(u))
}

// fetch downloads messages as MIME ($value), at most Concurrency at once
// (the client's limit). A message deleted meanwhile (404) is left out.
func (s *Source) fetch(ctx context.Context, keys []string, deliver func(string, []byte) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	var mu sync.Mutex
	for _, k := range keys {
		g.Go(func() error {
			u := s.base + "/messages/" + url.PathEscape(k) + "/$value"
			_, body, err := s.client.Do(ctx, func() (*http.Request, error) {
				req, err := http.NewRequest(http.MethodGet, u, nil)
				if err != nil {
					return nil, err
				}
				setPrefer(req)
				return req, nil
			})
			if httpx.IsStatus(err, http.StatusNotFound) {
				s.log.Info("message vanished before it was fetched", "id", k)
				return nil
			}
			if err != nil {
				return fmt.Errorf("fetch message: %w", classify(err))
			}
			mu.Lock()
			defer mu.Unlock()
			return deliver(k, body)
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
		infos = append(infos, archive.MailboxInfo{Path: f.Path, Sep: f.Sep, Role: f.Role, Subscribed: true, Selectable: true, SourceRef: "graph:" + f.ID})
		todo = append(todo, f)
	}
	boxes, err := run.SyncMailboxes(ctx, infos, s.cfg.InScope)
	if err != nil {
		return err
	}
	known, err := run.LocationHashes(ctx)
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
		if err := s.syncFolder(ctx, run, box, f, known, prog); err != nil {
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

// syncFolder reads one folder's changes since its delta link (or all of
// it) and saves the new delta link as the folder's cursor.
func (s *Source) syncFolder(ctx context.Context, run *archive.Run, box *archive.Mailbox, f *Folder, known itemsync.Known, prog vandelay.Progress) error {
	cur, err := run.Cursor(ctx, box.ID)
	if err != nil {
		return err
	}
	full := cur.Extra == ""
	var items []itemsync.Item
	var link string
	if !full {
		items, link, err = s.delta(ctx, cur.Extra)
		if errors.Is(err, errResync) {
			// The archive's locations decide what is fetched, so reading
			// the whole folder again adds nothing twice.
			s.log.Info("delta token expired, reading the folder again", "mailbox", f.Path)
			full = true
		} else if err != nil {
			return err
		}
	}
	if full {
		items, link, err = s.delta(ctx, s.deltaURL(f.ID))
		if err != nil {
			return err
		}
	}
	st, err := itemsync.Apply(ctx, run, box.ID, items, full, known, s.fetch, prog)
	if err != nil {
		return err
	}
	s.log.Debug("folder synced", "mailbox", f.Path, "added", st.Added, "removed", st.Removed, "reflagged", st.Reflagged, "fetched", st.Fetched)
	return run.SetCursor(ctx, box.ID, archive.Cursor{Extra: link})
}

// Probe asks, for each folder, one delta request from the archive's delta
// link (no message fetched, the new link not kept) and reports what the
// next import would find. Folders without a link are new.
func Probe(ctx context.Context, opts *Options, known []archive.MailboxCursor) (*vandelay.ProbeResult, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	folders, err := s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	info := func(f *Folder) (string, int64) { return f.Path, f.TotalItemCount }
	return itemsync.Probe(folders, info, s.cfg.InScope, known, func(_ *Folder, link string) (bool, error) {
		var p deltaPage
		err := s.get(ctx, link, &p, "odata.maxpagesize=1")
		switch {
		case httpx.IsStatus(err, http.StatusGone):
			return true, nil // the link expired: a full read
		case err != nil:
			return false, err
		}
		return len(p.Value) > 0 || p.NextLink != "", nil
	})
}
