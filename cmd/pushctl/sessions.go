package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/contract"
)

// sessionsFlags are the flags of `pushctl sessions`.
type sessionsFlags struct {
	user   string
	doc    string
	node   int64
	limit  int
	cursor string
}

func newSessionsCmd(g *globals) *cobra.Command {
	var f sessionsFlags
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List sessions, filtered by user, doc or node, a page at a time",
		Long: `List sessions across the cluster, ordered by session ID: SID, user, node,
transport (ws, sse or poll), remote address, docs joined, since when and last
heartbeat.

--user and --doc are answered by each node from its indexes, so they stay fast
with hundreds of thousands of sessions; both together list the user's
sessions in that doc. --node asks a single node. Without filters the cluster
is paged: --limit sessions per page (default 100); the next page starts after
--cursor, the last SID of the previous page, which pushctl prints as a hint.`,
		Example: `  # is alice online, and where
  pushctl sessions --user alice

  # who is in doc-42 on node 3
  pushctl sessions --doc doc-42 --node 3 -o wide

  # page through everything
  pushctl sessions --limit 500
  pushctl sessions --limit 500 --cursor 1790000000000001234`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := admin.SessionsQuery{User: f.user, Doc: f.doc, Limit: f.limit, Cursor: f.cursor}
			if err := checkID("--user", f.user); err != nil {
				return err
			}
			if err := checkID("--doc", f.doc); err != nil {
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
			if cmd.Flags().Changed("node") {
				if f.node < 0 || f.node > 1023 {
					return usageErrorf("--node %d: want a node ID 0..1023", f.node)
				}
				q.Node = &f.node
			}
			return g.run(func(c *conn) error { return runSessions(g, c, q) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "only this user's sessions")
	fl.StringVar(&f.doc, "doc", "", "only sessions that joined this doc")
	fl.Int64Var(&f.node, "node", 0, "only sessions on this node ID")
	fl.IntVar(&f.limit, "limit", admin.DefaultLimit, "page size (at most 1000)")
	fl.StringVar(&f.cursor, "cursor", "", "start after this session ID (the hint printed under the previous page)")
	return cmd
}

func runSessions(g *globals, c *conn, q admin.SessionsQuery) error {
	page, err := c.client.Sessions(g.ctx, q)
	if err != nil {
		return err
	}
	if g.output == outJSON {
		return printJSON(g.out, page)
	}
	wide := g.output == outWide
	header := []string{"SID", "USER", "NODE", "TRANSPORT", "REMOTE", "DOCS", "CONNECTED", "LAST HEARTBEAT"}
	if wide {
		header = append(header, "MSGS IN", "BYTES IN", "MSGS OUT", "BYTES OUT", "QUEUE")
	}
	t := newTable(g.out, header...)
	for _, s := range page.Sessions {
		row := []string{s.SID, s.User, itoa(s.Node), s.Transport, s.Remote, docsCell(s.Docs), ago(s.ConnectedAt), heartbeat(s)}
		if wide {
			row = append(row, itoa(s.MsgsIn), bytesHuman(s.BytesIn), itoa(s.MsgsOut), bytesHuman(s.BytesOut), itoa(s.QueueDepth))
		}
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.err, "%d of %d matching sessions on %d node(s)\n", len(page.Sessions), page.Total, page.Nodes)
	if page.Next != "" {
		fmt.Fprintf(g.err, "next page: %s\n", nextPageCommand(q, page.Next))
	}
	return nil
}

// nextPageCommand is the command line that lists the page after cursor.
func nextPageCommand(q admin.SessionsQuery, cursor string) string {
	parts := []string{"pushctl sessions"}
	if q.User != "" {
		parts = append(parts, "--user", q.User)
	}
	if q.Doc != "" {
		parts = append(parts, "--doc", q.Doc)
	}
	if q.Node != nil {
		parts = append(parts, "--node", itoa(*q.Node))
	}
	parts = append(parts, "--limit", itoa(int64(q.Limit)), "--cursor", cursor)
	return strings.Join(parts, " ")
}

func docsCell(docs []string) string {
	if len(docs) == 0 {
		return "-"
	}
	if len(docs) > 3 {
		return strings.Join(docs[:3], ",") + fmt.Sprintf(",+%d", len(docs)-3)
	}
	return strings.Join(docs, ",")
}

func heartbeat(s admin.SessionInfo) string {
	if s.LastHeartbeat == nil {
		return "never"
	}
	return ago(*s.LastHeartbeat)
}

// checkID rejects a user or doc ID pushd could not hold.
func checkID(flag, v string) error {
	if v == "" {
		return nil
	}
	if err := contract.ValidateID(v); err != nil {
		return usageErrorf("%s %q: %v", flag, v, strings.TrimPrefix(err.Error(), "pushd: "))
	}
	return nil
}

// checkSID rejects what cannot be a session ID (a decimal snowflake).
func checkSID(what, v string) error {
	if v == "" || strings.Trim(v, "0123456789") != "" || len(v) > 19 {
		return usageErrorf("%s %q: a session ID is a decimal number such as 1790000000000001234", what, v)
	}
	return nil
}
