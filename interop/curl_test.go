package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestProtocolCurlExamples runs the curl examples of docs/PROTOCOL.md's
// "Trying it with curl" (every ```sh block there) with Debian's curl and
// jq against a real pushd with history, and checks each command's output
// against the "# =>" lines under it, "…" matching anything.
func TestProtocolCurlExamples(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"curl", "jq", "bash", "head"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run .ci/install-debs", tool)
		}
	}
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "### Trying it with curl")
	if !ok {
		t.Fatal(`docs/PROTOCOL.md has no "### Trying it with curl" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	steps := parseExamples(section)
	if len(steps) < 8 {
		t.Fatalf("found %d example steps, want the whole walk-through", len(steps))
	}
	srv := startServerOn(t, pushtest.RunJetStream(t))

	// One script, each step's commands followed by a marker line.
	var script strings.Builder
	script.WriteString("set -eu\n")
	for i, st := range steps {
		script.WriteString(st.commands)
		fmt.Fprintf(&script, "echo '@@step %d@@'\n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"PUSHD=http://"+srv.addr,
		"PUSHCTL_NATS_URL="+srv.natsURL,
		"PATH="+filepath.Dir(bins.Path(t, "pushctl"))+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the examples failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	rest := string(out)
	for i, st := range steps {
		marker := fmt.Sprintf("@@step %d@@\n", i)
		got, tail, found := strings.Cut(rest, marker)
		if !found {
			t.Fatalf("step %d (%s) did not finish:\n%s", i, st.commands, rest)
		}
		rest = tail
		got = strings.TrimSuffix(got, "\n")
		if st.want == nil {
			continue
		}
		if !st.want.MatchString(got) {
			t.Errorf("step %d:\n%s\ngot:\n%s\nwant (… is anything):\n%s", i, st.commands, got, st.wantText)
		}
	}
}

// example is one step of the walk-through: commands and the output the
// "# =>" lines after them show (nil when none).
type example struct {
	commands string
	wantText string
	want     *regexp.Regexp
}

// parseExamples splits the ```sh blocks of section into steps: a step ends
// with its "# =>" lines, or with the block.
func parseExamples(section string) []example {
	var steps []example
	var cmds, want []string
	flush := func() {
		if len(cmds) == 0 && len(want) == 0 {
			return
		}
		st := example{commands: strings.Join(cmds, "\n") + "\n"}
		if want != nil {
			st.wantText = strings.Join(want, "\n")
			parts := strings.Split(st.wantText, "…")
			for i, p := range parts {
				parts[i] = regexp.QuoteMeta(p)
			}
			st.want = regexp.MustCompile(`(?s)^` + strings.Join(parts, `.*?`) + `$`)
		}
		steps = append(steps, st)
		cmds, want = nil, nil
	}
	in := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case line == "```sh":
			in = true
		case in && line == "```":
			flush()
			in = false
		case !in:
		case line == "# =>" || strings.HasPrefix(line, "# => "):
			want = append(want, strings.TrimPrefix(strings.TrimPrefix(line, "# =>"), " "))
		default:
			if want != nil {
				flush()
			}
			cmds = append(cmds, line)
		}
	}
	return steps
}
