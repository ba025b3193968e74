package smtp

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/routes"
)

// rcpt is one recipient accepted by a backend in the current transaction.
type rcpt struct {
	addr       string
	backend    string
	account    string
	generation int64
}

// deliverySession routes one SMTP (port 25) or LMTP session by recipient.
type deliverySession struct {
	*session

	from     string
	mailOpts *gosmtp.MailOptions
	hasMail  bool
	rcpts    []rcpt
	primary  string                  // ModeSMTP: the transaction's backend
	conns    map[string]*backendConn // open backend sessions, reused across transactions
}

var (
	_ gosmtp.Session     = (*deliverySession)(nil)
	_ gosmtp.LMTPSession = (*deliverySession)(nil)
)

// Mail records the sender. Backends see MAIL when their first recipient
// arrives, because only then is the backend known.
func (d *deliverySession) Mail(from string, opts *gosmtp.MailOptions) error {
	if d.ending() {
		d.stopReading()
		return errMoved
	}
	d.resetTx()
	d.from = from
	d.mailOpts = opts
	d.hasMail = true
	d.setTx(true)
	return nil
}

// Rcpt routes one recipient and forwards RCPT to its backend before
// answering, so that the client's answer is the backend's.
func (d *deliverySession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	ctx := context.Background()
	router := d.srv.opts.Router
	if routes.Domain(to) == "" {
		// RFC 5321 4.5.1: <postmaster> without a domain must be accepted;
		// it goes wherever the table routes "postmaster".
		if !strings.EqualFold(to, "postmaster") {
			return errNoSuchUser
		}
	} else if !router.KnownDomain(to) {
		d.log.Debug("relay denied", "rcpt", to)
		return errRelayDenied
	}
	dec, err := router.Lookup(ctx, to)
	switch {
	case errors.Is(err, proxy.ErrUnknown):
		d.lookupResult(proxy.RouteUnknown)
		return errNoSuchUser
	case err != nil:
		d.lookupResult(proxy.RouteError)
		d.log.Error("route lookup failed", "rcpt", to, "err", err)
		return errConfig
	}
	r := dec.Route
	if dec.Frozen() {
		d.lookupResult(proxy.RouteFrozen)
		d.log.Info("recipient frozen", "user", r.Account, "backend", r.Backend)
		return errFrozen
	}
	d.lookupResult(proxy.RouteFound)
	if d.srv.opts.Mode == ModeSMTP && d.primary != "" && r.Backend != d.primary {
		return errOtherRoute
	}
	ep, lmtp := dec.Backend.Endpoint(proxy.LMTP)
	if !lmtp || ep.Address == "" {
		ep, _ = dec.Backend.Endpoint(proxy.SMTP)
		lmtp = false
	}
	if ep.Address == "" {
		d.log.Error("backend has no delivery address", "backend", r.Backend)
		return errConfig
	}
	bc, err := d.txConn(r.Backend, ep, lmtp)
	if err != nil {
		return err
	}
	if err := bc.client.Rcpt(to, opts); err != nil {
		if se := smtpErr(err); se != nil {
			d.log.Debug("backend refused recipient", "backend", r.Backend, "rcpt", to, "code", se.Code)
			return se
		}
		d.drop(r.Backend)
		d.log.Warn("backend lost", "backend", r.Backend, "err", err)
		return errLost
	}
	d.rcpts = append(d.rcpts, rcpt{addr: to, backend: r.Backend, account: r.Account, generation: r.Generation})
	if d.ec != nil {
		// A backend accepted a recipient: the transaction has begun,
		// and from now on only the idle timeout per command applies.
		d.ec.passedPreAuth()
	}
	if d.primary == "" {
		d.primary = r.Backend
	}
	return nil
}

// txConn returns the backend session with this transaction's MAIL already
// sent, dialling (or re-dialling a stale reused session once) as needed.
func (d *deliverySession) txConn(name string, ep proxy.Endpoint, lmtp bool) (*backendConn, error) {
	for attempt := 0; attempt < 2; attempt++ {
		bc := d.conns[name]
		reused := bc != nil
		if bc == nil {
			var err error
			bc, reused, err = d.deliveryConn(name, ep, lmtp)
			if err != nil {
				return nil, errUnavailable
			}
			d.conns[name] = bc
		}
		if bc.inTx {
			return bc, nil
		}
		err := bc.client.Mail(d.from, d.mailOpts)
		if err == nil {
			bc.inTx = true
			return bc, nil
		}
		if se := smtpErr(err); se != nil && !(reused && se.Code == 421) {
			return nil, se
		}
		d.drop(name)
		if !reused {
			d.log.Warn("backend lost", "backend", name, "err", err)
			return nil, errLost
		}
	}
	return nil, errLost
}

