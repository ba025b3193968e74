package executor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/plan"
)

// BenchmarkNoChangeAllKinds measures the no-change re-run of an account
// with 2,000 events, 2,000 contacts and 500 files (the figure:
// < 1 s), through the executor's own steps as apply runs them: Import
// and Export (a catch-up pass: mail, calendars, contacts, files), then
// Verify (what a cut-over adds inside the freeze). The source is a Cyrus
// account's CalDAV and CardDAV (sync-tokens) and an Apache WebDAV tree;
// the target a second Cyrus account and a second Apache tree; the mail
// side (Dovecot → Cyrus JMAP) is empty. Loading and the first export
// (4,000 PUTs) take minutes on a loaded VM; each iteration is timed
// whole and per step (import-s, export-s, verify-s).
//
//	just bench-kinds
//	go test -run '^$' -bench NoChangeAllKinds -benchtime 3x -timeout 30m ./engine/executor
//
// MAILMIG_BENCH_ITEMS changes the 2,000 (events and contacts each).
func BenchmarkNoChangeAllKinds(b *testing.B) {
	s := peers.Get(b)
	ctx := context.Background()
	n := 2000
	if v := benchEnvInt("MAILMIG_BENCH_ITEMS"); v > 0 {
		n = v
	}
	src := s.NewAccount(b)
	dst := peers.Account{Email: "t" + fmt.Sprintf("%012x", rand.Uint64()&0xffffffffffff) + "@example.test", Password: src.Password}
	if err := s.AddAccount(ctx, dst); err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	var reqs []benchReq
	calURL, cardURL := s.Cyrus.CalDAVURL(src.Email)+"Default/", s.Cyrus.CardDAVURL(src.Email)+"Default/"
	for i := range n {
		reqs = append(reqs, benchReq{"PUT", calURL + fmt.Sprintf("ev-%04d.ics", i), "text/calendar; charset=utf-8", benchEvent(i)})
		reqs = append(reqs, benchReq{"PUT", cardURL + fmt.Sprintf("c-%04d.vcf", i), "text/vcard; charset=utf-8", benchCard(i)})
	}
	home := s.WebDAV.HomeURL(src.Email)
	var mkcols, files []benchReq
	mkcols = append(mkcols, benchReq{"MKCOL", home + "bench/", "", ""})
	rng := rand.New(rand.NewPCG(12, 0))
	for d := range 20 {
		dir := home + fmt.Sprintf("bench/Ordner%%20%02d/", d)
		mkcols = append(mkcols, benchReq{"MKCOL", dir, "", ""})
		for f := range 25 {
			body := make([]byte, 2000)
			for k := range body {
				body[k] = byte(rng.UintN(256))
			}
			files = append(files, benchReq{"PUT", dir + fmt.Sprintf("Datei%%20%02d.bin", f), "application/octet-stream", string(body)})
		}
	}
	// MKCOL in order (parents first), the rest in parallel.
	benchDo(b, src, mkcols, 1)
	benchDo(b, src, append(reqs, files...), 4)
	b.Logf("loaded %d events and %d contacts into Cyrus (%s) and 500 files in 20 folders into Apache in %v",
		n, n, src.Email, time.Since(start).Round(time.Second))

	base := strings.TrimSuffix(s.WebDAV.URL, "/")
	cyrusDAV := "http://" + s.Cyrus.HTTP + "/"
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "legacy", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Dovecot.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCardDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCalDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoWebDAV, URL: base + "/{user}/bench/", TLS: plan.TLSNone}}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Cyrus.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCardDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCalDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoWebDAV, URL: base + "/{user}/", TLS: plan.TLSNone},
			{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()}}},
	}}
	pa := &plan.Account{Address: src.Email, TargetLogin: dst.Email, From: "legacy", To: "cyrus", Password: plan.NewSecret(src.Password),
		Data: []plan.DataKind{plan.DataMail, plan.DataContacts, plan.DataCalendars, plan.DataFiles}}
	// MAILMIG_BENCH_LOG=1 logs the steps (with their times) to stderr.
	var log *slog.Logger
	if os.Getenv("MAILMIG_BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	x := New(m, b.TempDir(), log)
	job := &engine.Job{Account: pa, Source: engine.NewLimiter("legacy", 4, 0, 0), Target: engine.NewLimiter("cyrus", 4, 0, 0)}
	start = time.Now()
	c, err := x.Import(ctx, job)
	if err != nil || c.Objects != int64(2*n+500+20) {
		b.Fatalf("first import: %+v %v, want %d objects", c, err, 2*n+500+20)
	}
	b.Logf("first import %v", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	if c, err = x.Export(ctx, job); err != nil {
		b.Fatalf("first export: %+v %v", c, err)
	}
	b.Logf("first export %v (%d objects)", time.Since(start).Round(100*time.Millisecond), c.Objects)
	if c, err = x.Verify(ctx, job); err != nil || c.Mismatches != 0 {
		b.Fatalf("first verify: %+v %v", c, err)
	}

	var imp, exp, ver time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		c, err := x.Import(ctx, job)
		if err != nil || c.Objects != 0 || c.Messages != 0 {
			b.Fatalf("no-change import: %+v %v", c, err)
		}
		t1 := time.Now()
		if c, err = x.Export(ctx, job); err != nil || c.Objects != 0 || c.Messages != 0 {
			b.Fatalf("no-change export: %+v %v", c, err)
		}
		t2 := time.Now()
		if c, err = x.Verify(ctx, job); err != nil || c.Mismatches != 0 {
			b.Fatalf("verify: %+v %v", c, err)
		}
		imp, exp, ver = imp+t1.Sub(t0), exp+t2.Sub(t1), ver+time.Since(t2)
	}
	k := float64(b.N)
	b.ReportMetric(imp.Seconds()/k, "import-s")
	b.ReportMetric(exp.Seconds()/k, "export-s")
	b.ReportMetric((imp+exp).Seconds()/k, "catchup-s")
	b.ReportMetric(ver.Seconds()/k, "verify-s")
}

