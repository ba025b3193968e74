package corpus

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
	"unicode/utf8"
)

// header encodings of names and subjects
const (
	encASCII  = iota // plain ASCII (quoted where needed)
	encB             // =?UTF-8?B?…?=
	encQ             // =?UTF-8?Q?…?=
	encLatin1        // =?ISO-8859-1?Q?…?=
	encRaw8          // raw UTF-8 bytes in the header (RFC 6532 style, "8-bit headers")
)

// body transfer encodings of text parts
const (
	teQP       = iota // quoted-printable UTF-8
	te8bit            // raw UTF-8
	te7bit            // ASCII only
	teBase64          // base64 UTF-8
	teLatin1QP        // quoted-printable ISO-8859-1
)

type attSpec struct {
	kind int   // index into attachmentKinds
	raw  int64 // raw (decoded) size
	seed uint64
}

// spec is everything needed to regenerate a message's bytes.
type spec struct {
	idx       int
	seed      uint64
	kind      Kind
	from, to  int // indexes into people
	cc        int // -1: none
	nameEnc   int
	subject   string
	subjEnc   int
	messageID string
	inReplyTo string
	refs      []string
	listID    bool
	date      time.Time
	zone      *time.Location
	lang      int
	textLen   int // approximate characters of text
	textEnc   int
	atts      []attSpec
}

var zones = []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", 2*3600),
	time.FixedZone("", -5*3600), time.FixedZone("", 9*3600), time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600)}

func newSpec(rng *rand.Rand, o Options, c *Corpus, idx int, huge bool) *spec {
	s := &spec{idx: idx, seed: rng.Uint64(), cc: -1}
	s.messageID = fmt.Sprintf("%016x.%d@corpus.example.test", s.seed, idx)
	s.from, s.to = rng.IntN(len(people)), rng.IntN(len(people))
	if rng.IntN(4) == 0 {
		s.cc = rng.IntN(len(people))
	}
	s.zone = pick(rng, zones)
	s.lang = rng.IntN(len(languages))
	s.listID = rng.IntN(10) == 0
	s.textEnc = pick(rng, []int{teQP, teQP, teQP, te8bit, te8bit, te7bit, teBase64, teLatin1QP})
	s.nameEnc = pick(rng, []int{encASCII, encB, encB, encQ, encLatin1})
	s.subjEnc = pick(rng, []int{encASCII, encB, encB, encQ, encQ, encLatin1})
	if s.textEnc == te8bit && rng.IntN(2) == 0 {
		s.nameEnc, s.subjEnc = encRaw8, encRaw8
	}
	topic := pick(rng, wordsEN)
	topic = strings.ToUpper(topic[:1]) + topic[1:]
	s.subject = topic + ": " + words(rng, languages[s.lang], 2+rng.IntN(8))
	if s.subjEnc == encLatin1 || s.subjEnc == encASCII {
		s.subject = topic + ": " + words(rng, wordsDE, 1+rng.IntN(5))
	}
	if rng.IntN(20) == 0 { // a long subject: several encoded-words, folded
		s.subject += " — " + words(rng, languages[s.lang], 20)
	}
	// threads: a fifth of the messages answer an earlier one
	if idx > 0 && rng.IntN(5) == 0 {
		p := c.Messages[rng.IntN(idx)].spec
		s.subject = "Re: " + strings.TrimPrefix(p.subject, "Re: ")
		s.subjEnc = p.subjEnc
		s.inReplyTo = p.messageID
		s.refs = append(append([]string{}, p.refs...), p.messageID)
		if len(s.refs) > 5 {
			s.refs = s.refs[len(s.refs)-5:]
		}
	}
	if s.subjEnc == encASCII || s.subjEnc == encLatin1 {
		s.subject = toLatin1Safe(s.subject, s.subjEnc == encASCII)
	}

	size := targetSize(rng, o.MaxSize)
	switch n := rng.IntN(20); {
	case huge:
		s.kind = Huge
	case n < 8:
		s.kind = Plain
	case n < 12:
		s.kind = Alternative
	case n < 19:
		s.kind = Mixed
	default:
		s.kind = Forward
	}
	const maxText = 96 << 10
	if (s.kind == Plain || s.kind == Alternative) && size > maxText {
		s.kind = Mixed
	}
	const overhead = 900
	switch s.kind {
	case Plain:
		s.textLen = int(max(size-overhead, 800))
	case Alternative:
		s.textLen = int(max((size-overhead)/3, 100))
	case Mixed, Forward:
		s.textLen = 100 + rng.IntN(3000)
		rest := size - overhead - int64(s.textLen) - 600
		if s.kind == Forward {
			rest -= 1500
		}
		if rest < 200 {
			rest = 200
		}
		raw := rest * 57 / 78
		n := 1 + rng.IntN(3)
		for i := range n {
			part := raw
			if i < n-1 {
				part = raw * 7 / 10
				raw -= part
			}
			s.atts = append(s.atts, attSpec{kind: rng.IntN(len(attachmentKinds)), raw: max(part, 16), seed: rng.Uint64()})
		}
	case Huge:
		s.textLen = 500
		raw := max(o.HugeSize-3000, 1024) * 57 / 78
		s.atts = []attSpec{{kind: 4, raw: raw, seed: rng.Uint64()}}
	}
	return s
}

