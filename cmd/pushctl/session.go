package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newSessionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "session SID",
		Short: "Show one session in detail",
		Long: `Show one session: user, node, transport, remote address, docs joined, connected since,
last heartbeat, messages and bytes in and out, and its outbound queue.

Only the node holding the session answers, so an unknown SID takes --timeout
to be reported (exit 3).`,
		Example: `  pushctl session 1790000000000001234
  pushctl session 1790000000000001234 -o json | jq .docs`,
		Args: exactArgs(1, "one session ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := checkSID("session ID", args[0]); err != nil {
				return err
			}
			return g.run(func(c *conn) error { return runSession(g, c, args[0]) })
		},
	}
}

func runSession(g *globals, c *conn, sid string) error {
	s, err := c.client.Session(g.ctx, sid)
	if err != nil {
		return err
	}
	if g.output == outJSON {
		return printJSON(g.out, s)
	}
	docs := strings.Join(s.Docs, ", ")
	if docs == "" {
		docs = "-"
	}
	beat := "never"
	if s.LastHeartbeat != nil {
		beat = fmt.Sprintf("%s (%s)", s.LastHeartbeat.Local().Format(time.DateTime), ago(*s.LastHeartbeat))
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"SID", s.SID},
		{"User", s.User},
		{"Node", itoa(s.Node)},
		{"Transport", s.Transport},
		{"Remote", s.Remote},
		{"Docs", docs},
		{"Connected", fmt.Sprintf("%s (%s)", s.ConnectedAt.Local().Format(time.DateTime), ago(s.ConnectedAt))},
		{"Last heartbeat", beat},
		{"Last seen", ago(s.LastSeen)},
		{"In", fmt.Sprintf("%d msgs, %s", s.MsgsIn, bytesHuman(s.BytesIn))},
		{"Out", fmt.Sprintf("%d msgs, %s", s.MsgsOut, bytesHuman(s.BytesOut))},
		{"Queue", fmt.Sprintf("%d frames, %s", s.QueueDepth, bytesHuman(uint64(s.QueueBytes)))},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}
