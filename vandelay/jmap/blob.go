package jmap

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Blob is the answer to an upload (RFC 8620 6.1).
type Blob struct {
	AccountID string `json:"accountId"`
	BlobID    string `json:"blobId"`
	Type      string `json:"type"`
	Size      int64  `json:"size"`
}

// Upload streams one blob of the given size to the account. open is called
// once per attempt and must return the blob's bytes from the start each
// time (a retry after 429/503 sends them again). A blob larger than the
// session's maxSizeUpload fails with [ErrTooLarge] without any traffic.
// At most maxConcurrentUpload uploads run at once across the client.
func (c *Client) Upload(ctx context.Context, accountID, contentType string, size int64, open func() (io.ReadCloser, error)) (*Blob, error) {
	if max := c.session.Core.MaxSizeUpload; max > 0 && size > max {
		return nil, fmt.Errorf("%w (%d > %d bytes)", ErrTooLarge, size, max)
	}
	u, err := resolve(c.sessionURL, expandTemplate(c.session.UploadURL, map[string]string{"accountId": accountID}))
	if err != nil {
		return nil, err
	}
	select {
	case c.uploadSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.uploadSem }()
	start := time.Now()
	body, err := c.roundTrip(ctx, "upload", func() (*http.Request, error) {
		r, err := open()
		if err != nil {
			return nil, fmt.Errorf("open blob: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), r)
		if err != nil {
			r.Close()
			return nil, err
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", contentType)
		return req, nil
	}, nil)
	if err != nil {
		if pe, ok := err.(*ProblemError); ok && pe.Status == http.StatusRequestEntityTooLarge {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, pe)
		}
		return nil, fmt.Errorf("upload blob: %w", err)
	}
	var b Blob
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("decode upload response: %w", err)
	}
	if b.BlobID == "" {
		return nil, fmt.Errorf("upload response has no blobId")
	}
	c.stats.Uploads.Add(1)
	c.stats.UploadBytes.Add(size)
	c.log.Log(ctx, levelTrace, "jmap upload", "size", size, "duration", time.Since(start))
	return &b, nil
}

// Download streams a blob. The caller must close the returned body. Errors
// that a retry may cure (429/503) are retried before the body starts.
func (c *Client) Download(ctx context.Context, accountID, blobID, name, contentType string) (io.ReadCloser, error) {
	if name == "" {
		name = "blob"
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	u, err := resolve(c.sessionURL, expandTemplate(c.session.DownloadURL, map[string]string{
		"accountId": accountID, "blobId": blobID, "name": name, "type": contentType,
	}))
	if err != nil {
		return nil, err
	}
	// Downloads have their own semaphore (sized maxConcurrentRequests) so
	// that a caller holding open bodies never starves API requests.
	select {
	case c.dlSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := func() { <-c.dlSem }
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			release()
			return nil, err
		}
		c.decorate(req)
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil || attempt >= c.maxRetries {
				release()
				return nil, fmt.Errorf("download blob %s: %w", blobID, err)
			}
			if werr := c.wait(ctx, attempt, 0, "download", err); werr != nil {
				release()
				return nil, werr
			}
			continue
		}
		if resp.StatusCode/100 == 2 {
			c.stats.Downloads.Add(1)
			return &countingBody{ReadCloser: resp.Body, c: c, release: release}, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		p := decodeProblem(resp.StatusCode, b)
		p.RetryAfter = durationValue(parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		if !p.Temporary() || attempt >= c.maxRetries {
			release()
			return nil, fmt.Errorf("download blob %s: %w", blobID, p)
		}
		if werr := c.wait(ctx, attempt, time.Duration(p.RetryAfter), "download", p); werr != nil {
			release()
			return nil, werr
		}
	}
}

type countingBody struct {
	io.ReadCloser
	c       *Client
	release func()
	done    bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.stats.DownloadBytes.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.done {
		b.done = true
		b.release()
	}
	return err
}

// Capabilities for sending blob data inside an API request, which saves an
// HTTP upload per blob and lets a later call in the same request refer to
// the blob as "#creationId".
const (
	// CapBlob is RFC 9404's capability (method Blob/upload).
	CapBlob = "urn:ietf:params:jmap:blob"
	// CapCyrusBlob is Cyrus 3.6's draft of it (method Blob/set).
	CapCyrusBlob = "https://cyrusimap.org/ns/jmap/blob"
)

// InlineBlobs says how the server takes blob data inside an API request.
type InlineBlobs struct {
	// Method is "Blob/upload" (RFC 9404) or "Blob/set" (Cyrus's draft);
	// "" when the server offers neither.
	Method string
	// Capability must be added to the request's "using".
	Capability string
	// MaxSize is the largest blob the client sends this way: at most
	// 2 MiB, a third of maxSizeRequest (base64 grows data by 4/3, and a
	// request carries several), maxSizeUpload and RFC 9404's
	// maxSizeBlobSet.
	MaxSize int64
}

// InlineBlobs reports whether and how blobs may be sent inside requests.
func (c *Client) InlineBlobs(accountID string) InlineBlobs {
	limit := int64(2 << 20)
	if m := c.session.Core.MaxSizeRequest; m > 0 {
		limit = min(limit, m/3)
	}
	if m := c.session.Core.MaxSizeUpload; m > 0 {
		// One size limit for the user, whichever way a blob travels.
		limit = min(limit, m)
	}
	acct := c.session.Accounts[accountID]
	if raw, ok := c.session.Capabilities[CapBlob]; ok {
		if _, ok := acct.AccountCapabilities[CapBlob]; ok || acct.AccountCapabilities == nil {
			var bc struct {
				MaxSizeBlobSet *int64 `json:"maxSizeBlobSet"`
			}
			if araw, ok := acct.AccountCapabilities[CapBlob]; ok {
				_ = json.Unmarshal(araw, &bc)
			}
			if bc.MaxSizeBlobSet == nil {
				_ = json.Unmarshal(raw, &bc)
			}
			if bc.MaxSizeBlobSet != nil {
				limit = min(limit, *bc.MaxSizeBlobSet)
			}
			return InlineBlobs{Method: "Blob/upload", Capability: CapBlob, MaxSize: limit}
		}
	}
	if _, ok := c.session.Capabilities[CapCyrusBlob]; ok {
		if _, ok := acct.AccountCapabilities[CapCyrusBlob]; ok {
			return InlineBlobs{Method: "Blob/set", Capability: CapCyrusBlob, MaxSize: limit}
		}
	}
	return InlineBlobs{}
}

// Create returns the create object for one blob: RFC 9404 5.1 DataSource
// list for Blob/upload, the draft's single data:asBase64 for Blob/set.
func (ib InlineBlobs) Create(data []byte, contentType string) any {
	b64 := base64.StdEncoding.EncodeToString(data)
	if ib.Method == "Blob/set" {
		return map[string]any{"data:asBase64": b64, "type": contentType}
	}
	return map[string]any{"data": []any{map[string]string{"data:asBase64": b64}}, "type": contentType}
}

// BlobData says whether and how the server returns blob data inside API
// responses (Blob/get with the data:asBase64 property): RFC 9404's
// urn:ietf:params:jmap:blob, or Cyrus 3.6's draft of it. Importing many
// small blobs this way costs a few requests instead of one download each.
// It returns the capability to add to "using", or "" when the account has
// neither.
func (c *Client) BlobData(accountID string) string {
	acct := c.session.Accounts[accountID]
	for _, cap := range []string{CapBlob, CapCyrusBlob} {
		if _, ok := c.session.Capabilities[cap]; !ok {
			continue
		}
		if _, ok := acct.AccountCapabilities[cap]; ok || acct.AccountCapabilities == nil {
			return cap
		}
	}
	return ""
}

// GetBlobs fetches the bytes of blobs with Blob/get (RFC 9404 4.2;
// capability from [Client.BlobData]), one call per maxObjectsInGet ids,
// packed into as few requests as the server allows. It returns the
// decoded data by id and the ids the server did not return (notFound, or
// data it could not encode); the caller fetches those another way or
// reports them.
func (c *Client) GetBlobs(ctx context.Context, accountID, capability string, ids []string) (map[string][]byte, []string, error) {
	type item struct {
		ID         string  `json:"id"`
		Data       *string `json:"data:asBase64"`
		IsTruncate bool    `json:"isTruncated"`
		IsEncoding bool    `json:"isEncodingProblem"`
	}
	type resp struct {
		List     []item   `json:"list"`
		NotFound []string `json:"notFound"`
	}
	chunk := c.MaxObjectsInGet()
	var groups [][]*Call
	var resps []*resp
	for start := 0; start < len(ids); start += chunk {
		r := &resp{}
		groups = append(groups, []*Call{{Method: "Blob/get", Args: map[string]any{"accountId": accountID,
			"ids": ids[start:min(start+chunk, len(ids))], "properties": []string{"data:asBase64"}}, Result: r}})
		resps = append(resps, r)
	}
	if err := c.Exec(ctx, []string{CapCore, capability}, groups...); err != nil {
		return nil, nil, err
	}
	out := map[string][]byte{}
	var missing []string
	for i, g := range groups {
		if g[0].Err != nil {
			return nil, nil, g[0].Err
		}
		for _, it := range resps[i].List {
			if it.Data == nil || it.IsTruncate || it.IsEncoding {
				missing = append(missing, it.ID)
				continue
			}
			b, err := base64.StdEncoding.DecodeString(*it.Data)
			if err != nil {
				return nil, nil, fmt.Errorf("jmap Blob/get: blob %s: %w", it.ID, err)
			}
			out[it.ID] = b
		}
		missing = append(missing, resps[i].NotFound...)
	}
	c.stats.Downloads.Add(int64(len(out)))
	for _, b := range out {
		c.stats.DownloadBytes.Add(int64(len(b)))
	}
	return out, missing, nil
}
