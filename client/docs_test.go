package client_test

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSDKDocShowsTheExamples: docs/SDK.md shows the Example functions of
// example_test.go verbatim: every Go block is one of them (marked
// <!-- go example: Name -->), and every one is shown. `go test` runs them
// and checks their output. (client/js/test/unit/docs.test.ts does the same
// for the TypeScript blocks.)
func TestSDKDocShowsTheExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/SDK.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := gotoken.NewFileSet()
	f, err := parser.ParseFile(fset, "example_test.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	examples := map[string]string{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fd.Name.Name, "Example") {
			continue
		}
		from := fd.Pos()
		if fd.Doc != nil {
			from = fd.Doc.Pos()
		}
		examples[fd.Name.Name] = string(src[fset.Position(from).Offset:fset.Position(fd.End()).Offset]) + "\n"
	}
	if len(examples) == 0 {
		t.Fatal("no examples in example_test.go")
	}
	blocks := regexp.MustCompile("(?s)(?:<!-- go example: (\\w+) -->\n)?```go\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	var shown []string
	for _, b := range blocks {
		name, body := b[1], b[2]
		if name == "" {
			t.Errorf("a Go block in docs/SDK.md without a <!-- go example: Name --> marker:\n%s", body)
			continue
		}
		want, ok := examples[name]
		if !ok {
			t.Errorf("docs/SDK.md shows %s, which example_test.go does not have", name)
			continue
		}
		if body != want {
			t.Errorf("%s differs from its copy in docs/SDK.md:\n--- example_test.go\n%s--- docs/SDK.md\n%s", name, want, body)
		}
		shown = append(shown, name)
	}
	for name := range examples {
		if !slices.Contains(shown, name) {
			t.Errorf("%s is not shown in docs/SDK.md", name)
		}
	}
}
