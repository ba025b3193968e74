package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

func runVersion(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("version", "Usage: mailmig version\n\nPrints the mailmig version and the Go version it was built with.\n", s)
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	v := version
	gov := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		gov = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	fmt.Fprintf(s.Out, "mailmig %s (%s)\n", v, gov)
	return exitOK
}