func (d *deliverySession) drop(name string) {
	if bc := d.conns[name]; bc != nil {
		bc.broken = true
		bc.close()
		delete(d.conns, name)
	}
}

// beginDelivery counts the transaction's accounts as having a delivery
// in flight (proxy.DeliveryTracker) until the returned function is called:
// a freeze is acknowledged only when none is left, so a message whose data
// is still arriving when the account freezes lands before the cut-over's
// final sync, never after it. It is called before the last route check
// (stale), which refuses the transaction when the freeze came first.
func (d *deliverySession) beginDelivery() (done func()) {
	dt, ok := d.srv.opts.Router.(proxy.DeliveryTracker)
	if !ok || len(d.rcpts) == 0 {
		return func() {}
	}
	accts := make([]string, len(d.rcpts))
	for i, rc := range d.rcpts {
		accts[i] = rc.account
	}
	return dt.BeginDelivery(accts...)
}

// stale reports whether a recipient's route changed since RCPT (a freeze or
// a flip in between): its backend must not get the message any more.
func (d *deliverySession) stale(r rcpt) bool {
	dec, err := d.srv.opts.Router.Lookup(context.Background(), r.addr)
	cur := dec.Route
	return err != nil || cur.State == routes.Frozen || cur.Backend != r.backend || cur.Generation != r.generation
}

// Data relays the message of a port-25 transaction to its one backend and
// answers with the backend's reply. An LMTP backend answers per recipient;
// the proxy can give one SMTP answer only, so a partial failure becomes a
// temporary failure for all (the sender retries; no message is lost, some
// may arrive twice).
func (d *deliverySession) Data(r io.Reader) error {
	defer d.setTx(false)
	bc := d.conns[d.primary]
	if bc == nil || !bc.inTx {
		return errNoStatus
	}
	defer d.beginDelivery()()
	for _, rc := range d.rcpts {
		if d.stale(rc) {
			d.log.Info("route changed during transaction", "user", rc.account)
			bc.reset()
			return errFrozen
		}
	}
	w, err := bc.client.Data()
	if err != nil {
		bc.inTx = false
		if se := smtpErr(err); se != nil {
			return se
		}
		d.drop(bc.name)
		return errLost
	}
	n, err := io.Copy(w, r)
	d.metrics().Add(proxy.MetricBytes, n, "proto", string(d.srv.opts.Mode), "backend", bc.name, "direction", "up")
	if err != nil {
		// Either the client's data failed (size limit, connection) or the
		// backend went away: in both cases the backend must not finish the
		// message, so drop the connection without the final dot.
		d.drop(bc.name)
		if se := smtpErr(err); se != nil {
			return se
		}
		return errLost
	}
	bc.inTx = false
	if !bc.lmtp {
		resp, err := w.CloseWithResponse()
		if err != nil {
			if se := smtpErr(err); se != nil {
				return se
			}
			d.drop(bc.name)
			return errLost
		}
		return splitStatus(250, resp.StatusText)
	}
	resp, err := w.CloseWithLMTPResponse()
	var lerr gosmtp.LMTPDataError
	if err != nil && !errors.As(err, &lerr) {
		d.drop(bc.name)
		return errLost
	}
	var firstErr *gosmtp.SMTPError
	ok, failed := 0, 0
	for _, rc := range d.rcpts {
		if se := lerr[rc.addr]; se != nil {
			failed++
			if firstErr == nil {
				firstErr = se
			}
			continue
		}
		if resp[rc.addr] != nil {
			ok++
		}
	}
	switch {
	case failed == 0 && ok > 0:
		return splitStatus(250, stripRcpt(resp[d.rcpts[0].addr].StatusText, d.rcpts[0].addr))
	case ok == 0 && failed > 0 && allSameClass(lerr):
		return firstErr
	default:
		d.log.Warn("partial delivery answered temporarily", "delivered", ok, "failed", failed)
		return errPartial
	}
}

func allSameClass(m gosmtp.LMTPDataError) bool {
	class := 0
	for _, se := range m {
		if class == 0 {
			class = se.Code / 100
		} else if se.Code/100 != class {
			return false
		}
	}
	return true
}

// stripRcpt removes a leading "<rcpt>" that LMTP servers put in their
// per-recipient text, since go-smtp adds it again.
func stripRcpt(text, addr string) string {
	first, rest, _ := strings.Cut(text, " ")
	if len(first) >= 5 && strings.Count(first, ".") == 2 && first[0] >= '0' && first[0] <= '9' {
		if r2, ok := strings.CutPrefix(rest, "<"+addr+"> "); ok {
			return first + " " + r2
		}
		return text
	}
	if r2, ok := strings.CutPrefix(text, "<"+addr+"> "); ok {
		return r2
	}
	return text
}

