package wire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SASL mechanism names.
const (
	MechPlain       = "PLAIN"
	MechLogin       = "LOGIN"
	MechXOAuth2     = "XOAUTH2"
	MechOAuthBearer = "OAUTHBEARER"
)

// ErrSASL is a malformed SASL message.
var ErrSASL = errors.New("malformed SASL message")

// ErrCancelled means the client cancelled an exchange with "*".
var ErrCancelled = errors.New("authentication cancelled")

// Credentials are what a client presented to log in.
type Credentials struct {
	// Mechanism is the SASL mechanism (LOGIN for IMAP LOGIN, USER/PASS and
	// AUTH LOGIN).
	Mechanism string
	// Authzid is the authorization identity (PLAIN, OAUTHBEARER "a=");
	// empty when the client acts as itself.
	Authzid string
	// Authcid is the authentication identity (the login name).
	Authcid string
	// Password is the password for PLAIN and LOGIN.
	Password string
	// Raw is the client's decoded SASL response for token mechanisms;
	// it is relayed to the backend unchanged.
	Raw []byte
}

// Identity returns the identifier used for routing: the authzid when set,
// else the authcid.
func (c *Credentials) Identity() string {
	if c.Authzid != "" {
		return c.Authzid
	}
	return c.Authcid
}

// Token reports whether the credentials are a bearer token (XOAUTH2,
// OAUTHBEARER), which only the backend can check.
func (c *Credentials) Token() bool {
	return c.Mechanism == MechXOAuth2 || c.Mechanism == MechOAuthBearer
}

// String never shows secrets.
func (c *Credentials) String() string {
	return fmt.Sprintf("%s authzid=%q authcid=%q", c.Mechanism, c.Authzid, c.Authcid)
}

// DecodePlain parses a PLAIN message (RFC 4616): authzid NUL authcid NUL
// password.
func DecodePlain(b []byte) (*Credentials, error) {
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, fmt.Errorf("%w: PLAIN needs authzid NUL authcid NUL password", ErrSASL)
	}
	return &Credentials{Mechanism: MechPlain, Authzid: string(parts[0]), Authcid: string(parts[1]), Password: string(parts[2])}, nil
}

// EncodePlain builds a PLAIN message.
func EncodePlain(authzid, authcid, password string) []byte {
	return []byte(authzid + "\x00" + authcid + "\x00" + password)
}

// DecodeXOAuth2 parses Google's XOAUTH2 message:
// "user=" user ^A "auth=Bearer " token ^A ^A.
func DecodeXOAuth2(b []byte) (*Credentials, error) {
	c := &Credentials{Mechanism: MechXOAuth2, Raw: b}
	var token bool
	for _, kv := range strings.Split(string(b), "\x01") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "user":
			c.Authcid = v
		case "auth":
			token = strings.HasPrefix(strings.ToLower(v), "bearer ")
		}
	}
	if c.Authcid == "" || !token {
		return nil, fmt.Errorf("%w: XOAUTH2 needs user= and auth=Bearer", ErrSASL)
	}
	return c, nil
}

// EncodeXOAuth2 builds an XOAUTH2 message.
func EncodeXOAuth2(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// DecodeOAuthBearer parses an OAUTHBEARER message (RFC 7628):
// gs2-header ^A *(key "=" value ^A) ^A, with the user in the gs2 "a=".
func DecodeOAuthBearer(b []byte) (*Credentials, error) {
	c := &Credentials{Mechanism: MechOAuthBearer, Raw: b}
	gs2, rest, ok := strings.Cut(string(b), "\x01")
	if !ok {
		return nil, fmt.Errorf("%w: OAUTHBEARER without key/value part", ErrSASL)
	}
	// gs2-header = "n," / "y," / "p=..."  then [ "a=" saslname ] ","
	fields := strings.Split(gs2, ",")
	if len(fields) < 2 || (fields[0] != "n" && fields[0] != "y") {
		return nil, fmt.Errorf("%w: OAUTHBEARER gs2 header", ErrSASL)
	}
	if a, ok := strings.CutPrefix(fields[1], "a="); ok {
		c.Authzid = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(a)
	}
	var token bool
	for _, kv := range strings.Split(rest, "\x01") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "auth" {
			token = strings.HasPrefix(strings.ToLower(v), "bearer ")
		}
	}
	if c.Authzid == "" || !token {
		return nil, fmt.Errorf("%w: OAUTHBEARER needs a= and auth=Bearer", ErrSASL)
	}
	// Routing uses the authzid; there is no separate authcid.
	c.Authcid = c.Authzid
	c.Authzid = ""
	return c, nil
}

// DecodeBase64 decodes a SASL response line; "=" is the empty response
// (RFC 4959) and "*" cancels.
func DecodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return nil, ErrCancelled
	}
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64", ErrSASL)
	}
	return b, nil
}

// EncodeBase64 encodes a SASL message ("=" for empty).
func EncodeBase64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Exchange runs the server side of a SASL exchange for one mechanism.
// ir is the initial response (nil when the client sent none). challenge
// sends a base64 challenge to the client and returns the client's decoded
// response (ErrCancelled on "*"). It returns the credentials.
func Exchange(mech string, ir []byte, challenge func(b []byte) ([]byte, error)) (*Credentials, error) {
	mech = strings.ToUpper(mech)
	next := func() ([]byte, error) {
		if ir != nil {
			b := ir
			ir = nil
			return b, nil
		}
		return challenge(nil)
	}
	switch mech {
	case MechPlain:
		b, err := next()
		if err != nil {
			return nil, err
		}
		return DecodePlain(b)
	case MechLogin:
		var user []byte
		var err error
		if ir != nil {
			user, ir = ir, nil
		} else if user, err = challenge([]byte("Username:")); err != nil {
			return nil, err
		}
		pass, err := challenge([]byte("Password:"))
		if err != nil {
			return nil, err
		}
		if len(user) == 0 {
			return nil, fmt.Errorf("%w: empty LOGIN user name", ErrSASL)
		}
		return &Credentials{Mechanism: MechLogin, Authcid: string(user), Password: string(pass)}, nil
	case MechXOAuth2:
		b, err := next()
		if err != nil {
			return nil, err
		}
		return DecodeXOAuth2(b)
	case MechOAuthBearer:
		b, err := next()
		if err != nil {
			return nil, err
		}
		return DecodeOAuthBearer(b)
	}
	return nil, fmt.Errorf("%w: unsupported mechanism %q", ErrSASL, mech)
}

// TokenErrorReply is the client's answer to the error challenge a server
// sends when it refuses a bearer token: a single %x01 for OAUTHBEARER (RFC
// 7628 3.2.3), an empty response for XOAUTH2 (Google's convention). The
// server then ends the exchange with its failure reply, counted as a
// failed login; a cancel would be an abort instead. ok is false for other
// mechanisms, which have no such challenge.
func TokenErrorReply(mech string) (reply []byte, ok bool) {
	switch strings.ToUpper(mech) {
	case MechOAuthBearer:
		return []byte{1}, true
	case MechXOAuth2:
		return []byte{}, true
	}
	return nil, false
}

// BackendMessage returns the mechanism and message to send to a backend
// for passthrough login: PLAIN rebuilt from PLAIN/LOGIN credentials, token
// mechanisms unchanged.
func BackendMessage(c *Credentials) (mech string, msg []byte) {
	if c.Token() {
		return c.Mechanism, c.Raw
	}
	return MechPlain, EncodePlain(c.Authzid, c.Authcid, c.Password)
}
