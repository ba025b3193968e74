package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

// Prober checks that a backend answers: the executor implements it, and
// Apply calls it once per backend whose circuit breaker a previous run
// left open, before dispatching work to that backend. An Executor without
// it leaves open breakers to the work itself: the first failures open
// them again.
type Prober interface {
	// ProbeSource logs in at acct's source and lists its mailboxes.
	ProbeSource(ctx context.Context, acct *plan.Account) error
	// ProbeTarget discovers acct's session at its target.
	ProbeTarget(ctx context.Context, acct *plan.Account) error
}

// breaker is one backend's circuit breaker: threshold consecutive
// connection failures or timeouts open it; any answer from the backend
// (a success, or an error the backend itself sent) closes the count.
// Once open it stays open for the rest of the run; only a probe at the
// start of the next run closes it.
type breaker struct {
	threshold int // 0: never opens
	failures  int // consecutive connection failures
	open      bool
	lastErr   string
}

// breakerEvent is what one unit of work at the backend ended with.
type breakerEvent int

const (
	// evAnswered: the backend answered (success or its own refusal).
	evAnswered breakerEvent = iota
	// evUnreachable: a connection failure or a timeout.
	evUnreachable
	// evCancelled: the run was cancelled; says nothing about the backend.
	evCancelled
)

// observe folds one event in and reports whether it opened the breaker.
func (b *breaker) observe(ev breakerEvent, errText string) (opened bool) {
	switch ev {
	case evAnswered:
		if !b.open {
			b.failures = 0
		}
	case evUnreachable:
		b.failures++
		b.lastErr = errText
		if !b.open && b.threshold > 0 && b.failures >= b.threshold {
			b.open = true
			return true
		}
	}
	return false
}

// Unreachable reports whether err says that a backend could not be
// reached or did not answer in time: a refused, reset or unroutable
// connection, a DNS failure, or a timeout (connect, TLS handshake,
// response header, idle). Errors the backend itself sent (a refused
// login, an HTTP 503) are not.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, vandelay.ErrConnect) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// initBreakers builds the breakers from the plan's limits and probes the
// backends a previous run left open, once each, before anything runs.
func (a *applier) initBreakers() {
	a.breakers, a.waveBreaker = map[string]*breaker{}, map[string]string{}
	for _, b := range a.env.Plan.Backends {
		a.breakers[b.Name] = &breaker{threshold: b.Limits.BreakerFailures}
	}
	if len(a.env.OpenBreakers) == 0 {
		return
	}
	names := make([]string, 0, len(a.env.OpenBreakers))
	for name := range a.env.OpenBreakers {
		names = append(names, name)
	}
	sort.Strings(names)
	pr, _ := a.env.Executor.(Prober)
	for _, name := range names {
		// Probe with the first account that needs the backend; a backend
		// no change uses stays open until one does.
		var c *Change
		for _, n := range a.g.nodes {
			if slices.Contains(breakerBackends(n.c), name) {
				c = n.c
				break
			}
		}
		acct := (*plan.Account)(nil)
		if c != nil {
			acct = a.accounts[Key(c.Account)]
		}
		if c == nil || acct == nil || pr == nil {
			continue
		}
		b := a.breakerOf(name)
		log := a.env.Logger.With("backend", name)
		pctx, cancel := context.WithTimeout(a.ctx, probeTimeout)
		var err error
		if name == c.Source {
			err = pr.ProbeSource(pctx, acct)
		} else {
			err = pr.ProbeTarget(pctx, acct)
		}
		cancel()
		if err == nil || !Unreachable(err) {
			// Any answer proves the backend is back; a refused login is
			// the work's to report, not the breaker's.
			log.Info("backend answers again; dispatching to it")
			a.record(state.Record{Type: state.TypeBreakerClosed, Backend: name, Note: "probe at " + acct.Address + " succeeded"})
			continue
		}
		b.open, b.lastErr = true, a.redact(err.Error())
		log.Warn("backend still unreachable; its circuit breaker stays open", "err", b.lastErr)
		a.record(state.Record{Type: state.TypeBreakerOpen, Backend: name, Error: "probe: " + b.lastErr,
			Note: "the probe at the start of apply failed; nothing is dispatched to the backend"})
	}
}

// probeTimeout bounds one probe beyond the backend's own timeouts.
const probeTimeout = 5 * time.Minute

func (a *applier) breakerOf(name string) *breaker {
	b := a.breakers[name]
	if b == nil {
		// A backend missing from the plan (hand-built tests): never opens.
		b = &breaker{}
		a.breakers[name] = b
	}
	return b
}

// breakerBackends are the backends whose breaker gates c: the ones it
// reads or writes data at. Route changes (rollback, adopt, the unfreeze of
// a resumed cut-over) move no data and always run: rolling back is what
// an operator needs most when a target is down.
func breakerBackends(c *Change) []string {
	switch c.Action {
	case Import:
		return []string{c.Source}
	case Export:
		return []string{c.Target}
	case CatchUp:
		return []string{c.Source, c.Target}
	case Cutover:
		if !c.Resume {
			return []string{c.Source, c.Target}
		}
	}
	return nil
}

// breakerSkipLocked returns why n must not start because of a breaker,
// or "".
func (a *applier) breakerSkipLocked(n *node) string {
	bs := breakerBackends(n.c)
	if len(bs) == 0 {
		return ""
	}
	for _, name := range bs {
		if b := a.breakerOf(name); b.open {
			return fmt.Sprintf("backend %s is unreachable: its circuit breaker is open (last error: %s); the next apply probes it", name, b.lastErr)
		}
	}
	if name := a.waveBreaker[n.wave]; name != "" {
		return fmt.Sprintf("the wave halted: the circuit breaker of backend %s opened (last error: %s)", name, a.breakerOf(name).lastErr)
	}
	return ""
}

// observe feeds the outcome of one call at backend into its breaker and,
// when that opens it, halts c's wave and journals why.
func (a *applier) observe(c *Change, backend string, err error) {
	ev := evAnswered
	switch {
	case err == nil:
	case a.ctx.Err() != nil || errors.Is(err, context.Canceled):
		ev = evCancelled
	case Unreachable(err):
		ev = evUnreachable
	}
	text := ""
	if err != nil {
		text = a.redact(err.Error())
	}
	a.mu.Lock()
	b := a.breakerOf(backend)
	opened := b.observe(ev, text)
	if opened && a.waveBreaker[c.Wave] == "" {
		a.waveBreaker[c.Wave] = backend
	}
	a.mu.Unlock()
	if !opened {
		return
	}
	a.env.Logger.Warn("circuit breaker opened: no more work is dispatched to the backend; running work finishes",
		"backend", backend, "failures", b.threshold, "err", text)
	a.record(state.Record{Type: state.TypeBreakerOpen, Backend: backend, Wave: c.Wave, Error: text,
		Note: fmt.Sprintf("%d consecutive connection failures or timeouts; wave %s halted; the next apply probes the backend once before dispatching to it", b.threshold, c.Wave)})
}

// importFrom and exportTo run the executor and feed its breaker.
func (a *applier) importFrom(c *Change, job *Job) (state.Counts, error) {
	cnt, err := a.env.Executor.Import(a.ctx, job)
	a.observe(c, c.Source, err)
	return cnt, err
}

func (a *applier) exportTo(c *Change, job *Job) (state.Counts, error) {
	cnt, err := a.env.Executor.Export(a.ctx, job)
	a.observe(c, c.Target, err)
	return cnt, err
}
