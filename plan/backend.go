package plan

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// netProtocols are the endpoint blocks with an address.
var netProtocols = []Protocol{ProtoIMAP, ProtoPOP3, ProtoManageSieve, ProtoSMTP, ProtoSubmission, ProtoLMTP}

// httpProtocols are the endpoint blocks with a URL.
var httpProtocols = []Protocol{ProtoJMAP, ProtoCalDAV, ProtoCardDAV, ProtoWebDAV}

func isIn(p Protocol, list []Protocol) bool {
	for _, q := range list {
		if p == q {
			return true
		}
	}
	return false
}

var backendSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "login"},
			{Name: "proxy_protocol"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "master"}, {Type: "limits"}, {Type: "timeouts"}},
	}
	for _, p := range Protocols {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: string(p)})
	}
	return s
}()

var netEndpointSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "address", Required: true},
		{Name: "tls"},
		{Name: "ca_file"},
		{Name: "insecure_skip_verify"},
		{Name: "server_name"},
		{Name: "proxy_protocol"},
	},
}

var httpEndpointSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "url", Required: true},
		{Name: "ca_file"},
		{Name: "insecure_skip_verify"},
		{Name: "server_name"},
	},
}

var pathEndpointSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "path", Required: true}},
}

var exchangeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "api"},
		{Name: "url"},
		{Name: "tenant"},
		{Name: "client_id"},
		{Name: "client_secret"},
		{Name: "authority"},
		{Name: "app_rate"},
		{Name: "auth"},
		{Name: "ca_file"},
		{Name: "insecure_skip_verify"},
	},
}

var masterSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "user", Required: true},
		{Name: "password", Required: true},
	},
}

var limitsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "connections"},
		{Name: "messages_per_second"},
		{Name: "bytes_per_second"},
		{Name: "breaker_failures"},
	},
}

var timeoutsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "connect"},
		{Name: "tls_handshake"},
		{Name: "response_header"},
		{Name: "idle"},
	},
}

// DefaultConnections is a backend's default limits.connections.
const DefaultConnections = 8

func (l *loader) backendNames() []string { return sortedKeys(l.backendByName) }

func (l *loader) decodeBackend(b *hcl.Block) {
	name := b.Labels[0]
	if !hclsyntax.ValidIdentifier(name) {
		l.errorf(labelRange(b), "Invalid backend name",
			"The backend name %q is not valid: use letters, digits, underscores and dashes, starting with a letter, so that it can be referenced as backend.<name>.", name)
		return
	}
	if prev := l.backendByName[name]; prev != nil {
		l.errorf(labelRange(b), "Duplicate backend",
			"A backend named %q was already declared at %s. Backend names must be unique; rename or remove one of them.", name, prev.DeclRange)
		return
	}
	be := &Backend{
		Name:      name,
		Login:     LoginPassthrough,
		Limits:    Limits{Connections: DefaultConnections, BreakerFailures: DefaultBreakerFailures},
		Timeouts:  DefaultTimeouts(),
		DeclRange: blockRange(b),
	}
	l.backendByName[name] = be
	l.m.Backends = append(l.m.Backends, be)

	content, diags := b.Body.Content(backendSchema)
	l.addDiags(diags)
	bodyOK := !diags.HasErrors()

	defaultPP := ProxyProtocolNone
	if pp, ok := l.proxyProtocolAttr(content.Attributes); ok {
		defaultPP = pp
	}

	seen := map[string]*hcl.Block{}
	for _, blk := range content.Blocks {
		if first := seen[blk.Type]; first != nil {
			l.errorf(blk.DefRange, "Duplicate "+blk.Type+" block",
				"The backend %q already declares %s at %s. A backend has at most one block of each kind; merge them.",
				name, blk.Type, toRange(first.DefRange))
			continue
		}
		seen[blk.Type] = blk
	}
	for _, p := range Protocols {
		blk := seen[string(p)]
		if blk == nil {
			continue
		}
		if e := l.decodeEndpoint(p, blk, defaultPP); e != nil {
			be.Endpoints = append(be.Endpoints, e)
			switch p {
			case ProtoMaildir:
				be.Maildir = &Maildir{Path: e.Path, DeclRange: e.DeclRange}
			case ProtoTakeout:
				be.Takeout = &Takeout{Path: e.Path, DeclRange: e.DeclRange}
			case ProtoExchange:
				be.Exchange = l.decodeExchange(blk, e)
			}
		}
	}
	if len(be.Endpoints) == 0 && !hasEndpointBlock(seen) && bodyOK {
		l.errorf(labelRange(b), "Backend without endpoints",
			"The backend %q declares no endpoint. Add at least one block such as imap { address = \"host:993\" tls = \"implicit\" } or jmap { url = \"https://host/.well-known/jmap\" }.", name)
	}

	if blk := seen["master"]; blk != nil {
		be.Master = l.decodeMaster(blk)
	}
	if blk := seen["limits"]; blk != nil {
		l.decodeLimits(blk, &be.Limits)
	}
	if blk := seen["timeouts"]; blk != nil {
		l.decodeTimeouts(blk, &be.Timeouts)
	}
	if s, attr, ok := l.attrString(content.Attributes, "login"); ok {
		switch LoginMode(s) {
		case LoginPassthrough, LoginMaster:
			be.Login = LoginMode(s)
		default:
			l.errorf(attr.Expr.Range(), "Invalid login mode",
				"The login mode %q is not known. Use login = \"passthrough\" (replay each user's own credentials) or login = \"master\" (log in with the master block's credentials).", s)
		}
		if be.Login == LoginMaster && seen["master"] == nil {
			l.errorf(attr.Expr.Range(), "Missing master credentials",
				"The backend %q uses login = \"master\" but has no master block. Add master { user = \"...\" password = env(\"...\") } to the backend, or use login = \"passthrough\".", name)
		}
	}
	if be.Login != LoginMaster && seen["master"] != nil {
		l.warnf(seen["master"].DefRange, "Unused master credentials",
			"The backend %q has a master block but logs in with passthrough, so the master credentials are never used. Set login = \"master\" or remove the master block.", name)
	}
}

