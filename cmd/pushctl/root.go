package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/internal/cliutil"
	"github.com/pushd/pushd/registry"
)

// envPrefix is the prefix of the global flags' environment variables.
const envPrefix = "PUSHCTL"

// Output formats of -o.
const (
	outTable = "table"
	outWide  = "wide"
	outJSON  = "json"
)

// streams are the command's standard streams.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// globals are the flags every command shares.
type globals struct {
	streams
	ctx        context.Context
	natsURL    string
	consulAddr string
	creds      string
	tlsCA      string
	tlsCert    string
	tlsKey     string
	prefix     string
	timeout    time.Duration
	output     string
}

// conn is an open connection to the cluster.
type conn struct {
	nc     *nats.Conn
	client *admin.Client
	// known are the nodes Consul lists; nil without --consul-addr.
	known []registry.Node
}

func (c *conn) close() { c.nc.Close() }

// knownAddress is the address Consul advertises for node id.
func (c *conn) knownAddress(id int64) string {
	for _, n := range c.known {
		if int64(n.ID) == id {
			return n.Address + ":" + strconv.Itoa(n.Port)
		}
	}
	return ""
}

func newRootCmd(ctx context.Context, s streams, lookupEnv func(string) (string, bool)) *cobra.Command {
	g := &globals{streams: s, ctx: ctx}
	cmd := &cobra.Command{
		Use:   "pushctl",
		Short: "Inspect sessions and steer a pushd cluster",
		Long: `pushctl talks to every pushd node of a cluster over NATS: who is online and
where, push a message to a user now, kick a socket, how is every node doing.

Nodes answer on <prefix>.admin.<verb>; pushctl collects answers until
--timeout, or, with --consul-addr, until every node Consul knows answered
(a known node that stays silent is reported as "not answering").
Every global flag can also be set with the environment variable shown next
to it. Exit codes: 0 ok, 1 error, 2 usage, 3 no node answered / not found,
4 nothing delivered (publish --require-delivery). See docs/PUSHCTL.md.`,
		Example: `  # which nodes are up
  pushctl nodes

  # where is alice connected
  pushctl sessions --user alice

  # push to her now and fail if nobody got it
  pushctl publish --user alice --event notice --require-delivery '{"text":"hi"}'

  # a remote cluster, with Consul telling which nodes should answer
  PUSHCTL_NATS_URL=nats://nats:4222 pushctl --consul-addr consul:8500 nodes -o json`,
		Version:       fmt.Sprintf("%s (commit %s, built %s)", version, commit, date),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q; see pushctl --help", args[0])
			}
			return nil
		},
		RunE:              func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return g.bind(cmd, lookupEnv) },
	}
	cmd.SetIn(s.in)
	cmd.SetOut(s.out)
	cmd.SetErr(s.err)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%v", err) })
	f := cmd.PersistentFlags()
	f.StringVar(&g.natsURL, "nats-url", nats.DefaultURL, "NATS server URL(s), comma separated")
	f.StringVar(&g.consulAddr, "consul-addr", "", "Consul HTTP address; when set, the nodes Consul lists are expected to answer")
	f.StringVar(&g.creds, "nats-creds", "", "NATS credentials file")
	f.StringVar(&g.tlsCA, "nats-tls-ca", "", "CA certificate file to verify the NATS server")
	f.StringVar(&g.tlsCert, "nats-tls-cert", "", "client certificate file for NATS mutual TLS")
	f.StringVar(&g.tlsKey, "nats-tls-key", "", "client key file for NATS mutual TLS")
	f.StringVar(&g.prefix, "subject-prefix", "push", "NATS subject prefix the nodes use")
	f.DurationVar(&g.timeout, "timeout", admin.DefaultTimeout, "how long to wait for nodes to answer")
	f.StringVarP(&g.output, "output", "o", outTable, "output format: table, wide or json")
	cliutil.AnnotateEnv(f, envPrefix)
	cmd.AddCommand(
		newNodesCmd(g),
		newSessionsCmd(g),
		newSessionCmd(g),
		newPublishCmd(g),
		newKickCmd(g),
		newRebalanceCmd(g),
		newStatsCmd(g),
		newHistoryCmd(g),
		newPresenceCmd(g),
		newVersionCmd(g),
	)
	return cmd
}

// bind applies environment variables to the global flags not given on the
// command line and checks them.
func (g *globals) bind(cmd *cobra.Command, lookupEnv func(string) (string, bool)) error {
	if err := cliutil.BindEnv(cmd.Root().PersistentFlags(), envPrefix, lookupEnv); err != nil {
		return usageErrorf("%v", err)
	}
	switch g.output {
	case outTable, outWide, outJSON:
	default:
		return usageErrorf("-o %q: want table, wide or json", g.output)
	}
	if g.timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	if (g.tlsCert == "") != (g.tlsKey == "") {
		return usageErrorf("--nats-tls-cert and --nats-tls-key go together")
	}
	if strings.ContainsAny(g.prefix, " *>") || g.prefix == "" {
		return usageErrorf("--subject-prefix %q: want a NATS subject without wildcards", g.prefix)
	}
	return nil
}

// connect opens NATS (and asks Consul which nodes exist, with --consul-addr).
func (g *globals) connect() (*conn, error) {
	opts := []nats.Option{
		nats.Name("pushctl"),
		// Dialing gets at least 5s even with a short --timeout: a busy
		// server is not an absent one.
		nats.Timeout(max(g.timeout, 5*time.Second)),
		nats.MaxReconnects(0),
		nats.NoCallbacksAfterClientClose(),
	}
	if g.creds != "" {
		opts = append(opts, nats.UserCredentials(g.creds))
	}
	if g.tlsCA != "" {
		opts = append(opts, nats.RootCAs(g.tlsCA))
	}
	if g.tlsCert != "" {
		opts = append(opts, nats.ClientCert(g.tlsCert, g.tlsKey))
	}
	nc, err := nats.Connect(g.natsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %v (set --nats-url or %s)", g.natsURL, err, cliutil.EnvName(envPrefix, "nats-url"))
	}
	c := &conn{nc: nc}
	var known []int64
	if g.consulAddr != "" {
		ctx, cancel := context.WithTimeout(g.ctx, g.timeout+3*time.Second)
		nodes, err := registry.ListNodes(ctx, registry.Config{Addr: g.consulAddr})
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("cannot list pushd nodes in Consul at %s: %v (check --consul-addr or %s)", g.consulAddr, err, cliutil.EnvName(envPrefix, "consul-addr"))
		}
		c.known = nodes
		known = make([]int64, len(nodes))
		for i, n := range nodes {
			known[i] = int64(n.ID)
		}
	}
	c.client = admin.NewClient(admin.ClientConfig{Conn: nc, Prefix: g.prefix, Timeout: g.timeout, Known: known})
	return c, nil
}

// run wraps a command body: it connects, runs fn and gives its error an
// exit code.
func (g *globals) run(fn func(c *conn) error) error {
	c, err := g.connect()
	if err != nil {
		return classify(err)
	}
	defer c.close()
	return classify(fn(c))
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// exactArgs wants n positional arguments, described by what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s wants %s, got %d arguments", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}
