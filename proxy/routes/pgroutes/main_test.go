package pgroutes_test

import (
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
)

func TestMain(m *testing.M) { peers.Main(m) }
