package jmap

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// UsingMail is the capability list for mail calls.
var UsingMail = []string{CapCore, CapMail}

// Mailbox is a JMAP Mailbox (RFC 8621 2).
type Mailbox struct {
	ID           string `json:"id,omitempty"`
	Name         string `json:"name"`
	ParentID     string `json:"parentId,omitempty"`
	Role         string `json:"role,omitempty"`
	SortOrder    int    `json:"sortOrder,omitempty"`
	TotalEmails  int    `json:"totalEmails,omitempty"`
	IsSubscribed bool   `json:"isSubscribed"`
}

// Email holds the Email properties mailmig reads (RFC 8621 4.1).
type Email struct {
	ID         string          `json:"id,omitempty"`
	BlobID     string          `json:"blobId,omitempty"`
	ThreadID   string          `json:"threadId,omitempty"`
	MailboxIDs map[string]bool `json:"mailboxIds,omitempty"`
	Keywords   map[string]bool `json:"keywords,omitempty"`
	Size       int64           `json:"size,omitempty"`
	ReceivedAt *time.Time      `json:"receivedAt,omitempty"`
	MessageID  []string        `json:"messageId,omitempty"`
}

// EmailImport is one entry of Email/import's emails argument (RFC 8621 4.8).
type EmailImport struct {
	BlobID     string          `json:"blobId"`
	MailboxIDs map[string]bool `json:"mailboxIds"`
	Keywords   map[string]bool `json:"keywords"`
	// ReceivedAt is sent as UTCDate; Cyrus refuses anything but "Z". Nil
	// leaves it to the server (the time of import).
	ReceivedAt *UTCDate `json:"receivedAt,omitempty"`
}

// UTCDate marshals a time as an RFC 3339 UTCDate ending in "Z" (RFC 8620
// 1.4), which is what servers such as Cyrus insist on.
type UTCDate time.Time

// MarshalJSON implements json.Marshaler.
func (d UTCDate) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Time(d).UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z"))
}

// GetResponse is a /get response (RFC 8620 5.1) with the list undecoded.
type GetResponse struct {
	AccountID string          `json:"accountId"`
	State     string          `json:"state"`
	List      json.RawMessage `json:"list"`
	NotFound  []string        `json:"notFound"`
}

// SetResponse is a /set response (RFC 8620 5.3).
type SetResponse struct {
	AccountID    string                     `json:"accountId"`
	OldState     string                     `json:"oldState"`
	NewState     string                     `json:"newState"`
	Created      map[string]json.RawMessage `json:"created"`
	Updated      map[string]json.RawMessage `json:"updated"`
	Destroyed    []string                   `json:"destroyed"`
	NotCreated   map[string]*SetError       `json:"notCreated"`
	NotUpdated   map[string]*SetError       `json:"notUpdated"`
	NotDestroyed map[string]*SetError       `json:"notDestroyed"`
}

// CreatedID returns the server id of the object created as creation id cid.
func (r *SetResponse) CreatedID(cid string) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(r.Created[cid], &v)
	return v.ID
}

// ImportResponse is an Email/import response (RFC 8621 4.8).
type ImportResponse struct {
	AccountID  string               `json:"accountId"`
	OldState   string               `json:"oldState"`
	NewState   string               `json:"newState"`
	Created    map[string]Email     `json:"created"`
	NotCreated map[string]*SetError `json:"notCreated"`
}

// QueryResponse is a /query response (RFC 8620 5.5).
type QueryResponse struct {
	QueryState string   `json:"queryState"`
	Position   int      `json:"position"`
	IDs        []string `json:"ids"`
	Total      *int     `json:"total"`
}

// ChangesResponse is a /changes response (RFC 8620 5.2).
type ChangesResponse struct {
	OldState       string   `json:"oldState"`
	NewState       string   `json:"newState"`
	HasMoreChanges bool     `json:"hasMoreChanges"`
	Created        []string `json:"created"`
	Updated        []string `json:"updated"`
	Destroyed      []string `json:"destroyed"`
}

// Mailboxes returns every mailbox of the account and the Mailbox state.
func (c *Client) Mailboxes(ctx context.Context, accountID string) ([]Mailbox, string, error) {
	var resp GetResponse
	call := &Call{Method: "Mailbox/get", Args: map[string]any{
		"accountId":  accountID,
		"ids":        nil,
		"properties": []string{"id", "name", "parentId", "role", "sortOrder", "isSubscribed", "totalEmails"},
	}, Result: &resp}
	if err := c.Exec(ctx, UsingMail, []*Call{call}); err != nil {
		return nil, "", err
	}
	if call.Err != nil && call.Err.Type == ErrRequestTooLarge {
		// More mailboxes than maxObjectsInGet: query the ids, get in chunks.
		ids, err := c.QueryAll(ctx, accountID, "Mailbox", nil, nil)
		if err != nil {
			return nil, "", err
		}
		var list []Mailbox
		state, err := GetObjects(ctx, c, accountID, "Mailbox", ids,
			[]string{"id", "name", "parentId", "role", "sortOrder", "isSubscribed", "totalEmails"}, &list)
		return list, state, err
	}
	if call.Err != nil {
		return nil, "", call.Err
	}
	var list []Mailbox
	if err := json.Unmarshal(resp.List, &list); err != nil {
		return nil, "", fmt.Errorf("decode mailboxes: %w", err)
	}
	return list, resp.State, nil
}

