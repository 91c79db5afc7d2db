package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/contract"
)

// presenceFlags are the flags of `pushctl presence`.
type presenceFlags struct {
	limit  int
	cursor string
}

func newPresenceCmd(g *globals) *cobra.Command {
	var f presenceFlags
	cmd := &cobra.Command{
		Use:   "presence DOC",
		Short: "Who is in a doc, across the cluster, a page at a time",
		Long: `List the members of a doc: every session that joined it, on any node, with
its user, node, when it joined and the info its token carries; ordered by
session ID, at most --limit per page (default 100); the next page starts
after --cursor, which pushctl prints as a hint under the table.

One node holding the doc answers from its copy of the doc's members (the
request goes to <prefix>.presence.query.<doc>, as a backend's does); no node
holding it is an empty presence at once. "pushctl presence stats DOC" gives
the counts only. A doc literally named "stats": pushctl presence -- stats.`,
		Example: `  # who is in doc-42
  pushctl presence doc-42

  # page through a large doc
  pushctl presence doc-42 --limit 500
  pushctl presence doc-42 --limit 500 --cursor 1790000000000001234

  # the counts only
  pushctl presence stats doc-42 -o json`,
		Args: exactArgs(1, "one doc ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			doc := args[0]
			if err := checkDoc(doc); err != nil {
				return err
			}
			if f.limit <= 0 || f.limit > admin.MaxLimit {
				return usageErrorf("--limit %d: want a page size of 1..%d", f.limit, admin.MaxLimit)
			}
			if f.cursor != "" {
				if err := checkSID("--cursor", f.cursor); err != nil {
					return err
				}
			}
			q := contract.PresenceQuery{Limit: f.limit, Cursor: f.cursor}
			return g.run(func(c *conn) error { return runPresence(g, c, doc, q) })
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.limit, "limit", admin.DefaultLimit, "page size (at most 1000)")
	fl.StringVar(&f.cursor, "cursor", "", "start after this session ID (the hint printed under the previous page)")
	cmd.AddCommand(&cobra.Command{
		Use:   "stats DOC",
		Short: "How many sessions and distinct users are in a doc",
		Long: `Count a doc's members (sessions that joined it, on any node) and their
distinct users, without listing them: cheap for large docs.`,
		Example: `  pushctl presence stats doc-42
  pushctl presence stats doc-42 -o json`,
		Args: exactArgs(1, "one doc ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkDoc(args[0]); err != nil {
				return err
			}
			return g.run(func(c *conn) error { return runPresenceStats(g, c, args[0]) })
		},
	})
	return cmd
}

func checkDoc(doc string) error {
	if doc == "" {
		return usageErrorf("doc ID is empty")
	}
	return checkID("doc", doc)
}

func runPresence(g *globals, c *conn, doc string, q contract.PresenceQuery) error {
	p, err := c.client.Presence(g.ctx, doc, q)
	if err != nil {
		return err
	}
	if g.output == outJSON {
		return printJSON(g.out, p)
	}
	wide := g.output == outWide
	header := []string{"SID", "USER", "NODE", "JOINED", "INFO"}
	if wide {
		header = append(header, "JOINED AT")
	}
	t := newTable(g.out, header...)
	for _, m := range p.Members {
		info := "-"
		if len(m.Info) > 0 {
			info = string(m.Info)
			if !wide && len(info) > 40 {
				info = info[:37] + "..."
			}
		}
		row := []string{m.SID, m.User, itoa(m.Node), ago(m.JoinedAt), info}
		if wide {
			row = append(row, m.JoinedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		}
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.err, "%d of %d member(s) of %s (%d user(s))%s\n", len(p.Members), p.Sessions, doc, p.Users, answeredBy(p))
	if p.Next != "" {
		fmt.Fprintf(g.err, "next page: %s\n", strings.Join([]string{"pushctl presence", doc, "--limit", itoa(int64(q.PageSize())), "--cursor", p.Next}, " "))
	}
	return nil
}

func runPresenceStats(g *globals, c *conn, doc string) error {
	p, err := c.client.Presence(g.ctx, doc, contract.PresenceQuery{Stats: true})
	if err != nil {
		return err
	}
	if g.output == outJSON {
		return printJSON(g.out, p)
	}
	fmt.Fprintf(g.out, "%s: %d session(s), %d user(s)%s\n", doc, p.Sessions, p.Users, answeredBy(p))
	return nil
}

func answeredBy(p admin.PresencePage) string {
	if p.Node < 0 {
		return "; no node holds it"
	}
	return fmt.Sprintf("; answered by node %d", p.Node)
}
