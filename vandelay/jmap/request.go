package jmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Call is one method call (RFC 8620 3.2) and, after [Client.Exec], its
// outcome.
type Call struct {
	// Method is the method name, e.g. "Email/import".
	Method string
	// Args are the call's arguments, marshalled with encoding/json. A
	// back-reference is an argument named "#name" whose value is a
	// [ResultRef] from [Call.Ref] (RFC 8620 3.7).
	Args any
	// Result, when non-nil, is a pointer the response arguments are
	// decoded into.
	Result any
	// Err is the method-level error the server answered, if any.
	Err *MethodError
	// Raw is the undecoded response arguments.
	Raw json.RawMessage

	id   string
	body json.RawMessage
}

// ID returns the call id Exec assigned (empty before Exec).
func (c *Call) ID() string { return c.id }

// ResultRef is a back-reference to an earlier call's result (RFC 8620 3.7).
// Its call id is read when the request is marshalled, so it may be built
// before Exec assigns ids.
type ResultRef struct {
	call *Call
	path string
}

// Ref returns a reference to path (a JSON pointer with "*" for arrays)
// in c's result. c must be in the same group as the referencing call.
func (c *Call) Ref(path string) ResultRef { return ResultRef{call: c, path: path} }

// MarshalJSON implements json.Marshaler.
func (r ResultRef) MarshalJSON() ([]byte, error) {
	if r.call == nil || r.call.id == "" {
		return nil, errors.New("jmap: result reference to a call that is not in the request")
	}
	return json.Marshal(struct {
		ResultOf string `json:"resultOf"`
		Name     string `json:"name"`
		Path     string `json:"path"`
	}{r.call.id, r.call.Method, r.path})
}

// Exec runs groups of calls. The calls of one group go into the same HTTP
// request (so back-references between them work) and groups run in order;
// Exec packs as many groups into one request as maxCallsInRequest and
// maxSizeRequest allow. A group larger than maxCallsInRequest is an error.
//
// Exec returns an error only for a request-level failure (or a refused
// request it could not split). Method-level errors are left in each
// [Call.Err]; a group whose calls all failed with serverUnavailable or
// rateLimit is retried with backoff first.
func (c *Client) Exec(ctx context.Context, using []string, groups ...[]*Call) error {
	maxCalls := c.session.Core.MaxCallsInRequest
	n := 0
	for _, g := range groups {
		if len(g) > maxCalls {
			return fmt.Errorf("jmap: %d dependent calls exceed the server's maxCallsInRequest %d", len(g), maxCalls)
		}
		for _, call := range g {
			call.id = "c" + strconv.Itoa(n)
			call.Err, call.Raw = nil, nil
			n++
		}
	}
	sizes := make([]int, len(groups))
	for i, g := range groups {
		for _, call := range g {
			b, err := json.Marshal(call.Args)
			if err != nil {
				return fmt.Errorf("jmap: marshal %s arguments: %w", call.Method, err)
			}
			call.body = b
			sizes[i] += len(b) + len(call.Method) + len(call.id) + 16
		}
	}
	overhead := 64
	for _, u := range using {
		overhead += len(u) + 4
	}
	maxSize := int(c.session.Core.MaxSizeRequest)
	for start := 0; start < len(groups); {
		end, calls, size := start, 0, overhead
		for end < len(groups) {
			g := len(groups[end])
			if end > start && (calls+g > maxCalls || (maxSize > 0 && size+sizes[end] > maxSize)) {
				break
			}
			calls += g
			size += sizes[end]
			end++
		}
		if err := c.execPacked(ctx, using, groups[start:end], 0); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// execPacked sends groups in one request, splitting it when the server
// answers a "limit" problem, and retries groups that failed temporarily.
func (c *Client) execPacked(ctx context.Context, using []string, groups [][]*Call, attempt int) error {
	err := c.send(ctx, using, groups)
	var pe *ProblemError
	if errors.As(err, &pe) && pe.Type == ProblemLimit && len(groups) > 1 {
		c.log.Debug("jmap request over a server limit, splitting", "limit", pe.Limit, "groups", len(groups))
		half := len(groups) / 2
		if err := c.execPacked(ctx, using, groups[:half], 0); err != nil {
			return err
		}
		return c.execPacked(ctx, using, groups[half:], 0)
	}
	if err != nil {
		return err
	}
	var again [][]*Call
	for _, g := range groups {
		all := true
		for _, call := range g {
			if call.Err == nil || !call.Err.Retryable() {
				all = false
				break
			}
		}
		if all {
			again = append(again, g)
		}
	}
	if len(again) == 0 || attempt >= c.maxRetries {
		return nil
	}
	c.stats.Retries.Add(1)
	if err := c.wait(ctx, attempt, 0, "api", again[0][0].Err); err != nil {
		return err
	}
	for _, g := range again {
		for _, call := range g {
			call.Err, call.Raw = nil, nil
		}
	}
	return c.execPacked(ctx, using, again, attempt+1)
}

type wireInvocation struct {
	name string
	args json.RawMessage
	id   string
}

func (w wireInvocation) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{w.name, w.args, w.id})
}

