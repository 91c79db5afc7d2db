package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newKickCmd(g *globals) *cobra.Command {
	var sid, user, reason string
	cmd := &cobra.Command{
		Use:   "kick (--session SID | --user U) [--reason TEXT]",
		Short: "Close a session, or every session of a user",
		Long: `Close sockets with WebSocket close code 4010 (kicked) and --reason as the
close reason (at most 123 bytes), after the pushes already queued for them.
Clients see the code and reason; well-behaved ones do not reconnect at once.
Prints how many sessions were closed; exit 3 when there was none to close.`,
		Example: `  pushctl kick --session 1790000000000001234
  pushctl kick --user mallory --reason "account suspended"`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			switch {
			case sid != "" && user != "":
				return usageErrorf("kick takes exactly one target, got --session and --user")
			case sid == "" && user == "":
				return usageErrorf("kick needs a target: --session or --user")
			}
			if sid != "" {
				if err := checkSID("--session", sid); err != nil {
					return err
				}
			}
			if err := checkID("--user", user); err != nil {
				return err
			}
			if len(reason) > 123 {
				return usageErrorf("--reason is %d bytes; a close reason holds at most 123", len(reason))
			}
			return g.run(func(c *conn) error { return runKick(g, c, sid, user, reason) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sid, "session", "", "close this session")
	fl.StringVar(&user, "user", "", "close every session of this user")
	fl.StringVar(&reason, "reason", "", "close reason sent to the client (default \"kicked by an admin\")")
	return cmd
}

func runKick(g *globals, c *conn, sid, user, reason string) error {
	res, err := c.client.Kick(g.ctx, sid, user, reason)
	if err != nil {
		return err
	}
	if g.output == outJSON {
		if err := printJSON(g.out, res); err != nil {
			return err
		}
	} else {
		line := fmt.Sprintf("closed %d session(s)", res.Closed)
		if len(res.SIDs) > 0 {
			line += ": " + strings.Join(res.SIDs, ", ")
		}
		fmt.Fprintln(g.out, line)
	}
	if res.Closed == 0 {
		what := "session " + sid
		if user != "" {
			what = "user " + user
		}
		return notFoundErrorf("nothing to kick: %s has no open session on the %d node(s) that answered", what, res.Nodes)
	}
	return nil
}
