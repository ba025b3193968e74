package plan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Proxy defaults. The idle timeout has one per protocol family, used
// when the plan does not set idle_timeout ([Proxy.IdleTimeout] is then 0).
const (
	DefaultHoldLogins     = 30 * time.Second
	DefaultPreAuthTimeout = 60 * time.Second
	// DefaultIdleTimeout is the idle timeout of IMAP, POP3, ManageSieve
	// and HTTP sessions: RFC 9051 5.4's minimum autologout timer.
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultSMTPIdleTimeout is the idle timeout of SMTP, submission and
	// LMTP sessions: RFC 5321 4.5.3.2.7's server timeout.
	DefaultSMTPIdleTimeout = 5 * time.Minute
	DefaultMaxConnections  = 10000
	// DefaultAuthFailureDelay is the least time a failed login takes, as
	// Dovecot's auth_failure_delay.
	DefaultAuthFailureDelay = 2 * time.Second
)

// listenProtocols are the proxy's listen attributes in canonical order;
// the value says whether the listener speaks implicit TLS.
var listenProtocols = []struct {
	name     string
	implicit bool
}{
	{"imap", false}, {"imaps", true},
	{"pop3", false}, {"pop3s", true},
	{"managesieve", false},
	{"submission", false}, {"submissions", true},
	{"smtp", false},
	{"lmtp", false},
	{"http", false}, {"https", true},
}

var proxySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "public_origin"},
		{Name: "hold_logins"},
		{Name: "pre_auth_timeout"},
		{Name: "auth_failure_delay"},
		{Name: "idle_timeout"},
		{Name: "max_connections"},
		{Name: "accept_proxy_protocol"},
		{Name: "proxy_protocol_trusted_networks"},
		{Name: "proxy_protocol_untrusted"},
		{Name: "default_backend"},
		{Name: "domains"},
		{Name: "admin_token_ref"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "listen"}, {Type: "tls"}},
}

var listenSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, p := range listenProtocols {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: p.name})
	}
	return s
}()

var proxyTLSSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "cert", Required: true},
		{Name: "key", Required: true},
	},
}

