package corpus

import (
	"encoding/base64"
	"math/rand"
	"strings"
)

// FoldLine folds a vCard or iCalendar content line at 75 octets (RFC 6350
// 3.2) with CRLF and a space, as servers write long lines.
func FoldLine(line string) string {
	var b strings.Builder
	for len(line) > 75 {
		b.WriteString(line[:75] + "\r\n ")
		line = line[75:]
	}
	b.WriteString(line)
	return b.String()
}

// Photo returns n bytes of deterministic pseudo-random data as base64
// (375 KiB gives the corpus's 500 KB inline photo).
func Photo(n int) string {
	raw := make([]byte, n)
	rand.New(rand.NewSource(42)).Read(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

// ContactCard is one vCard of [Contacts].
type ContactCard struct {
	// Book is the address book and Name the resource name in it.
	Book, Name string
	// Body is the vCard as written to the source.
	Body string
	// What says which feature of the corpus the card carries.
	What string
}

// Contacts is the issue-12 contacts corpus: vCard 3.0 and 4.0, a 500 KB
// inline photo (vCard 3.0 ENCODING=b), groups (KIND:group with MEMBER and
// Apple's X-ADDRESSBOOKSERVER-KIND/-MEMBER), non-ASCII names, folded
// lines, and the properties a JSContact conversion maps one by one (ADR,
// TEL types, BDAY forms, ORG units, TITLE/ROLE, IMPP, URL, RELATED,
// CATEGORIES, Apple item groups with X-ABLabel, GENDER, X- properties),
// in two address books ("contacts" and "work"). The bytes are the same on
// every call.
func Contacts() []ContactCard {
	return []ContactCard{
		{"contacts", "mueller.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:mueller-1\r\nFN:Jürgen Müller-Lüdenscheidt\r\nN:Müller-Lüdenscheidt;Jürgen;;;\r\n" +
			"EMAIL;TYPE=INTERNET,HOME:juergen@example.test\r\nTEL;TYPE=CELL:+49 170 1234567\r\n" +
			FoldLine("NOTE:Ein sehr langer Hinweis über mehrere Zeilen\\, damit die Zeile gefaltet werden muss – äöü ß €.") + "\r\nEND:VCARD\r\n",
			"vCard 3.0, non-ASCII name, folded NOTE, TYPE list"},
		{"contacts", "photo.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:photo-1\r\nFN:Photo Person\r\nN:Person;Photo;;;\r\n" +
			FoldLine("PHOTO;ENCODING=b;TYPE=JPEG:"+Photo(375<<10)) + "\r\nEND:VCARD\r\n",
			"vCard 3.0 inline PHOTO of 500 KB"},
		{"contacts", "v4.vcf", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4e6b7c1a-0000-4000-8000-000000000004\r\nFN:Ἀθηνᾶ Παλλάς\r\nN:Παλλάς;Ἀθηνᾶ;;;\r\n" +
			"EMAIL;TYPE=work:athena@example.test\r\nEND:VCARD\r\n",
			"vCard 4.0, Greek name"},
		{"contacts", "full.vcf", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4e6b7c1a-0000-4000-8000-0000000000f1\r\nPRODID:-//mailmig//corpus//EN\r\nREV:20261201T101500Z\r\n" +
			"FN:Dr. María José García-López\r\nN:García-López;María,José;Ana;Dr.;PhD\r\nNICKNAME:Majo\r\n" +
			"BDAY:19850412\r\nANNIVERSARY:--0601\r\nGENDER:F\r\n" +
			"ADR;TYPE=home;PREF=1;LABEL=\"Calle Mayor 1\\n28013 Madrid\\nSpain\":;Piso 2;Calle Mayor 1;Madrid;;28013;Spain\r\n" +
			"ADR;TYPE=work:PO Box 7;;;Barcelona;Catalunya;08001;Spain\r\n" +
			"TEL;VALUE=uri;TYPE=voice,home:tel:+34-91-555-0100\r\nTEL;TYPE=fax,work;PREF=2:+34 93 555 0199\r\n" +
			"EMAIL;PREF=1:majo@example.test\r\nEMAIL;TYPE=work:m.garcia@corp.example\r\n" +
			"IMPP;PREF=1:xmpp:majo@example.test\r\nLANG;PREF=1:es\r\nLANG;PREF=2:en\r\n" +
			"TITLE:Directora de investigación\r\nROLE:Project Leader\r\nORG:Ejemplo S.A.;I+D;Laboratorio 3\r\n" +
			"URL;TYPE=work:https://corp.example/majo\r\nRELATED;TYPE=friend:urn:uuid:4e6b7c1a-0000-4000-8000-000000000004\r\n" +
			"CATEGORIES:familia,trabajo\r\nNOTE:Línea uno\\nLínea dos\\; con punto y coma\r\nX-MAILMIG-CUSTOM;X-PARAM=yes:kept as it came\r\nEND:VCARD\r\n",
			"vCard 4.0 with every mapped property"},
		{"contacts", "apple.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//macOS 14.0//EN\r\nN:Åström;Örjan;;;\r\nFN:Örjan Åström\r\n" +
			"item1.EMAIL;type=INTERNET;type=pref:orjan@example.test\r\nitem1.X-ABLabel:_$!<Other>!$_\r\n" +
			"BDAY;VALUE=date:1979-11-30\r\nTEL;type=CELL;type=VOICE;type=pref:+46 70 123 45 67\r\nX-ABUID:5C0A2D5E-1111-4F0B-9C0E-ABCDEF012345:ABPerson\r\n" +
			"END:VCARD\r\n",
			"vCard 3.0 as Apple writes it, without UID: item groups, X-ABLabel, TYPE=pref"},
		{"work", "group.vcf", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4e6b7c1a-0000-4000-8000-0000000000aa\r\nKIND:group\r\nFN:Team 東京\r\nN:Team 東京;;;;\r\n" +
			"MEMBER:urn:uuid:4e6b7c1a-0000-4000-8000-000000000004\r\nMEMBER:urn:uuid:4e6b7c1a-0000-4000-8000-0000000000f1\r\nEND:VCARD\r\n",
			"KIND:group with MEMBER, Japanese name"},
		{"work", "apple-group.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:apple-group-1\r\nFN:Familie\r\nN:Familie;;;;\r\nX-ADDRESSBOOKSERVER-KIND:group\r\n" +
			"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:mueller-1\r\nEND:VCARD\r\n",
			"Apple group (X-ADDRESSBOOKSERVER-KIND/-MEMBER)"},
		{"work", "zoe.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:zoe-1\r\nFN:Zoë Ñúñez\r\nN:Ñúñez;Zoë;;;\r\nORG:Ça va S.à r.l.\r\nEND:VCARD\r\n",
			"vCard 3.0, ORG with non-ASCII"},
	}
}