// LMTPData fans the message out to every backend of the transaction and
// reports one status per recipient (RFC 2033 4.2). Every status is a
// backend's answer, or a temporary failure when the backend could not be
// asked.
func (d *deliverySession) LMTPData(r io.Reader, status gosmtp.StatusCollector) error {
	defer d.setTx(false)
	defer d.beginDelivery()()

	// Group recipients by backend, in first-seen order.
	var order []string
	groups := make(map[string][]rcpt)
	for _, rc := range d.rcpts {
		if _, ok := groups[rc.backend]; !ok {
			order = append(order, rc.backend)
		}
		groups[rc.backend] = append(groups[rc.backend], rc)
	}
	setAll := func(rs []rcpt, err error) {
		for _, rc := range rs {
			status.SetStatus(rc.addr, err)
		}
	}

	type target struct {
		bc  *backendConn
		w   *gosmtp.DataCommand
		err error // write failure
	}
	var targets []*target
	for _, name := range order {
		rs := groups[name]
		bc := d.conns[name]
		if bc == nil || !bc.inTx {
			setAll(rs, errNoStatus)
			continue
		}
		stale := false
		for _, rc := range rs {
			stale = stale || d.stale(rc)
		}
		if stale {
			d.log.Info("route changed during transaction", "backend", name)
			bc.reset()
			setAll(rs, errFrozen)
			continue
		}
		w, err := bc.client.Data()
		if err != nil {
			bc.inTx = false
			if se := smtpErr(err); se != nil {
				setAll(rs, se)
			} else {
				d.drop(name)
				setAll(rs, errLost)
			}
			continue
		}
		targets = append(targets, &target{bc: bc, w: w})
	}

	// Stream once, to every target; a failing backend drops out alone.
	buf := make([]byte, 32*1024)
	var readErr error
	for len(targets) > 0 {
		n, err := r.Read(buf)
		if n > 0 {
			for _, tg := range targets {
				d.metrics().Add(proxy.MetricBytes, int64(n), "proto", string(d.srv.opts.Mode), "backend", tg.bc.name, "direction", "up")
			}
			for _, tg := range targets {
				if tg.err == nil {
					_, tg.err = tg.w.Write(buf[:n])
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	if readErr != nil {
		// The client's message is incomplete: no backend may finish it.
		for _, tg := range targets {
			d.drop(tg.bc.name)
		}
		return readErr
	}

	var wg sync.WaitGroup
	results := make([]func(), len(targets))
	for i, tg := range targets {
		tg.bc.inTx = false
		if tg.err != nil {
			d.drop(tg.bc.name)
			rs := groups[tg.bc.name]
			results[i] = func() { setAll(rs, errLost) }
			continue
		}
		wg.Add(1)
		go func(i int, tg *target) {
			defer wg.Done()
			rs := groups[tg.bc.name]
			resp, err := tg.w.CloseWithLMTPResponse()
			var lerr gosmtp.LMTPDataError
			if err != nil && !errors.As(err, &lerr) {
				tg.bc.broken = true
				results[i] = func() {
					d.drop(tg.bc.name)
					// Replies already read are real; the rest are unknown.
					for _, rc := range rs {
						if se := lerr[rc.addr]; se != nil {
							status.SetStatus(rc.addr, se)
						} else if dr := resp[rc.addr]; dr != nil {
							status.SetStatus(rc.addr, splitStatus(250, stripRcpt(dr.StatusText, rc.addr)))
						} else {
							status.SetStatus(rc.addr, errNoStatus)
						}
					}
				}
				return
			}
			results[i] = func() {
				for _, rc := range rs {
					if se := lerr[rc.addr]; se != nil {
						status.SetStatus(rc.addr, se)
					} else if dr := resp[rc.addr]; dr != nil {
						status.SetStatus(rc.addr, splitStatus(250, stripRcpt(dr.StatusText, rc.addr)))
					} else {
						status.SetStatus(rc.addr, errNoStatus)
					}
				}
			}
		}(i, tg)
	}
	wg.Wait()
	for _, f := range results {
		if f != nil {
			f()
		}
	}
	// Recipients without a status (none, if all went well) get a
	// temporary failure rather than go-smtp's default success.
	return errNoStatus
}

// Reset ends the transaction on every backend.
func (d *deliverySession) Reset() {
	d.resetTx()
	d.setTx(false)
}

func (d *deliverySession) resetTx() {
	for _, bc := range d.conns {
		bc.reset()
		if bc.broken {
			d.drop(bc.name)
		}
	}
	d.rcpts = nil
	d.primary = ""
	d.hasMail = false
}

// Logout returns healthy backend sessions to the pool and closes the rest.
func (d *deliverySession) Logout() error {
	for name, bc := range d.conns {
		bc.reset()
		if bc.poolKey != "" {
			d.srv.pool.put(bc.poolKey, bc)
		} else {
			bc.close()
		}
		delete(d.conns, name)
	}
	d.logout()
	return nil
}
