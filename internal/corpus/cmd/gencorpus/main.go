// Command gencorpus generates a deterministic test corpus (internal/corpus)
// and loads it into an IMAP account, writes it as a Maildir, or prints its
// summary. For benchmarks and demos:
//
//	go run ./internal/corpus/cmd/gencorpus -seed 1 -n 3000 -huge 25M \
//	    -imap 127.0.0.1:20000 -user alice@example.test -pass-env PASS
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/mailmig/mailmig/internal/corpus"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("gencorpus", flag.ContinueOnError)
	seed := fs.Uint64("seed", 1, "seed: the same seed and options give the same corpus")
	n := fs.Int("n", 100, "number of messages")
	folders := fs.Int("folders", 12, "number of user folders besides INBOX and the special-use ones (max 16, -1 for none)")
	maxSize := fs.String("max-size", "1M", "largest ordinary message (K, M suffixes)")
	huge := fs.String("huge", "0", "add one message of this size, e.g. 25M (0: none)")
	addr := fs.String("imap", "", "load into this IMAP server (host:port, plain text)")
	user := fs.String("user", "", "IMAP user")
	passEnv := fs.String("pass-env", "", "name of the environment variable that holds the IMAP password")
	conns := fs.Int("conns", 4, "parallel IMAP connections")
	maildir := fs.String("maildir", "", "write the corpus as a Maildir++ tree into this directory")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gencorpus [flags]\n\nGenerates a deterministic test corpus and prints its summary; -imap loads it into an account, -maildir writes it to disk.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ms, err := parseSize(*maxSize)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus: -max-size:", err)
		return 2
	}
	hs, err := parseSize(*huge)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus: -huge:", err)
		return 2
	}
	start := time.Now()
	c := corpus.Generate(corpus.Options{Seed: *seed, Messages: *n, Folders: *folders, MaxSize: ms, HugeSize: hs})
	fmt.Print(c.Summary())
	fmt.Printf("generated in %.2fs\n", time.Since(start).Seconds())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *maildir != "" {
		start = time.Now()
		if err := c.WriteMaildir(*maildir); err != nil {
			fmt.Fprintln(os.Stderr, "gencorpus:", err)
			return 1
		}
		fmt.Printf("wrote Maildir %s in %.2fs\n", *maildir, time.Since(start).Seconds())
	}
	if *addr != "" {
		if *user == "" || *passEnv == "" {
			fmt.Fprintln(os.Stderr, "gencorpus: -imap needs -user and -pass-env")
			return 2
		}
		pass, ok := os.LookupEnv(*passEnv)
		if !ok {
			fmt.Fprintf(os.Stderr, "gencorpus: environment variable %s is not set\n", *passEnv)
			return 2
		}
		start = time.Now()
		if err := c.LoadIMAP(ctx, *addr, *user, pass, *conns); err != nil {
			fmt.Fprintln(os.Stderr, "gencorpus:", err)
			return 1
		}
		d := time.Since(start)
		fmt.Printf("loaded %d messages (%.1f MiB) into %s at %s in %.2fs (%.0f msg/s, %.1f MiB/s) over %d connections\n",
			len(c.Messages), float64(c.Size())/(1<<20), *user, *addr, d.Seconds(),
			float64(len(c.Messages))/d.Seconds(), float64(c.Size())/(1<<20)/d.Seconds(), *conns)
	}
	return 0
}

// parseSize reads 123, 64K, 25M, 1G (binary units; a trailing B or iB is allowed).
func parseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.TrimSuffix(strings.TrimSuffix(u, "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(u, "K"):
		mult, u = 1<<10, u[:len(u)-1]
	case strings.HasSuffix(u, "M"):
		mult, u = 1<<20, u[:len(u)-1]
	case strings.HasSuffix(u, "G"):
		mult, u = 1<<30, u[:len(u)-1]
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (examples: 4096, 64K, 25M)", s)
	}
	return n * mult, nil
}