// QueryAll pages through typ/query and returns every id. Position paging
// with limit maxObjectsInGet keeps each answer within the server's limits.
func (c *Client) QueryAll(ctx context.Context, accountID, typ string, filter any, sort any) ([]string, error) {
	var ids []string
	limit := c.MaxObjectsInGet()
	for {
		var resp QueryResponse
		args := map[string]any{"accountId": accountID, "position": len(ids), "limit": limit, "calculateTotal": true}
		if filter != nil {
			args["filter"] = filter
		}
		if sort != nil {
			args["sort"] = sort
		}
		call := &Call{Method: typ + "/query", Args: args, Result: &resp}
		if err := c.Exec(ctx, UsingMail, []*Call{call}); err != nil {
			return nil, err
		}
		if call.Err != nil {
			return nil, call.Err
		}
		ids = append(ids, resp.IDs...)
		if len(resp.IDs) == 0 || (resp.Total != nil && len(ids) >= *resp.Total) {
			return ids, nil
		}
	}
}

// GetObjects fetches ids of typ in chunks of maxObjectsInGet, as many
// chunks per request as maxCallsInRequest allows, and appends the decoded
// objects to *out (a pointer to a slice). It returns the state of the last
// response. Ids the server does not know are skipped.
func GetObjects[T any](ctx context.Context, c *Client, accountID, typ string, ids []string, props []string, out *[]T) (string, error) {
	chunk := c.MaxObjectsInGet()
	var calls []*Call
	var resps []*GetResponse
	for start := 0; start < len(ids); start += chunk {
		end := min(start+chunk, len(ids))
		r := &GetResponse{}
		args := map[string]any{"accountId": accountID, "ids": ids[start:end]}
		if props != nil {
			args["properties"] = props
		}
		calls = append(calls, &Call{Method: typ + "/get", Args: args, Result: r})
		resps = append(resps, r)
	}
	groups := make([][]*Call, len(calls))
	for i, call := range calls {
		groups[i] = []*Call{call}
	}
	if err := c.Exec(ctx, UsingMail, groups...); err != nil {
		return "", err
	}
	state := ""
	for i, call := range calls {
		if call.Err != nil {
			return "", call.Err
		}
		var list []T
		if err := json.Unmarshal(resps[i].List, &list); err != nil {
			return "", fmt.Errorf("decode %s list: %w", typ, err)
		}
		*out = append(*out, list...)
		state = resps[i].State
	}
	return state, nil
}

// QueryObjects pages through typ/query and fetches each page's objects
// with typ/get in the same request through a back-reference to the
// query's ids (RFC 8620 3.7), one round trip per page of maxObjectsInGet.
// The objects are appended to *out. With maxCallsInRequest 1 it falls back
// to QueryAll and GetObjects.
func QueryObjects[T any](ctx context.Context, c *Client, accountID, typ string, filter any, props []string, out *[]T) error {
	if c.session.Core.MaxCallsInRequest < 2 {
		ids, err := c.QueryAll(ctx, accountID, typ, filter, nil)
		if err != nil {
			return err
		}
		_, err = GetObjects(ctx, c, accountID, typ, ids, props, out)
		return err
	}
	limit := c.MaxObjectsInGet()
	for pos := 0; ; {
		var qr QueryResponse
		var gr GetResponse
		args := map[string]any{"accountId": accountID, "position": pos, "limit": limit, "calculateTotal": true}
		if filter != nil {
			args["filter"] = filter
		}
		q := &Call{Method: typ + "/query", Args: args, Result: &qr}
		gargs := map[string]any{"accountId": accountID, "#ids": q.Ref("/ids")}
		if props != nil {
			gargs["properties"] = props
		}
		g := &Call{Method: typ + "/get", Args: gargs, Result: &gr}
		if err := c.Exec(ctx, UsingMail, []*Call{q, g}); err != nil {
			return err
		}
		if err := FirstError(q, g); err != nil {
			return err
		}
		var list []T
		if err := json.Unmarshal(gr.List, &list); err != nil {
			return fmt.Errorf("decode %s list: %w", typ, err)
		}
		*out = append(*out, list...)
		pos += len(qr.IDs)
		if len(qr.IDs) == 0 || (qr.Total != nil && pos >= *qr.Total) {
			return nil
		}
	}
}

// QueryAllStable is [Client.QueryAll] that also reports whether the result
// is a consistent snapshot: every page answered with the same queryState.
// Position paging over a result that changes between pages may skip an id
// (a removal before it shifts the positions), so a caller that deletes what
// it did not see must only trust a stable result.
func (c *Client) QueryAllStable(ctx context.Context, accountID, typ string, filter any) (ids []string, stable bool, err error) {
	limit := c.MaxObjectsInGet()
	first := ""
	stable = true
	for {
		var resp QueryResponse
		args := map[string]any{"accountId": accountID, "position": len(ids), "limit": limit, "calculateTotal": true}
		if filter != nil {
			args["filter"] = filter
		}
		call := &Call{Method: typ + "/query", Args: args, Result: &resp}
		if err := c.Exec(ctx, UsingMail, []*Call{call}); err != nil {
			return nil, false, err
		}
		if call.Err != nil {
			return nil, false, call.Err
		}
		if len(ids) == 0 {
			first = resp.QueryState
		} else if resp.QueryState != first {
			stable = false
		}
		ids = append(ids, resp.IDs...)
		if len(resp.IDs) == 0 || (resp.Total != nil && len(ids) >= *resp.Total) {
			return ids, stable, nil
		}
	}
}
