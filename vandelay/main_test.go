package vandelay_test

import (
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
)

// TestMain stops the real servers a test of this package started
// (TestContactsRadicaleToJMAP); the other tests need none.
func TestMain(m *testing.M) { peers.Main(m) }
