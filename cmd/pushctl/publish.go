package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/contract"
)

// publishFlags are the flags of `pushctl publish`.
type publishFlags struct {
	user, doc, session string
	all                bool
	event, id          string
	wait               time.Duration
	requireDelivery    bool
}

func newPublishCmd(g *globals) *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:   "publish (--user U | --doc D | --session SID | --all) [--event E] [--id ID] DATA|@FILE|-",
		Short: "Push a message to a user, doc, session or everyone now",
		Long: `Publish a push on the NATS subject of its target, exactly as a backend would,
with headers Push-Event, Push-Id (a fresh one unless --id) and Push-Timestamp,
and a reply inbox. Each node that delivered it to at least one session
reports back; pushctl waits --wait for the reports (with --consul-addr it
stops early once every known node reported) and prints how many sessions on
how many nodes received it.

DATA is sent as is: JSON reaches clients as JSON, anything else as a JSON
string. @FILE reads it from a file, - from standard input.

Exit 4 with --require-delivery when no session received it.`,
		Example: `  pushctl publish --user alice '{"title":"hello"}'
  pushctl publish --doc doc-42 --event patch @patch.json
  echo '"maintenance in 5 minutes"' | pushctl publish --all --event notice -
  pushctl publish --session 1790000000000001234 --require-delivery '"ping"'`,
		Args: exactArgs(1, "the data to push (DATA, @FILE or - for stdin)"),
		RunE: func(_ *cobra.Command, args []string) error {
			m, err := f.message()
			if err != nil {
				return err
			}
			if f.wait <= 0 {
				return usageErrorf("--wait must be positive")
			}
			data, err := readData(g, args[0])
			if err != nil {
				return classify(err)
			}
			m.Data = data
			return g.run(func(c *conn) error { return runPublish(g, c, m, f) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "push to every session of this user")
	fl.StringVar(&f.doc, "doc", "", "push to every session that joined this doc")
	fl.StringVar(&f.session, "session", "", "push to this one session")
	fl.BoolVar(&f.all, "all", false, "push to every session of the cluster")
	fl.StringVar(&f.event, "event", "", "event name (Push-Event); default \"message\"")
	fl.StringVar(&f.id, "id", "", "message ID (Push-Id); default a fresh unique one")
	fl.DurationVar(&f.wait, "wait", 500*time.Millisecond, "how long to wait for delivery reports")
	fl.BoolVar(&f.requireDelivery, "require-delivery", false, "exit 4 when no session received the push")
	return cmd
}

// message checks that exactly one target is given and builds the push.
func (f *publishFlags) message() (admin.Message, error) {
	var targets []string
	m := admin.Message{Event: f.event, ID: f.id}
	if f.user != "" {
		targets = append(targets, "--user")
		m.Target, m.Key = contract.TargetUser, f.user
		if err := checkID("--user", f.user); err != nil {
			return m, err
		}
	}
	if f.doc != "" {
		targets = append(targets, "--doc")
		m.Target, m.Key = contract.TargetDoc, f.doc
		if err := checkID("--doc", f.doc); err != nil {
			return m, err
		}
	}
	if f.session != "" {
		targets = append(targets, "--session")
		m.Target, m.Key = contract.TargetSession, f.session
		if err := checkSID("--session", f.session); err != nil {
			return m, err
		}
	}
	if f.all {
		targets = append(targets, "--all")
		m.Target, m.Key = contract.TargetAll, ""
	}
	switch len(targets) {
	case 0:
		return m, usageErrorf("publish needs a target: --user, --doc, --session or --all")
	case 1:
	default:
		return m, usageErrorf("publish takes exactly one target, got %s", strings.Join(targets, " and "))
	}
	if strings.ContainsAny(f.event, " \t\r\n") || len(f.event) > 128 {
		return m, usageErrorf("--event %q: want at most 128 characters without whitespace", f.event)
	}
	return m, nil
}

// readData reads DATA, @FILE or - (stdin).
func readData(g *globals, arg string) ([]byte, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(g.in)
		if err != nil {
			return nil, fmt.Errorf("cannot read the data from standard input: %v", err)
		}
		return b, nil
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("cannot read the data from %s: %v", arg, err)
		}
		return b, nil
	}
	return []byte(arg), nil
}

func runPublish(g *globals, c *conn, m admin.Message, f publishFlags) error {
	res, err := c.client.Publish(g.ctx, m, f.wait)
	if err != nil {
		return err
	}
	if g.output == outJSON {
		if err := printJSON(g.out, res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.out, "delivered to %d of %d matching session(s) on %d node(s) (subject %s, id %s)\n",
			res.Delivered, res.Matched, res.Nodes, res.Subject, res.ID)
		if res.Seq != "" {
			fmt.Fprintf(g.out, "stored in history at seq %s (stream %s)\n", res.Seq, res.Stream)
		}
		if why := undelivered(res, len(m.Data)); why != "" && res.Matched > 0 {
			fmt.Fprintln(g.out, why)
		}
		if g.output == outWide && len(res.Reports) > 0 {
			t := newTable(g.out, "NODE", "MATCHED", "DELIVERED", "CUT OFF", "REFUSED")
			for _, r := range res.Reports {
				t.row(itoa(r.Node), itoa(r.Matched), itoa(r.Delivered), itoa(r.CutOff), orDash(r.Refused))
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	if f.requireDelivery && res.Delivered == 0 {
		why := undelivered(res, len(m.Data))
		if res.Matched == 0 {
			why = fmt.Sprintf("no session matched %s within %s", res.Subject, f.wait)
		}
		return &cliError{code: exitUndelivered, err: errors.New("nothing delivered: " + why)}
	}
	return nil
}

// undelivered says why matching sessions did not get a push, or "".
func undelivered(res admin.PublishResult, size int) string {
	var why []string
	if n := res.Refused[contract.RefusedTooLarge]; n > 0 {
		why = append(why, fmt.Sprintf("%d node(s) refused it as too large (%d bytes; see pushd --max-push-size)", n, size))
	}
	if res.CutOff > 0 {
		why = append(why, fmt.Sprintf("%d session(s) were cut off as slow consumers", res.CutOff))
	}
	if rest := res.Matched - res.Delivered - res.CutOff; rest > 0 && len(why) == 0 {
		why = append(why, fmt.Sprintf("%d session(s) matched but were closing", rest))
	}
	return strings.Join(why, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
