package executor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
	"github.com/mailmig/mailmig/vandelay/uidl"
)

// UIDLStore is where the cut-over writes an account's POP3 UIDL map for
// the proxy (*routes.Store; a fleet store the same way).
type UIDLStore interface {
	SetUIDLMap(ctx context.Context, account, backend string, m map[string]string) error
}

var _ engine.FlipPreparer = (*Executor)(nil)

// SetUIDLStore makes cut-overs write POP3 UIDL maps into st (see
// PrepareFlip). Without it none is written.
func (x *Executor) SetUIDLStore(st UIDLStore) { x.uidls = st }

// PrepareFlip writes the account's POP3 UIDL map before the route flips,
// when both backends have a pop3 endpoint (users may keep mail on the
// server at the source, and will read it at the target): every message of
// the archive's INBOX that the target holds keeps the UIDL the source
// gave it (package vandelay/uidl). It lists the source's UIDLs (one
// command) and the target's with each header (TOP n 0); nothing is
// downloaded whole. The proxy's POP3 front reads the map at login.
func (x *Executor) PrepareFlip(ctx context.Context, job *engine.Job) error {
	if x.uidls == nil {
		return nil
	}
	acct := job.Account
	log := x.logOr(job.Log)
	sb, tb := x.m.Backend(acct.From), x.m.Backend(acct.To)
	if sb == nil || tb == nil {
		return nil
	}
	sep, tep := sb.Endpoint(plan.ProtoPOP3), tb.Endpoint(plan.ProtoPOP3)
	if sep == nil || tep == nil {
		return nil
	}
	start := time.Now()
	a, err := x.openArchive(ctx, acct, false, log)
	if err != nil {
		return fmt.Errorf("pop3 uidl map: %w", err)
	}
	in, err := uidl.ReadInbox(ctx, a)
	a.Close()
	if err != nil {
		return fmt.Errorf("pop3 uidl map: %w", err)
	}
	_, spec, err := x.sourceSpec(acct, nil, log)
	if err != nil {
		return fmt.Errorf("pop3 uidl map: %w", err)
	}
	srcList, err := pop3.List(ctx, &pop3.Options{Server: pop3Server(sb, sep), Login: spec.Login, Logger: log}, false)
	if err != nil {
		return fmt.Errorf("pop3 uidl map: list the source: %w", err)
	}
	live := make(map[string]bool, len(srcList))
	for _, m := range srcList {
		live[m.UIDL] = true
	}
	srcUIDLs, format := uidl.SourceUIDLs(in, live, nil)
	tl, err := x.targetPOP3Login(tb, acct)
	if err != nil {
		return fmt.Errorf("pop3 uidl map: %w", err)
	}
	tgtList, err := x.listTargetPOP3(ctx, acct, tb, tep, tl, log)
	if err != nil {
		return fmt.Errorf("pop3 uidl map: list the target: %w", err)
	}
	m := uidl.Match(in, srcUIDLs, tgtList)
	if err := x.uidls.SetUIDLMap(ctx, engine.Key(acct.Address), tb.Name, m); err != nil {
		return err
	}
	log.Info("pop3 uidl map written", "inbox", len(in.Messages), "source_uidls", len(srcUIDLs), "format", format,
		"target", len(tgtList), "mapped", len(m), "duration", time.Since(start))
	return nil
}

// pop3Server is a backend's pop3 endpoint as vandelay dials it.
func pop3Server(b *plan.Backend, ep *plan.Endpoint) vandelay.Server {
	return vandelay.Server{Address: ep.Address, ServerName: ep.ServerName, InsecureSkipVerify: ep.InsecureSkipVerify,
		TLS: vandelay.TLSMode(ep.TLS), AllowCleartext: ep.TLS == plan.TLSNone, Timeouts: Timeouts(b)}
}

// targetPOP3Login is the login at the target's POP3: the backend's master
// user on the account's behalf, else the account's own password.
func (x *Executor) targetPOP3Login(b *plan.Backend, acct *plan.Account) (vandelay.Login, error) {
	login := acct.TargetLogin
	if login == "" {
		login = acct.Address
	}
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		return vandelay.Login{User: login, MasterUser: b.Master.User, Password: b.Master.Password.Reveal()}, nil
	case acct.Password.IsSet():
		return vandelay.Login{User: login, Password: acct.Password.Reveal()}, nil
	}
	return vandelay.Login{}, fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
}

// listTargetPOP3 lists the target's maildrop with header keys, asking TOP
// only for UIDLs the account's cache does not know, and remembers the
// keys (WarmVerify lists once before the freeze).
func (x *Executor) listTargetPOP3(ctx context.Context, acct *plan.Account, tb *plan.Backend, tep *plan.Endpoint, tl vandelay.Login, log *slog.Logger) ([]uidl.TargetMessage, error) {
	k := tb.Name + "/" + engine.Key(acct.Address)
	x.mu.Lock()
	if x.topKeys == nil {
		x.topKeys = map[string]map[string]string{}
	}
	cache := x.topKeys[k]
	x.mu.Unlock()
	known := func(u string) (string, bool) {
		x.mu.Lock()
		defer x.mu.Unlock()
		key, ok := cache[u]
		return key, ok
	}
	list, err := pop3.ListKnown(ctx, &pop3.Options{Server: pop3Server(tb, tep), Login: tl, Logger: log}, true, known)
	if err != nil {
		return nil, err
	}
	next := make(map[string]string, len(list))
	for _, m := range list {
		next[m.UIDL] = m.Key
	}
	x.mu.Lock()
	x.topKeys[k] = next
	x.mu.Unlock()
	return list, nil
}

// warmPOP3 lists the target's maildrop with its header keys before the
// freeze, when the cut-over will write a UIDL map.
func (x *Executor) warmPOP3(ctx context.Context, job *engine.Job) {
	if x.uidls == nil {
		return
	}
	acct := job.Account
	sb, tb := x.m.Backend(acct.From), x.m.Backend(acct.To)
	if sb == nil || tb == nil || sb.Endpoint(plan.ProtoPOP3) == nil || tb.Endpoint(plan.ProtoPOP3) == nil {
		return
	}
	log := x.logOr(job.Log)
	tl, err := x.targetPOP3Login(tb, acct)
	if err == nil {
		_, err = x.listTargetPOP3(ctx, acct, tb, tb.Endpoint(plan.ProtoPOP3), tl, log)
	}
	if err != nil {
		log.Warn("list the target's POP3 maildrop before the freeze", "err", err)
	}
}
