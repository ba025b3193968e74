package vandelay

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
)

func TestCompareMailboxes(t *testing.T) {
	at := time.Date(2026, 11, 27, 22, 10, 0, 0, time.UTC)
	cur := func(v, next, modseq uint64, n string) archive.Cursor {
		return archive.Cursor{Validity: v, Next: next, ModSeq: modseq, Extra: n, Updated: at}
	}
	known := []archive.MailboxCursor{
		{Path: "INBOX", Selectable: true, Cursor: cur(1, 11, 50, "10"), Messages: 10},
		{Path: "Sent", Selectable: true, Cursor: cur(2, 6, 20, "5"), Messages: 5},
		{Path: "Old", Selectable: true, SourceRef: "uidvalidity:3", Cursor: cur(3, 4, 9, "3"), Messages: 3},
		{Path: "Gone", Selectable: true, Cursor: cur(4, 8, 9, "7"), Messages: 7},
		{Path: "Lists", Selectable: false},
		{Path: "Reset", Selectable: true, Cursor: cur(5, 3, 9, "2"), Messages: 2},
		{Path: "Flags", Selectable: true, Cursor: cur(6, 3, 9, "2"), Messages: 2},
	}
	tests := map[string]struct {
		src  []ProbeMailbox
		want string // new/deleted/mailboxes changed/added/removed/renamed
	}{
		"nothing changed": {
			src: []ProbeMailbox{{Path: "INBOX", Messages: 10, UIDValidity: 1, UIDNext: 11, HighestModSeq: 50},
				{Path: "Sent", Messages: 5, UIDValidity: 2, UIDNext: 6, HighestModSeq: 20},
				{Path: "Old", Messages: 3, UIDValidity: 3, UIDNext: 4, HighestModSeq: 9},
				{Path: "Gone", Messages: 7, UIDValidity: 4, UIDNext: 8, HighestModSeq: 9},
				{Path: "Reset", Messages: 2, UIDValidity: 5, UIDNext: 3, HighestModSeq: 9},
				{Path: "Flags", Messages: 2, UIDValidity: 6, UIDNext: 3, HighestModSeq: 9}},
			want: "0/0/0///",
		},
		"appends, expunges, flags, rename, new folder, gone folder, new uidvalidity": {
			src: []ProbeMailbox{{Path: "INBOX", Messages: 12, UIDValidity: 1, UIDNext: 14, HighestModSeq: 60}, // 3 new, 1 expunged
				{Path: "Sent", Messages: 5, UIDValidity: 2, UIDNext: 6, HighestModSeq: 20},
				{Path: "New", Messages: 3, UIDValidity: 3, UIDNext: 4, HighestModSeq: 9},     // Old renamed
				{Path: "Fresh", Messages: 4, UIDValidity: 9, UIDNext: 5, HighestModSeq: 1},   // added
				{Path: "Reset", Messages: 4, UIDValidity: 55, UIDNext: 5, HighestModSeq: 1},  // new UIDVALIDITY, grew by 2
				{Path: "Flags", Messages: 2, UIDValidity: 6, UIDNext: 3, HighestModSeq: 12}}, // re-flagged
			want: "9/8/5/Fresh/Gone/Old → New",
		},
		"count-only source": {
			src:  []ProbeMailbox{{Path: "INBOX", Messages: 8}, {Path: "Sent", Messages: 5, Touched: true}},
			want: "0/16/6//Flags,Gone,Old,Reset/",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := CompareMailboxes(tc.src, known)
			got := strings.Join([]string{i64(r.New), i64(r.Deleted), i64(int64(r.MailboxesChanged)),
				strings.Join(r.Added, ","), strings.Join(r.Removed, ","), strings.Join(r.Renamed, ",")}, "/")
			if got != tc.want {
				t.Errorf("got %s, want %s (%+v)", got, tc.want, r)
			}
			if r.NotImported || !r.Since.Equal(at) {
				t.Errorf("not imported %v, since %v", r.NotImported, r.Since)
			}
		})
	}
	r := CompareMailboxes([]ProbeMailbox{{Path: "INBOX", Messages: 4, UIDValidity: 1, UIDNext: 5}}, nil)
	if !r.NotImported || r.New != 4 || !r.Changed() {
		t.Errorf("without archive: %+v", r)
	}
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// FuzzCompareMailboxes: any counters give non-negative estimates and
// never panic.
func FuzzCompareMailboxes(f *testing.F) {
	f.Add("INBOX", uint32(1), uint32(11), uint64(50), int64(10), "INBOX", uint32(1), uint32(14), uint64(60), int64(12), "10", true)
	f.Add("Old", uint32(3), uint32(4), uint64(9), int64(3), "New", uint32(3), uint32(4), uint64(9), int64(3), "x", false)
	f.Fuzz(func(t *testing.T, kp string, kv, kn uint32, km uint64, kc int64, sp string, sv, sn uint32, sm uint64, sc int64, extra string, synced bool) {
		k := archive.MailboxCursor{Path: kp, Selectable: true, Messages: kc,
			Cursor: archive.Cursor{Validity: uint64(kv), Next: uint64(kn), ModSeq: km, Extra: extra}}
		if synced {
			k.Cursor.Updated = time.Unix(1e9, 0)
		}
		if sc < 0 {
			sc = -sc
		}
		r := CompareMailboxes([]ProbeMailbox{{Path: sp, Messages: max(0, sc), UIDValidity: uint64(sv), UIDNext: uint64(sn), HighestModSeq: sm}}, []archive.MailboxCursor{k})
		if r.New < 0 || r.Deleted < 0 || r.MailboxesChanged < 0 || r.MailboxesChanged > 2 {
			t.Errorf("estimate %+v", r)
		}
	})
}

// TestCompareMailboxesSize: the total size is known only when every
// mailbox's is; NeverSynced tells when a probe should ask for it.
func TestCompareMailboxesSize(t *testing.T) {
	for name, tc := range map[string]struct {
		src       []ProbeMailbox
		bytes     int64
		bytesFrom string
	}{
		"all known":     {[]ProbeMailbox{{Path: "INBOX", Messages: 2, Size: 300, SizeFrom: "status-size"}, {Path: "Sent", Messages: 1, Size: 50, SizeFrom: "status-size"}}, 350, "status-size"},
		"one unknown":   {[]ProbeMailbox{{Path: "INBOX", Messages: 2, Size: 300, SizeFrom: "status-size"}, {Path: "Sent", Messages: 1}}, -1, ""},
		"first unknown": {[]ProbeMailbox{{Path: "INBOX", Messages: 2}, {Path: "Sent", Messages: 1, Size: 50, SizeFrom: "stat"}}, -1, ""},
	} {
		r := CompareMailboxes(tc.src, nil)
		if r.Bytes != tc.bytes || r.BytesFrom != tc.bytesFrom || r.Messages != 3 || !r.NotImported {
			t.Errorf("%s: %+v, want %d bytes from %q", name, r, tc.bytes, tc.bytesFrom)
		}
	}
	synced := []archive.MailboxCursor{{Path: "INBOX", Selectable: true, Cursor: archive.Cursor{Updated: time.Unix(1, 0)}}}
	unsynced := []archive.MailboxCursor{{Path: "INBOX", Selectable: true}}
	if !NeverSynced(nil) || !NeverSynced(unsynced) || NeverSynced(synced) {
		t.Error("NeverSynced: want true for no cursors and unsaved ones, false for a saved one")
	}
}
