package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/history"
)

// historyFlags are the flags of `pushctl history`.
type historyFlags struct {
	since uint64
	limit int
}

// maxHistoryLimit bounds --limit: one batched read answers it.
const maxHistoryLimit = 1000

func newHistoryCmd(g *globals) *cobra.Command {
	var f historyFlags
	cmd := &cobra.Command{
		Use:   "history (user|doc) ID",
		Short: "List the pushes kept in history for a user or a doc",
		Long: `List what a client resuming on a user's or a doc's pushes would be replayed:
the pushes JetStream keeps for it, oldest first, with their positions (SEQ,
the "seq" clients see), the time they were stored, their event and ID.

--since SEQ lists only the pushes after that position, as a client resuming
from it would get them. Broadcasts and session pushes are not kept.

pushctl reads the history streams directly (a JetStream direct get), so no
node needs to be up, only NATS. Exit 1 when the streams do not answer
(history is off or JetStream is down).`,
		Example: `  pushctl history doc doc-42
  pushctl history user alice --since 1795939863952852536
  pushctl history doc doc-42 --limit 5 -o json | jq -r '.[].data'`,
		Args: exactArgs(2, "a kind (user or doc) and an ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			t := contract.Target(args[0])
			if t != contract.TargetUser && t != contract.TargetDoc {
				return usageErrorf("history of %q: want user or doc (broadcasts and session pushes are not kept)", args[0])
			}
			if err := contract.ValidateID(args[1]); err != nil {
				return usageErrorf("%s ID %q: %v", t, args[1], err)
			}
			if f.limit < 1 || f.limit > maxHistoryLimit {
				return usageErrorf("--limit %d: want 1 to %d", f.limit, maxHistoryLimit)
			}
			return g.run(func(c *conn) error { return runHistory(g, c, t, args[1], f) })
		},
	}
	cmd.Flags().Uint64Var(&f.since, "since", 0, "list the pushes after this position only")
	cmd.Flags().IntVar(&f.limit, "limit", history.DefaultMaxMsgsPerSubject, "list at most this many pushes")
	return cmd
}

// storedPush is one line of `pushctl history`, and its JSON form.
type storedPush struct {
	Seq      string          `json:"seq"`
	StoredAt time.Time       `json:"stored_at"`
	Event    string          `json:"event,omitempty"`
	ID       string          `json:"id,omitempty"`
	Data     json.RawMessage `json:"data"`
}

func runHistory(g *globals, c *conn, t contract.Target, key string, f historyFlags) error {
	ctx, cancel := context.WithTimeout(g.ctx, g.timeout)
	defer cancel()
	msgs, more, err := history.Read(ctx, c.nc, g.prefix, t, key, f.since, f.limit)
	if errors.Is(err, history.ErrUnavailable) {
		return fmt.Errorf("history does not answer: pushd runs without --history, or JetStream is down (%v)", err)
	}
	if err != nil {
		return err
	}
	out := make([]storedPush, len(msgs))
	for i, m := range msgs {
		p := storedPush{Seq: strconv.FormatUint(m.Seq, 10), Event: m.Header.Get(contract.HeaderEvent), ID: m.Header.Get(contract.HeaderID)}
		p.StoredAt, _ = time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
		p.Data = m.Data
		if !json.Valid(m.Data) { // clients get it as a JSON string too
			p.Data, _ = json.Marshal(string(m.Data))
		}
		out[i] = p
	}
	if g.output == outJSON {
		return printJSON(g.out, out)
	}
	if len(out) == 0 {
		_, err := fmt.Fprintf(g.err, "No pushes kept for %s %s after %d.\n", t, key, f.since)
		return err
	}
	tb := newTable(g.out, "SEQ", "STORED", "EVENT", "ID", "DATA")
	for _, p := range out {
		data := string(p.Data)
		if g.output != outWide {
			data = shorten(data, 60)
		}
		tb.row(p.Seq, ago(p.StoredAt), dash(p.Event), dash(p.ID), data)
	}
	if err := tb.flush(); err != nil {
		return err
	}
	if more {
		_, err = fmt.Fprintf(g.err, "More pushes follow: run again with --since %s.\n", out[len(out)-1].Seq)
	}
	return err
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