// toLatin1Safe replaces characters that ISO-8859-1 (or ASCII) cannot carry.
func toLatin1Safe(s string, ascii bool) string {
	limit := rune(0xff)
	if ascii {
		limit = 0x7e
	}
	var b strings.Builder
	for _, r := range s {
		if r > limit || r < 0x20 && r != '\r' && r != '\n' && r != '\t' {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// reader assembles the message: small parts are built in memory, attachments
// are streamed.
func (s *spec) reader() io.Reader {
	rng := rand.New(rand.NewPCG(s.seed, uint64(s.idx)))
	var parts []io.Reader
	var h bytes.Buffer
	s.writeHeader(&h)
	switch s.kind {
	case Plain:
		s.writeTextPart(&h, rng, true)
		return io.MultiReader(&h)
	case Alternative:
		h.WriteString("Content-Type: multipart/alternative; boundary=\"" + s.boundary(0) + "\"\r\n\r\n")
		s.writeAlternative(&h, rng, s.boundary(0))
		return io.MultiReader(&h)
	}
	b := s.boundary(0)
	h.WriteString("Content-Type: multipart/mixed; boundary=\"" + b + "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n")
	h.WriteString("--" + b + "\r\n")
	if rng.IntN(2) == 0 {
		h.WriteString("Content-Type: multipart/alternative; boundary=\"" + s.boundary(1) + "\"\r\n\r\n")
		s.writeAlternative(&h, rng, s.boundary(1))
	} else {
		s.writeTextPart(&h, rng, false)
	}
	if s.kind == Forward {
		h.WriteString("\r\n--" + b + "\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n")
		inner := &spec{idx: s.idx, seed: s.seed ^ 0x5eed, kind: Plain, from: (s.from + 3) % len(people),
			to: s.from, cc: -1, nameEnc: encB, subject: "Fwd: " + words(rng, languages[s.lang], 4), subjEnc: encB,
			messageID: fmt.Sprintf("fwd.%016x@corpus.example.test", s.seed), date: s.date.Add(-48 * time.Hour),
			zone: s.zone, lang: s.lang, textLen: 200 + rng.IntN(800), textEnc: te8bit}
		inner.writeHeader(&h)
		inner.writeTextPart(&h, rand.New(rand.NewPCG(inner.seed, 1)), true)
	}
	parts = append(parts, &h)
	for i, a := range s.atts {
		k := attachmentKinds[a.kind]
		var ah bytes.Buffer
		ah.WriteString("\r\n--" + b + "\r\n")
		ah.WriteString("Content-Type: " + k.Type + "; " + fileParam("name", k.Name) + "\r\n")
		ah.WriteString("Content-Disposition: attachment; " + fileParam("filename", k.Name) + "\r\n")
		ah.WriteString("Content-Transfer-Encoding: base64\r\n")
		if i == 0 && rng.IntN(3) == 0 {
			ah.WriteString("Content-ID: <att" + fmt.Sprint(i) + "." + s.messageID + ">\r\n")
		}
		ah.WriteString("\r\n")
		parts = append(parts, &ah, newB64Lines(rawStream(k.Magic, a.raw, a.seed)))
	}
	parts = append(parts, strings.NewReader("\r\n--"+b+"--\r\n"))
	return io.MultiReader(parts...)
}

func (s *spec) boundary(n int) string {
	return fmt.Sprintf("----=_Part_%d_%d.%x", n, s.idx, s.seed&0xffffff)
}

func (s *spec) writeHeader(h *bytes.Buffer) {
	h.WriteString("Return-Path: <" + people[s.from].Addr + ">\r\n")
	h.WriteString("Received: from mx.example.net (mx.example.net [192.0.2.25])\r\n\tby mail.example.test with ESMTPS id " +
		fmt.Sprintf("%x", s.seed&0xffffffff) + "\r\n\tfor <" + people[s.to].Addr + ">; " + s.date.In(s.zone).Format(time.RFC1123Z) + "\r\n")
	h.WriteString("Message-ID: <" + s.messageID + ">\r\n")
	h.WriteString("Date: " + s.date.In(s.zone).Format(time.RFC1123Z) + "\r\n")
	h.WriteString("From: " + s.address(s.from) + "\r\n")
	h.WriteString("To: " + s.address(s.to) + "\r\n")
	if s.cc >= 0 {
		h.WriteString("Cc: " + s.address(s.cc) + ", " + s.address((s.cc+1)%len(people)) + "\r\n")
	}
	h.WriteString("Subject: " + encodeHeader(s.subject, s.subjEnc) + "\r\n")
	if s.inReplyTo != "" {
		h.WriteString("In-Reply-To: <" + s.inReplyTo + ">\r\n")
		h.WriteString("References: <" + strings.Join(s.refs, ">\r\n <") + ">\r\n")
	}
	if s.listID {
		h.WriteString("List-Id: Go programming <golang-nuts.googlegroups.example>\r\nList-Unsubscribe: <mailto:golang-nuts+unsubscribe@googlegroups.example>\r\n")
	}
	h.WriteString("X-Corpus: " + fmt.Sprintf("%d %016x", s.idx, s.seed) + "\r\n")
	h.WriteString("MIME-Version: 1.0\r\n")
}

func (s *spec) address(i int) string {
	p := people[i]
	if p.Name == "" {
		return p.Addr
	}
	return encodeName(p.Name, s.nameEnc) + " <" + p.Addr + ">"
}

// encodeName encodes a display name; ASCII names are quoted when needed.
func encodeName(name string, enc int) string {
	ascii := true
	for _, r := range name {
		if r >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		if strings.ContainsAny(name, `"(),.:;<>@[\]`) || strings.Contains(name, "'") {
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
		}
		return name
	}
	if enc == encASCII || enc == encLatin1 && toLatin1Safe(name, false) != name {
		enc = encB
	}
	return encodeHeader(name, enc)
}

// encodeHeader encodes unstructured header text; long encoded text is folded
// between encoded-words.
func encodeHeader(v string, enc int) string {
	var out string
	switch enc {
	case encASCII:
		out = toLatin1Safe(v, true)
	case encB:
		out = mime.BEncoding.Encode("UTF-8", v)
	case encQ:
		out = mime.QEncoding.Encode("UTF-8", v)
	case encLatin1:
		out = latin1Q(toLatin1Safe(v, false))
	case encRaw8:
		return v
	}
	if len(out) > 76 {
		out = strings.ReplaceAll(out, "?= =?", "?=\r\n =?")
	}
	return out
}

// latin1Q encodes s (runes <= 0xff) as ISO-8859-1 Q encoded-words of at most 75 bytes.
func latin1Q(s string) string {
	var words []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			words = append(words, "=?ISO-8859-1?Q?"+cur.String()+"?=")
			cur.Reset()
		}
	}
	for _, r := range s {
		var e string
		switch {
		case r == ' ':
			e = "_"
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!*+-/", r)):
			e = string(r)
		default:
			e = fmt.Sprintf("=%02X", byte(r))
		}
		if cur.Len()+len(e) > 75-len("=?ISO-8859-1?Q??=") {
			flush()
		}
		cur.WriteString(e)
	}
	flush()
	return strings.Join(words, " ")
}

// text makes about n characters of wrapped text in the message's language.
func (s *spec) text(rng *rand.Rand, n int, latin1 bool) string {
	lang := languages[s.lang]
	if latin1 {
		lang = append(append([]string{}, wordsDE...), wordsEN...)
	}
	var b strings.Builder
	b.WriteString("Hallo,\r\n\r\n")
	line := 0
	for b.Len() < n {
		w := pick(rng, lang)
		if rng.IntN(15) == 0 && !latin1 {
			w = pick(rng, wordsEmoji)
		}
		if rng.IntN(40) == 0 {
			w = pick(rng, wordsEN)
		}
		wl := utf8.RuneCountInString(w)
		if line+wl+1 > 72 {
			b.WriteString("\r\n")
			line = 0
			if rng.IntN(6) == 0 {
				b.WriteString("\r\n")
			}
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += wl
	}
	b.WriteString("\r\n\r\n-- \r\n" + people[s.from].Name + "\r\n")
	return b.String()
}

// writeTextPart writes Content-Type and Content-Transfer-Encoding headers,
// the blank line and the body.
func (s *spec) writeTextPart(h *bytes.Buffer, rng *rand.Rand, inHeader bool) {
	_ = inHeader
	switch s.textEnc {
	case teQP:
		h.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		writeQP(h, []byte(s.text(rng, s.textLen/2, false)))
	case te8bit:
		h.WriteString("Content-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		h.WriteString(s.text(rng, s.textLen, false))
	case te7bit:
		h.WriteString("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
		h.WriteString(toLatin1Safe(s.text(rng, s.textLen, true), true))
	case teBase64:
		h.WriteString("Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		io.Copy(h, newB64Lines(strings.NewReader(s.text(rng, s.textLen*3/4, false))))
	case teLatin1QP:
		h.WriteString("Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		t := toLatin1Safe(s.text(rng, s.textLen, true), false)
		lat := make([]byte, 0, len(t))
		for _, r := range t {
			lat = append(lat, byte(r))
		}
		writeQP(h, lat)
	}
}

func (s *spec) writeAlternative(h *bytes.Buffer, rng *rand.Rand, b string) {
	h.WriteString("--" + b + "\r\n")
	txt := s.text(rng, s.textLen, false)
	h.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	writeQP(h, []byte(txt))
	h.WriteString("\r\n--" + b + "\r\n")
	h.WriteString("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	html := "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head><body>\r\n<p>" +
		strings.ReplaceAll(strings.ReplaceAll(txt, "&", "&amp;"), "\r\n\r\n", "</p>\r\n<p>") + "</p>\r\n</body></html>\r\n"
	writeQP(h, []byte(html))
	h.WriteString("\r\n--" + b + "--\r\n")
}

func writeQP(h *bytes.Buffer, b []byte) {
	w := quotedprintable.NewWriter(h)
	w.Write(b)
	w.Close()
}

// fileParam renders a file name parameter: plain when ASCII, else RFC 2231.
func fileParam(key, name string) string {
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		return key + "=\"" + name + "\""
	}
	return mime.FormatMediaType("x/x", map[string]string{key: name})[len("x/x; "):]
}

// rawStream is magic followed by pseudo-random bytes, n bytes in all.
func rawStream(magic string, n int64, seed uint64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	copy(key[8:], "mailmig corpus attachment")
	rest := n - int64(len(magic))
	if rest < 0 {
		return strings.NewReader(magic[:n])
	}
	return io.MultiReader(strings.NewReader(magic), io.LimitReader(rand.NewChaCha8(key), rest))
}

// b64Lines encodes a stream as base64 in lines of 76 characters plus CRLF.
type b64Lines struct {
	src io.Reader
	in  []byte
	out []byte
	eof bool
}

func newB64Lines(src io.Reader) *b64Lines {
	return &b64Lines{src: src, in: make([]byte, 57*256)}
}

func (r *b64Lines) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		n, err := io.ReadFull(r.src, r.in)
		if err != nil {
			r.eof = true
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				return 0, err
			}
		}
		r.out = r.out[:0]
		for off := 0; off < n; off += 57 {
			end := min(off+57, n)
			r.out = base64.StdEncoding.AppendEncode(r.out, r.in[off:end])
			r.out = append(r.out, '\r', '\n')
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}