func (w *wireInvocation) UnmarshalJSON(b []byte) error {
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if len(a) != 3 {
		return fmt.Errorf("invocation with %d elements", len(a))
	}
	if err := json.Unmarshal(a[0], &w.name); err != nil {
		return err
	}
	w.args = a[1]
	return json.Unmarshal(a[2], &w.id)
}

type wireRequest struct {
	Using       []string         `json:"using"`
	MethodCalls []wireInvocation `json:"methodCalls"`
}

type wireResponse struct {
	MethodResponses []wireInvocation `json:"methodResponses"`
	SessionState    string           `json:"sessionState"`
}

func (c *Client) send(ctx context.Context, using []string, groups [][]*Call) error {
	req := wireRequest{Using: using}
	byID := map[string]*Call{}
	for _, g := range groups {
		for _, call := range g {
			req.MethodCalls = append(req.MethodCalls, wireInvocation{call.Method, call.body, call.id})
			byID[call.id] = call
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("jmap: marshal request: %w", err)
	}
	c.stats.Calls.Add(int64(len(req.MethodCalls)))
	c.log.Log(ctx, levelTrace, "jmap request", "calls", len(req.MethodCalls), "size", len(body))
	start := time.Now()
	out, err := c.post(ctx, body)
	if err != nil {
		return err
	}
	c.log.Log(ctx, levelTrace, "jmap response", "calls", len(req.MethodCalls), "size", len(out), "duration", time.Since(start))
	var resp wireResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return fmt.Errorf("jmap: decode response: %w", err)
	}
	for _, inv := range resp.MethodResponses {
		call, ok := byID[inv.id]
		if !ok {
			continue // a server may add responses with ids of its own
		}
		if inv.name == "error" {
			me := &MethodError{}
			if err := json.Unmarshal(inv.args, me); err != nil {
				return fmt.Errorf("jmap: decode %s error: %w", call.Method, err)
			}
			me.Method = call.Method
			call.Err = me
			continue
		}
		if inv.name != call.Method {
			// A method may answer with several responses (e.g. implicit
			// calls); keep the one named like the call.
			continue
		}
		call.Raw = inv.args
		if call.Result != nil {
			if err := json.Unmarshal(inv.args, call.Result); err != nil {
				return fmt.Errorf("jmap: decode %s response: %w", call.Method, err)
			}
		}
	}
	for _, call := range byID {
		if call.Err == nil && call.Raw == nil {
			call.Err = &MethodError{Method: call.Method, Type: ErrServerFail, Description: "no response to this call"}
		}
	}
	return nil
}

// levelTrace is the protocol-trace level of STYLE.md.
const levelTrace = -8

// FirstError returns the first method error among calls, or nil.
func FirstError(calls ...*Call) error {
	for _, c := range calls {
		if c.Err != nil {
			return c.Err
		}
	}
	return nil
}
