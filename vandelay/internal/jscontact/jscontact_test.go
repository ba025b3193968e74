package jscontact

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/corpus"
)

func vcf(lines ...string) []byte {
	return []byte("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u1\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VCARD\r\n")
}

func vcf3(lines ...string) []byte {
	return []byte("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u1\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VCARD\r\n")
}

func compact(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// TestFromVCard converts one property at a time (RFC 9555 section 2) and
// checks the JSContact member it becomes.
func TestFromVCard(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		key  string // member of the card
		want string // its JSON
	}{
		{"FN", vcf("FN:Jürgen Müller"), "name", `{"full":"Jürgen Müller"}`},
		{"N with several given names", vcf("N:García-López;María,José;;Dr.;"), "name",
			`{"components":[{"kind":"surname","value":"García-López"},{"kind":"given","value":"María"},{"kind":"given","value":"José"},{"kind":"title","value":"Dr."}]}`},
		{"N with secondary surname and generation (RFC 9554)", vcf("N:Pérez;Ana;;;;Gómez;Jr."), "name",
			`{"components":[{"kind":"surname","value":"Pérez"},{"kind":"given","value":"Ana"},{"kind":"surname2","value":"Gómez"},{"kind":"generation","value":"Jr."}]}`},
		{"KIND", vcf("KIND:Group"), "kind", `"group"`},
		{"Apple group kind", vcf3("X-ADDRESSBOOKSERVER-KIND:group"), "kind", `"group"`},
		{"MEMBER", vcf("MEMBER:urn:uuid:a", "MEMBER:urn:uuid:b"), "members", `{"urn:uuid:a":true,"urn:uuid:b":true}`},
		{"Apple members", vcf3("X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:a"), "members", `{"urn:uuid:a":true}`},
		{"EMAIL with contexts and pref", vcf("EMAIL;TYPE=work;PREF=1:a@example.test"), "emails",
			`{"e1":{"address":"a@example.test","contexts":{"work":true},"pref":1}}`},
		{"EMAIL 3.0 TYPE=INTERNET,HOME,PREF", vcf3("EMAIL;TYPE=INTERNET,HOME,PREF:a@example.test"), "emails",
			`{"e1":{"address":"a@example.test","contexts":{"private":true},"pref":1,"vCardParams":{"type":"internet"}}}`},
		{"EMAIL with PROP-ID", vcf("EMAIL;PROP-ID=home1:a@example.test"), "emails", `{"home1":{"address":"a@example.test"}}`},
		{"TEL features", vcf("TEL;TYPE=cell,text,home:+49 170 1"), "phones",
			`{"p1":{"contexts":{"private":true},"features":{"mobile":true,"text":true},"number":"+49 170 1"}}`},
		{"TEL uri", vcf("TEL;VALUE=uri:tel:+1-555-0100"), "phones", `{"p1":{"number":"tel:+1-555-0100","vCardParams":{"value":"uri"}}}`},
		{"ADR with LABEL and CC", vcf(`ADR;TYPE=home;CC=ES;LABEL="Calle 1\n28013 Madrid":;Piso 2;Calle 1;Madrid;;28013;Spain`), "addresses",
			`{"a1":{"components":[{"kind":"apartment","value":"Piso 2"},{"kind":"name","value":"Calle 1"},{"kind":"locality","value":"Madrid"},{"kind":"postcode","value":"28013"},{"kind":"country","value":"Spain"}],"contexts":{"private":true},"countryCode":"ES","full":"Calle 1\n28013 Madrid"}}`},
		{"PHOTO 3.0 inline", vcf3("PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ"), "media", `{"m1":{"kind":"photo","uri":"data:image/jpeg;base64,/9j/4AAQ"}}`},
		{"PHOTO 4.0 data URI", vcf("PHOTO:data:image/png;base64,iVBORw0K"), "media", `{"m1":{"kind":"photo","uri":"data:image/png;base64,iVBORw0K"}}`},
		{"LOGO by URL", vcf("LOGO;MEDIATYPE=image/svg+xml:https://example.test/logo.svg"), "media",
			`{"m1":{"kind":"logo","mediaType":"image/svg+xml","uri":"https://example.test/logo.svg"}}`},
		{"BDAY basic", vcf("BDAY:19850412"), "anniversaries", `{"d1":{"date":{"@type":"PartialDate","day":12,"month":4,"year":1985},"kind":"birth"}}`},
		{"BDAY 3.0 extended", vcf3("BDAY:1979-11-30"), "anniversaries", `{"d1":{"date":{"@type":"PartialDate","day":30,"month":11,"year":1979},"kind":"birth"}}`},
		{"ANNIVERSARY without year", vcf("ANNIVERSARY:--0601"), "anniversaries", `{"d1":{"date":{"@type":"PartialDate","day":1,"month":6},"kind":"wedding"}}`},
		{"DEATHDATE timestamp", vcf("DEATHDATE:20200102T030405Z"), "anniversaries", `{"d1":{"date":{"@type":"Timestamp","utc":"2020-01-02T03:04:05Z"},"kind":"death"}}`},
		{"BDAY as text stays a vCard property", vcf("BDAY;VALUE=text:circa 1800"), "vCardProps", `[["bday",{"value":"text"},"unknown","circa 1800"]]`},
		{"ORG with units", vcf("ORG:ACME;Research;Lab 3"), "organizations", `{"o1":{"name":"ACME","units":[{"name":"Research"},{"name":"Lab 3"}]}}`},
		{"TITLE and ROLE", vcf("TITLE:Boss", "ROLE:Novelist"), "titles", `{"t1":{"kind":"role","name":"Novelist"},"t2":{"kind":"title","name":"Boss"}}`},
		{"NICKNAME", vcf("NICKNAME:Majo"), "nicknames", `{"n1":{"name":"Majo"}}`},
		{"NOTE escapes", vcf(`NOTE:a\nb\, c\; d`), "notes", `{"x1":{"note":"a\nb, c; d"}}`},
		{"CATEGORIES", vcf("CATEGORIES:a,b", "CATEGORIES:c"), "keywords", `{"a":true,"b":true,"c":true}`},
		{"RELATED", vcf("RELATED;TYPE=friend,co-worker:urn:uuid:x"), "relatedTo", `{"urn:uuid:x":{"relation":{"co-worker":true,"friend":true}}}`},
		{"IMPP", vcf("IMPP;PREF=1:xmpp:a@example.test"), "onlineServices", `{"s1":{"pref":1,"uri":"xmpp:a@example.test","vCardName":"impp"}}`},
		{"SOCIALPROFILE", vcf("SOCIALPROFILE;SERVICE-TYPE=Mastodon:https://example.social/@a"), "onlineServices",
			`{"s1":{"service":"Mastodon","uri":"https://example.social/@a"}}`},
		{"LANG", vcf("LANG;PREF=2:en"), "preferredLanguages", `{"l1":{"language":"en","pref":2}}`},
		{"URL", vcf("URL;TYPE=work:https://example.test/"), "links", `{"u1":{"contexts":{"work":true},"uri":"https://example.test/"}}`},
		{"KEY", vcf("KEY:https://example.test/key.asc"), "cryptoKeys", `{"k1":{"uri":"https://example.test/key.asc"}}`},
		{"CALURI and FBURL", vcf("CALURI:https://example.test/cal", "FBURL:https://example.test/fb"), "calendars",
			`{"c1":{"kind":"calendar","uri":"https://example.test/cal"},"c2":{"kind":"freeBusy","uri":"https://example.test/fb"}}`},
		{"CALADRURI", vcf("CALADRURI:mailto:a@example.test"), "schedulingAddresses", `{"r1":{"uri":"mailto:a@example.test"}}`},
		{"SOURCE", vcf("SOURCE:https://example.test/a.vcf"), "directories", `{"y1":{"kind":"entry","uri":"https://example.test/a.vcf"}}`},
		{"REV", vcf("REV:20261201T101500Z"), "updated", `"2026-12-01T10:15:00Z"`},
		{"PRODID", vcf("PRODID:-//Apple Inc.//macOS 14.0//EN"), "prodId", `"-//Apple Inc.//macOS 14.0//EN"`},
		{"Apple item group", vcf3("item1.EMAIL;type=INTERNET:a@example.test", "item1.X-ABLabel:_$!<Other>!$_"), "vCardProps",
			`[["x-ablabel",{"group":"item1"},"unknown","_$!<Other>!$_"]]`},
		{"unknown properties and GENDER", vcf("GENDER:F", "X-CUSTOM;X-P=1:v\\;w"), "vCardProps",
			`[["gender",{},"unknown","F"],["x-custom",{"x-p":"1"},"unknown","v\\;w"]]`},
		{"CHARSET is dropped", vcf3("FN;CHARSET=UTF-8:Zoë"), "name", `{"full":"Zoë"}`},
		{"JSPROP", vcf(`JSPROP;JSPTR=speakToAs:{"grammaticalGender":"feminine"}`), "speakToAs", `{"grammaticalGender":"feminine"}`},
		{"JSPROP below a map entry", vcf("EMAIL;PROP-ID=k:a@example.test", `JSPROP;JSPTR="emails/k/label":"Büro"`), "emails", `{"k":{"address":"a@example.test","label":"Büro"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromVCard(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := compact(t, c[tc.key]); got != tc.want {
				t.Errorf("%s:\n got %s\nwant %s", tc.key, got, tc.want)
			}
			if c["@type"] != "Card" || c["version"] != "1.0" || c["uid"] != "u1" {
				t.Errorf("card frame: %v %v %v", c["@type"], c["version"], c["uid"])
			}
		})
	}
}

// TestToVCard converts JSContact cards (the examples of RFC 9553) to
// vCard 4.0 lines.
func TestToVCard(t *testing.T) {
	for _, tc := range []struct {
		name string
		card string
		want []string // lines that must be present (unfolded)
	}{
		{"RFC 9553 1.2 name and emails", `{"@type":"Card","version":"1.0","uid":"22B2C7DF-9120-4969-8460-05956FE6B065","kind":"individual",
			"name":{"components":[{"kind":"given","value":"John"},{"kind":"surname","value":"Doe"}],"isOrdered":true}}`,
			[]string{"UID:22B2C7DF-9120-4969-8460-05956FE6B065", "KIND:individual", "N:Doe;John;;;", `JSPROP;JSPTR=name/isOrdered:true`}},
		{"RFC 9553 2.3.1 emails", `{"@type":"Card","version":"1.0","uid":"u","emails":{"e1":{"contexts":{"work":true},"address":"jqpublic@xyz.example.com"},
			"e2":{"address":"jane_doe@example.com","pref":1}}}`,
			[]string{"EMAIL;TYPE=work:jqpublic@xyz.example.com", "EMAIL;PREF=1:jane_doe@example.com"}},
		{"RFC 9553 2.3.3 phones", `{"@type":"Card","version":"1.0","uid":"u","phones":{"tel0":{"contexts":{"private":true},"features":{"voice":true},"number":"tel:+1-555-555-5555;ext=5555"},
			"tel3":{"contexts":{"work":true},"number":"tel:+1-201-555-0123"}}}`,
			[]string{"TEL;PROP-ID=tel0;TYPE=home,voice:tel:+1-555-555-5555;ext=5555", "TEL;PROP-ID=tel3;TYPE=work:tel:+1-201-555-0123"}},
		{"RFC 9553 2.1.9 group members", `{"@type":"Card","version":"1.0","kind":"group","uid":"urn:uuid:ab4310aa-fa43-11e9-8f0b-362b9e155667",
			"name":{"full":"The Doe family"},"members":{"urn:uuid:03a0e51f-d1aa-4385-8a53-e29025acd8af":true,"urn:uuid:b8767877-b4a1-4c70-9acc-505d3819e519":true}}`,
			[]string{"KIND:group", "FN:The Doe family", "MEMBER:urn:uuid:03a0e51f-d1aa-4385-8a53-e29025acd8af", "MEMBER:urn:uuid:b8767877-b4a1-4c70-9acc-505d3819e519"}},
		{"RFC 9553 2.6.1 media", `{"@type":"Card","version":"1.0","uid":"u","media":{"res45":{"kind":"sound","uri":"CID:JOHNQ.part8.19960229T080000.xyzMail@example.com"},
			"res47":{"kind":"logo","uri":"https://www.example.com/pub/logos/abccorp.jpg"},"res1":{"kind":"photo","uri":"data:image/jpeg;base64,MIICajCCAdOgAwIBAgICBEUwDQYJKoZIhvAQEEBQAwdzELMAkGA1UEBhMCVVMxLDAqBgNVBAoTI05ldHNjYXBlIENvbW11bm"}}}`,
			[]string{"SOUND;PROP-ID=res45:CID:JOHNQ.part8.19960229T080000.xyzMail@example.com", "LOGO;PROP-ID=res47:https://www.example.com/pub/logos/abccorp.jpg",
				"PHOTO;PROP-ID=res1:data:image/jpeg;base64,MIICajCCAdOgAwIBAgICBEUwDQYJKoZIhvAQEEBQAwdzELMAkGA1UEBhMCVVMxLDAqBgNVBAoTI05ldHNjYXBlIENvbW11bm"}},
		{"RFC 9553 2.8.1 anniversaries", `{"@type":"Card","version":"1.0","uid":"u","anniversaries":{"k8":{"kind":"birth","date":{"year":1953,"month":4,"day":15,"@type":"PartialDate"}},
			"k9":{"kind":"death","date":{"@type":"Timestamp","utc":"2019-10-15T23:10:00Z"},"place":{"full":"4445 Tree Street\nNew England, ND 58647\nUSA"}}}}`,
			[]string{"BDAY;PROP-ID=k8:19530415", "DEATHDATE;PROP-ID=k9:20191015T231000Z", `JSPROP;JSPTR=anniversaries/k9/place:{"full":"4445 Tree Street\\nNew England\, ND 58647\\nUSA"}`}},
		{"RFC 9553 2.2.1 organizations and titles", `{"@type":"Card","version":"1.0","uid":"u","organizations":{"o1":{"name":"ABC, Inc.","units":[{"name":"North American Division"},{"name":"Marketing"}]}},
			"titles":{"le9":{"kind":"title","name":"Research Scientist"},"k2":{"kind":"role","name":"Project Leader","organizationId":"o1"}}}`,
			[]string{`ORG:ABC\, Inc.;North American Division;Marketing`, "TITLE;PROP-ID=le9:Research Scientist", "ROLE;PROP-ID=k2:Project Leader", `JSPROP;JSPTR=titles/k2/organizationId:"o1"`}},
		{"RFC 9553 2.5.1 addresses", `{"@type":"Card","version":"1.0","uid":"u","addresses":{"k23":{"contexts":{"work":true},"components":[{"kind":"number","value":"54321"},{"kind":"separator","value":" "},
			{"kind":"name","value":"Oak St"},{"kind":"locality","value":"Reston"},{"kind":"region","value":"VA"},{"kind":"separator","value":" "},{"kind":"postcode","value":"20190"},{"kind":"country","value":"USA"}],
			"countryCode":"US","defaultSeparator":", ","isOrdered":true}}}`,
			[]string{"ADR;CC=US;PROP-ID=k23;TYPE=work:;;54321 Oak St;Reston;VA;20190;USA", "JSPROP;JSPTR=addresses/k23/defaultSeparator:\"\\, \"", "JSPROP;JSPTR=addresses/k23/isOrdered:true"}},
		{"unknown card property", `{"@type":"Card","version":"1.0","uid":"u","speakToAs":{"grammaticalGender":"neuter","pronouns":{"k19":{"pronouns":"they/them","pref":2}}}}`,
			[]string{`JSPROP;JSPTR=speakToAs:{"grammaticalGender":"neuter"\,"pronouns":{"k19":{"pref":2\,"pronouns":"they/them"}}}`}},
		{"vCardProps", `{"@type":"Card","version":"1.0","uid":"u","vCardProps":[["x-foo",{"group":"item1","x-a":["1","2"]},"unknown","bar"]]}`,
			[]string{"item1.X-FOO;X-A=1,2:bar"}},
		{"keywords", `{"@type":"Card","version":"1.0","uid":"u","keywords":{"b":true,"a":true}}`, []string{"CATEGORIES:a,b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.card))
			if err != nil {
				t.Fatal(err)
			}
			b, err := ToVCard(c)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(b), "\r\n ", "")
			lines := map[string]bool{}
			for _, l := range strings.Split(text, "\r\n") {
				lines[l] = true
			}
			for _, w := range tc.want {
				if !lines[w] {
					t.Errorf("missing %q in\n%s", w, text)
				}
			}
			for _, l := range strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n") {
				if len(l) > 75 {
					t.Errorf("line longer than 75 octets: %q", l)
				}
			}
			// And back: the same card.
			back, err := FromVCard(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(Canonical(back)) != string(Canonical(c)) {
				t.Errorf("JSContact → vCard → JSContact:\n got %s\nwant %s", Canonical(back), Canonical(c))
			}
		})
	}
}

// TestRoundTrip: every corpus card, and one card per normalisation rule,
// goes vCard → JSContact → vCard and is equal after [NormalizeVCard];
// the JSContact of the result is the JSContact of the original.
func TestRoundTrip(t *testing.T) {
	type rt struct{ name, body string }
	var cases []rt
	for _, c := range corpus.Contacts() {
		cases = append(cases, rt{c.Name, c.Body})
	}
	cases = append(cases, []rt{
		{"3.0 inline photo", string(vcf3("PHOTO;ENCODING=B;TYPE=PNG:iVBO Rw0K"))},
		{"TYPE=pref", string(vcf3("TEL;TYPE=HOME,PREF:+1"))},
		{"lower case", string(vcf3("KIND:GROUP", "EMAIL;TYPE=WORK:a@b"))},
		{"Apple group", string(vcf3("X-ADDRESSBOOKSERVER-KIND:group", "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:x"))},
		{"dates", string(vcf3("BDAY:1985-04-12", "REV:2026-12-01T10:15:00Z"))},
		{"trailing components", string(vcf("N:Doe;John", "ORG:ACME;"))},
		{"categories", string(vcf("CATEGORIES:b", "CATEGORIES:a"))},
		{"charset", string(vcf3("FN;CHARSET=UTF-8:Zoë"))},
		{"prop-id", string(vcf("EMAIL;PROP-ID=e7:a@b"))},
		{"no UID", "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ohne UID\r\nEND:VCARD\r\n"},
		{"commas", string(vcf("X-LIST:a,b", `X-ONE:a\,b`))},
		{"FN with LANGUAGE", string(vcf("FN;LANGUAGE=de:Jürgen", "FN;LANGUAGE=en:Juergen"))},
		{"ADR with RFC 9554 components", string(vcf("ADR:;;Main St;Town;;1;US;Room 3;;;;"))},
		{"quoted parameter", string(vcf(`X-A;X-P="a:b;c":v`))},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c1, err := FromVCard([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			out, err := ToVCard(c1)
			if err != nil {
				t.Fatal(err)
			}
			want, err := NormalizeVCard([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := NormalizeVCard(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("vCard → JSContact → vCard differs after normalisation:\n got %q\nwant %q", got, want)
			}
			c2, err := FromVCard(out)
			if err != nil {
				t.Fatal(err)
			}
			if Hash(c1) != Hash(c2) {
				t.Errorf("JSContact differs after a round trip:\n%s\n%s", Canonical(c1), Canonical(c2))
			}
		})
	}
}

// TestPhotoSize: the 500 KB inline photo arrives whole as a data: URI.
func TestPhotoSize(t *testing.T) {
	for _, c := range corpus.Contacts() {
		if c.Name != "photo.vcf" {
			continue
		}
		card, err := FromVCard([]byte(c.Body))
		if err != nil {
			t.Fatal(err)
		}
		uri := card["media"].(map[string]any)["m1"].(map[string]any)["uri"].(string)
		if want := "data:image/jpeg;base64," + corpus.Photo(375<<10); uri != want {
			t.Errorf("photo: %d bytes, want %d", len(uri), len(want))
		}
	}
}

func FuzzFromVCard(f *testing.F) {
	for _, c := range corpus.Contacts() {
		if c.Name != "photo.vcf" {
			f.Add([]byte(c.Body))
		}
	}
	f.Add(vcf(`JSPROP;JSPTR=a/b/c:{"x":1}`, "N:a;b,c;;;", "ADR;LABEL=\"x^ny\":;;a;b;;;"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err := FromVCard(data)
		if err != nil {
			return
		}
		out, err := ToVCard(c1)
		if err != nil {
			t.Fatalf("ToVCard of a converted card: %v", err)
		}
		c2, err := FromVCard(out)
		if err != nil {
			t.Fatalf("the vCard written does not parse: %v\n%q", err, out)
		}
		out2, err := ToVCard(c2)
		if err != nil {
			t.Fatal(err)
		}
		if string(out2) != string(out) {
			t.Errorf("not a fixed point after one round trip:\n%q\n%q", out, out2)
		}
	})
}

func FuzzToVCard(f *testing.F) {
	f.Add([]byte(`{"@type":"Card","version":"1.0","uid":"u","name":{"full":"A, B","components":[{"kind":"given","value":"A"}]},"emails":{"x":{"address":"a@b","label":"l"}}}`))
	f.Add([]byte(`{"@type":"Card","version":"1.0","uid":"u","speakToAs":{"grammaticalGender":"neuter"},"vCardProps":[["x-a",{},"unknown","b;c"]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out, err := ToVCard(c)
		if err != nil {
			return
		}
		c2, err := FromVCard(out)
		if err != nil {
			t.Fatalf("the vCard written does not parse: %v\n%q", err, out)
		}
		out2, err := ToVCard(c2)
		if err != nil {
			t.Fatal(err)
		}
		if string(out2) != string(out) {
			t.Errorf("not a fixed point after one round trip:\n%q\n%q", out, out2)
		}
	})
}
