package ews_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/ews"
)

// TestEWSRulesSieve reads the inbox rules with GetInboxRules (Microsoft's
// documented example and more) and checks the Sieve script line by line:
// the same conversion as Graph's messageRules, target folders by id and
// by distinguished name, and the report of what Sieve cannot express.
func TestEWSRulesSieve(t *testing.T) {
	srv := recorded.New(t, "testdata/ews-rules.txtar")
	var sl sleeps
	r, err := ews.NewRules(options(srv, &sl))
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := r.Scripts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 1 || scripts[0].Name != ews.RulesScript || !scripts[0].Active {
		t.Fatalf("scripts %+v", scripts)
	}
	want := `# Converted by mailmig from the Outlook inbox rules (EWS GetInboxRules).
# rule "Urgent from the CEO": action serverReplyWithMessage not expressible
# rule "Voice mail": condition itemClasses not expressible
# rule "Voice mail": not converted (a condition has no Sieve test)
# rule "Old newsletters": disabled, not converted
require ["copy", "fileinto", "imap4flags"];
# rule "MoveInterestingToJunk"
if header :contains "subject" "Interesting" {
    fileinto "Junk E-Mail";
}
# rule "Invoices"
if allof (address :is "from" "billing@fabrikam.example", header :contains "subject" "Invoice", not anyof (header :contains "subject" "Reminder")) {
    addflag "\\Seen";
    addflag "Finance";
    fileinto "INBOX/Projects";
    stop;
}
# rule "Urgent from the CEO"
if allof (address :contains "from" "ceo@", header :is "importance" "high") {
    redirect :copy "assistant@contoso.example";
}
# rule "Large to Deleted Items"
if allof (size :over 10239K, size :under 51201K) {
    fileinto "Deleted Items";
}
`
	got := strings.ReplaceAll(string(scripts[0].Body), "\r\n", "\n")
	if got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
}
