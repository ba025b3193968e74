package graph_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/graph"
)

// TestRulesSieve converts the recorded inbox rules into one Sieve script
// and checks it line by line, including the report of what Sieve cannot
// express.
func TestRulesSieve(t *testing.T) {
	srv := recorded.New(t, "testdata/graph-rules.txtar")
	var sl sleeps
	r, err := graph.NewRules(options(srv, &sl))
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := r.Scripts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 1 || scripts[0].Name != graph.RulesScript || !scripts[0].Active {
		t.Fatalf("scripts %+v", scripts)
	}
	want := `# Converted by mailmig from the Outlook inbox rules (Microsoft Graph messageRules).
# rule "Boss \"urgent\"": action forwardAsAttachmentTo not expressible
# rule "Meetings": condition isMeetingRequest not expressible
# rule "Meetings": not converted (a condition has no Sieve test)
# rule "Old rule": disabled, not converted
require ["body", "copy", "fileinto", "imap4flags"];
# rule "Newsletters"
if allof (anyof (header :contains "subject" "unsubscribe", body :text :contains "unsubscribe"), size :over 9K, size :under 501K) {
    fileinto "Deleted Items";
}
# rule "Invoices to folder"
if allof (address :is "from" "billing@fabrikam.example", header :contains "subject" "Invoice", not anyof (header :contains "subject" "Reminder")) {
    addflag "\\Seen";
    addflag "Finance";
    fileinto "INBOX/Invoices";
    stop;
}
# rule "Boss \"urgent\""
if allof (address :contains "from" "ceo@", header :is "importance" "high") {
    redirect :copy "assistant@contoso.example";
}
`
	got := strings.ReplaceAll(string(scripts[0].Body), "\r\n", "\n")
	if got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
}
