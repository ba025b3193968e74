package corpus

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Options configure Generate. The zero value gives a small corpus.
type Options struct {
	Seed     uint64 // the same seed (and options) gives the same corpus, byte for byte
	Messages int    // number of messages; default 100
	// Folders is the number of user folders besides INBOX and the
	// special-use folders (at most len of the built-in pool, 16); default 12,
	// negative means none.
	Folders int
	// MaxSize caps the size of ordinary messages (most are a few KB, sizes
	// are log-distributed from MinSize); default 1 MiB.
	MaxSize int64
	// HugeSize, when > 0, adds one message of about that size (e.g. 25<<20)
	// with a big binary attachment, in INBOX.
	HugeSize int64
	// Now is the reference time: every internal date lies up to ten years
	// before it. Default 2026-01-01T00:00:00Z (fixed, so a corpus does not
	// depend on the clock; Dovecot replaces dates more than 2 h in the future).
	Now time.Time
}

// MinSize is the size of the smallest messages, about 1 KB.
const MinSize = 1 << 10

// Folder is a mailbox of the corpus. Name is UTF-8 with "/" as the
// hierarchy separator; the IMAP client encodes it (modified UTF-7).
type Folder struct {
	Name       string
	SpecialUse string // `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive` or ""
	Subscribed bool
}

// Message is one generated message. Its bytes are not kept in memory:
// Open and Bytes regenerate them from the seed.
type Message struct {
	Index        int
	Folder       string
	Flags        []string // system flags (`\Seen` …) and keywords, sorted
	InternalDate time.Time
	Size         int64
	SHA256       [32]byte
	MessageID    string // without angle brackets
	Subject      string // decoded
	Kind         Kind
	// DuplicateOf is the index of the message with the same bytes (in
	// another folder), or -1.
	DuplicateOf int

	spec *spec
}

// Kind is the MIME structure of a message.
type Kind int

// The kinds of message structure.
const (
	Plain       Kind = iota // text/plain (quoted-printable, 8bit, 7bit or base64)
	Alternative             // multipart/alternative: text + html
	Mixed                   // multipart/mixed: text or alternative + 1..3 binary attachments
	Forward                 // multipart/mixed with a message/rfc822 part
	Huge                    // multipart/mixed with one attachment of Options.HugeSize
)

