package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/rogpeppe/go-internal/diff"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/plan"
)

const fmtHelp = `Usage: mailmig [global options] fmt [options] [FILE|DIR ...]

  Rewrites plan files in the canonical HCL format (aligned equals signs,
  two-space indentation, normalised spacing). Files with syntax errors are
  reported and left unchanged.

  With no arguments, fmt formats the *.hcl files of the directory named by
  -f (when it names one), else of the current directory. "-" reads
  standard input and writes the formatted plan to standard output.

Options:
  -check       Do not write; exit 1 and list the files that are not
               formatted canonically.
  -diff        Print a unified diff of the changes.
  -list=false  Do not list the files whose formatting changed.
  -write=false Do not write files (implied by -check).
  -recursive   Also process subdirectories (hidden ones are skipped).
  -no-color    Disable colour.

Exit status: 0 when everything is (now) formatted, 1 on syntax errors,
unreadable files, or with -check when a file would change.
`

func runFmt(ctx context.Context, g *globals, args []string, s Streams) int {
	fset := newFlagSet("fmt", fmtHelp, s)
	check := fset.Bool("check", false, "")
	showDiff := fset.Bool("diff", false, "")
	list := fset.Bool("list", true, "")
	write := fset.Bool("write", true, "")
	recursive := fset.Bool("recursive", false, "")
	noColor := fset.Bool("no-color", false, "")
	if code, done := parseFlags(fset, args, s); done {
		return code
	}
	g.NoColor = g.NoColor || *noColor
	if *check {
		*write = false
	}
	v := views.New(s.Out, s.Err, useColor(g, s.Out))

	paths := fset.Args()
	if len(paths) == 0 {
		paths = []string{"."}
		if fi, err := os.Stat(g.PlanPath); err == nil && fi.IsDir() {
			paths = []string{g.PlanPath}
		}
	}
	failed := false
	for _, p := range paths {
		if p == "-" {
			src, err := io.ReadAll(s.In)
			if err != nil {
				fmt.Fprintf(s.Err, "Error: read standard input: %v\n", err)
				failed = true
				continue
			}
			out, ok := formatSource(v, "<stdin>", src)
			if !ok {
				failed = true
				continue
			}
			if *check && !bytes.Equal(src, out) {
				failed = true
			}
			if *showDiff {
				s.Out.Write(diff.Diff("<stdin>", src, "<stdin>", out))
			} else if !*check {
				s.Out.Write(out)
			}
			continue
		}
		files, err := hclFiles(p, *recursive)
		if err != nil {
			fmt.Fprintf(s.Err, "Error: %v\n", err)
			failed = true
			continue
		}
		for _, f := range files {
			changed, ok := fmtFile(v, s, f, *write, *list, *showDiff)
			if !ok || (*check && changed) {
				failed = true
			}
		}
	}
	if failed {
		return exitError
	}
	return exitOK
}

// hclFiles lists the *.hcl files named by p: p itself when it is a file,
// else the *.hcl files in the directory (recursively when asked).
func hclFiles(p string, recursive bool) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", p, unwrapPathError(err))
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && (!recursive || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".hcl") {
			return nil
		}
		if d.Type().IsRegular() {
			out = append(out, path)
		} else if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			out = append(out, path) // a symbolic link to a plan file
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %v", p, unwrapPathError(err))
	}
	sort.Strings(out)
	return out, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// formatSource returns the canonical form of src, or reports its syntax
// errors and returns false.
func formatSource(v *views.View, name string, src []byte) ([]byte, bool) {
	// Both HCL parsers recurse without bound: a deeply nested file would
	// overflow the stack, which no recover() catches.
	if diags := plan.CheckSource(name, src); diags.HasErrors() {
		v.Diagnostics(diags, nil)
		return nil, false
	}
	_, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		v.Diagnostics(diags, map[string][]byte{name: src})
		return nil, false
	}
	return hclwrite.Format(src), true
}

// fmtFile formats one file; changed reports whether its formatting
// differs from the canonical one.
func fmtFile(v *views.View, s Streams, name string, write, list, showDiff bool) (changed, ok bool) {
	src, err := os.ReadFile(name)
	if err != nil {
		fmt.Fprintf(s.Err, "Error: cannot read %s: %v\n", name, unwrapPathError(err))
		return false, false
	}
	out, ok := formatSource(v, name, src)
	if !ok {
		return false, false
	}
	if bytes.Equal(src, out) {
		return false, true
	}
	if list {
		fmt.Fprintln(s.Out, name)
	}
	if showDiff {
		s.Out.Write(diff.Diff(name, src, name, out))
	}
	if write {
		fi, err := os.Stat(name)
		if err != nil {
			fmt.Fprintf(s.Err, "Error: %v\n", err)
			return true, false
		}
		write := writeFileAtomic
		if li, err := os.Lstat(name); err == nil && li.Mode()&os.ModeSymlink != 0 {
			// Keep the link: write through it rather than replace it.
			write = os.WriteFile
		}
		if err := write(name, out, fi.Mode().Perm()); err != nil {
			fmt.Fprintf(s.Err, "Error: cannot write %s: %v\n", name, err)
			return true, false
		}
	}
	return true, true
}

// writeFileAtomic replaces name with data through a temporary file and a
// rename, so that an interrupted fmt never leaves half a plan.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
