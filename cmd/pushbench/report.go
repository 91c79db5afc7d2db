package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

type metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

type report struct {
	Scenario string         `json:"scenario"`
	Date     string         `json:"date"`
	Machine  string         `json:"machine"`
	Params   map[string]any `json:"params"`
	Metrics  []metric       `json:"metrics"`
	Checks   []check        `json:"checks"`
	Notes    []string       `json:"notes,omitempty"`
	Raw      map[string]any `json:"raw,omitempty"`
	Elapsed  float64        `json:"elapsed_s"`
}

func newReport(scenario string, o *options) *report {
	return &report{Scenario: scenario, Date: time.Now().UTC().Format(time.RFC3339),
		Machine: fmt.Sprintf("%d cpus, %s/%s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH),
		Params: map[string]any{
			"conns": o.conns, "workers": o.workers, "nodes": max(o.spawnNodes, len(o.targets)), "conn_rate": o.connRate,
			"rate": o.rate, "count": o.count, "payload": o.payload, "auth": map[bool]string{true: "jwt", false: "dev"}[o.secret != ""],
			"docs": o.docs, "doc_dist": o.docDist, "hold": o.hold.String(), "churn_rate": o.churnRate, "duration": o.duration.String(),
			"node_env": strings.Join(o.nodeEnv, " "), "pushd_args": strings.Join(o.pushdArgs, " "),
			"interval": o.interval.String(), "churn_pct": o.churnPct,
		}, Raw: map[string]any{}}
}

func (r *report) add(name string, v float64, unit string) {
	r.Metrics = append(r.Metrics, metric{name, v, unit})
}
func (r *report) check(name string, ok bool, detail string) {
	r.Checks = append(r.Checks, check{name, ok, detail})
}
func (r *report) note(s string)             { r.Notes = append(r.Notes, s) }
func (r *report) setRaw(name string, v any) { r.Raw[name] = v }
func (r *report) get(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}
func (r *report) ratio(name, a, b string) {
	x, ok1 := r.get(a)
	y, ok2 := r.get(b)
	if ok1 && ok2 && y != 0 {
		r.add(name, x/y, "x")
	}
}

func (r *report) ok() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func (r *report) write(w io.Writer, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "scenario %s  (%s, %s, %.1fs)\n", r.Scenario, r.Machine, r.Date, r.Elapsed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tVALUE\tUNIT")
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, fmtNum(m.Value), m.Unit)
	}
	tw.Flush()
	if len(r.Checks) > 0 {
		fmt.Fprintln(w)
		for _, c := range r.Checks {
			st := "PASS"
			if !c.OK {
				st = "FAIL"
			}
			fmt.Fprintf(w, "%s  %s (%s)\n", st, c.Name, c.Detail)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

func fmtNum(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15 && v > -1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1 || v <= -1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func mkTemp() (string, error) { return os.MkdirTemp("", "pushbench-") }