func (k Kind) String() string {
	switch k {
	case Plain:
		return "plain"
	case Alternative:
		return "alternative"
	case Mixed:
		return "mixed"
	case Forward:
		return "forward"
	case Huge:
		return "huge"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Open returns a reader of the message's raw bytes (CRLF line ends).
func (m *Message) Open() io.Reader { return m.spec.reader() }

// Bytes returns the message's raw bytes.
func (m *Message) Bytes() []byte {
	b, _ := io.ReadAll(m.Open())
	return b
}

// HasFlag reports whether the message carries the flag or keyword.
func (m *Message) HasFlag(f string) bool { return slices.Contains(m.Flags, f) }

// Corpus is a generated set of folders and messages.
type Corpus struct {
	Options  Options
	Folders  []Folder
	Messages []*Message
}

// Size returns the total size of all messages in bytes.
func (c *Corpus) Size() int64 {
	var n int64
	for _, m := range c.Messages {
		n += m.Size
	}
	return n
}

// InFolder returns the messages of one folder, in corpus order.
func (c *Corpus) InFolder(name string) []*Message {
	var out []*Message
	for _, m := range c.Messages {
		if m.Folder == name {
			out = append(out, m)
		}
	}
	return out
}

var specialFolders = []Folder{
	{"INBOX", "", true},
	{"Sent", `\Sent`, true},
	{"Drafts", `\Drafts`, true},
	{"Trash", `\Trash`, true},
	{"Junk", `\Junk`, true},
	{"Archive", `\Archive`, true},
}

// Generate builds a corpus from the options. It reads every message once
// (to know its size and SHA-256) without keeping the bytes.
func Generate(o Options) *Corpus {
	if o.Messages == 0 {
		o.Messages = 100
	}
	if o.Folders == 0 {
		o.Folders = 12
	}
	if o.Folders > len(userFolders) {
		o.Folders = len(userFolders)
	}
	if o.MaxSize <= 0 {
		o.MaxSize = 1 << 20
	}
	if o.MaxSize < MinSize*2 {
		o.MaxSize = MinSize * 2
	}
	if o.Now.IsZero() {
		o.Now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x636f72707573))
	c := &Corpus{Options: o}

	c.Folders = append(c.Folders, specialFolders...)
	if o.Folders > 0 {
		pool := slices.Clone(userFolders)
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		pool = pool[:o.Folders]
		slices.Sort(pool)
		for i, name := range pool {
			// every fourth user folder is unsubscribed
			c.Folders = append(c.Folders, Folder{Name: name, Subscribed: i%4 != 3})
		}
	}

	// folder weights: INBOX and Sent are big, Drafts/Junk/Trash small
	weights := make([]int, len(c.Folders))
	for i, f := range c.Folders {
		switch f.Name {
		case "INBOX":
			weights[i] = 30
		case "Sent":
			weights[i] = 12
		case "Archive":
			weights[i] = 8
		case "Drafts", "Junk", "Trash":
			weights[i] = 3
		default:
			weights[i] = 5
		}
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	pickFolder := func() string {
		n := rng.IntN(total)
		for i, w := range weights {
			if n < w {
				return c.Folders[i].Name
			}
			n -= w
		}
		return "INBOX"
	}

	hugeAt := -1
	if o.HugeSize > 0 && o.Messages > 0 {
		hugeAt = rng.IntN(o.Messages)
	}
	keywordsByFolder := map[string][]string{}
	for i := range o.Messages {
		m := &Message{Index: i, DuplicateOf: -1}
		m.Folder = pickFolder()
		if i == hugeAt {
			m.Folder = "INBOX"
		}
		// ~2% exact duplicates of an earlier message, in another folder
		if i != hugeAt && i > 10 && rng.IntN(50) == 0 {
			j := rng.IntN(i)
			orig := c.Messages[j]
			for orig.DuplicateOf >= 0 {
				orig = c.Messages[orig.DuplicateOf]
			}
			if orig.Kind != Huge {
				for m.Folder == orig.Folder {
					m.Folder = pickFolder()
				}
				m.DuplicateOf = orig.Index
				m.spec = orig.spec
				m.Kind, m.MessageID, m.Subject = orig.Kind, orig.MessageID, orig.Subject
			}
		}
		m.InternalDate = o.Now.Add(-time.Duration(rng.Int64N(int64(10 * 365 * 24 * time.Hour)))).Truncate(time.Second)
		if m.spec == nil {
			m.spec = newSpec(rng, o, c, i, i == hugeAt)
			m.Kind, m.MessageID, m.Subject = m.spec.kind, m.spec.messageID, m.spec.subject
			// the Date header is a little before the internal date
			m.spec.date = m.InternalDate.Add(-time.Duration(rng.IntN(3600)) * time.Second)
		}
		m.Flags = pickFlags(rng, m.Folder, keywordsByFolder)
		c.Messages = append(c.Messages, m)
	}
	for _, m := range c.Messages {
		if m.DuplicateOf >= 0 {
			orig := c.Messages[m.DuplicateOf]
			m.Size, m.SHA256 = orig.Size, orig.SHA256
			continue
		}
		h := sha256.New()
		n, _ := io.Copy(h, m.Open())
		m.Size = n
		copy(m.SHA256[:], h.Sum(nil))
	}
	return c
}

// pickFlags draws flags that fit the folder; keywords come from a per-folder
// set of at most 8 (Dovecot's Maildir allows 26 per folder; all ASCII).
func pickFlags(rng *rand.Rand, folder string, byFolder map[string][]string) []string {
	var f []string
	switch folder {
	case "Drafts":
		f = append(f, `\Draft`)
		if rng.IntN(2) == 0 {
			f = append(f, `\Seen`)
		}
	case "Sent":
		f = append(f, `\Seen`)
	case "Junk":
		if rng.IntN(3) == 0 {
			f = append(f, `\Seen`)
		}
		if rng.IntN(2) == 0 {
			f = append(f, "$Junk")
		}
	default:
		if rng.IntN(10) < 7 {
			f = append(f, `\Seen`)
		}
		if rng.IntN(10) == 0 {
			f = append(f, `\Flagged`)
		}
		if rng.IntN(7) == 0 {
			f = append(f, `\Answered`)
		}
		if rng.IntN(20) == 0 {
			f = append(f, "$Forwarded")
		}
	}
	if rng.IntN(8) == 0 {
		kws, ok := byFolder[folder]
		if !ok {
			start := rng.IntN(len(keywordPool))
			for k := range 2 + rng.IntN(7) {
				kws = append(kws, keywordPool[(start+k)%len(keywordPool)])
			}
			byFolder[folder] = kws
		}
		f = append(f, kws[rng.IntN(len(kws))])
		if rng.IntN(4) == 0 {
			f = append(f, kws[rng.IntN(len(kws))])
		}
	}
	slices.Sort(f)
	return slices.Compact(f)
}

// targetSize draws a size from MinSize to max, skewed to small messages:
// MinSize * (max/MinSize)^(u^3) — median ≈ 2.4 KB for max = 1 MiB.
func targetSize(rng *rand.Rand, max int64) int64 {
	u := rng.Float64()
	return int64(float64(MinSize) * math.Pow(float64(max)/MinSize, u*u*u))
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func words(rng *rand.Rand, lang []string, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		if rng.IntN(12) == 0 {
			b.WriteString(pick(rng, wordsEmoji))
		} else {
			b.WriteString(pick(rng, lang))
		}
	}
	return b.String()
}
