package jmap

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Capabilities of the JMAP-standard data kinds beside mail, which both the
// export (vandelay/targets/jmapdata) and the JMAP source read and write.
const (
	// CapSieve is RFC 9661's Sieve script management.
	CapSieve = "urn:ietf:params:jmap:sieve"
	// CapSubmission carries Identity (RFC 8621 6).
	CapSubmission = "urn:ietf:params:jmap:submission"
	// CapVacationResponse is RFC 8621 8.
	CapVacationResponse = "urn:ietf:params:jmap:vacationresponse"
	// CapFileNode is draft-ietf-jmap-filenode's file storage.
	CapFileNode = "urn:ietf:params:jmap:filenode"
)

// Has reports whether the session offers capability cap.
func (s *Session) Has(cap string) bool {
	_, ok := s.Capabilities[cap]
	return ok
}

// Offers reports whether the session offers cap in a way mailmig can use:
// [Session.Has], except that Cyrus (a session naming any of its own
// https://cyrusimap.org/ns/jmap/ capabilities) is taken not to offer
// urn:ietf:params:jmap:vacationresponse: Cyrus 3.6 advertises it, but its
// httpd crashes on VacationResponse/get (signal 11, every account), and a
// crashed request would be retried for minutes. Its vacation travels in
// the Sieve script instead (docs/export.md).
func (s *Session) Offers(cap string) bool {
	if !s.Has(cap) {
		return false
	}
	if cap == CapVacationResponse {
		for c := range s.Capabilities {
			if strings.HasPrefix(c, "https://cyrusimap.org/ns/jmap/") {
				return false
			}
		}
	}
	return true
}

// SieveScript is RFC 9661 2's object.
type SieveScript struct {
	ID       string  `json:"id,omitempty"`
	Name     *string `json:"name"`
	BlobID   string  `json:"blobId"`
	IsActive bool    `json:"isActive"`
}

// FileNode is draft-ietf-jmap-filenode's object: a folder has no blobId.
// A node without a parentId is at the top of the account's tree.
type FileNode struct {
	ID       string  `json:"id,omitempty"`
	ParentID *string `json:"parentId"`
	BlobID   *string `json:"blobId"`
	Name     string  `json:"name"`
	Type     *string `json:"type"`
	Size     int64   `json:"size"`
	Created  string  `json:"created,omitempty"`
	Modified string  `json:"modified,omitempty"`
}

// EmailAddress is RFC 8621 4.1.2.3's name and address.
type EmailAddress struct {
	Name  *string `json:"name"`
	Email string  `json:"email"`
}

// Identity is RFC 8621 6.1's object.
type Identity struct {
	ID            string         `json:"id,omitempty"`
	Name          string         `json:"name"`
	Email         string         `json:"email"`
	ReplyTo       []EmailAddress `json:"replyTo"`
	Bcc           []EmailAddress `json:"bcc"`
	TextSignature string         `json:"textSignature"`
	HTMLSignature string         `json:"htmlSignature"`
	MayDelete     bool           `json:"mayDelete,omitempty"`
}

// GetAll reads every object of typ (ids null: the data kinds beside mail
// hold tens to a few thousand objects, which servers answer whole) and
// returns them with the type's state.
func GetAll[T any](ctx context.Context, c *Client, using []string, accountID, typ string) ([]T, string, error) {
	var resp GetResponse
	call := &Call{Method: typ + "/get", Args: map[string]any{"accountId": accountID, "ids": nil}, Result: &resp}
	if err := c.Exec(ctx, using, []*Call{call}); err != nil {
		return nil, "", err
	}
	if call.Err != nil {
		return nil, "", call.Err
	}
	var list []T
	if len(resp.List) > 0 {
		if err := json.Unmarshal(resp.List, &list); err != nil {
			return nil, "", fmt.Errorf("decode %s list: %w", typ, err)
		}
	}
	return list, resp.State, nil
}

// Set sends one typ/set call with args (accountId added) and returns its
// response; a method-level error is returned as the error.
func Set(ctx context.Context, c *Client, using []string, accountID, typ string, args map[string]any) (*SetResponse, error) {
	args["accountId"] = accountID
	var resp SetResponse
	call := &Call{Method: typ + "/set", Args: args, Result: &resp}
	if err := c.Exec(ctx, using, []*Call{call}); err != nil {
		return nil, err
	}
	if call.Err != nil {
		return nil, call.Err
	}
	return &resp, nil
}

// Changes asks typ/changes since state. changed is false when nothing
// changed; a *MethodError of type cannotCalculateChanges (or any other)
// is returned as the error, and the caller reads everything again.
func Changes(ctx context.Context, c *Client, using []string, accountID, typ, state string) (resp *ChangesResponse, err error) {
	resp = &ChangesResponse{}
	call := &Call{Method: typ + "/changes", Args: map[string]any{"accountId": accountID, "sinceState": state}, Result: resp}
	if err := c.Exec(ctx, using, []*Call{call}); err != nil {
		return nil, err
	}
	if call.Err != nil {
		return nil, call.Err
	}
	return resp, nil
}
