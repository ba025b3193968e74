package jmap

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrTooLarge is returned by [Client.Upload] when a blob exceeds the
// session's maxSizeUpload; nothing was sent.
var ErrTooLarge = errors.New("jmap: blob larger than the server's maxSizeUpload")

// ErrAuthRefused is returned by [Discover] when the server refuses the
// credentials (HTTP 401 or 403). A JMAP server answers a wrong password
// and an account that does not exist alike, so it tells neither apart.
var ErrAuthRefused = errors.New("authentication refused")

// Request-level problem types (RFC 8620 3.6.1).
const (
	ProblemUnknownCapability = "urn:ietf:params:jmap:error:unknownCapability"
	ProblemNotJSON           = "urn:ietf:params:jmap:error:notJSON"
	ProblemNotRequest        = "urn:ietf:params:jmap:error:notRequest"
	ProblemLimit             = "urn:ietf:params:jmap:error:limit"
)

// ProblemError is a request-level error: an HTTP status other than 2xx,
// with the RFC 7807 problem details the server sent, if any.
type ProblemError struct {
	// Status is the HTTP status code.
	Status int
	// Type is the problem type URI, e.g. [ProblemLimit].
	Type string `json:"type"`
	// Title and Detail are the server's human-readable explanation.
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// Limit names the exceeded limit for a [ProblemLimit] problem.
	Limit string `json:"limit"`
	// RetryAfter is the parsed Retry-After header, zero when absent.
	RetryAfter durationValue `json:"-"`
}

// Error implements error.
func (e *ProblemError) Error() string {
	s := fmt.Sprintf("jmap request refused: HTTP %d", e.Status)
	if e.Type != "" {
		s += " " + e.Type
	}
	if e.Limit != "" {
		s += " (limit " + e.Limit + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	} else if e.Title != "" {
		s += ": " + e.Title
	}
	return s
}

// Temporary reports whether retrying the request later may succeed.
func (e *ProblemError) Temporary() bool {
	return e.Status == 429 || e.Status == 503 || e.Status == 502 || e.Status == 504
}

// Method-level error types (RFC 8620 3.6.2, 5.3, 5.4; RFC 8621).
const (
	ErrServerUnavailable  = "serverUnavailable"
	ErrServerFail         = "serverFail"
	ErrServerPartialFail  = "serverPartialFail"
	ErrUnknownMethod      = "unknownMethod"
	ErrInvalidArguments   = "invalidArguments"
	ErrInvalidResultRef   = "invalidResultReference"
	ErrForbidden          = "forbidden"
	ErrAccountNotFound    = "accountNotFound"
	ErrAccountNotForData  = "accountNotSupportedByMethod"
	ErrAccountReadOnly    = "accountReadOnly"
	ErrRequestTooLarge    = "requestTooLarge"
	ErrCannotCalcChanges  = "cannotCalculateChanges"
	ErrStateMismatch      = "stateMismatch"
	ErrRateLimit          = "rateLimit"
	ErrAnchorNotFound     = "anchorNotFound"
	ErrUnsupportedSort    = "unsupportedSort"
	ErrUnsupportedFilter  = "unsupportedFilter"
	ErrTooManyChanges     = "tooManyChanges"
	ErrFromAccountMissing = "fromAccountNotFound"
)

// SetError types (RFC 8620 5.3, 5.4; RFC 8621 2.3, 4.6, 4.8).
const (
	SetForbidden           = "forbidden"
	SetOverQuota           = "overQuota"
	SetTooLarge            = "tooLarge"
	SetRateLimit           = "rateLimit"
	SetNotFound            = "notFound"
	SetInvalidPatch        = "invalidPatch"
	SetWillDestroy         = "willDestroy"
	SetInvalidProperties   = "invalidProperties"
	SetSingleton           = "singleton"
	SetAlreadyExists       = "alreadyExists"
	SetBlobNotFound        = "blobNotFound"
	SetMailboxHasChild     = "mailboxHasChild"
	SetMailboxHasEmail     = "mailboxHasEmail"
	SetTooManyKeywords     = "tooManyKeywords"
	SetTooManyMailboxes    = "tooManyMailboxes"
	SetInvalidEmail        = "invalidEmail"
	SetServerFailForObject = "serverFail"
)

// MethodError is a method-level error response (RFC 8620 3.6.2).
type MethodError struct {
	// Method is the name of the call that failed.
	Method string `json:"-"`
	// Type is the error type, e.g. [ErrServerUnavailable].
	Type string `json:"type"`
	// Description is the server's optional explanation.
	Description string `json:"description,omitempty"`
	// Properties lists offending arguments when the server names them.
	Properties []string `json:"properties,omitempty"`
}

// Error implements error.
func (e *MethodError) Error() string {
	s := "jmap " + e.Method + ": " + e.Type
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Retryable reports whether the same call may succeed later unchanged.
func (e *MethodError) Retryable() bool {
	return e.Type == ErrServerUnavailable || e.Type == ErrRateLimit
}

// SetError is the per-object error of a /set, /copy or Email/import
// response (RFC 8620 5.3).
type SetError struct {
	// Type is the error type, e.g. [SetAlreadyExists].
	Type string `json:"type"`
	// Description is the server's optional explanation.
	Description string `json:"description,omitempty"`
	// Properties lists invalid properties (invalidProperties).
	Properties []string `json:"properties,omitempty"`
	// ExistingID is the id of the object that already exists
	// (alreadyExists, RFC 8620 5.4 and RFC 8621 4.8).
	ExistingID string `json:"existingId,omitempty"`
	// NotFound lists missing blob ids (blobNotFound, RFC 8621 4.8).
	NotFound []string `json:"notFound,omitempty"`
	// MaxSize is the size limit the server enforces (tooLarge).
	MaxSize int64 `json:"maxSize,omitempty"`
}

// Error implements error.
func (e *SetError) Error() string {
	s := e.Type
	if len(e.Properties) > 0 {
		s += fmt.Sprintf(" %v", e.Properties)
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Temporary reports whether the object may be accepted on a later try.
func (e *SetError) Temporary() bool {
	return e.Type == SetRateLimit || e.Type == SetServerFailForObject
}

// durationValue is a time.Duration in nanoseconds that json ignores.
type durationValue int64

func decodeProblem(status int, body []byte) *ProblemError {
	p := &ProblemError{Status: status}
	if len(body) > 0 {
		_ = json.Unmarshal(body, p) // a non-JSON body leaves the status alone
		p.Status = status
	}
	if p.Detail == "" && p.Title == "" && p.Type == "" && len(body) > 0 && len(body) < 512 && !json.Valid(body) {
		p.Detail = string(body)
	}
	return p
}