func hasEndpointBlock(seen map[string]*hcl.Block) bool {
	for _, p := range Protocols {
		if seen[string(p)] != nil {
			return true
		}
	}
	return false
}

func (l *loader) proxyProtocolAttr(attrs hcl.Attributes) (ProxyProtocol, bool) {
	s, attr, ok := l.attrString(attrs, "proxy_protocol")
	if !ok {
		return ProxyProtocolNone, false
	}
	switch s {
	case "none", "":
		return ProxyProtocolNone, true
	case "v1", "v2":
		return ProxyProtocol(s), true
	}
	l.errorf(attr.Expr.Range(), "Invalid PROXY protocol version",
		"The proxy_protocol value %q is not known. Use \"v2\" (binary, preferred), \"v1\" (text) or \"none\".", s)
	return ProxyProtocolNone, false
}

func (l *loader) decodeEndpoint(p Protocol, blk *hcl.Block, defaultPP ProxyProtocol) *Endpoint {
	e := &Endpoint{Protocol: p, DeclRange: blockRange(blk)}
	if isIn(p, netProtocols) {
		// PROXY protocol is spoken on mail protocol connections only.
		e.ProxyProtocol = defaultPP
	}
	switch {
	case isIn(p, netProtocols):
		content, diags := blk.Body.Content(netEndpointSchema)
		l.addDiags(diags)
		if addr, attr, ok := l.attrString(content.Attributes, "address"); ok {
			if err := checkHostPort(addr, false); err != nil {
				l.errorf(attr.Expr.Range(), "Invalid address",
					"The %s address %s is not valid: %v. Write host:port, for example address = \"mail.example.org:%d\".", p, shortQuote(addr), err, defaultPort(p))
			}
			e.Address = addr
		}
		e.TLS = TLSStartTLS
		if p == ProtoLMTP {
			e.TLS = TLSNone
		}
		if s, attr, ok := l.attrString(content.Attributes, "tls"); ok {
			switch TLSMode(s) {
			case TLSImplicit, TLSStartTLS, TLSNone:
				e.TLS = TLSMode(s)
			default:
				l.errorf(attr.Expr.Range(), "Invalid TLS mode",
					"The TLS mode %q is not known. Use \"implicit\" (TLS from the first byte, as on port 993), \"starttls\" (upgrade a plain connection, as on port 143) or \"none\" (plain text, for loopback only).", s)
			}
		}
		if pp, ok := l.proxyProtocolAttr(content.Attributes); ok {
			e.ProxyProtocol = pp
		}
		l.decodeTLSOptions(content.Attributes, e)
		if e.TLS == TLSNone && (e.CAFile != "" || e.InsecureSkipVerify) {
			l.warnf(blk.DefRange, "TLS options without TLS",
				"The %s endpoint sets ca_file or insecure_skip_verify but tls = \"none\", so they have no effect. Remove them or choose tls = \"implicit\" or \"starttls\".", p)
		}
	case isIn(p, httpProtocols):
		content, diags := blk.Body.Content(httpEndpointSchema)
		l.addDiags(diags)
		if u, attr, ok := l.attrString(content.Attributes, "url"); ok {
			if err := checkHTTPURL(u); err != nil {
				l.errorf(attr.Expr.Range(), "Invalid URL",
					"The %s URL %s is not valid: %v. Write an absolute http or https URL, for example url = \"https://mail.example.org/%s\".", p, shortQuote(u), err, exampleURLPath(p))
			}
			e.URL = u
			e.TLS = TLSNone
			if strings.HasPrefix(strings.ToLower(u), "https:") {
				e.TLS = TLSImplicit
			}
		}
		l.decodeTLSOptions(content.Attributes, e)
	case p == ProtoMaildir || p == ProtoTakeout:
		content, diags := blk.Body.Content(pathEndpointSchema)
		l.addDiags(diags)
		if s, attr, ok := l.attrString(content.Attributes, "path"); ok {
			if strings.TrimSpace(s) == "" {
				l.errorf(attr.Expr.Range(), "Empty path", "The %s path must name a directory, for example path = \"/var/vmail/%%d/%%n/Maildir\".", p)
			}
			e.Path = l.resolvePath(s)
		}
	case p == ProtoExchange:
		// Decoded in decodeExchange; the Endpoint carries URL and TLS.
	}
	return e
}