func (l *loader) decodeProxy(blocks []*hcl.Block) {
	b := l.singleton(blocks, "proxy")
	if b == nil {
		return
	}
	p := &Proxy{
		HoldLogins:       DefaultHoldLogins,
		PreAuthTimeout:   DefaultPreAuthTimeout,
		AuthFailureDelay: DefaultAuthFailureDelay,
		MaxConnections:   DefaultMaxConnections,
		DeclRange:        blockRange(b),
	}
	l.m.Proxy = p
	content, diags := b.Body.Content(proxySchema)
	l.addDiags(diags)

	var listen *hcl.Block
	var tlsBlocks []*hcl.Block
	for _, blk := range content.Blocks {
		if blk.Type == "tls" {
			tlsBlocks = append(tlsBlocks, blk)
			continue
		}
		if listen != nil {
			l.errorf(blk.DefRange, "Duplicate listen block",
				"The proxy already has a listen block at %s; merge the two.", toRange(listen.DefRange))
			continue
		}
		listen = blk
	}
	if listen == nil {
		l.errorf(b.DefRange, "Missing listen block",
			"The proxy block needs a listen block with one address per protocol, for example listen { imap = \":143\" smtp = \":25\" http = \":8080\" }.")
	} else {
		lc, d := listen.Body.Content(listenSchema)
		l.addDiags(d)
		used := map[string]string{}
		for _, lp := range listenProtocols {
			addr, attr, ok := l.attrString(lc.Attributes, lp.name)
			if !ok {
				continue
			}
			if err := checkHostPort(addr, true); err != nil {
				l.errorf(attr.Expr.Range(), "Invalid listen address",
					"The %s listen address %q is not valid: %v. Write [host]:port, for example %s = \"0.0.0.0:%d\" or %s = \":%d\".",
					lp.name, addr, err, lp.name, listenPort(lp.name), lp.name, listenPort(lp.name))
				continue
			}
			if prev, dup := used[normListen(addr)]; dup {
				l.errorf(attr.Expr.Range(), "Duplicate listen address",
					"The %s listener uses %q, which the %s listener already uses. Give each protocol its own port.", lp.name, addr, prev)
				continue
			}
			used[normListen(addr)] = lp.name
			p.Listeners = append(p.Listeners, &Listener{
				Protocol: lp.name, Address: addr, ImplicitTLS: lp.implicit, DeclRange: toRange(attr.Range),
			})
		}
		if len(lc.Attributes) == 0 {
			l.errorf(listen.DefRange, "No listeners",
				"The proxy's listen block names no protocol. Add at least one, for example imap = \":143\".")
		}
	}
	for _, blk := range tlsBlocks {
		tc, d := blk.Body.Content(proxyTLSSchema)
		l.addDiags(d)
		t := &ProxyTLS{DeclRange: blockRange(blk)}
		certOK, keyOK := false, false
		var certAttr, keyAttr *hcl.Attribute
		if s, attr, ok := l.attrString(tc.Attributes, "cert"); ok {
			t.Cert, certAttr, certOK = l.resolvePath(s), attr, true
		}
		if s, attr, ok := l.attrString(tc.Attributes, "key"); ok {
			t.Key, keyAttr, keyOK = l.resolvePath(s), attr, true
		}
		if l.cfg.checkCerts && certOK && keyOK {
			l.checkCertificate(t, certAttr.Expr.Range(), keyAttr.Expr.Range())
		}
		p.TLS = append(p.TLS, t)
	}
	if len(tlsBlocks) == 0 {
		for _, ln := range p.Listeners {
			if ln.ImplicitTLS {
				r := ln.DeclRange
				l.errorf(hcl.Range{Filename: r.Filename, Start: hcl.Pos{Line: r.Line, Column: r.Column}, End: hcl.Pos{Line: r.EndLine, Column: r.EndColumn}},
					"Missing proxy certificate",
					"The %s listener speaks TLS, but the proxy has no tls block. Add tls { cert = \"cert.pem\" key = \"key.pem\" } to the proxy block, or listen with the plain protocol.", ln.Protocol)
				break
			}
		}
	}
	if s, attr, ok := l.attrString(content.Attributes, "public_origin"); ok {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			l.errorf(attr.Expr.Range(), "Invalid public origin",
				"The public_origin %q is not an origin. Write scheme://host[:port] without a path, for example public_origin = \"https://mail.example.org\".", s)
		} else {
			p.PublicOrigin = strings.TrimSuffix(s, "/")
		}
	} else {
		p.PublicOrigin = defaultOrigin(p)
	}
	if d, ok := l.attrDuration(content.Attributes, "hold_logins"); ok {
		p.HoldLogins = d
	}
	if d, ok := l.attrDuration(content.Attributes, "pre_auth_timeout"); ok {
		p.PreAuthTimeout = d
	}
	if d, ok := l.attrDuration(content.Attributes, "auth_failure_delay"); ok {
		p.AuthFailureDelay = d
	}
	if d, ok := l.attrDuration(content.Attributes, "idle_timeout"); ok {
		if d <= 0 {
			l.errorf(content.Attributes["idle_timeout"].Expr.Range(), "Invalid idle timeout",
				"The idle_timeout must be longer than zero. Remove the attribute to keep each protocol's default (30m for IMAP, POP3, ManageSieve and HTTP, 5m for SMTP, submission and LMTP), or write a duration such as idle_timeout = \"10m\".")
		} else {
			p.IdleTimeout = d
		}
	}
	if n, _, ok := l.attrInt(content.Attributes, "max_connections", 1); ok {
		p.MaxConnections = n
	}
	l.decodeProxyProtocol(p, content.Attributes)
	l.decodeProxyRouting(p, content.Attributes)
	if ref, attr, ok := l.attrString(content.Attributes, "admin_token_ref"); ok {
		p.AdminTokenRef = ref
		p.AdminToken, _ = l.resolvePasswordRef(ref, attr.Expr.Range())
	}
}

// decodeProxyRouting decodes default_backend and domains, which
// `mailmig proxy` writes into the route table at start: without them a
// fresh table refuses every login and bounces every inbound message.
func (l *loader) decodeProxyRouting(p *Proxy, attrs hcl.Attributes) {
	if attr := attrs["default_backend"]; attr != nil {
		if name, ok := l.backendRef(attr); ok {
			p.DefaultBackend = name
		}
	}
	list, attr, ok := l.attrStringList(attrs, "domains")
	if !ok {
		return
	}
	seen := map[string]bool{}
	for i, d := range list {
		n := strings.ToLower(strings.TrimSpace(d))
		if n == "" || strings.ContainsAny(n, "@ \t/") || strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".") {
			l.errorf(listElemRange(attr, i), "Invalid domain",
				"The domains entry %q is not a domain name. Write the bare domain the proxy accepts mail for, for example domains = [\"example.org\"].", d)
			continue
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		p.Domains = append(p.Domains, n)
	}
}

// Values of proxy_protocol_untrusted.
const (
	ProxyUntrustedRefuse = "refuse"
	ProxyUntrustedPlain  = "plain"
)

