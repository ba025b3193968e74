package ews

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Namespaces of EWS requests.
const (
	nsSOAP     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
)

// MaxResponse bounds one response body (a GetItem batch of MIME content).
const MaxResponse = 512 << 20

// Envelope is a SOAP response as [ParseResponse] decodes it. Elements are matched by local name: EWS
// servers vary the prefixes (s:, soap:, m:, t:) but not the names.
type Envelope struct {
	Header struct {
		ServerVersionInfo *struct {
			MajorVersion int    `xml:"MajorVersion,attr"`
			MinorVersion int    `xml:"MinorVersion,attr"`
			Version      string `xml:"Version,attr"`
		} `xml:"ServerVersionInfo"`
	} `xml:"Header"`
	Body struct {
		Fault    *fault `xml:"Fault"`
		Response struct {
			XMLName xml.Name
			// GetInboxRules answers without ResponseMessages: its class,
			// code and rules are on the response element.
			ResponseClass    string     `xml:"ResponseClass,attr"`
			ResponseCode     string     `xml:"ResponseCode"`
			MessageText      string     `xml:"MessageText"`
			InboxRules       inboxRules `xml:"InboxRules"`
			ResponseMessages struct {
				Messages []responseMessage `xml:",any"`
			} `xml:"ResponseMessages"`
		} `xml:",any"`
	} `xml:"Body"`
}

// fault is a SOAP 1.1 fault (HTTP 500), which EWS sends for schema and
// version errors.
type fault struct {
	Code   string `xml:"faultcode"`
	String string `xml:"faultstring"`
	Detail struct {
		ResponseCode string `xml:"ResponseCode"`
		Message      string `xml:"Message"`
	} `xml:"detail"`
}

// responseMessage is one answer of a batch (one per folder or item id).
type responseMessage struct {
	XMLName       xml.Name
	ResponseClass string `xml:"ResponseClass,attr"`
	MessageText   string `xml:"MessageText"`
	ResponseCode  string `xml:"ResponseCode"`
	MessageXML    struct {
		Values []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"Value"`
	} `xml:"MessageXml"`
	SyncState                 string `xml:"SyncState"`
	IncludesLastItemInRange   bool   `xml:"IncludesLastItemInRange"`
	IncludesLastFolderInRange bool   `xml:"IncludesLastFolderInRange"`
	Changes                   struct {
		List []change `xml:",any"`
	} `xml:"Changes"`
	Folders struct {
		List []object `xml:",any"`
	} `xml:"Folders"`
	Items struct {
		List []object `xml:",any"`
	} `xml:"Items"`
	InboxRules inboxRules `xml:"InboxRules"`
}

// change is a Create, Update, Delete or ReadFlagChange of
// SyncFolderItems and SyncFolderHierarchy.
type change struct {
	XMLName  xml.Name
	ItemID   *id      `xml:"ItemId"`
	FolderID *id      `xml:"FolderId"`
	IsRead   *bool    `xml:"IsRead"`
	Objects  []object `xml:",any"`
}

type id struct {
	ID        string `xml:"Id,attr"`
	ChangeKey string `xml:"ChangeKey,attr"`
}

// object is a folder or an item of any type (Message, MeetingRequest,
// CalendarItem, Contact …); which fields are set depends on the type.
type object struct {
	XMLName          xml.Name
	ItemID           id     `xml:"ItemId"`
	FolderID         id     `xml:"FolderId"`
	ParentFolderID   id     `xml:"ParentFolderId"`
	FolderClass      string `xml:"FolderClass"`
	DisplayName      string `xml:"DisplayName"`
	TotalCount       int64  `xml:"TotalCount"`
	ChildFolderCount int64  `xml:"ChildFolderCount"`
	DateTimeReceived string `xml:"DateTimeReceived"`
	IsRead           *bool  `xml:"IsRead"`
	IsDraft          *bool  `xml:"IsDraft"`
	Categories       struct {
		Strings []string `xml:"String"`
	} `xml:"Categories"`
	Flag struct {
		FlagStatus string `xml:"FlagStatus"`
	} `xml:"Flag"`
	MimeContent *struct {
		CharacterSet string `xml:"CharacterSet,attr"`
		Data         string `xml:",chardata"`
	} `xml:"MimeContent"`
}

// ResponseError is an EWS error answer (a response message whose class
// is Error, or a SOAP fault).
type ResponseError struct {
	Code    string
	Message string
	// BackOff is the wait ErrorServerBusy asks for.
	BackOff int64
}

func (e *ResponseError) Error() string {
	if e.Message == "" {
		return "EWS: " + e.Code
	}
	return "EWS: " + e.Code + ": " + e.Message
}

// ParseResponse decodes a SOAP response body. A fault is returned as a
// *ResponseError; so is a batch whose messages are all errors of one
// kind the caller must act on (server busy, version), which the callers
// check per message otherwise.
func ParseResponse(body []byte) (*Envelope, error) {
	var env Envelope
	dec := xml.NewDecoder(bytes.NewReader(body))
	// EWS answers UTF-8; a declared other charset is refused rather than
	// guessed.
	dec.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "utf-8") {
			return r, nil
		}
		return nil, fmt.Errorf("charset %q", label)
	}
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("EWS: unreadable response: %w", err)
	}
	if f := env.Body.Fault; f != nil {
		code := f.Detail.ResponseCode
		if code == "" {
			_, code, _ = strings.Cut(f.Code, ":")
			if code == "" {
				code = f.Code
			}
		}
		return &env, &ResponseError{Code: code, Message: firstLine(f.String)}
	}
	if env.Body.Response.XMLName.Local == "" {
		return nil, errors.New("EWS: response without a body element")
	}
	return &env, nil
}

// err returns the message's error, nil when it succeeded (Success, or a
// Warning, which EWS uses for partial but valid answers).
func (m *responseMessage) err() error {
	if m.ResponseClass != "Error" {
		return nil
	}
	e := &ResponseError{Code: m.ResponseCode, Message: firstLine(m.MessageText)}
	for _, v := range m.MessageXML.Values {
		if v.Name == "BackOffMilliseconds" {
			fmt.Sscan(strings.TrimSpace(v.Value), &e.BackOff)
		}
	}
	return e
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// escape returns s as XML character data.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
