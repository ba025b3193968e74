package plan

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// docMarkdown renders the package comment of doc.go as Markdown, the
// content of docs/plan.md.
func docMarkdown(t *testing.T) string {
	t.Helper()
	fset := token.NewFileSet()
	names, _ := filepath.Glob("*.go")
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/mailmig/mailmig/plan")
	if err != nil {
		t.Fatal(err)
	}
	p := pkg.Printer()
	p.HeadingLevel = 2
	p.DocLinkBaseURL = "https://pkg.go.dev"
	md := string(p.Markdown(pkg.Parser().Parse(pkg.Doc)))
	// Same-package links point at pkg.go.dev, not at anchors of this file.
	md = strings.ReplaceAll(md, "](#", "](https://pkg.go.dev/github.com/mailmig/mailmig/plan#")
	return "# The migration plan language\n\n" +
		"<!-- Generated from plan/doc.go by `just update-golden` (TestDocsUpToDate); edit doc.go, not this file. -->\n\n" + md
}

// TestDocsUpToDate checks that docs/plan.md is the rendering of the
// package documentation.
func TestDocsUpToDate(t *testing.T) {
	checkGolden(t, "../docs/plan.md", docMarkdown(t))
}

// TestDocCoversSchema checks that every block type and attribute of the
// schema is mentioned in the package documentation, so that the reference
// cannot silently fall behind the decoder.
func TestDocCoversSchema(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	schemas := map[string]*hcl.BodySchema{
		"top": topSchema, "variable": variableSchema, "state": stateSchema, "routes": routesSchema,
		"backend": backendSchema, "net endpoint": netEndpointSchema, "http endpoint": httpEndpointSchema,
		"path endpoint": pathEndpointSchema, "exchange": exchangeSchema, "master": masterSchema,
		"limits": limitsSchema, "accounts": accountsSchema, "account": accountOverrideSchema,
		"wave": waveSchema, "proxy": proxySchema, "listen": listenSchema, "tls": proxyTLSSchema,
	}
	for name, s := range schemas {
		for _, a := range s.Attributes {
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(a.Name) + `\b`).MatchString(text) {
				t.Errorf("%s attribute %q is not documented in doc.go", name, a.Name)
			}
		}
		for _, b := range s.Blocks {
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(b.Type) + `\b`).MatchString(text) {
				t.Errorf("%s block %q is not documented in doc.go", name, b.Type)
			}
		}
	}
}