// decodeProxyProtocol decodes accept_proxy_protocol and the sources its
// header is believed from. A header names the client's address, which the
// per-IP limits count and backends log, so it is taken only from the load
// balancers' networks, as HAProxy and Dovecot (haproxy_trusted_networks)
// do; accepting the protocol without them is an error.
func (l *loader) decodeProxyProtocol(p *Proxy, attrs hcl.Attributes) {
	nets, netsAttr, netsOK := l.attrStringList(attrs, "proxy_protocol_trusted_networks")
	for i, s := range nets {
		pfx, err := parseTrustedNetwork(s)
		if err != nil {
			l.errorf(listElemRange(netsAttr, i), "Invalid trusted network",
				"The proxy_protocol_trusted_networks entry %q is not a network: %v. Write an address or a network in CIDR notation, for example \"10.0.0.0/8\", \"2001:db8::/32\" or \"192.0.2.10\".", s, err)
			continue
		}
		if pfx.Bits() == 0 {
			l.warnf(listElemRange(netsAttr, i), "Every address trusted",
				"The proxy_protocol_trusted_networks entry %q trusts every address, so any client can claim any address in a PROXY header (and so escape the per-address limits and put false addresses in the backends' logs). List the load balancers' addresses instead.", s)
		}
		p.ProxyProtocolTrustedNetworks = append(p.ProxyProtocolTrustedNetworks, pfx)
	}
	p.ProxyProtocolUntrusted = ProxyUntrustedRefuse
	untrusted, untrustedAttr, untrustedOK := l.attrString(attrs, "proxy_protocol_untrusted")
	if untrustedOK {
		switch untrusted {
		case ProxyUntrustedRefuse, ProxyUntrustedPlain:
			p.ProxyProtocolUntrusted = untrusted
		default:
			l.errorf(untrustedAttr.Expr.Range(), "Invalid handling of untrusted sources",
				"The proxy_protocol_untrusted value %q is not known. Use \"refuse\" (close connections from outside the trusted networks) or \"plain\" (serve them as direct clients, without reading a header).", untrusted)
		}
	}
	v, acceptAttr, ok := l.attrBool(attrs, "accept_proxy_protocol")
	if ok {
		p.AcceptProxyProtocol = v
	}
	switch {
	case p.AcceptProxyProtocol && netsAttr == nil:
		l.errorf(acceptAttr.Expr.Range(), "Missing trusted networks",
			"The proxy accepts the PROXY protocol but trusts no load balancer: a header from anyone could claim any client address. Add proxy_protocol_trusted_networks with the load balancers' addresses, for example proxy_protocol_trusted_networks = [\"10.0.0.0/8\"].")
	case p.AcceptProxyProtocol && netsOK && len(nets) == 0:
		l.errorf(netsAttr.Expr.Range(), "Missing trusted networks",
			"The proxy accepts the PROXY protocol but proxy_protocol_trusted_networks is empty. List the load balancers' addresses, for example proxy_protocol_trusted_networks = [\"10.0.0.0/8\"].")
	case !p.AcceptProxyProtocol && (netsAttr != nil || untrustedAttr != nil):
		rng := netsAttr
		if rng == nil {
			rng = untrustedAttr
		}
		l.warnf(rng.NameRange, "Unused PROXY protocol setting",
			"The proxy does not accept the PROXY protocol, so this setting has no effect. Set accept_proxy_protocol = true when a load balancer sends the header, or remove the setting.")
	}
}

// parseTrustedNetwork parses an address ("192.0.2.10", a network of one)
// or a network in CIDR notation whose host bits are zero.
func parseTrustedNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not in CIDR notation")
		}
		if pfx.Addr().Is4In6() {
			return netip.Prefix{}, errors.New("an IPv4-mapped IPv6 network; write the IPv4 network")
		}
		if m := pfx.Masked(); m != pfx {
			return netip.Prefix{}, fmt.Errorf("host bits are set; the network is %s", m)
		}
		return pfx, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address")
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("an address with a zone")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// listElemRange is the range of element i of a list attribute written as
// a list, else of the whole expression.
func listElemRange(attr *hcl.Attribute, i int) hcl.Range {
	if t, ok := attr.Expr.(*hclsyntax.TupleConsExpr); ok && i < len(t.Exprs) {
		return t.Exprs[i].Range()
	}
	return attr.Expr.Range()
}

// defaultOrigin derives the public origin from the https or http
// listener; an unspecified host becomes localhost.
func defaultOrigin(p *Proxy) string {
	for _, name := range []string{"https", "http"} {
		ln := p.Listener(name)
		if ln == nil {
			continue
		}
		host, port, err := net.SplitHostPort(ln.Address)
		if err != nil {
			return ""
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		if (name == "https" && port == "443") || (name == "http" && port == "80") {
			return name + "://" + host
		}
		return name + "://" + net.JoinHostPort(host, port)
	}
	return ""
}

func normListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "0.0.0.0" || host == "::" {
		host = ""
	}
	return host + ":" + port
}

func listenPort(name string) int {
	switch name {
	case "imap":
		return 143
	case "imaps":
		return 993
	case "pop3":
		return 110
	case "pop3s":
		return 995
	case "managesieve":
		return 4190
	case "submission":
		return 587
	case "submissions":
		return 465
	case "smtp":
		return 25
	case "lmtp":
		return 24
	case "http":
		return 80
	}
	return 443
}
