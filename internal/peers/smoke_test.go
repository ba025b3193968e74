package peers

import (
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewAccountDovecotAndCyrus(t *testing.T) {
	s := Get(t)
	a := s.NewAccount(t)
	for _, addr := range []string{s.Dovecot.IMAP, s.Dovecot2.IMAP, s.Cyrus.IMAP} {
		if err := imapLogin(addr, a); err != nil {
			t.Errorf("login %s at %s: %v", a.Email, addr, err)
		}
	}
}
