package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// versionOutput is the JSON document of `pushctl version -o json`.
type versionOutput struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Go      string `json:"go"`
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print pushctl's version",
		Example: "  pushctl version\n  pushctl version -o json",
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			v := versionOutput{Version: version, Commit: commit, Date: date, Go: runtime.Version()}
			if g.output == outJSON {
				return printJSON(g.out, v)
			}
			_, err := fmt.Fprintf(g.out, "pushctl %s (commit %s, built %s, %s)\n", v.Version, v.Commit, v.Date, v.Go)
			return err
		},
	}
}
