package httpproxy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits of the token parser: a bearer token or a JWT claim set larger
// than this is not parsed (the backend still judges the token).
const (
	maxTokenSize     = 16 << 10
	maxIdentifier    = 320 // RFC 5321 local part + domain, generously
	maxIntrospection = 64 << 10
)

// DefaultJWTClaims are the JWT claims that name the account, in order.
var DefaultJWTClaims = []string{"email", "preferred_username", "upn", "sub"}

// TokenKind says how a bearer token named its account.
type TokenKind string

// Token kinds.
const (
	// TokenStalwart is a Stalwart "sw1." token: the account is the
	// base64url text of its last dot segment.
	TokenStalwart TokenKind = "sw1"
	// TokenJWT is a JWT: the account is the first usable claim. The
	// signature is not checked: the backend authenticates the request,
	// the proxy only routes it.
	TokenJWT TokenKind = "jwt"
	// TokenOpaque is anything else: it needs introspection.
	TokenOpaque TokenKind = "opaque"
)

// BearerIdentity extracts the account a bearer token names without asking
// anyone: Stalwart sw1 tokens and JWTs (by claims, in order; a value with
// "@" wins over a bare login). It returns TokenOpaque and "" for tokens it
// cannot read.
func BearerIdentity(token string, claims []string) (string, TokenKind) {
	if len(token) > maxTokenSize {
		return "", TokenOpaque
	}
	if rest, ok := strings.CutPrefix(token, "sw1."); ok {
		i := strings.LastIndexByte(rest, '.')
		if i < 0 {
			return "", TokenOpaque
		}
		id, ok := decodeIdentifier(rest[i+1:])
		if !ok {
			return "", TokenOpaque
		}
		return id, TokenStalwart
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", TokenOpaque
	}
	payload, err := b64url(parts[1])
	if err != nil {
		return "", TokenOpaque
	}
	var set map[string]any
	if err := json.Unmarshal(payload, &set); err != nil {
		return "", TokenOpaque
	}
	if len(claims) == 0 {
		claims = DefaultJWTClaims
	}
	fallback := ""
	for _, c := range claims {
		v, _ := set[c].(string)
		if !validIdentifier(v) {
			continue
		}
		if strings.Contains(v, "@") {
			return v, TokenJWT
		}
		if fallback == "" {
			fallback = v
		}
	}
	if fallback != "" {
		return fallback, TokenJWT
	}
	return "", TokenOpaque
}

// b64url decodes base64url with or without padding.
func b64url(s string) ([]byte, error) {
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

func decodeIdentifier(seg string) (string, bool) {
	b, err := b64url(seg)
	if err != nil {
		return "", false
	}
	s := string(b)
	return s, validIdentifier(s)
}

// validIdentifier accepts what may be looked up as an account: non-empty
// UTF-8 without controls, spaces or quotes, of bounded length.
func validIdentifier(s string) bool {
	if s == "" || len(s) > maxIdentifier || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' || r == '"' {
			return false
		}
	}
	return true
}

// Introspection is an RFC 7662 token introspection endpoint, asked for
// opaque bearer tokens.
type Introspection struct {
	// URL of the introspection endpoint.
	URL string
	// ClientID and ClientSecret authenticate the proxy at the endpoint
	// (HTTP Basic, RFC 7662 2.1). Empty: no client authentication.
	ClientID, ClientSecret string
}

// introspector asks the endpoints in order and caches answers until the
// token expires (at most maxTTL); tokens nobody knows are remembered as
// unknown for negTTL.
type introspector struct {
	endpoints []Introspection
	client    *http.Client
	maxTTL    time.Duration
	negTTL    time.Duration
	now       func() time.Time

	mu    sync.Mutex
	cache map[string]cached // sha256(token) → answer
}

type cached struct {
	id      string
	expires time.Time
}

const maxCacheEntries = 100000

var errNoIntrospection = errors.New("token is not active at any introspection endpoint")

func (in *introspector) lookup(ctx context.Context, token string) (string, error) {
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	now := in.now()
	in.mu.Lock()
	if c, ok := in.cache[key]; ok && now.Before(c.expires) {
		in.mu.Unlock()
		if c.id == "" {
			return "", errNoIntrospection
		}
		return c.id, nil
	}
	in.mu.Unlock()

	var lastErr error
	id, exp := "", time.Time{}
	for _, ep := range in.endpoints {
		i, e, err := in.ask(ctx, ep, token)
		if err != nil {
			lastErr = err
			continue
		}
		if i != "" {
			id, exp = i, e
			break
		}
	}
	if id == "" && lastErr != nil {
		return "", lastErr // not cached: the endpoint may recover
	}
	until := now.Add(in.negTTL)
	if id != "" {
		until = now.Add(in.maxTTL)
		if !exp.IsZero() && exp.Before(until) {
			until = exp
		}
	}
	in.mu.Lock()
	if len(in.cache) >= maxCacheEntries {
		for k, c := range in.cache {
			if !now.Before(c.expires) {
				delete(in.cache, k)
			}
		}
		if len(in.cache) >= maxCacheEntries {
			in.cache = make(map[string]cached)
		}
	}
	in.cache[key] = cached{id: id, expires: until}
	in.mu.Unlock()
	if id == "" {
		return "", errNoIntrospection
	}
	return id, nil
}

// ask posts the token to one endpoint (RFC 7662 2.1) and returns the
// account of an active token ("" when inactive) and its expiry.
func (in *introspector) ask(ctx context.Context, ep Introspection, token string) (string, time.Time, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if ep.ClientID != "" {
		req.SetBasicAuth(url.QueryEscape(ep.ClientID), url.QueryEscape(ep.ClientSecret))
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("introspection: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", time.Time{}, fmt.Errorf("introspection: status %s", resp.Status)
	}
	var body struct {
		Active   bool    `json:"active"`
		Username string  `json:"username"`
		Email    string  `json:"email"`
		Sub      string  `json:"sub"`
		Exp      float64 `json:"exp"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxIntrospection)).Decode(&body); err != nil {
		return "", time.Time{}, fmt.Errorf("introspection answer: %w", err)
	}
	if !body.Active {
		return "", time.Time{}, nil
	}
	var exp time.Time
	if body.Exp > 0 {
		exp = time.Unix(int64(body.Exp), 0)
	}
	for _, v := range []string{body.Username, body.Email, body.Sub} {
		if validIdentifier(v) {
			return v, exp, nil
		}
	}
	return "", time.Time{}, nil
}