func (l *loader) decodeTLSOptions(attrs hcl.Attributes, e *Endpoint) {
	if s, _, ok := l.attrString(attrs, "ca_file"); ok {
		e.CAFile = l.resolvePath(s)
	}
	if b, _, ok := l.attrBool(attrs, "insecure_skip_verify"); ok {
		e.InsecureSkipVerify = b
	}
	if s, _, ok := l.attrString(attrs, "server_name"); ok {
		e.ServerName = s
	}
}

func (l *loader) decodeExchange(blk *hcl.Block, e *Endpoint) *Exchange {
	content, diags := blk.Body.Content(exchangeSchema)
	l.addDiags(diags)
	x := &Exchange{API: "graph", URL: "https://graph.microsoft.com/v1.0", DeclRange: e.DeclRange}
	apiOK := true
	if s, attr, ok := l.attrString(content.Attributes, "api"); ok {
		switch s {
		case "graph", "ews":
			x.API = s
		default:
			apiOK = false
			l.errorf(attr.Expr.Range(), "Invalid Exchange API",
				"The Exchange api %q is not known. Use \"graph\" for Microsoft 365 or \"ews\" for an on-premises Exchange server.", s)
		}
	}
	if x.API == "ews" {
		x.URL = ""
	}
	if u, attr, ok := l.attrString(content.Attributes, "url"); ok {
		if err := checkHTTPURL(u); err != nil {
			l.errorf(attr.Expr.Range(), "Invalid URL",
				"The Exchange URL %s is not valid: %v. Write an absolute https URL, for example url = \"https://exchange.example.org/EWS/Exchange.asmx\".", shortQuote(u), err)
		}
		x.URL = u
	} else if x.API == "ews" {
		l.errorf(blk.Body.MissingItemRange(), "Missing EWS URL",
			"An Exchange block with api = \"ews\" needs url = \"https://<server>/EWS/Exchange.asmx\".")
	}
	if s, _, ok := l.attrString(content.Attributes, "tenant"); ok {
		x.Tenant = s
	}
	if u, attr, ok := l.attrString(content.Attributes, "authority"); ok {
		if err := checkHTTPURL(u); err != nil {
			l.errorf(attr.Expr.Range(), "Invalid URL",
				"The Exchange authority %s is not valid: %v. Write an absolute https URL, for example authority = \"https://login.microsoftonline.us\".", shortQuote(u), err)
		}
		x.Authority = u
	}
	if s, _, ok := l.attrString(content.Attributes, "client_id"); ok {
		x.ClientID = s
	}
	if s, attr, ok := l.attrString(content.Attributes, "auth"); ok {
		switch s {
		case "basic", "ntlm":
			x.Auth = s
		default:
			l.errorf(attr.Expr.Range(), "Invalid EWS authentication",
				"The Exchange auth %q is not known. Use \"ntlm\" or \"basic\" to force one, or leave it out to use what the server offers (NTLM first).", s)
		}
	}
	if f, attr, ok := l.attrNumber(content.Attributes, "app_rate"); ok {
		if v, _ := f.Float64(); v < 0 {
			l.errorf(attr.Expr.Range(), "Number out of range", "app_rate (requests per second shared by the app's mailboxes) must not be negative; leave it out for the default.")
		} else {
			x.AppRate = v
		}
	}
	if s, _, ok := l.attrSecret(content.Attributes, "client_secret"); ok {
		x.ClientSecret = s
	}
	if x.API == "graph" && apiOK {
		var missing []string
		for _, req := range []string{"tenant", "client_id", "client_secret"} {
			if content.Attributes[req] == nil {
				missing = append(missing, req)
			}
		}
		if len(missing) > 0 {
			l.errorf(blk.Body.MissingItemRange(), "Missing Exchange credentials",
				"An Exchange block with api = \"graph\" needs tenant, client_id and client_secret (an app registration with Mail.Read, Calendars.Read and Contacts.Read application permissions); missing: %s.", strings.Join(missing, ", "))
		}
	}
	e.URL = x.URL
	e.TLS = TLSImplicit
	l.decodeTLSOptions(content.Attributes, e)
	return x
}

