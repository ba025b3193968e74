package managesieve_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/targets/managesieve"
)

// childEnv makes the test binary a Sieve export child (for
// TestSieveExportKillResume) instead of running tests.
const childEnv = "MAILMIG_SIEVE_EXPORT_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childExport())
	}
	peers.Main(m)
}

func childExport() int {
	ctx := context.Background()
	a, err := archive.Open(ctx, os.Getenv("EXPORT_ARCHIVE"), nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer a.Close()
	tg, err := managesieve.Open(ctx, &managesieve.Options{
		Server: vandelay.Server{Address: os.Getenv("EXPORT_SERVER"), TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: os.Getenv("EXPORT_USER"), Password: os.Getenv("EXPORT_PASS")},
	})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer tg.Close()
	res, err := vandelay.ExportSieve(ctx, a, tg, nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("%+v\n", *res)
	return 0
}
