package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailmig/mailmig/engine"
)

// Per-account logs: state/logs/ACCOUNT.log holds, as JSON lines, every
// action apply ran for the account, its steps, its end (outcome, counts,
// error) and what the executor logged about it, so that an operator can
// answer a user's ticket about one account without reading the whole run.
// Texts pass the plan's redactor: no secret reaches the files.
const (
	// MaxAccountLog is the size at which an account's log is rotated
	// (ACCOUNT.log → ACCOUNT.log.1 → … → ACCOUNT.log.N).
	MaxAccountLog = 4 << 20
	// AccountLogsKept is N: how many rotated files are kept.
	AccountLogsKept = 3
)

// accountLogs writes the per-account files. It implements engine.Hook
// (actions and steps) and, through handler, takes the executor's slog
// records that carry a "user" attribute. Safe for concurrent use.
type accountLogs struct {
	engine.NopHook
	dir    string
	redact func(string) string
	now    func() time.Time
	max    int64
	mu     sync.Mutex
	files  map[string]*os.File
	size   map[string]int64
	err    error // the first write error, reported once at the end
}

func newAccountLogs(dir string, redact func(string) string, now func() time.Time) *accountLogs {
	if redact == nil {
		redact = func(s string) string { return s }
	}
	return &accountLogs{dir: dir, redact: redact, now: now, max: MaxAccountLog, files: map[string]*os.File{}, size: map[string]int64{}}
}

// accountLogName is the file name of an account's log (as archives are
// named: no path separators).
func accountLogName(account string) string {
	return strings.NewReplacer("/", "_", "\\", "_", "..", "_").Replace(engine.Key(account)) + ".log"
}

// write appends one JSON line for account.
func (l *accountLogs) write(account string, fields map[string]any) {
	if account == "" {
		return
	}
	for k, v := range fields {
		if s, ok := v.(string); ok {
			fields[k] = l.redact(s)
		}
	}
	b, err := marshalOrdered(fields)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	name := accountLogName(account)
	f, err := l.openLocked(name)
	if err == nil && l.size[name]+int64(len(b)) > l.max && l.size[name] > 0 {
		f, err = l.rotateLocked(name)
	}
	if err == nil {
		var n int
		n, err = f.Write(b)
		l.size[name] += int64(n)
	}
	if err != nil && l.err == nil {
		l.err = err
	}
}

func (l *accountLogs) openLocked(name string) (*os.File, error) {
	if f := l.files[name]; f != nil {
		return f, nil
	}
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(l.dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open account log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open account log: %w", err)
	}
	l.files[name], l.size[name] = f, st.Size()
	return f, nil
}

// rotateLocked shifts name.N-1 → name.N … name → name.1 and opens a new
// name.
func (l *accountLogs) rotateLocked(name string) (*os.File, error) {
	l.files[name].Close()
	delete(l.files, name)
	p := filepath.Join(l.dir, name)
	for i := AccountLogsKept - 1; i >= 1; i-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("rotate account log: %w", err)
		}
	}
	if err := os.Rename(p, p+".1"); err != nil {
		return nil, fmt.Errorf("rotate account log: %w", err)
	}
	return l.openLocked(name)
}

// Close closes every file and returns the first write error.
func (l *accountLogs) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, f := range l.files {
		f.Close()
		delete(l.files, name)
	}
	return l.err
}

func (l *accountLogs) event(c *engine.Change, msg string, extra map[string]any) {
	f := map[string]any{"time": l.now().UTC().Format(time.RFC3339Nano), "level": "INFO", "msg": msg,
		"account": c.Account, "action": c.Action.String(), "wave": c.Wave}
	for k, v := range extra {
		f[k] = v
	}
	l.write(c.Account, f)
}

// PreAction logs the start of an action.
func (l *accountLogs) PreAction(c *engine.Change) {
	l.event(c, "action started", map[string]any{"source": c.Source, "target": c.Target})
}

// Step logs a step.
func (l *accountLogs) Step(c *engine.Change, step string) {
	l.event(c, "step", map[string]any{"step": step})
}

// PostAction logs how the action ended.
func (l *accountLogs) PostAction(c *engine.Change, r *engine.Result) {
	extra := map[string]any{"outcome": string(r.Outcome), "duration_ms": r.Duration.Milliseconds()}
	if !r.Counts.IsZero() {
		extra["counts"] = r.Counts
	}
	if r.Error != "" {
		extra["error"] = r.Error
	}
	if r.Skipped != "" {
		extra["skipped"] = r.Skipped
	}
	if len(r.Mismatches) > 0 {
		extra["verify_mismatches"] = r.Mismatches
	}
	level := "INFO"
	if r.Outcome != "ok" {
		level = "WARN"
	}
	extra["level"] = level
	l.event(c, "action finished", extra)
}

// handler is an slog.Handler that writes the records carrying a "user"
// attribute (the engine binds it on every job's logger) to that account's
// file.
func (l *accountLogs) handler(level slog.Leveler) slog.Handler {
	return &accountHandler{l: l, level: level}
}

type accountHandler struct {
	l     *accountLogs
	level slog.Leveler
	attrs []slog.Attr
	group string
}

func (h *accountHandler) Enabled(_ context.Context, lv slog.Level) bool { return lv >= h.level.Level() }

func (h *accountHandler) Handle(_ context.Context, r slog.Record) error {
	f := map[string]any{"time": r.Time.UTC().Format(time.RFC3339Nano), "level": r.Level.String(), "msg": r.Message}
	user := ""
	add := func(a slog.Attr) {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		if a.Key == "user" {
			user = a.Value.String()
			return
		}
		f[key] = a.Value.Resolve().Any()
		if e, ok := f[key].(error); ok {
			f[key] = e.Error()
		}
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	if user == "" {
		return nil
	}
	f["account"] = user
	h.l.write(user, f)
	return nil
}

func (h *accountHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *accountHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// fanout sends records to every handler that is enabled for them.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, lv slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, lv) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}

var (
	_ engine.Hook  = (*accountLogs)(nil)
	_ slog.Handler = (*accountHandler)(nil)
	_ slog.Handler = fanout(nil)
)

// logFirst are the keys every line starts with, in this order; the
// others follow sorted.
var logFirst = []string{"time", "level", "msg", "account", "action"}

// marshalOrdered encodes fields as one JSON line, logFirst keys first.
func marshalOrdered(fields map[string]any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	add := func(k string) error {
		v, err := json.Marshal(fields[k])
		if err != nil {
			return err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
		return nil
	}
	for _, k := range logFirst {
		if _, ok := fields[k]; ok {
			if err := add(k); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(logFirst, k) {
			if err := add(k); err != nil {
				return nil, err
			}
		}
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}
