package chart_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// renderNotes renders templates/NOTES.txt, which `helm template` never prints, by copying the
// chart and exposing the notes through a throwaway ConfigMap rendered with tpl.
func renderNotes(t *testing.T, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pushd")
	err := filepath.WalkDir(chartDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(chartDir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(dir, "notes-under-test"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "notes-under-test", "NOTES.txt"), notes, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "templates", "zz-notes-under-test.yaml"), []byte(
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get \"notes-under-test/NOTES.txt\") . | toJson }}\n"), 0o644))

	args := append([]string{"template", releaseName, dir, "--namespace", namespace, "--kube-version", minKubeVersion,
		"--show-only", "templates/zz-notes-under-test.yaml"}, extra...)
	out, errOut, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("rendering NOTES.txt: %v\n%s", err, errOut)
	}
	r, err := decodeAll(out)
	if err != nil || len(r.configMaps) != 1 {
		t.Fatalf("decoding rendered notes: %v (%d configmaps)", err, len(r.configMaps))
	}
	return r.configMaps[0].Data["notes"]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNotesTellHowToConnectAndPublish(t *testing.T) {
	cases := map[string][]string{
		"minimal-values.yaml":            {"ws://pushd.push.svc:80/ws?token=<JWT>", "port-forward svc/pushd", "nats pub push.user.<uid>", "pushctl publish", "exec deploy/pushd -- pushctl nodes", `{"type":"connect","token":"<JWT>"}`, "grace period is 25s"},
		"production-values.yaml":         {"wss://push.example.com/ws?token=<JWT>", "nats pub push.user.<uid>", "--creds", "pushctl publish", "grace period is 55s"},
		"hpa-servicemonitor-values.yaml": {"wss://push.example.com/ws?token=<JWT>", "A ServiceMonitor scrapes it", "pushd-dashboard"},
		"dev-standalone-values.yaml":     {"WARNING: pushd.dev=true", "nats pub push.user.<uid>"},
	}
	for file, wants := range cases {
		t.Run(file, func(t *testing.T) {
			notes := renderNotes(t, "-f", filepath.Join(chartDir, "ci", file))
			for _, w := range wants {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
			if strings.Contains(notes, " env PUSHCTL_") {
				t.Errorf("NOTES tell to run env in a distroless image:\n%s", notes)
			}
			if strings.Contains(notes, "<no value>") {
				t.Errorf("NOTES reference a missing value:\n%s", notes)
			}
		})
	}
}
