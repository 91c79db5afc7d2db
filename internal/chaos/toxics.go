package chaos

import (
	"context"
	"fmt"
	"strings"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Network faults come from Toxiproxy, run in this process: one proxy per
// link to cut (a group of clients to a node, a node to a NATS server), and
// a "timeout" toxic on both directions of a proxy is a network drop: no
// byte passes, and each connection through it is closed when the toxic's
// timeout ends, as a NAT or a flaky path would do it.

// toxics is an in-process Toxiproxy server and its proxies.
type toxics struct {
	srv     *toxiproxy.ApiServer
	proxies []*toxiproxy.Proxy
}

func newToxics() *toxics {
	return &toxics{srv: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
}

// proxy starts a proxy on a random loopback port in front of upstream and
// returns it; its Listen is the address to use.
func (x *toxics) proxy(name, upstream string) (*toxiproxy.Proxy, error) {
	p := toxiproxy.NewProxy(x.srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("toxiproxy %s: %w", name, err)
	}
	x.proxies = append(x.proxies, p)
	return p, nil
}

// drop stops every byte through ps, both ways, and closes the connections
// through them (those open now and those opened meanwhile) after ms
// milliseconds; heal lifts it.
func drop(ps []*toxiproxy.Proxy, ms int64) error {
	for _, p := range ps {
		for _, dir := range []string{"upstream", "downstream"} {
			j := fmt.Sprintf(`{"name":"drop-%s","type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":%d}}`, dir, dir, ms)
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(j)); err != nil {
				return fmt.Errorf("toxiproxy %s: %w", p.Name, err)
			}
		}
	}
	return nil
}

// heal removes what drop added.
func heal(ps []*toxiproxy.Proxy) {
	for _, p := range ps {
		for _, dir := range []string{"upstream", "downstream"} {
			_ = p.Toxics.RemoveToxic(context.Background(), "drop-"+dir)
		}
	}
}

// close stops every proxy (and closes every connection through them).
func (x *toxics) close() {
	for _, p := range x.proxies {
		p.Stop()
	}
}