func (l *loader) decodeMaster(blk *hcl.Block) *Master {
	content, diags := blk.Body.Content(masterSchema)
	l.addDiags(diags)
	m := &Master{DeclRange: blockRange(blk)}
	if s, attr, ok := l.attrString(content.Attributes, "user"); ok {
		if strings.TrimSpace(s) == "" {
			l.errorf(attr.Expr.Range(), "Empty master user", "The master user must not be empty; write the name of the master (admin) user, for example user = \"admin\".")
		}
		m.User = s
	}
	if s, attr, ok := l.attrSecret(content.Attributes, "password"); ok {
		m.Password = s
		m.PasswordRef = l.secretExprText(attr.Expr)
	}
	return m
}

// secretExprText is the source text of an expression that names a secret
// without holding it (a function call such as env("PW") or a reference
// such as var.master_pw), or "" for anything else: a literal would be the
// secret itself.
func (l *loader) secretExprText(expr hcl.Expression) string {
	switch expr.(type) {
	case *hclsyntax.FunctionCallExpr, *hclsyntax.ScopeTraversalExpr:
	default:
		return ""
	}
	r := expr.Range()
	src, ok := l.m.Sources[r.Filename]
	if !ok || r.End.Byte > len(src) || r.Start.Byte >= r.End.Byte {
		return ""
	}
	return string(r.SliceBytes(src))
}

func (l *loader) decodeLimits(blk *hcl.Block, lim *Limits) {
	content, diags := blk.Body.Content(limitsSchema)
	l.addDiags(diags)
	lim.DeclRange = blockRange(blk)
	if n, _, ok := l.attrInt(content.Attributes, "connections", 1); ok {
		lim.Connections = n
	}
	if f, attr, ok := l.attrNumber(content.Attributes, "messages_per_second"); ok {
		v, _ := f.Float64()
		if v < 0 {
			l.errorf(attr.Expr.Range(), "Number out of range", "messages_per_second must not be negative; use 0 for no limit.")
		} else {
			lim.MessagesPerSecond = v
		}
	}
	if n, ok := l.attrBytes(content.Attributes, "bytes_per_second", true); ok {
		lim.BytesPerSecond = n
	}
	if n, _, ok := l.attrInt(content.Attributes, "breaker_failures", 0); ok {
		lim.BreakerFailures = n
	}
}

