package main

import (
	"testing"

	"github.com/mailmig/mailmig/plan"
)

func TestRedactor(t *testing.T) {
	m := &plan.Migration{
		Backends: []*plan.Backend{{Name: "b", Master: &plan.Master{User: "admin", Password: plan.NewSecret("s3cret-master")}}},
		Accounts: []*plan.Account{{Address: "a@example.test", Password: plan.NewSecret("hunter2")}},
	}
	r := redactor(m)
	if got := r("login admin/s3cret-master then a with hunter2"); got != "login admin/(sensitive) then a with (sensitive)" {
		t.Fatalf("got %q", got)
	}
	if redactor(&plan.Migration{}) != nil {
		t.Fatal("redactor without secrets")
	}
}
