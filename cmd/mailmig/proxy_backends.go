package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy"
)

// proxyBackends converts the plan's backends into the proxy's.
func proxyBackends(m *plan.Migration) ([]*proxy.Backend, error) {
	var out []*proxy.Backend
	for _, pb := range m.Backends {
		b := &proxy.Backend{Name: pb.Name, Endpoints: map[proxy.Protocol]proxy.Endpoint{}, Login: proxy.LoginPassthrough}
		if pb.Login == plan.LoginMaster {
			b.Login = proxy.LoginMaster
		}
		if pb.Master != nil {
			b.MasterUser, b.MasterPassword = pb.Master.User, pb.Master.Password.Reveal()
		}
		for _, e := range pb.Endpoints {
			ep := proxy.Endpoint{Address: e.Address, TLS: proxy.TLSMode(e.TLS),
				// The backend's timeouts block: its response_header is
				// the wait for a greeting.
				Timeouts: proxy.Timeouts{Connect: pb.Timeouts.Connect, TLS: pb.Timeouts.TLSHandshake, Greeting: pb.Timeouts.ResponseHeader}}
			if ep.TLS == "" {
				ep.TLS = proxy.TLSNone
			}
			// tls = "none" in the plan is the explicit permission to send
			// credentials in plain text to this endpoint.
			ep.AllowPlaintext = ep.TLS == proxy.TLSNone
			if e.ProxyProtocol != plan.ProxyProtocolNone {
				ep.ProxyProtocol = true
				ep.ProxyProtocolVersion = 2
				if e.ProxyProtocol == plan.ProxyProtocolV1 {
					ep.ProxyProtocolVersion = 1
				}
			}
			if ep.TLS != proxy.TLSNone || strings.HasPrefix(e.URL, "https:") {
				tc, err := endpointTLS(e)
				if err != nil {
					return nil, fmt.Errorf("backend %s %s: %w", pb.Name, e.Protocol, err)
				}
				ep.TLSConfig = tc
			}
			switch e.Protocol {
			case plan.ProtoIMAP:
				ep.ForwardID = !ep.ProxyProtocol
				b.Endpoints[proxy.IMAP] = ep
			case plan.ProtoPOP3:
				ep.XCLIENT = !ep.ProxyProtocol
				b.Endpoints[proxy.POP3] = ep
			case plan.ProtoManageSieve:
				ep.XCLIENT = !ep.ProxyProtocol
				b.Endpoints[proxy.ManageSieve] = ep
			case plan.ProtoSubmission:
				ep.XCLIENT = true
				b.Endpoints[proxy.Submission] = ep
			case plan.ProtoSMTP:
				ep.XCLIENT = true
				b.Endpoints[proxy.SMTP] = ep
			case plan.ProtoLMTP:
				b.Endpoints[proxy.LMTP] = ep
			case plan.ProtoJMAP, plan.ProtoCalDAV, plan.ProtoCardDAV, plan.ProtoWebDAV:
				// One HTTP origin per backend: the first of jmap, caldav,
				// carddav, webdav (canonical order) wins.
				if _, ok := b.Endpoints[proxy.HTTP]; ok {
					continue
				}
				u, err := url.Parse(e.URL)
				if err != nil || u.Host == "" {
					return nil, fmt.Errorf("backend %s %s: bad url %q", pb.Name, e.Protocol, e.URL)
				}
				ep.URL = u.Scheme + "://" + u.Host + "/"
				ep.AllowPlaintext = u.Scheme == "http"
				b.Endpoints[proxy.HTTP] = ep
			}
		}
		out = append(out, b)
	}
	return out, nil
}

func endpointTLS(e *plan.Endpoint) (*tls.Config, error) {
	host := e.ServerName
	if host == "" {
		if e.Address != "" {
			host, _, _ = net.SplitHostPort(e.Address)
		} else if u, err := url.Parse(e.URL); err == nil {
			host = u.Hostname()
		}
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: e.InsecureSkipVerify}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s holds no PEM certificate", e.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