func (l *loader) decodeTimeouts(blk *hcl.Block, t *Timeouts) {
	content, diags := blk.Body.Content(timeoutsSchema)
	l.addDiags(diags)
	t.DeclRange = blockRange(blk)
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"connect", &t.Connect}, {"tls_handshake", &t.TLSHandshake}, {"response_header", &t.ResponseHeader}, {"idle", &t.Idle}} {
		d, ok := l.attrDuration(content.Attributes, f.name)
		if !ok {
			continue
		}
		if d <= 0 {
			l.errorf(content.Attributes[f.name].Expr.Range(), "Invalid timeout",
				"The %s timeout must be longer than zero: a step without a bound is what a hung server exploits. Write for example %s = \"30s\", or remove it for the default.", f.name, f.name)
			continue
		}
		*f.d = d
	}
}

// checkHostPort checks a host:port address; an empty host is allowed when
// emptyHost is true (listen addresses).
func checkHostPort(addr string, emptyHost bool) error {
	if len(addr) > maxHostLen+len("[]:65535") {
		// Do not hand SplitHostPort megabytes, nor quote them back.
		return fmt.Errorf("it is %d bytes long; a host name has at most %d (RFC 1035)", len(addr), maxHostLen)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if ae, ok := err.(*net.AddrError); ok {
			return fmt.Errorf("%s", ae.Err)
		}
		return err
	}
	if host == "" && !emptyHost {
		return fmt.Errorf("the host is missing")
	}
	if host != "" {
		if err := checkHost(host); err != nil {
			return err
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !emptyHost) {
		return fmt.Errorf("the port %q is not a number between 1 and 65535", port)
	}
	return nil
}

// RFC 1035 2.3.4: a host name has at most 253 octets in text form (255 on
// the wire) and each label at most 63.
const (
	maxHostLen  = 253
	maxLabelLen = 63
	// maxURLLen bounds an endpoint URL; browsers and servers commonly
	// refuse longer ones.
	maxURLLen = 2048
)

// checkHost checks a host name or IP address (IPv6 without brackets, with
// an optional %zone).
func checkHost(host string) error {
	if len(host) > maxHostLen {
		return fmt.Errorf("the host name is %d bytes long; a host name has at most %d (RFC 1035)", len(host), maxHostLen)
	}
	if strings.Contains(host, ":") {
		ip, _, _ := strings.Cut(host, "%")
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("the host %q is not a valid IPv6 address", host)
		}
		return nil
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, r := range host {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("/\\@,;<>\"'[]{}()%?#*|^`=+!$&~", r) {
			return fmt.Errorf("the host %q contains a character not allowed in a host name", host)
		}
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" {
			return fmt.Errorf("the host %q has an empty label (two dots in a row, or a leading dot)", host)
		}
		if len(label) > maxLabelLen {
			return fmt.Errorf("the host %q has a label of %d bytes; a label has at most %d (RFC 1035)", host, len(label), maxLabelLen)
		}
	}
	return nil
}

func checkHTTPURL(s string) error {
	if len(s) > maxURLLen {
		return fmt.Errorf("it is %d bytes long; write a URL of at most %d", len(s), maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			return ue.Err
		}
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("the scheme must be http or https")
	}
	if u.Host == "" {
		return fmt.Errorf("the host is missing")
	}
	return checkHost(u.Hostname())
}

// shortQuote quotes s for a diagnostic, cut to 128 bytes: a value of
// megabytes (a file read by mistake) must not become a diagnostic of
// megabytes.
func shortQuote(s string) string {
	const max = 128
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

func defaultPort(p Protocol) int {
	switch p {
	case ProtoIMAP:
		return 993
	case ProtoPOP3:
		return 995
	case ProtoManageSieve:
		return 4190
	case ProtoSMTP:
		return 25
	case ProtoSubmission:
		return 587
	case ProtoLMTP:
		return 24
	}
	return 443
}

func exampleURLPath(p Protocol) string {
	switch p {
	case ProtoJMAP:
		return ".well-known/jmap"
	case ProtoCalDAV:
		return "dav/calendars/"
	case ProtoCardDAV:
		return "dav/addressbooks/"
	}
	return "dav/files/"
}