type benchReq struct{ method, url, media, body string }

// benchDo sends the requests with workers in parallel; each must answer 2xx.
func benchDo(b *testing.B, a peers.Account, reqs []benchReq, workers int) {
	b.Helper()
	ch := make(chan benchReq)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range ch {
				req, _ := http.NewRequest(r.method, r.url, strings.NewReader(r.body))
				req.SetBasicAuth(a.Email, a.Password)
				if r.media != "" {
					req.Header.Set("Content-Type", r.media)
				}
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					msg, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("%s %s: %s %s", r.method, r.url, resp.Status, msg)
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, r := range reqs {
		ch <- r
	}
	close(ch)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// benchEvent is the i-th generated event: every tenth a weekly series,
// every seventh an all-day event, some with an alarm and a description.
func benchEvent(i int) string {
	var e strings.Builder
	e.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailmig//bench//EN\r\nBEGIN:VEVENT\r\n")
	fmt.Fprintf(&e, "UID:bench-ev-%04d@example.test\r\nDTSTAMP:20261201T100000Z\r\n", i)
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%365)
	if i%7 == 0 {
		fmt.Fprintf(&e, "DTSTART;VALUE=DATE:%s\r\nDTEND;VALUE=DATE:%s\r\n", day.Format("20060102"), day.AddDate(0, 0, 1).Format("20060102"))
	} else {
		st := day.Add(time.Duration(8+i%10) * time.Hour)
		fmt.Fprintf(&e, "DTSTART:%s\r\nDTEND:%s\r\n", st.Format("20060102T150405Z"), st.Add(time.Hour).Format("20060102T150405Z"))
	}
	if i%10 == 0 {
		e.WriteString("RRULE:FREQ=WEEKLY;COUNT=10\r\n")
	}
	fmt.Fprintf(&e, "SUMMARY:Termin %d – Besprechung\r\n", i)
	if i%3 == 0 {
		fmt.Fprintf(&e, "DESCRIPTION:Tagesordnung für Termin %d: Bericht\\, Planung\\, Verschiedenes\r\n", i)
		e.WriteString("BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Erinnerung\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n")
	}
	e.WriteString("END:VEVENT\r\nEND:VCALENDAR\r\n")
	return e.String()
}

// benchCard is the i-th generated vCard 3.0.
func benchCard(i int) string {
	return fmt.Sprintf("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-c-%04d\r\nFN:Person %d Müller\r\nN:Müller;Person %d;;;\r\n"+
		"EMAIL;TYPE=INTERNET:person%d@example.test\r\nTEL;TYPE=CELL:+49 170 %07d\r\nORG:Firma %d\r\nEND:VCARD\r\n", i, i, i, i, i, i%50)
}

func benchEnvInt(name string) int {
	var v int
	if s := strings.TrimSpace(os.Getenv(name)); s != "" {
		fmt.Sscan(s, &v)
	}
	return v
}
